package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/leadconv/leadconv/record"
)

// DecodeEvent decodes a record event after validating it against
// record-event.v1.json: the schema is the contract, so whatever passes it
// decodes, and anything else is refused with a *Error naming where and which
// rule failed (never a value). Numbers in fields decode as json.Number.
// maxBytes > 0 bounds the payload. Its signature fits pipeline.Decoder.
func DecodeEvent(b []byte, maxBytes int) (record.Event, error) {
	var ev record.Event
	if maxBytes > 0 && len(b) > maxBytes {
		return ev, &Error{Code: CodeOversize, Detail: fmt.Sprintf("%d bytes over the limit of %d", len(b), maxBytes)}
	}
	s, err := schema(RecordEvent)
	if err != nil {
		return ev, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return ev, &Error{Code: CodeNotJSON, Detail: "value is not a single JSON document"}
	}
	if err := validate(s, doc); err != nil {
		return ev, err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	d.DisallowUnknownFields()
	if err := d.Decode(&ev); err != nil {
		// The schema admits only what record.Event holds; what is left is a
		// date-time the schema's pattern accepts and time.Time does not
		// (a leap second, hour 24).
		return record.Event{}, &Error{Code: CodeSchemaViolation, Detail: "date-time out of range"}
	}
	return ev, nil
}
