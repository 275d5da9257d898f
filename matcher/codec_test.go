package matcher

import (
	"encoding/json"
	"math/rand/v2"
	"testing"

	"github.com/leadconv/leadconv/record"
)

// encodeBlob must write exactly what encoding/json writes: stored values are
// compared byte for byte to recognise replays.
func TestEncodeBlobMatchesEncodingJSON(t *testing.T) {
	tests := []record.Fields{
		nil,
		{},
		{"FirstName": "Ann", "LastName": "Lee", "Email": "ann@x.com"},
		{"Company": `Smith & Sons <"Ltd">`, "Note": "tab\there\nnew\rline\b\f\x00\x1f\x7f"},
		{"Name": "Zoë Ñúñez 李 🙂", "Bad": "\xff\xfe ok \xc3", "Sep": "a\u2028b\u2029c"},
		{"Revenue": json.Number("1200.50"), "Employees": 12.0, "Big": 1e21, "Small": 1e-7, "Active": true, "Gone": false, "Null": nil},
		{"List": []any{"a", 1.5}, "Map": map[string]any{"k": "<v>"}},
		{"": "empty key", "\\": "backslash key", "ключ": "значение"},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "Z", " ", "\"", "\\", "<", ">", "&", "\n", "\x01", "é", "\u2028", "\xff", "🙂", "'", "/"}
	for range 500 {
		f := record.Fields{}
		for range rng.IntN(6) {
			k, v := "", ""
			for range rng.IntN(5) {
				k += alphabet[rng.IntN(len(alphabet))]
			}
			for range rng.IntN(12) {
				v += alphabet[rng.IntN(len(alphabet))]
			}
			f[k] = v
		}
		tests = append(tests, f)
	}
	for i, f := range tests {
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
