package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/consumer"
	"github.com/leadconv/leadconv/events"
	"github.com/leadconv/leadconv/ingest"
	"github.com/leadconv/leadconv/lifecycle"
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

// DecodeError is an input record that can never be decoded: one coded
// error type for every input format. Detail names the offending field or
// constraint, never a value.
type DecodeError = ingest.Error

// Decoder turns a record event payload into an event. Errors that are
// consumer.Coded and not transient (see Rejected) are permanent; the record
// is dead-lettered.
type Decoder func(b []byte, maxBytes int) (record.Event, error)

// Rejection is why an input can never be processed: the dead-letter code
// and the reason, the failing JSON path and rule (`/created_at: format
// date-time`), never a value, so it is safe in logs and headers.
type Rejection struct {
	Code, Reason string
}

// reasoner is a coded error that names the failing JSON path and rule.
type reasoner interface{ ErrorReason() string }

// The input errors: permanent, with a code and a reason.
var (
	_ interface {
		consumer.Coded
		reasoner
	} = (*DecodeError)(nil)
	_ consumer.Coded = (*schemas.Error)(nil)
	_ consumer.Coded = (*events.InputError)(nil)
	_ reasoner       = (*schemas.Error)(nil)
	_ reasoner       = (*events.InputError)(nil)
)

// Rejected returns the rejection of a permanent input error: a
// consumer.Coded error that is not transient (those of this package's
// decoder, of schemas.DecodeEvent, of the CloudEvents envelope), its
// reason when it names one. Any other error is not known to be permanent.
func Rejected(err error) (Rejection, bool) {
	var c consumer.Coded
	if !errors.As(err, &c) || c.Transient() {
		return Rejection{}, false
	}
	r := Rejection{Code: c.ErrorCode()}
	if rs, ok := c.(reasoner); ok {
		r.Reason = rs.ErrorReason()
	}
	return r, true
}

// ErrorCode returns the dead-letter code of a permanent input error (see
// Rejected).
func ErrorCode(err error) (string, bool) {
	r, ok := Rejected(err)
	return r.Code, ok
}

// DecodeEvent is the built-in decoder of the record event JSON. It accepts
// exactly what schemas/record-event.v1.json accepts (a test holds it to
// schemas.DecodeEvent) and decodes as encoding/json would, in one pass that
// checks the syntax and a second that reads the members, without
// reflection: keys are matched exactly, not case-insensitively as
// encoding/json does. Numbers in fields decode as json.Number. The strings
// of one event (tenant, id, field names and values) share one allocation,
// about the payload's size: the record is kept whole or not at all.
func DecodeEvent(b []byte, maxBytes int) (record.Event, error) {
	var ev record.Event
	if maxBytes > 0 && len(b) > maxBytes {
		return ev, &DecodeError{Code: CodeOversize, Detail: fmt.Sprintf("%d bytes over the limit of %d", len(b), maxBytes)}
	}
	var raw [numKeys][]byte
	unknown, err := topMembers(b, &raw)
	if err != nil {
		return ev, err
	}
	var d decoder
	d.sb.Grow(len(b))
	has := func(k int) bool { return raw[k] != nil }
	// A fixed order makes the code of a record with several faults
	// deterministic: an unknown object or op names the fault most precisely.
	for k, v := range raw {
		if v == nil {
			continue
		}
		var err error
		switch k {
		case keyObject:
			var s string
			s, err = d.text(v, eventKeys[k], 0, false)
			ev.Object = record.Object(s)
			if err == nil && !ev.Object.Valid() {
				err = &DecodeError{Code: CodeUnknownObject, Detail: "/object: enum"}
			}
		case keyOp:
			var s string
			s, err = d.text(v, eventKeys[k], 0, false)
			ev.Op = record.Op(s)
			if err == nil && !ev.Op.Valid() {
				err = &DecodeError{Code: CodeUnknownOp, Detail: "/op: enum"}
			}
		case keyTenant:
			ev.Tenant, err = d.text(v, eventKeys[k], 128, true)
		case keyID:
			ev.ID, err = d.text(v, eventKeys[k], 256, true)
		case keyCreatedAt:
			ev.CreatedAt, err = timestamp(v, eventKeys[k])
		case keyModifiedAt:
			ev.ModifiedAt, err = timestamp(v, eventKeys[k])
		case keyRelatedCount:
			ev.RelatedCount, err = count(v)
		case keyFields:
			ev.Fields, err = d.fields(v)
		case keyOther:
			ev.Other, err = d.other(v)
		}
		if err != nil {
			return record.Event{}, err
		}
	}
	if unknown {
		return record.Event{}, violation("/", "additionalProperties")
	}
	required := func(keys ...int) error {
		var missing []string
		for _, k := range keys {
			if !has(k) {
				missing = append(missing, eventKeys[k])
			}
		}
		if missing == nil {
			return nil
		}
		return violation("/", "required "+strings.Join(missing, ","))
	}
	pair := ev.Op == record.OpNotDuplicate || ev.Op == record.OpClearNotDuplicate
	if err := required(keyTenant, keyObject, keyID, keyOp); err != nil {
		return record.Event{}, err
	}
	switch {
	case ev.Op == record.OpUpsert:
		err = required(keyCreatedAt, keyModifiedAt)
	case ev.Op == record.OpPatch:
		err = required(keyModifiedAt)
	case pair:
		err = required(keyOther)
	}
	if err != nil {
		return record.Event{}, err
	}
	switch {
	case pair && ev.Object == record.Account:
		return record.Event{}, violation("/object", "enum")
	case !pair && has(keyOther):
		return record.Event{}, violation("/", "not")
	}
	// The strings read above were checked where they were read; this
	// covers what was skipped (an earlier value of a repeated key).
	if !schemas.ValidUTF8(b) {
		return record.Event{}, violation("/", schemas.RuleUTF8)
	}
	return ev, nil
}

// The members of a record event, in the order DecodeEvent reads them.
const (
	keyObject = iota
	keyOp
	keyTenant
	keyID
	keyCreatedAt
	keyModifiedAt
	keyRelatedCount
	keyFields
	keyOther
	numKeys
)

var eventKeys = [numKeys]string{"object", "op", "tenant", "id", "created_at", "modified_at", "related_count", "fields", "other"}

func violation(at, keyword string) error {
	return &DecodeError{Code: CodeSchemaViolation, Detail: at + ": " + keyword}
}

var errNotJSON = &DecodeError{Code: CodeNotJSON, Detail: "value is not a single JSON document"}

// topMembers checks that b is one JSON document, as encoding/json does
// before it decodes anything, and that it is an object; it sets raw to the
// raw value of each known member (the last one of a repeated key, as
// encoding/json keeps it) and reports whether there are others.
func topMembers(b []byte, raw *[numKeys][]byte) (unknown bool, err error) {
	i := skipSpace(b, 0)
	if i == len(b) || b[i] != '{' {
		if end := skipValue(b, i, 0); end < 0 || skipSpace(b, end) != len(b) {
			return false, errNotJSON
		}
		return false, violation("/", "type")
	}
	end := eachMember(b, i, 1, func(key []byte, esc bool, v []byte) {
		if k := keyIndex(key, esc); k >= 0 {
			raw[k] = v
		} else {
			unknown = true
		}
	})
	if end < 0 || skipSpace(b, end) != len(b) {
		return false, errNotJSON
	}
	return unknown, nil
}

// keyIndex returns the index of a top-level key in eventKeys, -1 for an
// unknown one. key is the raw text between the quotes.
func keyIndex(key []byte, esc bool) int {
	s := string(key)
	if esc || !utf8.Valid(key) {
		var ok bool
		if s, ok = unquote(key); !ok {
			return -1 // not a known key: refused as additionalProperties
		}
	}
	for k, name := range eventKeys {
		if s == name {
			return k
		}
	}
	return -1
}

// unquote decodes the raw text of a valid JSON string that has escapes or
// invalid UTF-8, as encoding/json does; false when it is not valid UTF-8 or
// escapes a lone surrogate, which encoding/json would replace by U+FFFD.
func unquote(raw []byte) (string, bool) {
	if !schemas.ValidUTF8(raw) {
		return "", false
	}
	q := make([]byte, 0, len(raw)+2)
	q = append(append(append(q, '"'), raw...), '"')
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		panic("pipeline: unquote of a checked string: " + err.Error())
	}
	return s, true
}

// decoder holds the strings of one event.
type decoder struct {
	sb strings.Builder
}

// str returns the string whose raw text (between the quotes) is raw, a
// slice of the event's shared string when raw needs no unescaping; false
// when it is not valid UTF-8 (see unquote).
func (d *decoder) str(raw []byte) (string, bool) {
	if bytes.IndexByte(raw, '\\') >= 0 || !utf8.Valid(raw) {
		return unquote(raw)
	}
	n := d.sb.Len()
	d.sb.Write(raw)
	return d.sb.String()[n:], true
}

// text decodes a string member. max > 0 bounds its length in characters;
// ident also requires it non-empty without control characters or
// whitespace (and, for the tenant, braces: it becomes a Redis hash tag).
func (d *decoder) text(v []byte, key string, max int, ident bool) (string, error) {
	if v[0] != '"' {
		return "", violation("/"+key, "type")
	}
	s, ok := d.str(v[1 : len(v)-1])
	if !ok {
		return "", violation("/"+key, schemas.RuleUTF8)
	}
	if !ident {
		return s, nil
	}
	if n := utf8.RuneCountInString(s); n == 0 || n > max {
		return "", violation("/"+key, fmt.Sprintf("length 1..%d", max))
	}
	for _, r := range s {
		if r <= ' ' || (key == "tenant" && (r == '{' || r == '}')) {
			return "", violation("/"+key, "pattern")
		}
	}
	return s, nil
}

func timestamp(v []byte, key string) (time.Time, error) {
	if v[0] != '"' {
		return time.Time{}, violation("/"+key, "type")
	}
	s := v[1 : len(v)-1]
	if bytes.IndexByte(s, '\\') >= 0 || !utf8.Valid(s) {
		u, ok := unquote(s)
		if !ok {
			return time.Time{}, violation("/"+key, schemas.RuleUTF8)
		}
		s = []byte(u)
	}
	if !dateTimeShape(s) {
		return time.Time{}, violation("/"+key, "format date-time")
	}
	if t, ok := parseUTC(s); ok {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339Nano, string(s))
	if err != nil {
		return time.Time{}, violation("/"+key, "format date-time")
	}
	return t, nil
}

// dateTimeShape matches the pattern of schemas/common.v1.json#/$defs/dateTime,
// ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$,
// without a regular expression.
func dateTimeShape(s []byte) bool {
	const shape = "dddd-dd-ddTdd:dd:5d"
	if len(s) < len(shape)+1 {
		return false
	}
	for i := range len(shape) {
		switch c := s[i]; shape[i] {
		case 'd':
			if !isDigit(c) {
				return false
			}
		case '5':
			if c < '0' || c > '5' {
				return false
			}
		default:
			if c != shape[i] {
				return false
			}
		}
	}
	s = s[len(shape):]
	if s[0] == '.' {
		n := 1
		for n < len(s) && isDigit(s[n]) {
			n++
		}
		if n == 1 || n > 10 {
			return false
		}
		s = s[n:]
	}
	switch {
	case len(s) == 1:
		return s[0] == 'Z'
	case len(s) == 6:
		return (s[0] == '+' || s[0] == '-') && isDigit(s[1]) && isDigit(s[2]) && s[3] == ':' && isDigit(s[4]) && isDigit(s[5])
	}
	return false
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// parseUTC reads a date-time of dateTimeShape that ends in Z and whose
// fields are in range, as time.Parse does; anything else is left to
// time.Parse (an offset can take the local zone, a field out of range is
// its error).
func parseUTC(s []byte) (time.Time, bool) {
	if s[len(s)-1] != 'Z' {
		return time.Time{}, false
	}
	num := func(i, n int) int {
		v := 0
		for _, c := range s[i : i+n] {
			v = v*10 + int(c-'0')
		}
		return v
	}
	year, month, day := num(0, 4), num(5, 2), num(8, 2)
	hour, minute, sec := num(11, 2), num(14, 2), num(17, 2)
	nsec := 0
	if frac := s[19 : len(s)-1]; len(frac) > 0 {
		nsec = num(20, len(frac)-1)
		for range 10 - len(frac) {
			nsec *= 10
		}
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(month, year) || hour > 23 || minute > 59 {
		return time.Time{}, false
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC), true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// count decodes related_count: a JSON Schema integer, so any number with a
// zero fraction (1.0 and 1e2 too).
func count(v []byte) (int, error) {
	if v[0] != '-' && !isDigit(v[0]) {
		return 0, violation("/related_count", "type")
	}
	var n int64
	if plainCount(v) {
		for _, c := range v {
			n = n*10 + int64(c-'0')
		}
	} else {
		var ok bool
		if n, ok = schemas.Integer(json.Number(v)); !ok {
			return 0, violation("/related_count", "type")
		}
	}
	if n < 0 || n > 2147483647 {
		return 0, violation("/related_count", "range")
	}
	return int(n), nil
}

// plainCount reports whether v is at most ten digits: an int64 as it is.
func plainCount(v []byte) bool {
	if len(v) > 10 {
		return false
	}
	for _, c := range v {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

// nested marks a field value that is an object or an array: encoding/json
// keeps the last of a repeated name, so whether the field is refused is
// known once every member was read.
type nested struct{}

// fields decodes the field map: null (no fields, as Go encodes a nil map)
// or an object of non-empty names whose values are strings, numbers (as
// json.Number), booleans or null.
func (d *decoder) fields(v []byte) (record.Fields, error) {
	if string(v) == "null" {
		return nil, nil
	}
	if v[0] != '{' {
		return nil, violation("/fields", "type")
	}
	type member struct{ key, value []byte }
	var stack [32]member
	ms := stack[:0]
	eachMember(v, 0, 1, func(key []byte, _ bool, value []byte) {
		ms = append(ms, member{key, value})
	})
	f := make(record.Fields, len(ms))
	for _, m := range ms {
		k, ok := d.str(m.key)
		if !ok {
			return nil, violation("/fields", "propertyNames "+schemas.RuleUTF8)
		}
		var x any
		switch m.value[0] {
		case '"':
			if x, ok = d.str(m.value[1 : len(m.value)-1]); !ok {
				return nil, violation("/fields/"+k, schemas.RuleUTF8)
			}
		case 't':
			x = true
		case 'f':
			x = false
		case 'n':
			x = nil
		case '{', '[':
			x = nested{}
		default:
			// A number is ASCII.
			n, _ := d.str(m.value)
			x = json.Number(n)
		}
		f[k] = x
	}
	for k, x := range f {
		if _, ok := x.(nested); ok {
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
func (d *decoder) other(v []byte) (*record.Ref, error) {
	if v[0] != '{' {
		return nil, violation("/other", "type")
	}
	var obj, id []byte
	unknown := false
	eachMember(v, 0, 1, func(key []byte, esc bool, value []byte) {
		s := string(key)
		if esc || !utf8.Valid(key) {
			s, _ = unquote(key) // "" for invalid UTF-8: an unknown key
		}
		switch s {
		case "object":
			obj = value
		case "id":
			id = value
		default:
			unknown = true
		}
	})
	if unknown {
		return nil, violation("/other", "additionalProperties")
	}
	if obj == nil || id == nil {
		return nil, violation("/other", "required")
	}
	ref := &record.Ref{}
	s, err := d.text(obj, "other/object", 0, false)
	if err != nil {
		return nil, err
	}
	ref.Object = record.Object(s)
	if ref.Object != record.Lead && ref.Object != record.Contact {
		return nil, violation("/other/object", "enum")
	}
	if ref.ID, err = d.text(id, "other/id", 256, true); err != nil {
		return nil, err
	}
	return ref, nil
}

// maxDepth is encoding/json's nesting limit: a deeper document is not
// JSON to it.
const maxDepth = 10000

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// eachMember walks the object at b[i] (at nesting depth depth), calling fn
// with each member's raw key (between the quotes; esc when it has escapes)
// and raw value, and returns the index after the object, or -1 when it is
// not valid JSON.
func eachMember(b []byte, i, depth int, fn func(key []byte, esc bool, value []byte)) int {
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return -1
		}
		kStart := i
		kEnd, esc := skipString(b, i)
		if kEnd < 0 {
			return -1
		}
		if i = skipSpace(b, kEnd); i >= len(b) || b[i] != ':' {
			return -1
		}
		vStart := skipSpace(b, i+1)
		vEnd := skipValue(b, vStart, depth)
		if vEnd < 0 {
			return -1
		}
		if fn != nil {
			fn(b[kStart+1:kEnd-1], esc, b[vStart:vEnd])
		}
		i = skipSpace(b, vEnd)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
			continue
		}
		if i < len(b) && b[i] == '}' {
			return i + 1
		}
		return -1
	}
}

// skipValue returns the index after the JSON value at b[i], at nesting
// depth depth, or -1 when there is none.
func skipValue(b []byte, i, depth int) int {
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; c {
	case '"':
		end, _ := skipString(b, i)
		return end
	case '{':
		if depth++; depth > maxDepth {
			return -1
		}
		return eachMember(b, i, depth, nil)
	case '[':
		if depth++; depth > maxDepth {
			return -1
		}
		if i = skipSpace(b, i+1); i < len(b) && b[i] == ']' {
			return i + 1
		}
		for {
			if i = skipValue(b, i, depth); i < 0 {
				return -1
			}
			i = skipSpace(b, i)
			if i < len(b) && b[i] == ',' {
				i = skipSpace(b, i+1)
				continue
			}
			if i < len(b) && b[i] == ']' {
				return i + 1
			}
			return -1
		}
	case 't':
		return literal(b, i, "true")
	case 'f':
		return literal(b, i, "false")
	case 'n':
		return literal(b, i, "null")
	}
	return skipNumber(b, i)
}

func literal(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

// skipString returns the index after the string at b[i] (a quote), or -1,
// and whether it has escapes. Like encoding/json it takes any byte but
// control characters, valid UTF-8 or not.
func skipString(b []byte, i int) (end int, esc bool) {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, esc
		case c < ' ':
			return -1, esc
		case c == '\\':
			esc = true
			if i++; i >= len(b) {
				return -1, esc
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-i < 5 {
					return -1, esc
				}
				for _, h := range b[i+1 : i+5] {
					if !isDigit(h) && (h|0x20 < 'a' || h|0x20 > 'f') {
						return -1, esc
					}
				}
				i += 4
			default:
				return -1, esc
			}
		}
	}
	return -1, esc
}

// skipNumber returns the index after the number at b[i], or -1.
func skipNumber(b []byte, i int) int {
	digits := func(i int) int {
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		return i
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && isDigit(b[i]):
		i = digits(i)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		if i++; i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		i = digits(i)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		if i++; i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		i = digits(i)
	}
	return i
}

// CodeNotAResult: a record of the results topic that is no command.result
// (another event type, or no CloudEvent at all).
const CodeNotAResult = "not_a_command_result"

// DecodeResult decodes a command.result's data after validating it against
// its schema; a result must also name its tenant and command, without
// which no owner can take it. Errors are coded (Rejected), naming the path
// and rule, never a value.
func DecodeResult(b []byte, maxBytes int) (events.CommandResult, error) {
	var r events.CommandResult
	if maxBytes > 0 && len(b) > maxBytes {
		return r, &DecodeError{Code: CodeOversize, Detail: fmt.Sprintf("%d bytes over the limit of %d", len(b), maxBytes)}
	}
	if err := schemas.ValidateJSON("command.result", b); err != nil {
		return r, err
	}
	if !schemas.ValidUTF8(b) {
		return r, violation("/", schemas.RuleUTF8)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		// The schema admits only what CommandResult holds.
		return events.CommandResult{}, violation("/", "type")
	}
	switch {
	case r.Tenant == "":
		return events.CommandResult{}, violation("/tenant", "minLength 1")
	case r.CommandID == "":
		return events.CommandResult{}, violation("/command_id", "minLength 1")
	}
	return r, nil
}

// lifecycleResult is what the lifecycle takes of r. A skipped duplicate
// (the writer saw the command before) reports what its first delivery did,
// so a command that failed the first time is not taken for applied; one
// that never reached its first outcome does not exist (the writer records
// both in one transaction).
func lifecycleResult(r events.CommandResult) lifecycle.Result {
	out := lifecycle.Result{CommandID: r.CommandID, Outcome: r.Outcome, Reason: r.Reason, Records: r.Records}
	if r.Outcome == lifecycle.OutcomeSkippedDuplicate && r.Previous != "" {
		out.Outcome = r.Previous
	}
	return out
}

// decodeResult decodes a record carrying a command.result, in binary or
// structured CloudEvents mode. ok is false for another leadconv event
// (request events share the results topic by default): not input.
func decodeResult(r *kgo.Record, maxBytes int) (res events.CommandResult, ok bool, err error) {
	b, typ, err := events.TypedPayload(r)
	if err != nil {
		return res, false, err
	}
	switch {
	case typ == events.TypeCommandResult:
	case strings.HasPrefix(typ, events.TypePrefix):
		return res, false, nil
	default:
		return res, false, &DecodeError{Code: CodeNotAResult, Detail: "ce_type: const " + events.TypeCommandResult}
	}
	res, err = DecodeResult(b, maxBytes)
	return res, err == nil, err
}
