package matcher

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/leadconv/leadconv/record"
)

// encodeBlob must write exactly what encoding/json writes for a blob:
// stored values are compared byte for byte to recognise replays. The field
// encoding itself is tested in record; this covers the framing and the
// fallback to encoding/json.
func TestEncodeBlobMatchesEncodingJSON(t *testing.T) {
	for i, f := range []record.Fields{
		nil,
		{},
		{"FirstName": "Ann", "Company": `Smith & Sons <"Ltd">`, "Revenue": json.Number("1200.50"), "Active": true},
		{"List": []any{"a", 1.5}, "Map": map[string]any{"k": "<v>"}},
	} {
		for _, related := range []int{0, 3} {
			r := record.Record{Object: record.Lead, ID: "x", RelatedCount: related, Fields: f}
			got, err := encodeBlob(&r)
			if err != nil {
				t.Fatalf("case %d: %v", i, err)
			}
			want, err := json.Marshal(blob{Related: related, Fields: f})
			if err != nil {
				t.Fatalf("case %d: %v", i, err)
			}
			if got != string(want) {
				t.Fatalf("case %d:\n got %s\nwant %s", i, got, want)
			}
		}
	}
}

func TestEncodeBlobRejectsWhatJSONRejects(t *testing.T) {
	r := record.Record{Object: record.Lead, ID: "x", Fields: record.Fields{"Bad": json.Number("12abc")}}
	if _, err := encodeBlob(&r); err == nil {
		t.Fatal("an invalid json.Number was encoded")
	}
}

// asDecoded must give exactly what decoding the stored value gives, or
// refuse: the prepared cache holds it in place of the decoded record.
func TestAsDecodedMatchesDecoding(t *testing.T) {
	for i, c := range []struct {
		f  record.Fields
		ok bool
	}{
		{record.Fields{}, true},
		{record.Fields{"FirstName": "Ann", "Company": `Smith & Sons <"Ltd">`, "Revenue": json.Number("1200.50"), "Active": true, "Fax": nil}, true},
		{record.Fields{"Employees": 120.0, "Revenue": 1.5e6, "Share": 0.000001, "Zero": 0.0, "Neg": -2.25}, true},
		{record.Fields{"Big": 1e21}, false},  // 1e+21 encoded, "1000000000000000000000" read
		{record.Fields{"Tiny": 1e-7}, false}, // likewise
		{record.Fields{"Bad": "a\xffb"}, false},
		{record.Fields{"Count": 3}, false},
		{record.Fields{"List": []any{"a"}}, false},
	} {
		got, ok := asDecoded(c.f)
		if ok != c.ok {
			t.Fatalf("case %d: ok %v", i, ok)
		}
		if !ok {
			continue
		}
		r := record.Record{Object: record.Lead, ID: "x", Fields: c.f}
		body, err := encodeBlob(&r)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		st, err := parseStored(encodeStored(1, 1, 1, nil, body))
		if err != nil {
			t.Fatal(err)
		}
		dec, err := decodeRecord("t", r.Ref(), &st)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, dec.Fields) {
			t.Fatalf("case %d: %#v, decoding gives %#v", i, got, dec.Fields)
		}
		for k := range c.f {
			if record.String(got[k]) != record.String(c.f[k]) {
				t.Fatalf("case %d: %s reads %q, was %q", i, k, record.String(got[k]), record.String(c.f[k]))
			}
		}
	}
}

// parseBlob reads what encoding/json reads for every blob encodeBlob
// writes (random fields: every kind of character, escapes, numbers,
// booleans, nulls), and declines, rather than misreads, what it does not
// know: the caller then decodes with encoding/json.
func TestParseBlobMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 9))
	runes := []rune{'a', 'Z', ' ', '"', '\\', '/', '<', '>', '&', '\n', '\t', 0x01, 0x1f, 'é', '日', '\u2028', '\u2029', '😀', 0xfffd}
	str := func() string {
		var b []byte
		for range r.IntN(8) {
			if r.IntN(20) == 0 {
				b = append(b, 0xff) // invalid UTF-8: encoded as \ufffd
				continue
			}
			b = utf8.AppendRune(b, runes[r.IntN(len(runes))])
		}
		return string(b)
	}
	numbers := []string{"0", "-0", "12", "-3.25", "1e9", "2.5E-3", "1200.50", "0.000001"}
	fast := 0
	for i := range 5000 {
		var f record.Fields
		if r.IntN(50) > 0 {
			f = record.Fields{}
			for range r.IntN(10) {
				var v any
				switch r.IntN(6) {
				case 0, 1:
					v = str()
				case 2:
					v = json.Number(numbers[r.IntN(len(numbers))])
				case 3:
					v = r.IntN(2) == 0
				case 4:
					v = nil
				default:
					v = 1.5 // a float64: the fallback encoding
				}
				f[str()] = v
			}
		}
		rec := record.Record{Object: record.Lead, ID: "x", RelatedCount: r.IntN(3) - 1, Fields: f}
		body, err := encodeBlob(&rec)
		if err != nil {
			t.Fatal(err)
		}
		var want blob
		d := json.NewDecoder(strings.NewReader(body))
		d.UseNumber()
		if err := d.Decode(&want); err != nil {
			t.Fatal(err)
		}
		got, ok := parseBlob(body)
		if !ok {
			if !strings.Contains(body, `\ud`) {
				t.Fatalf("case %d: declined %s", i, body)
			}
			continue
		}
		fast++
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("case %d: %s\nread %#v\nwant %#v", i, body, got, want)
		}
	}
	if fast < 4500 {
		t.Fatalf("only %d of 5000 read without encoding/json", fast)
	}
	// What it declines, encoding/json reads or rejects.
	for _, body := range []string{
		`{"f":{"a":[1]}}`, `{"f":{"a":{"b":1}}}`, `{"f": {}}`, `{"F":{}}`, `{"n":1.5,"f":{}}`,
		`{"n":01,"f":{}}`, `{"f":{"a":01}}`, `{"f":{"a":1.}}`, `{"f":{"a":"\ud83d\ude00"}}`,
		`{"f":{"a":"b\x01"}}`, `{"f":{"a":"\xff"}}`, `{"f":{}}x`, `{"f":{"a":tru}}`, `{"x":1,"f":{}}`,
		`{"f":{"a":"\q"}}`, `{"f":{"a":"\u12"}}`, `{"f":{"a":1,}}`, `{"f":{"a" :1}}`,
	} {
		if got, ok := parseBlob(body); ok {
			t.Errorf("parseBlob(%s) read %#v", body, got)
		}
	}
}
