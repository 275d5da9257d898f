package matcher

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/leadconv/leadconv/record"
)

// stored is a record value as kept in the r hash:
//
//	seq \t modified_us \t created_us \t block block ... \n blob
//
// seq counts the writes of the record (a new cluster's id seed);
// the blob is the record's JSON without what the key and meta already say.
// A tombstone (deleted, converted, or an account) has an empty blob: it keeps
// the timestamps so a late, older event cannot bring the record back.
type stored struct {
	raw      string
	seq      int64
	modified int64
	created  int64
	blocks   []string
	blob     string
}

func (s *stored) exists() bool { return s.raw != "" }
func (s *stored) live() bool   { return s.blob != "" }

type blob struct {
	Related int           `json:"n,omitempty"`
	Fields  record.Fields `json:"f"`
}

func parseStored(raw string) (stored, error) {
	s := stored{raw: raw}
	if raw == "" {
		return s, nil
	}
	nl := strings.IndexByte(raw, '\n')
	if nl < 0 {
		return s, fmt.Errorf("matcher: corrupt record value: no header")
	}
	parts := strings.SplitN(raw[:nl], "\t", 4)
	if len(parts) != 4 {
		return s, fmt.Errorf("matcher: corrupt record value: header has %d parts", len(parts))
	}
	var err error
	if s.seq, err = strconv.ParseInt(parts[0], 10, 64); err != nil {
		return s, fmt.Errorf("matcher: corrupt record seq: %w", err)
	}
	if s.modified, err = strconv.ParseInt(parts[1], 10, 64); err != nil {
		return s, fmt.Errorf("matcher: corrupt record modified: %w", err)
	}
	if s.created, err = strconv.ParseInt(parts[2], 10, 64); err != nil {
		return s, fmt.Errorf("matcher: corrupt record created: %w", err)
	}
	if parts[3] != "" {
		s.blocks = strings.Split(parts[3], " ")
	}
	s.blob = raw[nl+1:]
	return s, nil
}

func encodeStored(seq, modified, created int64, blocks []string, body string) string {
	var b strings.Builder
	b.Grow(48 + 17*len(blocks) + len(body))
	b.WriteString(strconv.FormatInt(seq, 10))
	b.WriteByte('\t')
	b.WriteString(strconv.FormatInt(modified, 10))
	b.WriteByte('\t')
	b.WriteString(strconv.FormatInt(created, 10))
	b.WriteByte('\t')
	for i, k := range blocks {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
	}
	b.WriteByte('\n')
	b.WriteString(body)
	return b.String()
}

// encodeBlob writes what json.Marshal writes for blob{r.RelatedCount,
// r.Fields}, without reflection where it can: a stored value is compared
// byte for byte to recognise replays, so the encoding must never change.
func encodeBlob(r *record.Record) (string, error) {
	b := make([]byte, 0, 64+32*len(r.Fields))
	b = append(b, '{')
	if r.RelatedCount != 0 {
		b = append(b, `"n":`...)
		b = strconv.AppendInt(b, int64(r.RelatedCount), 10)
		b = append(b, ',')
	}
	b = append(b, `"f":`...)
	b, ok := record.AppendFieldsJSON(b, r.Fields)
	if !ok {
		enc, err := json.Marshal(blob{Related: r.RelatedCount, Fields: r.Fields})
		if err != nil {
			return "", fmt.Errorf("matcher: encode record %s: %w", r.Ref(), err)
		}
		return string(enc), nil
	}
	// b is not written again: its bytes are the string's (no copy of
	// every record an event writes).
	b = append(b, '}')
	return unsafe.String(unsafe.SliceData(b), len(b)), nil
}

// decodeRecord rebuilds the record a stored value holds.
func decodeRecord(tenant string, ref record.Ref, s *stored) (record.Record, error) {
	r := record.Record{
		Tenant:     tenant,
		Object:     ref.Object,
		ID:         ref.ID,
		CreatedAt:  timeOf(s.created),
		ModifiedAt: timeOf(s.modified),
	}
	if !s.live() {
		return r, nil
	}
	// Numbers come back as the literal they were written as (json.Number,
	// as the pipeline decodes events), not as float64: a record reads the
	// same from Redis as from the event that wrote it (asDecoded).
	b, ok := parseBlob(s.blob)
	if !ok {
		d := json.NewDecoder(strings.NewReader(s.blob))
		d.UseNumber()
		if err := d.Decode(&b); err != nil {
			return r, fmt.Errorf("matcher: decode record %s: %w", ref, err)
		}
	}
	r.RelatedCount = b.Related
	r.Fields = b.Fields
	return r, nil
}

// asDecoded returns f as decoding its encoding gives it back, or ok false
// when that could read differently to Prepare (record.String) than f. Strings
// of valid UTF-8, json.Numbers, booleans and nils come back as they are; a
// float64 comes back as the json.Number encoding/json wrote for it, which
// reads the same in plain notation (1e-6 to 1e21).
func asDecoded(f record.Fields) (_ record.Fields, ok bool) {
	out, cloned := f, false
	for k, x := range f {
		if !utf8.ValidString(k) {
			return nil, false
		}
		switch x := x.(type) {
		case nil, bool, json.Number:
		case string:
			if !utf8.ValidString(x) {
				return nil, false
			}
		case float64:
			if abs := math.Abs(x); math.IsNaN(x) || abs != 0 && (abs < 1e-6 || abs >= 1e21) {
				return nil, false
			}
			if !cloned {
				// The event's own map stays as the caller made it.
				out, cloned = maps.Clone(f), true
			}
			out[k] = json.Number(strconv.FormatFloat(x, 'f', -1, 64))
		default:
			return nil, false
		}
	}
	return out, true
}

func timeOf(us int64) time.Time { return time.UnixMicro(us).UTC() }

// parseBlob reads a blob as encodeBlob writes it, without reflection: a
// read-through decodes every candidate it reads, and encoding/json cost
// most of that. It reads what decoding with UseNumber reads (strings,
// json.Numbers, booleans, nulls), and declines (ok false) anything else it
// meets (whitespace, nested values, a surrogate escape, invalid UTF-8, a
// malformed literal), which the caller then gives to encoding/json.
func parseBlob(s string) (b blob, ok bool) {
	p := blobParser{s: s}
	if !p.take("{") {
		return b, false
	}
	if p.take(`"n":`) {
		end := p.i
		for end < len(s) && (s[end] == '-' || s[end] >= '0' && s[end] <= '9') {
			end++
		}
		n, err := strconv.Atoi(s[p.i:end])
		if err != nil || !validNumber(s[p.i:end]) {
			return b, false
		}
		b.Related, p.i = n, end
		if !p.take(",") {
			return b, false
		}
	}
	if !p.take(`"f":`) {
		return b, false
	}
	if p.take("null") {
		return b, p.take("}") && p.i == len(s)
	}
	if !p.take("{") {
		return b, false
	}
	b.Fields = record.Fields{}
	for first := true; !p.take("}"); first = false {
		if !first && !p.take(",") {
			return b, false
		}
		k, ok := p.str()
		if !ok || !p.take(":") {
			return b, false
		}
		v, ok := p.value()
		if !ok {
			return b, false
		}
		b.Fields[k] = v
	}
	return b, p.take("}") && p.i == len(s)
}

type blobParser struct {
	s string
	i int
}

func (p *blobParser) take(lit string) bool {
	if strings.HasPrefix(p.s[p.i:], lit) {
		p.i += len(lit)
		return true
	}
	return false
}

func (p *blobParser) value() (any, bool) {
	if p.i == len(p.s) {
		return nil, false
	}
	switch c := p.s[p.i]; {
	case c == '"':
		return p.str()
	case p.take("true"):
		return true, true
	case p.take("false"):
		return false, true
	case p.take("null"):
		return nil, true
	case c == '-' || c >= '0' && c <= '9':
		end := p.i
		for end < len(p.s) && strings.IndexByte("+-.0123456789Ee", p.s[end]) >= 0 {
			end++
		}
		lit := p.s[p.i:end]
		if !validNumber(lit) {
			return nil, false
		}
		p.i = end
		return json.Number(lit), true
	}
	return nil, false
}

// str reads a string at p.i: its bytes as they are when it has no escape,
// else unescaped.
func (p *blobParser) str() (string, bool) {
	if !p.take(`"`) {
		return "", false
	}
	start := p.i
	var buf []byte
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			out := p.s[start:p.i]
			if buf != nil {
				out = string(append(buf, out...))
			}
			p.i++
			return out, true
		case c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(p.s[p.i:])
			if r == utf8.RuneError && size == 1 {
				return "", false
			}
			p.i += size
			continue
		case c != '\\':
			p.i++
			continue
		}
		// An escape: what came before it, then what it stands for.
		buf = append(buf, p.s[start:p.i]...)
		if p.i+1 == len(p.s) {
			return "", false
		}
		switch e := p.s[p.i+1]; e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			if p.i+6 > len(p.s) {
				return "", false
			}
			r, err := strconv.ParseUint(p.s[p.i+2:p.i+6], 16, 16)
			if err != nil || utf16.IsSurrogate(rune(r)) {
				return "", false
			}
			buf = utf8.AppendRune(buf, rune(r))
			p.i += 4
		default:
			return "", false
		}
		p.i += 2
		start = p.i
	}
	return "", false
}

// validNumber reports whether s is a JSON number literal.
func validNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}
