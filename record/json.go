package record

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendRecordJSON appends r as json.Marshal writes it. ok is false, with b
// in an undefined state, when a time or a field value is one it does not
// write (AppendTimeJSON, AppendFieldsJSON): the caller falls back to
// json.Marshal.
func AppendRecordJSON(b []byte, r *Record) (_ []byte, ok bool) {
	b = append(b, `{"tenant":`...)
	b = AppendJSONString(b, r.Tenant)
	b = append(b, `,"object":`...)
	b = AppendJSONString(b, string(r.Object))
	b = append(b, `,"id":`...)
	b = AppendJSONString(b, r.ID)
	b = append(b, `,"created_at":`...)
	if b, ok = AppendTimeJSON(b, r.CreatedAt); !ok {
		return b, false
	}
	b = append(b, `,"modified_at":`...)
	if b, ok = AppendTimeJSON(b, r.ModifiedAt); !ok {
		return b, false
	}
	b = append(b, `,"related_count":`...)
	b = strconv.AppendInt(b, int64(r.RelatedCount), 10)
	b = append(b, `,"fields":`...)
	if b, ok = AppendFieldsJSON(b, r.Fields); !ok {
		return b, false
	}
	return append(b, '}'), true
}

// AppendTimeJSON appends t as time.Time's MarshalJSON writes it (RFC 3339
// with nanoseconds). ok is false, with b in an undefined state (possibly
// nil), for a time it cannot write (a year outside 0..9999, an offset of
// 24 hours or more), which json.Marshal rejects.
func AppendTimeJSON(b []byte, t time.Time) (_ []byte, ok bool) {
	b = append(b, '"')
	b, err := t.AppendText(b)
	if err != nil {
		return b, false
	}
	return append(b, '"'), true
}

// AppendFieldsJSON appends f as json.Marshal writes it (keys sorted,
// strings HTML-escaped), without reflection. ok is false, with b in an
// undefined state, when a value is of a type it does not write itself (only
// strings, json.Number, float64, bool and nil are) or is invalid (NaN, a
// malformed json.Number): the caller then falls back to json.Marshal, which
// writes or rejects it.
func AppendFieldsJSON(b []byte, f Fields) (_ []byte, ok bool) {
	if f == nil {
		return append(b, "null"...), true
	}
	var scratch [32]string
	b = append(b, '{')
	for i, k := range sortedKeys(scratch[:0], f) {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendJSONString(b, k)
		b = append(b, ':')
		var ok bool
		if b, ok = appendValue(b, f[k]); !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}

// AppendStringMapJSON appends m as json.Marshal writes a map[string]string:
// keys sorted, null when nil.
func AppendStringMapJSON(b []byte, m map[string]string) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	var scratch [16]string
	b = append(b, '{')
	for i, k := range sortedKeys(scratch[:0], m) {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendJSONString(b, k)
		b = append(b, ':')
		b = AppendJSONString(b, m[k])
	}
	return append(b, '}')
}

// sortedKeys appends m's keys to keys (a scratch array's, for no
// allocation when they fit), sorted as encoding/json sorts them.
func sortedKeys[V any](keys []string, m map[string]V) []string {
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func appendValue(b []byte, v any) ([]byte, bool) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), true
	case string:
		return AppendJSONString(b, x), true
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

// AppendStringsJSON appends ss as json.Marshal writes a []string: null
// when nil.
func AppendStringsJSON(b []byte, ss []string) []byte { return AppendListJSON(b, ss, AppendJSONString) }

// AppendListJSON appends xs as json.Marshal writes a slice whose elements
// elem writes: null when nil.
func AppendListJSON[T any](b []byte, xs []T, elem func([]byte, T) []byte) []byte {
	if xs == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, x := range xs {
		if i > 0 {
			b = append(b, ',')
		}
		b = elem(b, x)
	}
	return append(b, ']')
}

// AppendJSONString appends s as a JSON string the way encoding/json writes
// it with HTML escaping on: <, > and & as \u003c..., invalid UTF-8 as
// \ufffd, and U+2028 and U+2029 escaped.
func AppendJSONString(b []byte, s string) []byte {
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
