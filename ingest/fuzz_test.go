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

// The decoding cost of one message per format (the pipeline's native
// record event decoder is BenchmarkDecodeEvent in internal/pipeline).
func BenchmarkDecode(b *testing.B) {
	for _, bc := range []struct {
		name, file string
		cfg        ingest.Config
	}{
		{"salesforce_create", "testdata/salesforce/lead_create_streaming.json", salesforceInput},
		{"salesforce_update", "testdata/salesforce/lead_update_merged.json", salesforceInput},
		{"debezium_schema", "testdata/debezium/suitecrm_mysql_insert_schema.json", debeziumInput},
		{"debezium_bare", "testdata/debezium/odoo_postgres_snapshot_read.json", debeziumInput},
	} {
		v, err := os.ReadFile(bc.file)
		if err != nil {
			b.Fatal(err)
		}
		d, err := ingest.New(bc.cfg, false)
		if err != nil {
			b.Fatal(err)
		}
		r := &kgo.Record{Topic: bc.cfg.Topic, Value: v}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(v)))
			for b.Loop() {
				if _, err := d.Decode(r, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
