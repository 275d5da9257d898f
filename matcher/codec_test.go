package matcher

import (
	"encoding/json"
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
