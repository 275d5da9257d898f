package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/events"
	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/internal/pipeline"
	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
	"github.com/leadconv/leadconv/internal/testutil/redistest"
	"github.com/leadconv/leadconv/lifecycle"
	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/record"
)

const resultsTopic = "leadconv.results"

var rt0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func rsec(n int) time.Time { return rt0.Add(time.Duration(n) * time.Second) }

// people of the results tests: two leads of one person are duplicates.
var people = map[string][]string{
	"ann@acme.io":  {"Ann", "Lee", "Acme", "415-555-0100"},
	"bob@other.io": {"Bob", "Stone", "Other", "212-555-0199"},
	"cy@third.io":  {"Cy", "Moss", "Third", "303-555-0142"},
}

// leadEvent is an upsert of a lead of the person with email, modified at
// sec; extra fields are laid over.
func leadEvent(tenant, id, email string, sec int, extra record.Fields) []byte {
	p := people[email]
	f := map[string]any{"FirstName": p[0], "LastName": p[1], "Email": email, "Company": p[2], "Phone": p[3]}
	for k, v := range extra {
		f[k] = v
	}
	v, _ := json.Marshal(map[string]any{"tenant": tenant, "object": "lead", "id": id, "op": "upsert",
		"created_at": rsec(0), "modified_at": rsec(sec), "fields": f})
	return v
}

// contactEvent is an upsert of a contact of the person with email.
func contactEvent(tenant, id, email string, sec int) []byte {
	p := people[email]
	v, _ := json.Marshal(map[string]any{"tenant": tenant, "object": "contact", "id": id, "op": "upsert",
		"created_at": rsec(sec), "modified_at": rsec(sec),
		"fields": map[string]any{"FirstName": p[0], "LastName": p[1], "Email": email, "Phone": p[3]}})
	return v
}

// echoed marks a record event as the writer marks its change events.
func echoed(r *kgo.Record) *kgo.Record {
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: pipeline.HeaderEcho, Value: []byte("1")})
	return r
}

// resultRecord is a command.result as the reference writer produces it
// (binary mode, keyed by tenant), written at sec.
func resultRecord(topic string, res events.CommandResult, sec int) *kgo.Record {
	b, _ := json.Marshal(res)
	return &kgo.Record{Topic: topic, Key: []byte(res.Tenant), Value: b, Timestamp: rsec(sec), Headers: []kgo.RecordHeader{
		{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: []byte("r-" + res.CommandID + "-" + res.Outcome)},
		{Key: "ce_source", Value: []byte("leadconv/writer")}, {Key: "ce_type", Value: []byte(events.TypeCommandResult)},
		{Key: "content-type", Value: []byte("application/json")},
	}}
}

// resultOf is the result of cmd with outcome and reason.
func resultOf(cmd engine.Command, outcome, reason string, refs ...record.Ref) events.CommandResult {
	return events.CommandResult{CommandID: cmd.ID, Kind: cmd.Kind, Tenant: cmd.Tenant, ClusterID: cmd.ClusterID,
		ClusterVersion: cmd.ClusterVersion, Seq: cmd.Seq, Outcome: outcome, Reason: reason, Records: refs}
}

// commandsOf decodes the commands among out.
func commandsOf(t *testing.T, out []*kgo.Record) []engine.Command {
	t.Helper()
	var cmds []engine.Command
	for _, r := range out {
		if r.Topic != commandsTopic {
			continue
		}
		var c engine.Command
		if err := json.Unmarshal(r.Value, &c); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
	}
	return cmds
}

// brief is a command in one line: kind, lead and targets.
func brief(c engine.Command) string {
	tg := func(x engine.Target) string {
		switch {
		case x.Create:
			return "new"
		case x.FromLead != "":
			return "of:" + x.FromLead
		}
		return x.ID
	}
	switch d := c.Data.(type) {
	case *engine.LeadConvert:
		return fmt.Sprintf("convert %s -> %s", d.LeadID, tg(d.Contact))
	case *engine.RecordsMerge:
		return fmt.Sprintf("merge %v%v -> %s", d.MergedIDs, d.MergedFromLeads, tg(d.Master))
	case *engine.ReviewRequested:
		return fmt.Sprintf("review %s %s", d.Reason, d.WriterReason)
	}
	return c.Kind
}

func briefs(cmds []engine.Command) []string {
	out := make([]string, len(cmds))
	for i, c := range cmds {
		out[i] = brief(c)
	}
	slices.Sort(out)
	return out
}

// resultsHandler is an owner Handler (no routing) planning through a
// lifecycle with opts, its metrics in reg.
func resultsHandler(t *testing.T, opts lifecycle.Options, reg prometheus.Registerer) *pipeline.Handler {
	t.Helper()
	return boundedResultsHandler(t, opts, reg, 0)
}

// boundedResultsHandler is resultsHandler with the settled lifecycle
// entries bounded to bound bytes (0: the default).
func boundedResultsHandler(t *testing.T, opts lifecycle.Options, reg prometheus.Registerer, bound int64) *pipeline.Handler {
	t.Helper()
	return resultsHandlerOn(t, redistest.New(t), opts, reg, bound)
}

// resultsHandlerOn is boundedResultsHandler on the Redis srv: handlers on
// one server take the partition over from each other.
func resultsHandlerOn(t *testing.T, srv *redistest.Server, opts lifecycle.Options, reg prometheus.Registerer, bound int64) *pipeline.Handler {
	t.Helper()
	return resultsHandlerWith(t, func(cfg *config.File) pipeline.Owners { return ownersFor(srv, cfg) }, opts, reg, bound)
}

// resultsHandlerWith is resultsHandlerOn with the owners owners makes.
func resultsHandlerWith(t *testing.T, owners func(*config.File) pipeline.Owners, opts lifecycle.Options, reg prometheus.Registerer, bound int64) *pipeline.Handler {
	t.Helper()
	cfg, err := pipeline.GeneratedConfig()
	if err != nil {
		t.Fatal(err)
	}
	return pipeline.NewHandler(pipeline.HandlerConfig{CommandsTopic: commandsTopic, MaxRecordBytes: maxBytes, Metrics: pipeline.NewMetrics(reg),
		LifecycleBytes: bound, Lifecycle: func(*config.Tenant) lifecycle.Options { return opts }},
		owners(cfg), cfg)
}

// failingFirstBatch is an owner whose first batch fails once planned,
// writing nothing, as a Redis that failed the write: what the plan took
// to write goes with the batch's retry.
type failingFirstBatch struct {
	pipeline.Owner
	failed bool
}

var errInjected = errors.New("injected: the batch's write failed")

func (s *failingFirstBatch) ApplyPlanned(ctx context.Context, events []record.Event, plan matcher.PlanFunc) ([]matcher.Change, error) {
	if s.failed {
		return s.Owner.ApplyPlanned(ctx, events, plan)
	}
	s.failed = true
	_, err := s.Owner.ApplyPlanned(ctx, events, func(ctx context.Context, d matcher.Decided) (map[string]matcher.Side, error) {
		if _, err := plan(ctx, d); err != nil {
			return nil, err
		}
		return nil, errInjected
	})
	return nil, err
}

// handle runs one owner batch, and the ticks of its input pausing, and
// returns their commands.
func handle(t *testing.T, h *pipeline.Handler, recs ...*kgo.Record) []engine.Command {
	t.Helper()
	for i, r := range recs {
		if r.Topic == "" {
			r.Topic = byTenantTopic
		}
		r.Offset = int64(i)
	}
	res := handleIdle(t, h, byTenantTopic, 0, recs)
	if len(res.Poison) > 0 {
		t.Fatalf("poison: %+v", res.Poison)
	}
	return commandsOf(t, res.Out)
}

func rec(v []byte) *kgo.Record { return &kgo.Record{Topic: byTenantTopic, Value: v} }

// A failed result releases the pending state: once the conversions of the
// first plan failed, the cluster is planned again at once (settle 0): the
// lead the CRM refused goes to review with the writer's reason, the others
// are converted anew. The results are counted by outcome and reason.
func TestFailedResultReleasesAndReplans(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := resultsHandler(t, lifecycle.Options{AwaitResults: true}, reg)
	// One instant: one cluster state, one plan (a later lead would wait for
	// the first plan's results).
	first := handle(t, h, rec(leadEvent("acme", "L1", "ann@acme.io", 3, record.Fields{"Title": "CTO"})),
		rec(leadEvent("acme", "L2", "ann@acme.io", 3, record.Fields{"Title": "CTO", "City": "Oslo"})), rec(leadEvent("acme", "L3", "ann@acme.io", 3, nil)))
	if got := briefs(first); !slices.Equal(got, []string{"convert L1 -> of:L2", "convert L2 -> new", "convert L3 -> of:L2"}) {
		t.Fatalf("first plan %q", got)
	}
	// The master's conversion fails; the others wait for their results.
	if got := handle(t, h, resultRecord(byTenantTopic, resultOf(first[0], lifecycle.OutcomeFailed, "lead_already_converted"), 5)); len(got) != 0 {
		t.Fatalf("planned with results outstanding: %q", briefs(got))
	}
	got := briefs(handle(t, h, resultRecord(byTenantTopic, resultOf(first[1], lifecycle.OutcomeFailed, "missing_contact"), 6),
		resultRecord(byTenantTopic, resultOf(first[2], lifecycle.OutcomeFailed, "missing_contact"), 6)))
	if want := []string{"convert L1 -> new", "convert L3 -> of:L1", "review writer_failed lead_already_converted"}; !slices.Equal(got, want) {
		t.Fatalf("re-plan %q, want %q", got, want)
	}
	// The same results again (a redelivery) change nothing more.
	for _, c := range first {
		if again := handle(t, h, resultRecord(byTenantTopic, resultOf(c, lifecycle.OutcomeFailed, "missing_contact"), 7)); len(again) != 0 {
			t.Errorf("a redelivered result planned %q", briefs(again))
		}
	}
	if n := counterValue(t, reg, "leadconv_command_results_total", "failed", "lead_already_converted"); n != 1 {
		t.Errorf("failed/lead_already_converted counted %v", n)
	}
	if n := counterValue(t, reg, "leadconv_command_results_total", "failed", "missing_contact"); n != 5 {
		t.Errorf("failed/missing_contact counted %v, want 5", n)
	}
}

// An applied result clears the pending state with the ids the writer
// reports: a later duplicate converts into the contact by id, in one plan,
// and neither the results nor a duplicate delivery of one plan anything.
func TestAppliedResultClearsPending(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := resultsHandler(t, lifecycle.Options{AwaitResults: true}, reg)
	first := handle(t, h, rec(leadEvent("acme", "L1", "ann@acme.io", 1, nil)), rec(leadEvent("acme", "L2", "ann@acme.io", 2, record.Fields{"Title": "CTO"})))
	if len(first) != 2 || brief(first[0]) != "convert L2 -> new" {
		t.Fatalf("first plan %q", briefs(first))
	}
	// While results are outstanding, the cluster's next plan waits.
	if got := handle(t, h, rec(leadEvent("acme", "L3", "ann@acme.io", 3, nil))); len(got) != 0 {
		t.Fatalf("planned with results outstanding: %q", briefs(got))
	}
	// first[0] creates the master contact.
	created := []record.Ref{{Object: record.Lead, ID: "L2"}, {Object: record.Contact, ID: "C9"}, {Object: record.Account, ID: "A9"}}
	var got []engine.Command
	got = append(got, handle(t, h, resultRecord(byTenantTopic, resultOf(first[0], lifecycle.OutcomeApplied, "", created...), 5))...)
	dup := resultOf(first[0], lifecycle.OutcomeSkippedDuplicate, "", created...)
	dup.Previous = lifecycle.OutcomeApplied
	got = append(got, handle(t, h, resultRecord(byTenantTopic, dup, 5))...)
	got = append(got, handle(t, h, resultRecord(byTenantTopic, resultOf(first[1], lifecycle.OutcomeApplied, "", record.Ref{Object: record.Lead, ID: "L1"}), 6))...)
	if want := []string{"convert L3 -> C9"}; !slices.Equal(briefs(got), want) {
		t.Fatalf("after the results: %q, want %q", briefs(got), want)
	}
	if n := counterValue(t, reg, "leadconv_command_results_total", "applied", ""); n != 2 {
		t.Errorf("applied counted %v", n)
	}
	if n := counterValue(t, reg, "leadconv_command_results_total", "skipped_duplicate", ""); n != 1 {
		t.Errorf("skipped_duplicate counted %v", n)
	}
}

// The CRM's echoes of leadconv's own writes, the converted leads (known by
// content: converted into a contact, for leads pending conversion) and the
// created contact (marked as the writer marks it), are applied but never
// planned from: arriving after the settle timer fired they plan nothing;
// arriving while a new duplicate's timer runs they neither extend it nor
// add a plan, and the duplicate converts into the echoed contact.
func TestEchoesNeverPlan(t *testing.T) {
	for _, before := range []bool{false, true} {
		t.Run(fmt.Sprintf("before the timer fires %v", before), func(t *testing.T) {
			h := resultsHandler(t, lifecycle.Options{Settle: 5 * time.Second}, prometheus.NewRegistry())
			var plans [][]engine.Command
			show := func() (out [][]string) {
				for _, p := range plans {
					out = append(out, briefs(p))
				}
				return out
			}
			batch := func(recs ...*kgo.Record) {
				t.Helper()
				if cmds := handle(t, h, recs...); len(cmds) > 0 {
					plans = append(plans, cmds)
				}
			}
			batch(rec(leadEvent("acme", "L1", "ann@acme.io", 1, nil)), rec(leadEvent("acme", "L2", "ann@acme.io", 2, record.Fields{"Title": "CTO"})))
			// Bob's lead moves event time past Ann's window (2s + 5s).
			batch(rec(leadEvent("acme", "B1", "bob@other.io", 8, nil)))
			if len(plans) != 1 || !slices.Equal(briefs(plans[0]), []string{"convert L1 -> of:L2", "convert L2 -> new"}) {
				t.Fatalf("first plans %q", show())
			}
			conv := func() record.Fields {
				return record.Fields{"IsConverted": true, "Status": "Qualified", "ConvertedContactId": "C9", "ConvertedAccountId": "A9"}
			}
			if before {
				// A new duplicate at 10s: its timer is due at 15s.
				batch(rec(leadEvent("acme", "L3", "ann@acme.io", 10, nil)))
			}
			batch(echoed(rec(contactEvent("acme", "C9", "ann@acme.io", 12))),
				rec(leadEvent("acme", "L2", "ann@acme.io", 12, conv())),
				rec(leadEvent("acme", "L1", "ann@acme.io", 13, conv())))
			// Cy's lead at 16s moves event time past 15s, not past 17s.
			batch(rec(leadEvent("acme", "Y1", "cy@third.io", 16, nil)))
			want := 1
			if before {
				want = 2
				if len(plans) < 2 || !slices.Equal(briefs(plans[1]), []string{"convert L3 -> C9"}) {
					t.Fatalf("plans %q, want L3 into C9 at 15s", show())
				}
			}
			if len(plans) != want {
				t.Fatalf("%d plans, want %d: %q", len(plans), want, show())
			}
			out, err := h.Flush(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range commandsOf(t, out) {
				if d, ok := c.Data.(*engine.LeadConvert); ok && !slices.Contains([]string{"B1", "Y1"}, d.LeadID) {
					t.Errorf("flush planned Ann's cluster again: %s", brief(c))
				}
			}
		})
	}
}

// A result the owner cannot take is dead-lettered with a code and the
// failing path, never its values; a request event sharing the topic is
// skipped; a structured-mode result routes as binary.
func TestBadResultsDeadLettered(t *testing.T) {
	h := pipeline.NewHandler(pipeline.HandlerConfig{CommandsTopic: commandsTopic, ByTenantTopic: byTenantTopic, ResultsTopic: resultsTopic, MaxRecordBytes: maxBytes},
		func() pipeline.Owner { panic("the router owns nothing") }, mustConfig(t))
	good := events.CommandResult{CommandID: "c1", Kind: "lead.convert", Tenant: "acme", ClusterID: "k", Outcome: "applied"}
	noTenant := good
	noTenant.Tenant = ""
	failedNoReason := good
	failedNoReason.Outcome = "failed"
	structured, _ := json.Marshal(map[string]any{"specversion": "1.0", "id": "x", "source": "crm", "type": events.TypeCommandResult,
		"datacontenttype": "application/json", "data": good})
	recs := []*kgo.Record{
		resultRecord(resultsTopic, good, 1),
		resultRecord(resultsTopic, noTenant, 1),
		resultRecord(resultsTopic, failedNoReason, 1),
		{Topic: resultsTopic, Value: []byte(`{"tenant":"acme"}`)},
		{Topic: resultsTopic, Value: []byte(`{}`), Headers: []kgo.RecordHeader{{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_type", Value: []byte("io.leadconv.request.completed.v1")}}},
		{Topic: resultsTopic, Value: structured, Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/cloudevents+json")}}},
	}
	for i, r := range recs {
		r.Offset = int64(i)
	}
	res, err := h.Handle(t.Context(), resultsTopic, 0, recs)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, p := range res.Poison {
		codes = append(codes, fmt.Sprintf("%d %s %s", p.Record.Offset, p.Code, p.Reason))
		if strings.Contains(p.Reason, "acme") {
			t.Errorf("reason %q carries a value", p.Reason)
		}
	}
	want := []string{"1 schema_violation /tenant: minLength 1", "2 schema_violation", "3 not_a_command_result ce_type: const " + events.TypeCommandResult}
	if len(codes) != len(want) {
		t.Fatalf("dead letters %q, want %q", codes, want)
	}
	for i := range want {
		if !strings.HasPrefix(codes[i], want[i]) {
			t.Errorf("dead letter %q, want %q", codes[i], want[i])
		}
	}
	if len(res.Out) != 2 {
		t.Fatalf("routed %d records, want the two good results", len(res.Out))
	}
	for _, r := range res.Out {
		if r.Topic != byTenantTopic || string(r.Key) != "acme" || string(kafkatest.Header(r, "ce_type")) != events.TypeCommandResult {
			t.Errorf("routed %s key %q type %q", r.Topic, r.Key, kafkatest.Header(r, "ce_type"))
		}
		if got, err := pipeline.DecodeResult(r.Value, 0); err != nil || got.CommandID != "c1" {
			t.Errorf("routed result %+v, %v", got, err)
		}
	}
}

func mustConfig(t *testing.T) *config.File {
	t.Helper()
	cfg, err := pipeline.GeneratedConfig()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// counterValue is the value of the series of name with the label values.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var vs []string
			for _, l := range m.GetLabel() {
				vs = append(vs, l.GetValue())
			}
			if slices.Equal(vs, labels) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// The writer's results, produced to the results topic under any key, are
// routed to the by-tenant topic keyed by tenant, in order: each lands on
// the partition of its tenant's records, the one its owner reads, and is
// counted there (kfake, real redis-server).
func TestResultsRoutedToTheTenantsPartition(t *testing.T) {
	e := &env{t: t, kc: kafkatest.New(t, 3, recordsTopic, byTenantTopic, commandsTopic, dlqTopic, resultsTopic), srv: redistest.New(t), cfg: mustConfig(t)}
	reg := prometheus.NewRegistry()
	stop := e.start(e.pipeline(e.owners(redistest.Namespace(t)), reg, func(c *pipeline.Config) { c.ResultsTopic = resultsTopic }))
	var recs, results []*kgo.Record
	tenants := []string{"t1", "t2", "t3", "t4", "t5", "t6"}
	for i, tn := range tenants {
		recs = append(recs, &kgo.Record{Topic: recordsTopic, Key: []byte(tn + "/L1"), Value: leadEvent(tn, "L1", "ann@acme.io", i, nil)})
		for seq := range 3 {
			res := events.CommandResult{CommandID: fmt.Sprintf("%s-%d", tn, seq), Kind: "lead.convert", Tenant: tn, ClusterID: "k",
				ClusterVersion: 1, Seq: seq, Outcome: "applied"}
			r := resultRecord(resultsTopic, res, i)
			// Keyed as writers keyed results before (tenant/cluster_id): the
			// router re-keys them by tenant, keeping each partition's order.
			r.Key = []byte(tn + "/k")
			results = append(results, r)
		}
	}
	e.kc.Produce(recs...)
	e.kc.Produce(results...)
	kafkatest.WaitFor(t, 30*time.Second, "every input and routed record committed", func() bool {
		return e.done(int64(len(recs))) && e.kc.Committed(group, resultsTopic) == int64(len(results)) &&
			metricSum(t, reg, "leadconv_command_results_total") == float64(len(results))
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	partOf := map[string]int32{}
	seqs := map[string][]int{}
	for _, r := range e.kc.ReadAll(byTenantTopic) {
		if string(kafkatest.Header(r, "ce_type")) != events.TypeCommandResult {
			partOf[string(r.Key)] = r.Partition
			continue
		}
		res, err := pipeline.DecodeResult(r.Value, 0)
		if err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != res.Tenant {
			t.Errorf("result %s keyed %q", res.CommandID, r.Key)
		}
		if p, ok := partOf[res.Tenant]; ok && p != r.Partition {
			t.Errorf("result %s on partition %d, its tenant's records on %d", res.CommandID, r.Partition, p)
		}
		seqs[res.Tenant] = append(seqs[res.Tenant], res.Seq)
	}
	for _, tn := range tenants {
		if _, ok := partOf[tn]; !ok {
			t.Errorf("no record of %s routed", tn)
		}
		if !slices.Equal(seqs[tn], []int{0, 1, 2}) {
			t.Errorf("results of %s routed as %v, want 0, 1, 2 in order", tn, seqs[tn])
		}
	}
	if n := counterValue(t, reg, "leadconv_command_results_total", "applied", ""); n != float64(len(results)) {
		t.Errorf("applied results counted %v, want %d", n, len(results))
	}
}

// Writer results are taken at their place in the log, as ticks are: a log
// of events and of the results of the commands planned so far (each after
// the next event, as a writer answers), cut into batches of 1, 7 or all,
// plans the same with the feedback on, where a result releases a cluster's
// next plan and a failure re-plans it; so do owners that evict every
// settled lifecycle entry after each call and read back what they need,
// and a new such owner every few batches, taking over from the last.
func TestResultsDoNotDependOnBatches(t *testing.T) {
	opts := lifecycle.Options{AwaitResults: true}
	live := resultsHandler(t, opts, prometheus.NewRegistry())
	var log []*kgo.Record
	var want []string
	var answers []*kgo.Record
	feed := func(r *kgo.Record) {
		r.Topic, r.Offset = byTenantTopic, int64(len(log))
		log = append(log, r)
		res, err := live.Handle(t.Context(), byTenantTopic, 0, []*kgo.Record{r})
		if err != nil || len(res.Poison) > 0 {
			t.Fatalf("handle: %v, poison %v", err, res.Poison)
		}
		for i, c := range commandsOf(t, res.Out) {
			want = append(want, c.ID)
			outcome, reason := lifecycle.OutcomeApplied, ""
			if i%5 == 4 {
				outcome, reason = lifecycle.OutcomeFailed, "missing_contact"
			}
			res := resultRecord(byTenantTopic, resultOf(c, outcome, reason), 0)
			res.Timestamp = time.Time{}
			answers = append(answers, res)
		}
	}
	for _, r := range data(120) {
		ev, err := pipeline.DecodeEvent(r.Value, 0)
		if err != nil {
			t.Fatal(err)
		}
		now := answers
		answers = nil
		feed(r)
		for _, a := range now {
			a.Timestamp = ev.ModifiedAt.Add(time.Millisecond)
			feed(a)
		}
	}
	rest, err := live.Flush(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, ids(rest)...)
	slices.Sort(want)
	if len(want) == 0 || len(answers) == len(want) {
		t.Fatalf("%d commands, %d answered after the log: nothing exercised", len(want), len(want)-len(answers))
	}
	for _, n := range []int{7, len(log)} {
		got := handleAll(t, resultsHandler(t, opts, prometheus.NewRegistry()), log, n)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("batches of %d: %d commands, batches of 1: %d; they differ", n, len(got), len(want))
		}
	}
	var loads float64
	for _, n := range []int{1, 7} {
		reg := prometheus.NewRegistry()
		got := handleAll(t, boundedResultsHandler(t, opts, reg, 1), log, n)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("bound of one byte, batches of %d: %d commands, unbounded: %d; they differ", n, len(got), len(want))
		}
		loads += counterValue(t, reg, "leadconv_lifecycle_loads_total")
	}
	if loads == 0 {
		t.Fatal("bound of one byte: no entry read back")
	}

	// A new owner every third batch of 7 takes the tenant from the last
	// one's side state: what waits, and the stubs of the shelved entries;
	// then again with the stubs rewritten before each take as written
	// before 2026-12-08, each under a field of its own.
	for _, form := range []struct {
		old      bool
		perWrite int // stubs an owner's write moves besides its entries' (0: the default)
	}{{false, 0}, {true, 0}, {true, 1}} {
		old := form.old
		if form.perWrite > 0 {
			def := *pipeline.LegacyPerWrite
			*pipeline.LegacyPerWrite = form.perWrite
			t.Cleanup(func() { *pipeline.LegacyPerWrite = def })
		}
		srv := redistest.New(t)
		var last map[string]bool // the last take's old stubs
		var regs []*prometheus.Registry
		var got []string
		var h *pipeline.Handler
		rewritten := map[string]bool{}
		for i, chunk := range slices.Collect(slices.Chunk(log, 7)) {
			if i%3 == 0 {
				if h != nil {
					if err := h.Sync(t.Context()); err != nil {
						t.Fatal(err)
					}
					h.Release(byTenantTopic, 0)
					if old {
						last = oldStubs(t, srv, true)
						maps.Copy(rewritten, last)
					}
				}
				regs = append(regs, prometheus.NewRegistry())
				// With old stubs, each owner's first batch, the one that
				// moves them, fails once.
				h = resultsHandlerWith(t, func(cfg *config.File) pipeline.Owners {
					return func() pipeline.Owner {
						if old {
							return &failingFirstBatch{Owner: ownersFor(srv, cfg)()}
						}
						return ownersFor(srv, cfg)()
					}
				}, opts, regs[len(regs)-1], 1)
			}
			res, err := h.Handle(t.Context(), byTenantTopic, 0, chunk)
			if old && errors.Is(err, errInjected) {
				res, err = h.Handle(t.Context(), byTenantTopic, 0, chunk)
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ids(res.Out)...)
		}
		rest, err = h.Flush(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		got = append(got, ids(rest)...)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("%+v, a new owner every 21 events: %d commands, one owner: %d; they differ", form, len(got), len(want))
		}
		loads = 0
		for _, reg := range regs[1:] {
			loads += counterValue(t, reg, "leadconv_lifecycle_loads_total")
		}
		if loads == 0 {
			t.Fatalf("%+v, new owners: no shelved entry read back", form)
		}
		// Every old stub moved, or, two a write, some.
		left := oldStubs(t, srv, false)
		if old && len(rewritten) == 0 || form.perWrite == 0 && len(left) > 0 || form.perWrite > 0 && len(left) >= len(last) {
			t.Fatalf("%+v: %d rewritten in the old form, %d at the last take, %d left after the last owner's writes", form, len(rewritten), len(last), len(left))
		}
	}
}

// oldStubs returns the fields of srv's side state that hold a stub as
// written before 2026-12-08, under a field of its own ("~stub:<cluster>";
// key and field), with rewrite after rewriting every stub in that form.
func oldStubs(t *testing.T, srv *redistest.Server, rewrite bool) map[string]bool {
	t.Helper()
	rdb := srv.Client()
	keys, err := rdb.Keys(t.Context(), "*:side").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, k := range keys {
		fields, err := rdb.HGetAll(t.Context(), k).Result()
		if err != nil {
			t.Fatal(err)
		}
		for f, v := range fields {
			switch {
			case strings.HasPrefix(f, "~stub:"):
				out[k+" "+f] = true
			case rewrite && !strings.HasPrefix(f, "~") && !strings.HasPrefix(v, "{"):
				rdb.HDel(t.Context(), k, f)
				rdb.HSet(t.Context(), k, "~stub:"+f, v)
				out[k+" ~stub:"+f] = true
			}
		}
	}
	return out
}
