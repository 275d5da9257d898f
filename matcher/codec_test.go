package matcher

import (
	"encoding/json"
	"reflect"
	"testing"

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
