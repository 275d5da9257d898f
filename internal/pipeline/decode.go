package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/leadconv/leadconv/events"
	"github.com/leadconv/leadconv/record"
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

// DecodeEvent is the built-in decoder of the record event JSON: strict
// field names, known objects and operations, the identity fields present.
func DecodeEvent(b []byte, maxBytes int) (record.Event, error) {
	var ev record.Event
	if maxBytes > 0 && len(b) > maxBytes {
		return ev, &DecodeError{CodeOversize, fmt.Sprintf("%d bytes over the limit of %d", len(b), maxBytes)}
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	d.DisallowUnknownFields()
	if err := d.Decode(&ev); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
			return ev, &DecodeError{CodeNotJSON, "value is not JSON"}
		case errors.As(err, &te):
			return ev, &DecodeError{CodeSchemaViolation, "wrong type of " + te.Field}
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return ev, &DecodeError{CodeSchemaViolation, "unknown field"}
		}
		// Time fields that are not RFC 3339 end up here.
		return ev, &DecodeError{CodeSchemaViolation, "invalid value"}
	}
	if d.More() {
		return ev, &DecodeError{CodeNotJSON, "trailing data after the event"}
	}
	switch {
	case !ev.Object.Valid():
		return ev, &DecodeError{CodeUnknownObject, "object"}
	case !ev.Op.Valid():
		return ev, &DecodeError{CodeUnknownOp, "op"}
	case ev.Tenant == "" || strings.ContainsAny(ev.Tenant, "{}"):
		return ev, &DecodeError{CodeSchemaViolation, "tenant"}
	case ev.ID == "" || strings.ContainsFunc(ev.ID, func(r rune) bool { return r <= ' ' }):
		return ev, &DecodeError{CodeSchemaViolation, "id"}
	case (ev.Op == record.OpNotDuplicate || ev.Op == record.OpClearNotDuplicate) && ev.Other == nil:
		return ev, &DecodeError{CodeSchemaViolation, "other"}
	}
	return ev, nil
}
