package ingest_test

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/ingest"
	"github.com/leadconv/leadconv/internal/pipeline"
)

// fuzzDecoder holds a format's decoder to its invariants on any input: it
// never panics, fails only with a dead-letter code, is deterministic, and
// every event it yields is a valid record event.
func fuzzDecoder(f *testing.F, cfg ingest.Config, dir string, extra ...string) {
	files, _ := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range extra {
		f.Add([]byte(s))
	}
	d, err := ingest.New(cfg, false)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := &kgo.Record{Topic: cfg.Topic, Key: []byte(`{"id":"k1"}`), Value: b}
		got, err := d.Decode(r, 1<<20)
		if err != nil {
			if _, ok := pipeline.ErrorCode(err); !ok {
				t.Fatalf("error without a dead-letter code: %v", err)
			}
			return
		}
		again, err := d.Decode(r, 1<<20)
		if err != nil || !reflect.DeepEqual(got, again) {
			t.Fatalf("not deterministic: %+v / %+v, %v", got, again, err)
		}
		checkEvents(t, got)
	})
}

func FuzzSalesforce(f *testing.F) {
	fuzzDecoder(f, salesforceInput, "salesforce",
		`{"ChangeEventHeader": {"entityName": "Lead", "recordIds": ["a", "00Q*"], "changeType": "UPDATE", "commitTimestamp": 1, "changedFields": ["Name.FirstName", "MailingAddress.City", "X"], "nulledFields": ["Y"]}, "Name": {"FirstName": "x"}}`,
		`{"data": {"payload": {"ChangeEventHeader": {"entityName": "Contact", "recordIds": ["b"], "changeType": "GAP_CREATE", "commitTimestamp": -1}}}}`)
}

func FuzzDebezium(f *testing.F) {
	fuzzDecoder(f, debeziumInput, "debezium",
		`{"op": "d", "before": null, "source": {"db": "suitecrm", "table": "leads", "ts_ms": 5}}`,
		`{"schema": {"fields": [{"field": "after", "fields": [{"field": "v", "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "3"}}]}]}, "payload": {"op": "u", "after": {"id": "1", "date_entered": "2026-01-01 10:00:00", "date_modified": 1, "v": "/w=="}, "source": {"db": "suitecrm", "table": "leads"}}}`)
}
