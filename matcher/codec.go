package matcher

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/leadconv/leadconv/record"
)

// stored is a record value as kept in the r hash:
//
//	seq \t modified_us \t created_us \t block block ... \n blob
//
// seq counts the writes of the record (the optimistic-concurrency version);
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

// seqArg is the expected seq as the scripts compare it: "" when absent.
func (s *stored) seqArg() string {
	if !s.exists() {
		return ""
	}
	return strconv.FormatInt(s.seq, 10)
}

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

// encodeBlob writes the bytes encoding/json writes for blob{r.RelatedCount,
// r.Fields}, without its reflection and with the common values (strings,
// booleans, null) written directly: a stored value is compared byte for
// byte to recognise replays, so the encoding must never change.
func encodeBlob(r *record.Record) (string, error) {
	b := make([]byte, 0, 64+32*len(r.Fields))
	b = append(b, '{')
	if r.RelatedCount != 0 {
		b = append(b, `"n":`...)
		b = strconv.AppendInt(b, int64(r.RelatedCount), 10)
		b = append(b, ',')
	}
	b = append(b, `"f":`...)
	if r.Fields == nil {
		return string(append(b, "null}"...)), nil
	}
	keys := make([]string, 0, len(r.Fields))
	for k := range r.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		switch v := r.Fields[k].(type) {
		case string:
			b = appendJSONString(b, v)
		case bool:
			b = strconv.AppendBool(b, v)
		case nil:
			b = append(b, "null"...)
		default:
			enc, err := json.Marshal(v)
			if err != nil {
				return "", fmt.Errorf("matcher: encode record %s: %w", r.Ref(), err)
			}
			b = append(b, enc...)
		}
	}
	return string(append(b, "}}"...)), nil
}

// appendJSONString quotes s as encoding/json does, HTML-safe escapes and
// the replacement of invalid UTF-8 included.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
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
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			if r == utf8.RuneError {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			}
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
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
	var b blob
	if err := json.Unmarshal([]byte(s.blob), &b); err != nil {
		return r, fmt.Errorf("matcher: decode record %s: %w", ref, err)
	}
	r.RelatedCount = b.Related
	r.Fields = b.Fields
	return r, nil
}

func timeOf(us int64) time.Time { return time.UnixMicro(us).UTC() }
