package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/leadconv/leadconv/record"
)

// Integer returns the value of a JSON number that JSON Schema counts as an
// integer: any number with a zero fraction (2, 2.0, 2e3), within int64.
func Integer(n json.Number) (int64, bool) {
	if i, err := n.Int64(); err == nil {
		return i, true
	}
	f, err := n.Float64()
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false
	}
	return int64(f), true
}

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
	if !ValidUTF8(b) {
		return ev, &Error{Code: CodeSchemaViolation, Detail: "/: " + RuleUTF8, at: "/"}
	}
	if err := validate(s, doc); err != nil {
		return ev, err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	d.DisallowUnknownFields()
	// related_count is a JSON Schema integer: any number with a zero
	// fraction (1.0, 1e2), which an int field would refuse.
	// Times are read as strings and parsed after unescaping, so a JSON
	// escape inside one ("\u005a" for the Z) means what it means in JSON.
	var wire struct {
		record.Event
		RelatedCount *json.Number `json:"related_count"`
		CreatedAt    *string      `json:"created_at"`
		ModifiedAt   *string      `json:"modified_at"`
	}
	err = d.Decode(&wire)
	if err == nil && wire.RelatedCount != nil {
		n, ok := Integer(*wire.RelatedCount)
		if !ok || n < 0 || n > 2147483647 {
			// The schema already bounds it: not reachable, but never wrap.
			return record.Event{}, &Error{Code: CodeSchemaViolation, Detail: "/related_count: type integer", at: "/related_count"}
		}
		wire.Event.RelatedCount = int(n)
	}
	ev = wire.Event
	if err != nil {
		// The schema admits only what record.Event holds.
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			// Field is the Go path, through the embedded Record.
			at := "/" + strings.ReplaceAll(strings.TrimPrefix(te.Field, "Record."), ".", "/")
			return record.Event{}, &Error{Code: CodeSchemaViolation, Detail: at + ": type integer", at: at}
		}
		return record.Event{}, &Error{Code: CodeSchemaViolation, Detail: "/: " + err.Error(), at: "/"}
	}
	// What is left is a date-time the schema's pattern accepts and time.Time
	// does not (a leap second, hour 24).
	for _, f := range []struct {
		key string
		raw *string
		t   *time.Time
	}{{"created_at", wire.CreatedAt, &ev.CreatedAt}, {"modified_at", wire.ModifiedAt, &ev.ModifiedAt}} {
		if f.raw == nil {
			continue
		}
		if err := f.t.UnmarshalText([]byte(*f.raw)); err != nil {
			return record.Event{}, &Error{Code: CodeSchemaViolation, Detail: "/" + f.key + ": format date-time", at: "/" + f.key}
		}
	}
	return ev, nil
}

// RuleUTF8 names the rule ValidUTF8 checks in error details.
const RuleUTF8 = "encoding UTF-8"

// ValidUTF8 reports whether the JSON text b (a document, or the raw content
// of one string) is valid UTF-8 whose \u escapes encode no lone surrogate.
// encoding/json replaces either with U+FFFD, so two different ids would
// decode to the same one: such input is refused, never repaired.
func ValidUTF8(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for i := bytes.IndexByte(b, '\\'); i >= 0; {
		if i+1 >= len(b) {
			return true // not JSON; the syntax check reports it
		}
		if b[i+1] != 'u' {
			i = next(b, i+2)
			continue
		}
		r := hex4(b, i+2)
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return false
		case r >= 0xD800 && r <= 0xDBFF:
			if i+12 > len(b) || b[i+6] != '\\' || b[i+7] != 'u' {
				return false
			}
			if lo := hex4(b, i+8); lo < 0xDC00 || lo > 0xDFFF {
				return false
			}
			i = next(b, i+12)
		default:
			i = next(b, i+6)
		}
	}
	return true
}

// next is the index of the first backslash at or after i, or -1.
func next(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	if j := bytes.IndexByte(b[i:], '\\'); j >= 0 {
		return i + j
	}
	return -1
}

// hex4 decodes the four hex digits at b[i:], or -1.
func hex4(b []byte, i int) int {
	if i+4 > len(b) {
		return -1
	}
	r := 0
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | int(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | int(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | int(c-'A'+10)
		default:
			return -1
		}
	}
	return r
}
