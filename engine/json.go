package engine

import (
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/leadconv/leadconv/record"
)

// AppendJSON appends c's JSON to b: byte for byte what json.Marshal(c)
// writes (a differential test holds it to that), without reflection. The
// pipeline encodes every command, and encoding/json's reflection, map-key
// sorting and per-value allocations made that its largest cost outside the
// matcher. Values of types it does not write itself (field values other
// than strings, json.Number, float64, bool and nil; NaN; data of another
// type) are left to json.Marshal, for the whole command, so the output and
// the errors stay encoding/json's.
func (c *Command) AppendJSON(b []byte) ([]byte, error) {
	var sh shared
	return sh.appendJSON(b, c)
}

// AppendPlanJSON appends the JSON of each command of one plan to b, one
// after the other, as AppendJSON writes it, and appends to ends the offset
// in b where each one ends. The commands of a plan share their explain
// block and field maps (see Plan): those are encoded once and copied.
func AppendPlanJSON(b []byte, ends []int, cmds []Command) ([]byte, []int, error) {
	var sh shared
	for i := range cmds {
		var err error
		if b, err = sh.appendJSON(b, &cmds[i]); err != nil {
			return b, ends, err
		}
		ends = append(ends, len(b))
	}
	return b, ends, nil
}

// shared remembers where, in the output, the explain block and the field
// map encoded last are, to copy them when the next command shares them.
// Holding the pointers keeps their memory from being reused while cached.
type shared struct {
	explain        *Explain
	exStart, exEnd int
	fields         unsafe.Pointer // the map last written, as reflect sees it
	fStart, fEnd   int
}

func (sh *shared) appendJSON(b []byte, c *Command) ([]byte, error) {
	start := len(b)
	if out, ok := sh.appendCommand(b, c); ok {
		return out, nil
	}
	// The cache may point into the attempt's output, which json.Marshal's
	// replaces.
	*sh = shared{}
	j, err := json.Marshal(c)
	if err != nil {
		return b[:start], err
	}
	return append(b[:start], j...), nil
}

func (sh *shared) appendCommand(b []byte, c *Command) ([]byte, bool) {
	b = append(b, `{"kind":`...)
	b = appendString(b, c.Kind)
	b = append(b, `,"command_id":`...)
	b = appendString(b, c.ID)
	b = append(b, `,"tenant":`...)
	b = appendString(b, c.Tenant)
	b = append(b, `,"cluster_id":`...)
	b = appendString(b, c.ClusterID)
	b = append(b, `,"cluster_version":`...)
	b = strconv.AppendInt(b, c.ClusterVersion, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, int64(c.Seq), 10)
	b = append(b, `,"subject":`...)
	b = appendString(b, c.Subject)
	b = append(b, `,"data":`...)
	ok := true
	switch d := c.Data.(type) {
	case *LeadConvert:
		if d == nil {
			return b, false
		}
		b, ok = sh.appendLeadConvert(b, d)
	case *RecordsMerge:
		if d == nil {
			return b, false
		}
		b, ok = sh.appendRecordsMerge(b, d)
	case *ConversionFailed:
		if d == nil {
			return b, false
		}
		b = append(b, `{"reason":`...)
		b = appendString(b, d.Reason)
		b = append(b, `,"master":`...)
		b = appendRef(b, d.Master)
		b = append(b, `,"records":`...)
		b = appendRefs(b, d.Records)
		b = append(b, '}')
	case *ReviewRequested:
		if d == nil {
			return b, false
		}
		b = append(b, `{"reason":`...)
		b = appendString(b, d.Reason)
		b = append(b, `,"records":`...)
		b = appendRefs(b, d.Records)
		if d.Size != 0 {
			b = append(b, `,"size":`...)
			b = strconv.AppendInt(b, int64(d.Size), 10)
		}
		if d.Limit != 0 {
			b = append(b, `,"limit":`...)
			b = strconv.AppendInt(b, int64(d.Limit), 10)
		}
		b = append(b, '}')
	case nil:
		b = append(b, "null"...)
	default:
		return b, false
	}
	if !ok {
		return b, false
	}
	b = append(b, `,"explain":`...)
	if b, ok = sh.appendExplain(b, c.Explain); !ok {
		return b, false
	}
	return append(b, '}'), true
}

func (sh *shared) appendLeadConvert(b []byte, d *LeadConvert) ([]byte, bool) {
	b = append(b, `{"lead_id":`...)
	b = appendString(b, d.LeadID)
	b = append(b, `,"batch":`...)
	b = strconv.AppendInt(b, int64(d.Batch), 10)
	b = append(b, `,"contact":`...)
	b = appendTarget(b, d.Contact)
	b = append(b, `,"account":{`...)
	b, sep := appendTargetMembers(b, d.Account.Target)
	if d.Account.Name != "" {
		if sep {
			b = append(b, ',')
		}
		b = append(b, `"name":`...)
		b = appendString(b, d.Account.Name)
		sep = true
	}
	ok := true
	if len(d.Account.Fields) > 0 {
		if sep {
			b = append(b, ',')
		}
		b = append(b, `"fields":`...)
		if b, ok = sh.appendFields(b, d.Account.Fields); !ok {
			return b, false
		}
	}
	b = append(b, `},"opportunity":`...)
	if o := d.Opportunity; o == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"name":`...)
		b = appendString(b, o.Name)
		b = append(b, `,"name_source":`...)
		b = appendString(b, o.NameSource)
		if len(o.Fields) > 0 {
			b = append(b, `,"fields":`...)
			if b, ok = sh.appendFields(b, o.Fields); !ok {
				return b, false
			}
		}
		b = append(b, '}')
	}
	b = append(b, `,"converted_status":`...)
	b = appendString(b, d.ConvertedStatus)
	b = append(b, `,"fields":`...)
	if b, ok = sh.appendFields(b, d.Fields); !ok {
		return b, false
	}
	return append(b, '}'), true
}

func (sh *shared) appendRecordsMerge(b []byte, d *RecordsMerge) ([]byte, bool) {
	b = append(b, `{"object":`...)
	b = appendString(b, string(d.Object))
	b = append(b, `,"master":`...)
	b = appendTarget(b, d.Master)
	b = append(b, `,"merged_ids":`...)
	if d.MergedIDs == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, id := range d.MergedIDs {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, id)
		}
		b = append(b, ']')
	}
	b = append(b, `,"batch":`...)
	b = strconv.AppendInt(b, int64(d.Batch), 10)
	b = append(b, `,"fields":`...)
	b, ok := sh.appendFields(b, d.Fields)
	if !ok {
		return b, false
	}
	return append(b, '}'), true
}

func appendTarget(b []byte, t Target) []byte {
	b = append(b, '{')
	b, _ = appendTargetMembers(b, t)
	return append(b, '}')
}

// appendTargetMembers writes t's members, all omitempty, and reports
// whether it wrote any: AccountTarget continues the same object.
func appendTargetMembers(b []byte, t Target) ([]byte, bool) {
	sep := false
	if t.ID != "" {
		b = append(b, `"id":`...)
		b = appendString(b, t.ID)
		sep = true
	}
	if t.FromLead != "" {
		if sep {
			b = append(b, ',')
		}
		b = append(b, `"from_lead":`...)
		b = appendString(b, t.FromLead)
		sep = true
	}
	if t.Create {
		if sep {
			b = append(b, ',')
		}
		b = append(b, `"create":true`...)
		sep = true
	}
	return b, sep
}

// appendExplain writes ex, or copies it from where it was written last.
func (sh *shared) appendExplain(b []byte, ex *Explain) ([]byte, bool) {
	if ex == nil {
		return append(b, "null"...), true
	}
	if ex == sh.explain {
		return append(b, b[sh.exStart:sh.exEnd]...), true
	}
	start := len(b)
	b, ok := appendExplain(b, ex)
	if ok {
		sh.explain, sh.exStart, sh.exEnd = ex, start, len(b)
	}
	return b, ok
}

func appendExplain(b []byte, ex *Explain) ([]byte, bool) {
	m := &ex.Master
	b = append(b, `{"master":{"strategy":`...)
	b = appendString(b, m.Strategy)
	if m.Field != "" {
		b = append(b, `,"field":`...)
		b = appendString(b, m.Field)
	}
	b = append(b, `,"candidates":`...)
	if m.Candidates == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range m.Candidates {
			c := &m.Candidates[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"object":`...)
			b = appendString(b, string(c.Object))
			b = append(b, `,"id":`...)
			b = appendString(b, c.ID)
			b = append(b, `,"value":`...)
			b = appendString(b, c.Value)
			b = append(b, `,"qualified":`...)
			b = strconv.AppendBool(b, c.Qualified)
			b = append(b, `,"top":`...)
			b = strconv.AppendBool(b, c.Top)
			b = append(b, `,"modified_at":`...)
			var ok bool
			if b, ok = appendTime(b, c.ModifiedAt); !ok {
				return b, false
			}
			b = append(b, `,"created_at":`...)
			if b, ok = appendTime(b, c.CreatedAt); !ok {
				return b, false
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if m.Fallback != "" {
		b = append(b, `,"fallback":`...)
		b = appendString(b, m.Fallback)
	}
	if m.FallbackReason != "" {
		b = append(b, `,"fallback_reason":`...)
		b = appendString(b, m.FallbackReason)
	}
	if m.TieBreak != "" {
		b = append(b, `,"tie_break":`...)
		b = appendString(b, m.TieBreak)
	}
	b = append(b, `,"winner":`...)
	b = appendRef(b, m.Winner)
	b = append(b, `},"fields":`...)
	if ex.Fields == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range ex.Fields {
			f := &ex.Fields[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"field":`...)
			b = appendString(b, f.Field)
			b = append(b, `,"strategy":`...)
			b = appendString(b, f.Strategy)
			b = append(b, `,"from":`...)
			b = appendRefs(b, f.From)
			if f.MasterKept {
				b = append(b, `,"master_kept":true`...)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if a := ex.Account; a != nil {
		b = append(b, `,"account":{"source":`...)
		b = appendString(b, a.Source)
		if a.ID != "" {
			b = append(b, `,"id":`...)
			b = appendString(b, a.ID)
		}
		b = append(b, '}')
	}
	return append(b, '}'), true
}

func appendRef(b []byte, r record.Ref) []byte {
	b = append(b, `{"object":`...)
	b = appendString(b, string(r.Object))
	b = append(b, `,"id":`...)
	b = appendString(b, r.ID)
	return append(b, '}')
}

func appendRefs(b []byte, refs []record.Ref) []byte {
	if refs == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, r := range refs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendRef(b, r)
	}
	return append(b, ']')
}

// appendTime writes t as time.Time's MarshalJSON does; a year it cannot
// write fails.
func appendTime(b []byte, t time.Time) ([]byte, bool) {
	b = append(b, '"')
	b, err := t.AppendText(b)
	if err != nil {
		return b, false
	}
	return append(b, '"'), true
}

// appendFields writes f, or copies it from where it was written last.
func (sh *shared) appendFields(b []byte, f record.Fields) ([]byte, bool) {
	if f == nil {
		return append(b, "null"...), true
	}
	id := reflect.ValueOf(f).UnsafePointer()
	if id == sh.fields {
		return append(b, b[sh.fStart:sh.fEnd]...), true
	}
	start := len(b)
	b, ok := appendFields(b, f)
	if ok {
		sh.fields, sh.fStart, sh.fEnd = id, start, len(b)
	}
	return b, ok
}

// appendFields writes a field map with its keys sorted, as encoding/json
// writes maps.
func appendFields(b []byte, f record.Fields) ([]byte, bool) {
	if f == nil {
		return append(b, "null"...), true
	}
	var scratch [32]string
	keys := scratch[:0]
	for k := range f {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		var ok bool
		if b, ok = appendValue(b, f[k]); !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}

func appendValue(b []byte, v any) ([]byte, bool) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), true
	case string:
		return appendString(b, x), true
	case bool:
		return strconv.AppendBool(b, x), true
	case float64:
		return appendFloat(b, x)
	case json.Number:
		if x == "" || !validNumber(string(x)) {
			return b, false
		}
		return append(b, x...), true
	}
	return b, false
}

// appendFloat writes f as encoding/json does (ES6 number formatting).
func appendFloat(b []byte, f float64) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, false
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 becomes e-9, as encoding/json writes it.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

// validNumber reports whether s is a JSON number literal.
func validNumber(s string) bool {
	if s != "" && s[0] == '-' {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	switch {
	case s[0] == '0':
		s = s[1:]
	case '1' <= s[0] && s[0] <= '9':
		s = s[1:]
		for s != "" && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
		}
	default:
		return false
	}
	if len(s) >= 2 && s[0] == '.' && '0' <= s[1] && s[1] <= '9' {
		s = s[2:]
		for s != "" && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
		}
	}
	if len(s) >= 2 && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		if s[0] == '+' || s[0] == '-' {
			if s = s[1:]; s == "" {
				return false
			}
		}
		for s != "" && '0' <= s[0] && s[0] <= '9' {
			s = s[1:]
		}
	}
	return s == ""
}

const hexDigits = "0123456789abcdef"

// safe marks the ASCII bytes a JSON string holds as they are: not control
// characters, quotes, backslashes or the HTML-sensitive <, > and &.
var safe = func() (t [utf8.RuneSelf]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendString writes s as a JSON string the way encoding/json does with
// HTML escaping on: <, > and & as \u003c..., invalid UTF-8 as \ufffd, and
// U+2028 and U+2029 escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if safe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
