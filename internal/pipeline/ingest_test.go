package pipeline_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/consumer"
	"github.com/leadconv/leadconv/events"
	"github.com/leadconv/leadconv/ingest"
	"github.com/leadconv/leadconv/internal/pipeline"
	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
	"github.com/leadconv/leadconv/internal/testutil/redistest"
	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/record"
	"github.com/leadconv/leadconv/schemas"
)

const (
	sfTopic     = "sf.leads"
	dbzTopic    = "crm.leads"
	resyncTopic = "leadconv.resync"
)

func sfEvent(changeType, id string, commit time.Time, body string) *kgo.Record {
	v := fmt.Sprintf(`{"ChangeEventHeader": {"entityName": "Lead", "recordIds": [%q], "changeType": %q, "commitTimestamp": %d,
		"transactionKey": "tx-%s-%d", "sequenceNumber": 1, "changedFields": ["Email", "LastModifiedDate"]}%s}`,
		id, changeType, commit.UnixMilli(), id, commit.Unix(), body)
	return &kgo.Record{Topic: sfTopic, Key: []byte(id), Value: []byte(v)}
}

func sfLead(first, last, email string, created, modified time.Time) string {
	return fmt.Sprintf(`, "Name": {"FirstName": %q, "LastName": %q}, "Email": %q, "Company": "Lee Holdings",
		"CreatedDate": %q, "LastModifiedDate": %q`, first, last, email, created.Format(time.RFC3339), modified.Format(time.RFC3339))
}

// Salesforce change events and Debezium rows flow through the one pipeline
// beside record events. A gap event holds its record out of matching and
// conversion and publishes a resync request; nothing converts until the
// re-read upsert arrives, and then the cluster converts. Unmapped input is
// dead-lettered from its own topic, a Debezium tombstone is consumed.
func TestIngestFormats(t *testing.T) {
	cfg, err := pipeline.GeneratedConfig()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, kc: kafkatest.New(t, 1, recordsTopic, byTenantTopic, commandsTopic, dlqTopic, sfTopic, dbzTopic, resyncTopic), srv: redistest.New(t), cfg: cfg}
	inputs := []ingest.Config{
		{Topic: sfTopic, Format: ingest.SalesforceCDC, Tenant: "acme", ResyncTopic: resyncTopic},
		{Topic: dbzTopic, Format: ingest.Debezium, Tenant: "acme", Tables: map[string]ingest.Table{
			"suitecrm.leads": {Object: record.Lead, CreatedAt: "date_entered", ModifiedAt: "date_modified",
				Fields: map[string]string{"first_name": "FirstName", "last_name": "LastName", "email": "Email", "account_name": "Company"}},
		}},
	}
	ns := redistest.Namespace(t)
	st := e.store(ns)
	// Each input is routed to the by-tenant topic; its owners are done
	// once they committed all that was routed.
	owned := func() bool {
		routed := e.kc.EndOffsets(byTenantTopic)
		return routed > 0 && e.kc.Committed(group, byTenantTopic) == routed
	}
	withInputs := func(c *pipeline.Config) { c.Inputs = inputs }
	t0 := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

	// Phase 1: A is created, then Salesforce loses a change of A (a gap);
	// B, a duplicate of A, and a later patch of A arrive.
	phase1 := []*kgo.Record{
		sfEvent("CREATE", "00QA", t0, sfLead("Ann", "Lee", "ann@lee.example", t0, t0)),
		sfEvent("GAP_UPDATE", "00QA", t0.Add(10*time.Minute), ""),
		sfEvent("CREATE", "00QB", t0.Add(20*time.Minute), sfLead("Ann", "Lee", "ann@lee.example", t0.Add(20*time.Minute), t0.Add(20*time.Minute))),
		sfEvent("UPDATE", "00QA", t0.Add(30*time.Minute), `, "Email": "ann@lee.example", "LastModifiedDate": "`+t0.Add(30*time.Minute).Format(time.RFC3339)+`"`),
		{Topic: sfTopic, Key: []byte("opp"), Value: []byte(`{"ChangeEventHeader": {"entityName": "Opportunity", "recordIds": ["006X"], "changeType": "CREATE", "commitTimestamp": 1}}`)},
	}
	e.kc.Produce(phase1...)
	reg := prometheus.NewRegistry()
	stop := e.start(e.pipeline(e.owners(ns), reg, withInputs))
	kafkatest.WaitFor(t, 30*time.Second, "phase 1 committed", func() bool { return e.kc.Committed(group, sfTopic) == int64(len(phase1)) && owned() })
	if n := len(e.kc.ReadAll(commandsTopic)); n != 0 {
		t.Fatalf("%d commands while A is held", n)
	}
	if got := clusterSets(t, st); got != "lead/00QB" {
		t.Fatalf("clusters while A is held:\n%s", got)
	}
	resync := e.kc.ReadAll(resyncTopic)
	if len(resync) != 1 {
		t.Fatalf("%d resync requests, want 1", len(resync))
	}
	ev, err := kafkatest.CloudEvent(resync[0])
	if err != nil || ev.Type() != events.TypeResyncRequested || ev.DataSchema() != events.SchemaURL("resync.requested") {
		t.Fatalf("resync request event %v: %v", ev, err)
	}
	if err := schemas.ValidateJSON(schemas.ResyncRequested, ev.Data()); err != nil {
		t.Fatal(err)
	}
	var req events.ResyncRequested
	if err := json.Unmarshal(ev.Data(), &req); err != nil || len(req.IDs) != 1 || req.IDs[0] != "00QA" || req.Reason != "gap_update" ||
		req.Origin == nil || req.Origin.Topic != sfTopic || req.Origin.Offset != 1 {
		t.Fatalf("resync request %+v: %v", req, err)
	}
	dead := e.kc.ReadAll(dlqTopic)
	if len(dead) != 1 || string(kafkatest.Header(dead[0], consumer.HeaderErrorCode)) != ingest.CodeUnknownObject ||
		string(kafkatest.Header(dead[0], consumer.HeaderSourceTopic)) != sfTopic || !bytes.Equal(dead[0].Value, phase1[4].Value) {
		t.Fatalf("dead letters %v", dead)
	}

	// Phase 2: the connector re-reads A (an upsert whose modified time
	// precedes the gap's commit) and a SuiteCRM row C, another duplicate,
	// arrives through Debezium after a tombstone.
	reread := fmt.Sprintf(`{"tenant":"acme","object":"lead","id":"00QA","op":"upsert","created_at":%q,"modified_at":%q,
		"fields":{"FirstName":"Ann","LastName":"Lee","Email":"ann@lee.example","Company":"Lee Holdings"}}`, t0.Format(time.RFC3339), t0.Add(5*time.Minute).Format(time.RFC3339))
	row := fmt.Sprintf(`{"before": null, "after": {"id": "c-1", "date_entered": %d, "date_modified": %d, "first_name": "Ann", "last_name": "Lee",
		"email": "ann@lee.example", "account_name": "Lee Holdings"}, "source": {"db": "suitecrm", "table": "leads", "ts_ms": %d}, "op": "c"}`,
		t0.Add(40*time.Minute).UnixMilli(), t0.Add(40*time.Minute).UnixMilli(), t0.Add(40*time.Minute).UnixMilli())
	e.kc.Produce(
		&kgo.Record{Topic: dbzTopic, Key: []byte(`{"id":"c-0"}`)},
		&kgo.Record{Topic: dbzTopic, Key: []byte(`{"id":"c-1"}`), Value: []byte(row)},
	)
	kafkatest.WaitFor(t, 30*time.Second, "Debezium rows committed", func() bool { return e.kc.Committed(group, dbzTopic) == 2 && owned() && e.settled() })
	// B and C convert; A, held, is in no command.
	before := e.kc.ReadAll(commandsTopic)
	if len(before) == 0 {
		t.Fatal("B and C did not convert")
	}
	for _, r := range before {
		if bytes.Contains(r.Value, []byte(`"00QA"`)) {
			t.Fatalf("a command names the held record: %s", r.Value)
		}
	}
	e.kc.Produce(&kgo.Record{Topic: recordsTopic, Key: []byte("acme/00QA"), Value: []byte(reread)})
	kafkatest.WaitFor(t, 30*time.Second, "the re-read committed", func() bool { return e.committed() == 1 && owned() && e.settled() })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got, want := clusterSets(t, st), "lead/00QA lead/00QB lead/c-1"; got != want {
		t.Fatalf("clusters after the re-read:\n%s\nwant %s", got, want)
	}
	cmds := e.commandIDs()
	if len(cmds) == 0 {
		t.Fatal("no commands once the hold ended")
	}
	var converted bool
	for _, r := range e.kc.ReadAll(commandsTopic)[len(before):] {
		converted = converted || bytes.Contains(r.Value, []byte(`"00QA"`))
	}
	if !converted {
		t.Fatal("no command names A once its hold ended")
	}
	if len(e.kc.ReadAll(dlqTopic)) != 1 {
		t.Fatal("the tombstone or the re-read was dead-lettered")
	}
	// Four Salesforce events (the hold among them), the Debezium row, the
	// re-read; neither the tombstone nor the dead letter.
	if in := metricSum(t, reg, "leadconv_events_in_total"); in != 6 {
		t.Fatalf("events in %v, want 6", in)
	}
}

// An input that would read what leadconv writes stops start-up.
func TestInputTopicLoops(t *testing.T) {
	cfg, err := pipeline.GeneratedConfig()
	if err != nil {
		t.Fatal(err)
	}
	sf := ingest.Config{Topic: "sf", Format: ingest.SalesforceCDC, Tenant: "acme"}
	owners := func() pipeline.Owner { return matcher.NewStore(nil, matcher.StoreOptions{Rules: cfg.Rules}) }
	for _, tt := range []struct {
		inputs []ingest.Config
		want   string
	}{
		{[]ingest.Config{{Topic: "leadconv.commands", Format: ingest.Native}}, `inputs[0].topic: "leadconv.commands" is the commands topic`},
		{[]ingest.Config{{Topic: dlqTopic, Format: ingest.Native}}, `inputs[0].topic: "leadconv.dlq" is the dead-letter topic`},
		{[]ingest.Config{{Topic: "sf", Format: sf.Format, Tenant: sf.Tenant, ResyncTopic: recordsTopic}}, `inputs[0].resync_topic: "leadconv.records" is an input topic`},
		{[]ingest.Config{{Topic: "people", Format: ingest.Native}, {Topic: "sf", Format: sf.Format, Tenant: sf.Tenant, ResyncTopic: "people"}}, `inputs[1].resync_topic: "people" is an input topic`},
		{[]ingest.Config{{Topic: "sf", Format: sf.Format}}, "tenant: required"},
		{[]ingest.Config{{Topic: pipeline.DefaultByTenantTopic, Format: ingest.Native}}, `inputs[0].topic: "leadconv.records.by-tenant" is the by-tenant topic`},
	} {
		_, err := pipeline.New(pipeline.Config{Brokers: []string{"127.0.0.1:1"}, Inputs: tt.inputs}, owners, cfg)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("inputs %+v: error %v, want %q", tt.inputs, err, tt.want)
		}
	}
	// A CRM's topics are keyed by record: without the hop, a tenant would
	// have several writers.
	_, err = pipeline.New(pipeline.Config{Brokers: []string{"127.0.0.1:1"}, InputByTenant: true, Inputs: []ingest.Config{sf}}, owners, cfg)
	if err == nil || !strings.Contains(err.Error(), "inputs need the by-tenant topic") {
		t.Errorf("inputs with the input keyed by tenant: error %v", err)
	}
}

// The router re-encodes an event of a CRM's format as a record event on the
// by-tenant topic, keyed by tenant; the echo of leadconv's own writer, which
// the record event's JSON does not carry, travels in a header, and the
// owner applies the routed records.
func TestRoutedEchoKeepsItsMark(t *testing.T) {
	cfg, err := pipeline.GeneratedConfig()
	if err != nil {
		t.Fatal(err)
	}
	sf, err := ingest.New(ingest.Config{Topic: sfTopic, Format: ingest.SalesforceCDC, Tenant: "acme"}, false)
	if err != nil {
		t.Fatal(err)
	}
	srv := redistest.New(t)
	owners := func() pipeline.Owner {
		return matcher.NewStore(srv.Client(), matcher.StoreOptions{Namespace: redistest.Namespace(t), Rules: cfg.Rules})
	}
	h := pipeline.NewHandler(pipeline.HandlerConfig{CommandsTopic: commandsTopic, ByTenantTopic: byTenantTopic,
		Formats: map[string]pipeline.Format{sfTopic: sf}}, owners, cfg)
	t0 := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	own := sfEvent("CREATE", "00QA", t0, sfLead("Ann", "Lee", "ann@lee.example", t0, t0))
	own.Value = bytes.Replace(own.Value, []byte(`"commitTimestamp"`), []byte(`"changeOrigin": "com/salesforce/api/rest/60.0;client=leadconv", "commitTimestamp"`), 1)
	other := sfEvent("CREATE", "00QB", t0, sfLead("Bob", "Ray", "bob@ray.example", t0, t0))
	res, err := h.Handle(t.Context(), sfTopic, 0, []*kgo.Record{own, other})
	if err != nil || len(res.Poison) != 0 || len(res.Out) != 2 {
		t.Fatalf("routing: %d out, poison %+v, err %v", len(res.Out), res.Poison, err)
	}
	for i, want := range []bool{true, false} {
		r := res.Out[i]
		if r.Topic != byTenantTopic || string(r.Key) != "acme" {
			t.Fatalf("routed to %s key %q, want %s key acme", r.Topic, r.Key, byTenantTopic)
		}
		if got := string(kafkatest.Header(r, pipeline.HeaderEcho)) == "1"; got != want {
			t.Errorf("record %d: echo header %v, want %v", i, got, want)
		}
		ev, err := pipeline.DecodeEvent(r.Value, maxBytes)
		if err != nil || ev.ID != []string{"00QA", "00QB"}[i] || ev.Echo {
			t.Fatalf("routed value decodes to %+v, %v: want the record event, its echo in the header only", ev, err)
		}
	}
	// The owner reads the routed records and applies both.
	r0, r1 := *res.Out[0], *res.Out[1]
	r0.Offset, r1.Offset = 0, 1
	if res, err := h.Handle(t.Context(), byTenantTopic, 0, []*kgo.Record{&r0, &r1}); err != nil || len(res.Poison) != 0 {
		t.Fatalf("owner: poison %+v, err %v", res.Poison, err)
	}
}
