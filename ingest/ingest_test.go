package ingest_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/ingest"
	"github.com/leadconv/leadconv/internal/pipeline"
	"github.com/leadconv/leadconv/record"
	"github.com/leadconv/leadconv/schemas"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var salesforceInput = ingest.Config{Topic: "sf.changes", Format: ingest.SalesforceCDC, Tenant: "acme", Fields: map[string]string{"OwnerId": "-"}}

var debeziumInput = ingest.Config{Topic: "crm.changes", Format: ingest.Debezium, Tenant: "acme", Tables: map[string]ingest.Table{
	"suitecrm.leads": {Object: record.Lead, CreatedAt: "date_entered", ModifiedAt: "date_modified", Deleted: "deleted",
		Fields: map[string]string{"first_name": "FirstName", "last_name": "LastName", "account_name": "Company", "phone_work": "Phone", "status": "Status"}},
	// Twenty keeps each workspace in its own schema: the bare table name.
	"person": {Object: record.Contact, CreatedAt: "createdAt", ModifiedAt: "updatedAt", Deleted: "deletedAt",
		Fields: map[string]string{"nameFirstName": "FirstName", "nameLastName": "LastName", "emailsPrimaryEmail": "Email"}},
	"public.crm_lead": {Object: record.Lead, CreatedAt: "create_date", ModifiedAt: "write_date", TimeUnit: "us",
		Fields: map[string]string{"contact_name": "LastName", "partner_name": "Company", "email_from": "Email", "tag_ids": "-"}},
}}

func decoder(t testing.TB, c ingest.Config) *ingest.Decoder {
	t.Helper()
	d, err := ingest.New(c, false)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// golden is what a message decodes to, as the golden files hold it.
type golden struct {
	Events []goldenEvent  `json:"events"`
	Resync []goldenResync `json:"resync,omitempty"`
}

type goldenEvent struct {
	record.Event
	Echo bool `json:"echo,omitempty"`
}

type goldenResync struct {
	Topic   string            `json:"topic"`
	Key     string            `json:"key"`
	Headers map[string]string `json:"headers"`
	Data    json.RawMessage   `json:"data"`
}

func render(t *testing.T, d ingest.Decoded) []byte {
	t.Helper()
	g := golden{Events: []goldenEvent{}}
	for _, ev := range d.Events {
		g.Events = append(g.Events, goldenEvent{ev, ev.Echo})
	}
	for _, r := range d.Out {
		hs := map[string]string{}
		for _, h := range r.Headers {
			hs[h.Key] = string(h.Value)
		}
		g.Resync = append(g.Resync, goldenResync{r.Topic, string(r.Key), hs, r.Value})
	}
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// TestGolden decodes the vectors modelled on the vendors' documented
// examples (testdata/<format>/*.json, our own values) and compares with
// the .golden files (-update rewrites them). Every vector is valid under
// the format's schema, every event it yields is a valid record event, and
// every resync request is valid under its schema.
func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		dir, schema string
		cfg         ingest.Config
	}{
		{"salesforce", schemas.SalesforceCDC, salesforceInput},
		{"debezium", schemas.Debezium, debeziumInput},
	} {
		d := decoder(t, tc.cfg)
		files, err := filepath.Glob(filepath.Join("testdata", tc.dir, "*.json"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no vectors in testdata/%s: %v", tc.dir, err)
		}
		for _, f := range files {
			t.Run(f, func(t *testing.T) {
				in, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				if err := schemas.ValidateJSON(tc.schema, in); err != nil {
					t.Fatalf("vector is not valid under %s: %v", tc.schema, err)
				}
				got, err := d.Decode(&kgo.Record{Topic: tc.cfg.Topic, Partition: 2, Offset: 41, Key: []byte(`{"id":1}`), Value: in}, 0)
				if err != nil {
					t.Fatal(err)
				}
				checkEvents(t, got)
				for _, r := range got.Out {
					if err := schemas.ValidateJSON(schemas.ResyncRequested, r.Value); err != nil {
						t.Fatalf("resync request: %v", err)
					}
				}
				out := render(t, got)
				path := strings.TrimSuffix(f, ".json") + ".golden"
				if *update {
					if err := os.WriteFile(path, out, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(out, want) {
					t.Fatalf("decoded\n%s\nwant (%s)\n%s", out, path, want)
				}
			})
		}
	}
}

// checkEvents holds every decoded event to the native contract: encoded
// as a record event it is valid and decodes back to itself.
func checkEvents(t testing.TB, d ingest.Decoded) {
	t.Helper()
	for i, ev := range d.Events {
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		back, err := pipeline.DecodeEvent(b, 0)
		if err != nil {
			t.Fatalf("event %d is not a valid record event: %v\n%s", i, err, b)
		}
		ev.Echo = false
		if !ev.CreatedAt.IsZero() || !back.CreatedAt.IsZero() {
			back.CreatedAt, ev.CreatedAt = back.CreatedAt.UTC(), ev.CreatedAt.UTC()
		}
		back.ModifiedAt, ev.ModifiedAt = back.ModifiedAt.UTC(), ev.ModifiedAt.UTC()
		if len(ev.Fields) == 0 && len(back.Fields) == 0 {
			ev.Fields, back.Fields = nil, nil
		}
		if !reflect.DeepEqual(ev, back) {
			t.Fatalf("event %d does not survive the record event encoding:\n got %+v\nwant %+v", i, back, ev)
		}
	}
}

// What does not fit is dead-lettered with a code and the failing path and
// rule, never a value.
func TestDeadLetters(t *testing.T) {
	const secret = "ines.secret@example.com"
	sf := func(header, body string) string {
		return `{"ChangeEventHeader": {` + header + `}` + body + `}`
	}
	const okHeader = `"entityName": "Lead", "recordIds": ["00Q1"], "changeType": "CREATE", "commitTimestamp": 1780310400000`
	tests := []struct {
		name   string
		cfg    ingest.Config
		value  string
		code   string
		detail string
	}{
		{"not json", salesforceInput, `{"ChangeEventHeader": `, "not_json", "value is not a single JSON document"},
		{"two documents", salesforceInput, `{} {}`, "not_json", "value is not a single JSON document"},
		{"not an object", salesforceInput, `["` + secret + `"]`, "schema_violation", "/: type"},
		{"no header", salesforceInput, `{"Email": "` + secret + `"}`, "schema_violation", "/ChangeEventHeader: required"},
		{"no header in the envelope", salesforceInput, `{"payload": {"Email": "` + secret + `"}}`, "schema_violation", "/payload/ChangeEventHeader: required"},
		{"header not an object", salesforceInput, `{"ChangeEventHeader": "` + secret + `"}`, "schema_violation", "/ChangeEventHeader: type"},
		{"unmapped entity", salesforceInput, sf(`"entityName": "Opportunity", "recordIds": ["0061"], "changeType": "CREATE", "commitTimestamp": 1`, ``), "unknown_object", "/ChangeEventHeader/entityName: not in the input's objects"},
		{"unknown change type", salesforceInput, sf(`"entityName": "Lead", "recordIds": ["00Q1"], "changeType": "MERGE", "commitTimestamp": 1`, ``), "unknown_op", "/ChangeEventHeader/changeType: enum"},
		{"no record ids", salesforceInput, sf(`"entityName": "Lead", "recordIds": [], "changeType": "CREATE", "commitTimestamp": 1`, ``), "schema_violation", "/ChangeEventHeader/recordIds: minItems"},
		{"record id with a space", salesforceInput, sf(`"entityName": "Lead", "recordIds": ["00Q 1"], "changeType": "CREATE", "commitTimestamp": 1`, ``), "schema_violation", "/ChangeEventHeader/recordIds/0: pattern"},
		{"record id not text", salesforceInput, sf(`"entityName": "Lead", "recordIds": [7], "changeType": "CREATE", "commitTimestamp": 1`, ``), "schema_violation", "/ChangeEventHeader/recordIds/0: type"},
		{"no commit time", salesforceInput, sf(`"entityName": "Lead", "recordIds": ["00Q1"], "changeType": "CREATE"`, ``), "schema_violation", "/ChangeEventHeader: required"},
		{"fractional commit time", salesforceInput, sf(`"entityName": "Lead", "recordIds": ["00Q1"], "changeType": "CREATE", "commitTimestamp": 1.5`, ``), "schema_violation", "/ChangeEventHeader/commitTimestamp: type"},
		{"unknown nested field", salesforceInput, sf(okHeader, `, "Extra__x": {"Email": "`+secret+`"}`), "schema_violation", "/Extra__x: type"},
		{"list value", salesforceInput, sf(okHeader, `, "Email": ["`+secret+`"]`), "schema_violation", "/Email: type"},
		{"nested component", salesforceInput, sf(okHeader, `, "Name": {"FirstName": {"x": "`+secret+`"}}`), "schema_violation", "/Name/FirstName: type"},
		{"bad created date", salesforceInput, sf(okHeader, `, "CreatedDate": "`+secret+`"`), "schema_violation", "/CreatedDate: format"},
		{"bad changed field", salesforceInput, sf(`"entityName": "Lead", "recordIds": ["00Q1"], "changeType": "UPDATE", "commitTimestamp": 1, "changedFields": ["Geo.Latitude"]`, ``), "schema_violation", "/ChangeEventHeader/changedFields/0: pattern"},
		{"debezium not json", debeziumInput, `{"op": "c"`, "not_json", "value is not a single JSON document"},
		{"debezium no op", debeziumInput, `{"after": {"email": "` + secret + `"}, "source": {"table": "leads"}}`, "schema_violation", "/: required"},
		{"debezium unknown table", debeziumInput, `{"op": "c", "after": {"id": "1"}, "source": {"db": "suitecrm", "table": "users"}}`, "unknown_object", "/source/table: not in the input's tables"},
		{"debezium truncate", debeziumInput, `{"op": "t", "source": {"db": "suitecrm", "table": "leads"}}`, "unknown_op", "/op: enum"},
		{"debezium no after", debeziumInput, `{"op": "c", "after": null, "source": {"db": "suitecrm", "table": "leads"}}`, "schema_violation", "/after: type"},
		{"debezium no id", debeziumInput, `{"op": "c", "after": {"first_name": "` + secret + `"}, "source": {"db": "suitecrm", "table": "leads"}}`, "schema_violation", "/after/id: required"},
		{"debezium fractional id", debeziumInput, `{"op": "c", "after": {"id": 1.5}, "source": {"db": "suitecrm", "table": "leads"}}`, "schema_violation", "/after/id: type"},
		{"debezium no created time", debeziumInput, `{"op": "c", "after": {"id": "1", "date_modified": 1}, "source": {"db": "suitecrm", "table": "leads"}}`, "schema_violation", "/after/date_entered: required"},
		{"debezium bad time", debeziumInput, `{"op": "c", "after": {"id": "1", "date_entered": "` + secret + `"}, "source": {"db": "suitecrm", "table": "leads"}}`, "schema_violation", "/after/date_entered: format"},
		{"debezium nested column", debeziumInput, `{"op": "c", "after": {"id": "1", "date_entered": 1, "date_modified": 1, "email": {"v": "` + secret + `"}}, "source": {"db": "suitecrm", "table": "leads"}}`, "schema_violation", "/after/email: type"},
		{"debezium wrapped", debeziumInput, `{"schema": {}, "payload": {"op": "c", "after": {"id": "1", "date_entered": 1, "date_modified": 1, "email": ["` + secret + `"]}, "source": {"db": "suitecrm", "table": "leads"}}}`, "schema_violation", "/payload/after/email: type"},
		{"debezium delete without key", debeziumInput, `{"op": "d", "before": null, "source": {"db": "suitecrm", "table": "leads"}}`, "schema_violation", "key: required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decoder(t, tt.cfg).Decode(&kgo.Record{Topic: tt.cfg.Topic, Value: []byte(tt.value)}, 0)
			var e *ingest.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v, want an *ingest.Error", err)
			}
			if e.Code != tt.code || e.Detail != tt.detail {
				t.Fatalf("got %s %q, want %s %q", e.Code, e.Detail, tt.code, tt.detail)
			}
			if code, ok := pipeline.ErrorCode(err); !ok || code != tt.code {
				t.Fatalf("pipeline.ErrorCode = %q %v", code, ok)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("error text carries a value: %v", err)
			}
		})
	}
}

func TestTenantHeaderAndTombstones(t *testing.T) {
	c := salesforceInput
	c.Tenant, c.TenantHeader = "", "leadconv-tenant"
	d := decoder(t, c)
	v, err := os.ReadFile("testdata/salesforce/lead_delete.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.Decode(&kgo.Record{Value: v, Headers: []kgo.RecordHeader{{Key: "LeadConv-Tenant", Value: []byte("globex")}}}, 0)
	if err != nil || len(got.Events) != 1 || got.Events[0].Tenant != "globex" {
		t.Fatalf("tenant from the header: %+v %v", got, err)
	}
	for _, h := range [][]kgo.RecordHeader{nil, {{Key: "leadconv-tenant", Value: []byte("a{b}")}}} {
		_, err := d.Decode(&kgo.Record{Value: v, Headers: h}, 0)
		if code, ok := pipeline.ErrorCode(err); !ok || code != "schema_violation" {
			t.Fatalf("headers %v: %v, want schema_violation", h, err)
		}
	}
	if _, err := d.Decode(&kgo.Record{Value: v, Headers: []kgo.RecordHeader{{Key: "leadconv-tenant", Value: []byte("a")}}}, 10); err == nil {
		t.Fatal("oversize value decoded")
	}
	// A Debezium tombstone (null value after a delete) is consumed without
	// events; a Salesforce message never is empty.
	if got, err := decoder(t, debeziumInput).Decode(&kgo.Record{Key: []byte(`{"id": "1"}`)}, 0); err != nil || len(got.Events)+len(got.Out) != 0 {
		t.Fatalf("tombstone: %+v %v", got, err)
	}
	if _, err := decoder(t, salesforceInput).Decode(&kgo.Record{}, 0); err == nil {
		t.Fatal("empty Salesforce message decoded")
	}
}

// The echo marker follows changeOrigin's client id, and only it.
func TestEcho(t *testing.T) {
	c := salesforceInput
	c.EchoClient = "lc-writer"
	d := decoder(t, c)
	for origin, want := range map[string]bool{
		"com/salesforce/api/rest/60.0;client=lc-writer":   true,
		"com/salesforce/api/soap/60.0;client=lc-writer/":  true,
		"com/salesforce/api/rest/60.0;client=lc-writer-2": false,
		"com/salesforce/api/rest/60.0":                    false,
		"":                                                false,
	} {
		v := `{"ChangeEventHeader": {"entityName": "Lead", "recordIds": ["00Q1", "00Q2"], "changeType": "DELETE", "commitTimestamp": 1, "changeOrigin": "` + origin + `"}}`
		got, err := d.Decode(&kgo.Record{Value: []byte(v)}, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range got.Events {
			if ev.Echo != want {
				t.Errorf("origin %q: echo %v, want %v", origin, ev.Echo, want)
			}
		}
	}
}

// One event naming several records gives each its own field map: the
// store may keep and change them.
func TestMergedEventsOwnTheirFields(t *testing.T) {
	v, err := os.ReadFile("testdata/salesforce/lead_update_merged.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := decoder(t, salesforceInput).Decode(&kgo.Record{Value: v}, 0)
	if err != nil || len(got.Events) != 2 {
		t.Fatalf("%+v %v", got, err)
	}
	got.Events[0].Fields["Status"] = "changed"
	if got.Events[1].Fields["Status"] == "changed" {
		t.Fatal("the events share one field map")
	}
	if ids := []string{got.Events[0].ID, got.Events[1].ID}; !slices.Equal(ids, []string{"00Q5f00000AbCdEAAX", "00Q5f00000AbCdFAAX"}) {
		t.Fatalf("ids %v", ids)
	}
}

// Updates patch exactly the changed fields, whichever way the client names
// them.
func TestSalesforceUpdates(t *testing.T) {
	const head = `"entityName": "Contact", "recordIds": ["0031"], "changeType": "UPDATE", "commitTimestamp": 1780310400000`
	tests := []struct {
		name, value string
		want        record.Fields
	}{
		{"a compound named whole", `{"ChangeEventHeader": {` + head + `, "changedFields": ["Name"]}, "Name": {"FirstName": "Ann", "LastName": null}, "Email": "x@y.example"}`,
			record.Fields{"FirstName": "Ann", "LastName": nil}},
		{"a nulled component", `{"ChangeEventHeader": {` + head + `, "changedFields": ["MailingAddress.City", "Title"], "nulledFields": ["MailingAddress.City"]}, "Title": "CFO"}`,
			record.Fields{"MailingCity": nil, "Title": "CFO"}},
		{"no changedFields: the non-null fields", `{"ChangeEventHeader": {` + head + `, "nulledFields": ["Phone"]}, "Title": "CFO", "Email": null, "Name": {"LastName": "Lee"}}`,
			record.Fields{"Title": "CFO", "LastName": "Lee", "Phone": nil}},
		{"renames apply", `{"ChangeEventHeader": {` + head + `, "changedFields": ["OwnerId", "Title"]}, "OwnerId": "005x", "Title": "CFO"}`,
			record.Fields{"Title": "CFO"}},
	}
	d := decoder(t, salesforceInput)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := d.Decode(&kgo.Record{Value: []byte(tt.value)}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Events) != 1 || got.Events[0].Op != record.OpPatch || !reflect.DeepEqual(got.Events[0].Fields, tt.want) {
				t.Fatalf("got %+v, want a patch of %v", got.Events, tt.want)
			}
			if !got.Events[0].CreatedAt.IsZero() {
				t.Fatalf("a patch carries a creation time: %v", got.Events[0].CreatedAt)
			}
		})
	}
}

func TestNewRefusesNative(t *testing.T) {
	if _, err := ingest.New(ingest.Config{Topic: "t", Format: ingest.Native}, false); err == nil {
		t.Fatal("a native input got a CRM decoder")
	}
	if _, err := ingest.New(ingest.Config{Topic: "t", Format: ingest.Debezium, Tenant: "a"}, false); err == nil {
		t.Fatal("an invalid input got a decoder")
	}
}

// Partition workers share a decoder: Debezium's schema cache is safe for
// concurrent use and gives every message the same decoding.
func TestDecoderConcurrent(t *testing.T) {
	v, err := os.ReadFile("testdata/debezium/suitecrm_mysql_insert_schema.json")
	if err != nil {
		t.Fatal(err)
	}
	d := decoder(t, debeziumInput)
	want, err := d.Decode(&kgo.Record{Value: v}, 0)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			for range 50 {
				got, err := d.Decode(&kgo.Record{Value: v}, 0)
				if err == nil && !reflect.DeepEqual(got, want) {
					err = errors.New("a cached schema decodes differently")
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := want.Events[0].Fields["opportunity_amount"]; got != json.Number("1234.56") {
		t.Fatalf("decimal %v", got)
	}
}
