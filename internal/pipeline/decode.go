package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/leadconv/leadconv/events"
	"github.com/leadconv/leadconv/record"
	"github.com/leadconv/leadconv/schemas"
)

// Dead-letter error codes of input records.
const (
	CodeOversize        = "oversize"
	CodeNotJSON         = "not_json"
	CodeSchemaViolation = "schema_violation"
	CodeUnknownObject   = "unknown_object"
	CodeUnknownOp       = "unknown_op"
	// CodeInvalidEvent: the store refused the event (matcher.ErrInvalidEvent).
	CodeInvalidEvent = "invalid_event"
)

// DecodeError is an input record that can never be decoded.
type DecodeError struct {
	Code string
	// Detail names the offending field or constraint, never a value.
	Detail string
}

func (e *DecodeError) Error() string { return "pipeline: decode: " + e.Code + ": " + e.Detail }

// Decoder turns a record event payload into an event. Errors that carry a
// code (see ErrorCode) are permanent; the record is dead-lettered.
type Decoder func(b []byte, maxBytes int) (record.Event, error)

// ErrorCode returns the dead-letter code of a permanent decoding error.
func ErrorCode(err error) (string, bool) {
	var de *DecodeError
	if errors.As(err, &de) {
		return de.Code, true
	}
	var ie *events.InputError
	if errors.As(err, &ie) {
		return ie.Code, true
	}
	return "", false
}

// dateTime is the pattern of schemas/common.v1.json#/$defs/dateTime.
var dateTime = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$`)

// DecodeEvent is the built-in decoder of the record event JSON. It accepts
// exactly what schemas/record-event.v1.json accepts (a test holds it to
// schemas.DecodeEvent) with a third of a generic validator's allocations
// (BenchmarkDecodeEvent): keys are matched exactly, not case-insensitively
// as encoding/json does. Numbers in fields decode as json.Number.
func DecodeEvent(b []byte, maxBytes int) (record.Event, error) {
	var ev record.Event
	if maxBytes > 0 && len(b) > maxBytes {
		return ev, &DecodeError{CodeOversize, fmt.Sprintf("%d bytes over the limit of %d", len(b), maxBytes)}
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil || top == nil {
		// Unmarshal checks the whole document before it decodes anything.
		if _, ok := errors.AsType[*json.SyntaxError](err); ok {
			return ev, &DecodeError{CodeNotJSON, "value is not a single JSON document"}
		}
		return ev, violation("/", "type")
	}
	has := func(k string) bool { _, ok := top[k]; return ok }
	known := 0
	// A fixed order makes the code of a record with several faults
	// deterministic: an unknown object or op names the fault most precisely.
	for _, k := range eventKeys {
		v, ok := top[k]
		if !ok {
			continue
		}
		known++
		var err error
		switch k {
		case "object":
			var s string
			s, err = text(v, k, 0, false)
			ev.Object = record.Object(s)
			if err == nil && !ev.Object.Valid() {
				err = &DecodeError{CodeUnknownObject, "/object: enum"}
			}
		case "op":
			var s string
			s, err = text(v, k, 0, false)
			ev.Op = record.Op(s)
			if err == nil && !ev.Op.Valid() {
				err = &DecodeError{CodeUnknownOp, "/op: enum"}
			}
		case "tenant":
			ev.Tenant, err = text(v, k, 128, true)
		case "id":
			ev.ID, err = text(v, k, 256, true)
		case "created_at":
			ev.CreatedAt, err = timestamp(v, k)
		case "modified_at":
			ev.ModifiedAt, err = timestamp(v, k)
		case "related_count":
			ev.RelatedCount, err = count(v)
		case "fields":
			ev.Fields, err = fields(v)
		case "other":
			ev.Other, err = other(v)
		}
		if err != nil {
			return record.Event{}, err
		}
	}
	if known < len(top) {
		return record.Event{}, violation("/", "additionalProperties")
	}
	pair := ev.Op == record.OpNotDuplicate || ev.Op == record.OpClearNotDuplicate
	switch {
	case !has("tenant") || !has("object") || !has("id") || !has("op"):
		return record.Event{}, violation("/", "required")
	case ev.Op == record.OpUpsert && (!has("created_at") || !has("modified_at")),
		ev.Op == record.OpPatch && !has("modified_at"),
		pair && !has("other"):
		return record.Event{}, violation("/", "required")
	case pair && ev.Object == record.Account:
		return record.Event{}, violation("/object", "enum")
	case !pair && has("other"):
		return record.Event{}, violation("/", "not")
	}
	return ev, nil
}

var eventKeys = []string{"object", "op", "tenant", "id", "created_at", "modified_at", "related_count", "fields", "other"}

func violation(at, keyword string) error {
	return &DecodeError{CodeSchemaViolation, at + ": " + keyword}
}

// text decodes a string member. max > 0 bounds its length in characters;
// ident also requires it non-empty without control characters or
// whitespace (and, for the tenant, braces: it becomes a Redis hash tag).
func text(v json.RawMessage, key string, max int, ident bool) (string, error) {
	var s string
	if len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil {
		return "", violation("/"+key, "type")
	}
	if !ident {
		return s, nil
	}
	if n := utf8.RuneCountInString(s); n == 0 || n > max {
		return "", violation("/"+key, "length")
	}
	for _, r := range s {
		if r <= ' ' || (key == "tenant" && (r == '{' || r == '}')) {
			return "", violation("/"+key, "pattern")
		}
	}
	return s, nil
}

func timestamp(v json.RawMessage, key string) (time.Time, error) {
	s, err := text(v, key, 0, false)
	if err != nil {
		return time.Time{}, err
	}
	if !dateTime.MatchString(s) {
		return time.Time{}, violation("/"+key, "pattern")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, violation("/"+key, "format")
	}
	return t, nil
}

// count decodes related_count, an integer in 0..2^31-1 written as one:
// like schemas.DecodeEvent, and unlike the schema alone, it refuses 1.0.
// count decodes related_count: a JSON Schema integer, so any number with a
// zero fraction (1.0 and 1e2 too).
func count(v json.RawMessage) (int, error) {
	if len(v) == 0 || (v[0] != '-' && (v[0] < '0' || v[0] > '9')) {
		return 0, violation("/related_count", "type")
	}
	n, ok := schemas.Integer(json.Number(v))
	if !ok {
		return 0, violation("/related_count", "type")
	}
	if n < 0 || n > 2147483647 {
		return 0, violation("/related_count", "range")
	}
	return int(n), nil
}

// fields decodes the field map: null (no fields, as Go encodes a nil map)
// or an object of non-empty names whose values are strings, numbers (as
// json.Number), booleans or null.
func fields(v json.RawMessage) (record.Fields, error) {
	if string(v) == "null" {
		return nil, nil
	}
	if len(v) == 0 || v[0] != '{' {
		return nil, violation("/fields", "type")
	}
	d := json.NewDecoder(bytes.NewReader(v))
	d.UseNumber()
	var f record.Fields
	if err := d.Decode(&f); err != nil {
		return nil, violation("/fields", "type")
	}
	for k, x := range f {
		switch x.(type) {
		case string, json.Number, bool, nil:
		default:
			return nil, violation("/fields/"+k, "type")
		}
		if k == "" {
			return nil, violation("/fields", "propertyNames")
		}
	}
	return f, nil
}

// other decodes the second record of a reviewed pair: exactly an object
// (lead or contact) and an id.
func other(v json.RawMessage) (*record.Ref, error) {
	var m map[string]json.RawMessage
	if len(v) == 0 || v[0] != '{' || json.Unmarshal(v, &m) != nil {
		return nil, violation("/other", "type")
	}
	ref := &record.Ref{}
	for k, x := range m {
		switch k {
		case "object":
			s, err := text(x, "other/object", 0, false)
			if err != nil {
				return nil, err
			}
			ref.Object = record.Object(s)
			if ref.Object != record.Lead && ref.Object != record.Contact {
				return nil, violation("/other/object", "enum")
			}
		case "id":
			s, err := text(x, "other/id", 256, true)
			if err != nil {
				return nil, err
			}
			ref.ID = s
		default:
			return nil, violation("/other", "additionalProperties")
		}
	}
	if _, ok := m["object"]; !ok {
		return nil, violation("/other", "required")
	}
	if _, ok := m["id"]; !ok {
		return nil, violation("/other", "required")
	}
	return ref, nil
}
