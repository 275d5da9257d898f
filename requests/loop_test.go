package requests

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/events"
	"github.com/leadconv/leadconv/internal/pipeline"
	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
	"github.com/leadconv/leadconv/internal/testutil/looptest"
	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/matcher/gen"
	"github.com/leadconv/leadconv/record"
	"github.com/leadconv/leadconv/writer"
)

const (
	loopRecords  = "loop.records"
	loopByTenant = "loop.records.by-tenant"
	loopCommands = "loop.commands"
	loopResults  = "loop.results"
	loopRequests = "loop.requests"
	loopDLQ      = "loop.dlq"
	loopTenant   = "acme"
)

// loop is the closed loop: the pipeline reads the records topic and plans
// commands, the writer applies them to the mirror and feeds the changed
// records back to the records topic, as a CRM's change stream would.
type loop struct {
	*looptest.Loop
	t      *testing.T
	ledger *RedisLedger
	// results reads the results topic as it grows.
	results *kgo.Client
	seen    []*kgo.Record
}

var loopTopics = looptest.Topics{Records: loopRecords, ByTenant: loopByTenant, Commands: loopCommands, Results: loopResults, Requests: loopRequests, DLQ: loopDLQ}

func newLoop(t *testing.T, o looptest.Options) *loop {
	t.Helper()
	o.Topics = loopTopics
	lp := looptest.New(t, o)
	return &loop{
		Loop: lp, t: t, ledger: NewRedisLedger(lp.RDB, lp.Namespace),
		results: lp.Kafka.Client(kgo.ConsumeTopics(loopResults), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())),
	}
}

// load puts the generated records in the mirror, with a note on every
// fifth, and their upserts on the records topic.
func (l *loop) load(set *gen.Set) {
	l.t.Helper()
	l.Kafka.Produce(l.Prepare(set)...)
}

// service runs fn until its stop function is called.
func (l *loop) service(name string, fn func(ctx context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				l.t.Errorf("%s: %v", name, err)
			}
		})
	}
	l.t.Cleanup(stop)
	return stop
}

// pipeline runs the pipeline with the requests routed to the owners.
func (l *loop) pipeline() (stop func()) {
	cfg := pipeline.Config{
		Brokers: l.Kafka.Addrs(), Group: looptest.PipelineGroup, RecordsTopic: loopRecords, ByTenantTopic: loopByTenant,
		Requests: func(lc *pipeline.Handler) pipeline.RequestHandler { return l.requests(lc) }, RequestsTopic: loopRequests, CommandsTopic: loopCommands, DLQTopic: loopDLQ,
		CommitInterval: 100 * time.Millisecond, MaxPollRecords: 10_000, Logger: zerolog.Nop(),
	}
	if l.Feedback {
		cfg.ResultsTopic = loopResults
	}
	p, err := pipeline.New(cfg, func() pipeline.Owner {
		return matcher.NewStore(l.RDB, matcher.StoreOptions{Namespace: l.Namespace, Rules: l.Config.Rules})
	}, l.Config)
	if err != nil {
		l.t.Fatal(err)
	}
	return l.service("pipeline", p.Run)
}

func (l *loop) writer() (stop func()) {
	return l.service("writer", func(ctx context.Context) error {
		return writer.Run(ctx, writer.Config{Brokers: l.Kafka.Addrs(), Group: looptest.WriterGroup, CommandsTopic: loopCommands,
			RecordsTopic: loopRecords, ResultsTopic: loopResults, PostgresURL: l.DB.URL, Logger: zerolog.Nop()})
	})
}

// requests is the handler of the requests the pipeline routes to the
// owners, planning through lc (nil: from nothing).
func (l *loop) requests(lc Lifecycle) *Handler {
	src := &Source{Graph: l.Store, Records: l.Mirror}
	tenants := func(name string) (Tenant, error) {
		t, err := l.Config.Tenant(name)
		if err != nil {
			return Tenant{}, err
		}
		return Tenant{Engine: t.Engine, Policy: Policy{Roles: []string{"sales_admin"}}, Verifier: testVerifier(l.t)}, nil
	}
	return NewHandler(HandlerConfig{CommandsTopic: loopCommands, EventsTopic: loopResults, Lifecycle: lc, Logger: zerolog.Nop()}, src, tenants, l.ledger)
}

// waitCommands waits until at least n commands were written.
func (l *loop) waitCommands(n int64) {
	l.t.Helper()
	kafkatest.WaitFor(l.t, 30*time.Second, "commands", func() bool { return l.End(loopCommands) >= n })
}

// TestClosedLoop runs generated leads and contacts with known duplicates
// through the pipeline and the writer until quiet, checks the mirror, then
// converts the lone leads of two sources with a mass-conversion request.
// The same run with the writer and the pipeline restarted mid-run must end
// in the same mirror.
func TestClosedLoop(t *testing.T) {
	t.Parallel()
	set := gen.New(gen.Options{Seed: 11, Records: 200, ContactShare: 0.25, DupRate: 0.35})
	// One partition per topic: the final mirror depends on the order in
	// which the pipeline sees events (it plans a cluster as it grows);
	// across partitions that order is timing, within one it is fixed, so a
	// restarted run can be compared with a steady one.
	o := looptest.Options{Partitions: 1, Engine: "merge_contacts: true"}
	steady := newLoop(t, o)
	steady.load(set)
	stopP, stopW := steady.pipeline(), steady.writer()
	steady.Quiet()
	steady.check(set)

	restarted := newLoop(t, o)
	restarted.load(set)
	stopP2 := restarted.pipeline()
	stopW2 := restarted.writer()
	restarted.waitCommands(1)
	stopP2()
	stopW2()
	restarted.pipeline()
	stopW2 = restarted.writer()
	restarted.waitCommands(restarted.End(loopCommands) + 1)
	stopW2()
	restarted.writer()
	restarted.Quiet()
	restarted.check(set)
	if a, b := steady.canonical(), restarted.canonical(); a != b {
		t.Errorf("restarts changed the final mirror:\n--- steady\n%s\n--- restarted\n%s", a, b)
	}

	steady.massConversion()
	stopP()
	stopW()
}

// check asserts the mirror's invariants after the loop went quiet.
func (l *loop) check(set *gen.Set) {
	t := l.t
	t.Helper()
	ctx := context.Background()
	leads := l.List(loopTenant, record.Lead)
	contacts := l.List(loopTenant, record.Contact)

	// No two live records in one matcher cluster, unless the cluster was
	// handed to a person (review.requested, conversion.failed).
	reviewed := l.Reviewed(loopTenant)
	clusters, err := l.Store.Clusters(ctx, loopTenant)
	if err != nil {
		t.Fatal(err)
	}
	converted := 0
	for id, members := range clusters {
		var live []string
		for _, m := range members {
			switch m.Object {
			case record.Lead:
				if r, ok := leads[m.ID]; ok && !isTrue(r.Fields[writer.FieldIsConverted]) {
					live = append(live, m.String())
				}
			case record.Contact:
				if _, ok := contacts[m.ID]; ok {
					live = append(live, m.String())
				}
			}
		}
		if len(live) > 1 && !slices.ContainsFunc(members, func(r record.Ref) bool { return reviewed[r] != "" }) {
			t.Errorf("cluster %s holds %d live records: %v", id, len(live), live)
		}
	}
	// Every converted lead carries the converted status and points at a live
	// contact.
	for id, r := range leads {
		if !isTrue(r.Fields[writer.FieldIsConverted]) {
			continue
		}
		converted++
		if r.Fields.Str(writer.FieldStatus) != engine.DefaultConvertedStatus {
			t.Errorf("converted lead %s has status %q", id, r.Fields.Str(writer.FieldStatus))
		}
		if _, ok := contacts[r.Fields.Str(writer.FieldConvertedContactID)]; !ok {
			t.Errorf("converted lead %s points at %q, not a live contact", id, r.Fields.Str(writer.FieldConvertedContactID))
		}
	}
	if converted < 20 {
		t.Errorf("only %d leads converted: the data set should convert many", converted)
	}
	// Merged duplicates are gone, their notes moved: every note hangs on a
	// live record, none on a converted lead, and none was lost.
	var deleted int
	if err := l.DB.Pool().QueryRow(ctx, "SELECT count(*) FROM deleted_records").Scan(&deleted); err != nil {
		t.Fatal(err)
	}
	if deleted == 0 {
		t.Error("no contact was merged away")
	}
	l.CheckNotes(loopTenant, leads, contacts, (len(set.Records())+4)/5)
	l.checkExplained(contacts)
}

// checkExplained asserts each contact a command wrote holds the values of
// the last command applied to it, every one of them explained.
func (l *loop) checkExplained(contacts map[string]record.Record) {
	t := l.t
	t.Helper()
	cmds := map[string]engine.Command{}
	for _, r := range l.Kafka.ReadAll(loopCommands) {
		b, err := events.Payload(r)
		if err != nil {
			t.Fatal(err)
		}
		var c engine.Command
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		cmds[c.ID] = c
	}
	// The last applied command that touched each contact.
	rows, err := l.DB.Pool().Query(context.Background(), `SELECT DISTINCT ON (r->>'id') r->>'id', command_id
		FROM applied_commands, jsonb_array_elements(records) r
		WHERE outcome = 'applied' AND r->>'object' = 'contact'
		ORDER BY r->>'id', applied_at DESC, seq DESC`)
	if err != nil {
		t.Fatal(err)
	}
	last := map[string]string{}
	for rows.Next() {
		var contact, cmdID string
		if err := rows.Scan(&contact, &cmdID); err != nil {
			t.Fatal(err)
		}
		last[contact] = cmdID
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for id, c := range contacts {
		cmdID, ok := last[id]
		if !ok {
			if strings.HasPrefix(id, "con_") {
				t.Errorf("contact %s was created by no applied command", id)
			}
			continue // an original contact no command touched
		}
		cmd, ok := cmds[cmdID]
		if !ok {
			t.Fatalf("applied command %s is not on the commands topic", cmdID)
		}
		var fields record.Fields
		switch d := cmd.Data.(type) {
		case *engine.LeadConvert:
			fields = d.Fields
		case *engine.RecordsMerge:
			fields = d.Fields
		default:
			continue
		}
		explained := map[string]bool{}
		for _, f := range cmd.Explain.Fields {
			explained[f.Field] = true
		}
		for k, v := range fields {
			if !explained[k] {
				t.Errorf("contact %s field %s is not explained by command %s", id, k, cmdID)
			}
			if got, ok := c.Fields[k]; v == nil && ok || v != nil && !reflect.DeepEqual(got, v) {
				t.Errorf("contact %s field %s = %v, command %s says %v", id, k, got, cmdID, v)
			}
		}
		checked++
	}
	if checked == 0 {
		t.Error("no contact written by a command")
	}
}

// canonical renders the mirror without the ids the writer derives from
// command ids (which depend on cluster versions): a created contact or
// account is named by the leads converted into it.
func (l *loop) canonical() string {
	l.t.Helper()
	leads := l.List(loopTenant, record.Lead)
	into := map[string][]string{} // contact id -> leads converted into it
	for id, r := range leads {
		if c := r.Fields.Str(writer.FieldConvertedContactID); c != "" {
			into[c] = append(into[c], id)
		}
	}
	name := func(contact string) string {
		if !strings.HasPrefix(contact, "con_") {
			return contact
		}
		ls := into[contact]
		sort.Strings(ls)
		return "new(" + strings.Join(ls, ",") + ")"
	}
	var lines []string
	for id, r := range leads {
		lines = append(lines, fmt.Sprintf("lead %s converted=%v into=%s", id, isTrue(r.Fields[writer.FieldIsConverted]),
			name(r.Fields.Str(writer.FieldConvertedContactID))))
	}
	for id, c := range l.List(loopTenant, record.Contact) {
		f := maps.Clone(c.Fields)
		delete(f, writer.FieldAccountID)
		b, _ := json.Marshal(f)
		lines = append(lines, fmt.Sprintf("contact %s related=%d %s", name(id), c.RelatedCount, b))
	}
	for _, a := range l.List(loopTenant, record.Account) {
		lines = append(lines, "account "+a.Fields.Str(writer.FieldAccountName))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// massConversion converts the remaining leads of two sources with one
// request while the loop runs, and checks the summary against the mirror.
func (l *loop) massConversion() {
	t := l.t
	t.Helper()
	sel := Selection{Where: map[string]Values{"LeadSource": {"Web", "webinar"}}}
	before := l.List(loopTenant, record.Lead)
	var want []string
	for id, r := range before {
		if !isTrue(r.Fields[writer.FieldIsConverted]) && sel.matches(r) {
			want = append(want, id)
		}
	}
	if len(want) < 3 {
		t.Fatalf("only %d leads left to select", len(want))
	}
	req := Request{Tenant: loopTenant, RequestID: "mass-1", RequestedBy: Requester{User: "u1", Roles: []string{"sales_admin"}}, Select: sel}
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	rec := signed(t, loopRequests, b, "sales_admin")
	rec.Key = []byte(loopTenant + "/mass-1")
	l.Kafka.Produce(rec)
	s := l.summary("mass-1", 1)
	l.Quiet()
	after := l.List(loopTenant, record.Lead)
	if s.Selected != len(want) {
		t.Errorf("summary selected %d, the mirror has %d matching leads", s.Selected, len(want))
	}
	var nowConverted []string
	for id, r := range after {
		if isTrue(r.Fields[writer.FieldIsConverted]) && !isTrue(before[id].Fields[writer.FieldIsConverted]) {
			nowConverted = append(nowConverted, id)
		}
	}
	if n := s.Counts.Converted + s.Counts.Merged; n != len(nowConverted) || n == 0 {
		t.Errorf("summary counts %d converted and merged, the mirror %d newly converted leads", n, len(nowConverted))
	}
	for _, f := range s.Failures {
		if isTrue(after[f.LeadID].Fields[writer.FieldIsConverted]) {
			t.Errorf("lead %s reported %s (%s) but converted", f.LeadID, f.Outcome, f.Reason)
		}
	}
	if s.Counts.Skipped+s.Counts.Failed != len(s.Failures) {
		t.Errorf("counts %+v, %d failures listed", s.Counts, len(s.Failures))
	}
	l.checkOutcomes("mass-1", s)
	// The same request again converts nothing and reports the same summary.
	snapshot := l.canonical()
	rec = signed(t, loopRequests, b, "sales_admin")
	rec.Key = []byte(loopTenant + "/mass-1")
	l.Kafka.Produce(rec)
	if again := l.summary("mass-1", 2); !reflect.DeepEqual(again, s) {
		t.Errorf("re-submission reported %+v, first %+v", again, s)
	}
	l.Quiet()
	if l.canonical() != snapshot {
		t.Error("re-submitting the request changed the mirror")
	}
}

// checkOutcomes hands the writer's results of the request's commands (they
// carry its request_id) to a requests handler, as the tenant's owner does,
// and checks the request.outcomes it returns with the last of them.
func (l *loop) checkOutcomes(id string, s Summary) {
	t := l.t
	t.Helper()
	h := l.requests(nil)
	var results []writer.Result
	for _, r := range l.Kafka.ReadAll(loopResults) {
		if string(kafkatest.Header(r, "ce_type")) != writer.ResultType {
			continue
		}
		var res writer.Result
		if err := json.Unmarshal(r.Value, &res); err != nil {
			t.Fatal(err)
		}
		if res.RequestID == id {
			results = append(results, res)
		}
	}
	if len(results) < s.Commands {
		t.Fatalf("%d writer results carry request_id %s, the request emitted %d commands", len(results), id, s.Commands)
	}
	var last []*kgo.Record
	for i, res := range results {
		out, err := h.Outcome(context.Background(), res)
		if err != nil {
			t.Fatal(err)
		}
		if i < s.Commands-1 && len(out) != 0 {
			t.Fatalf("request.outcomes after %d of %d results", i+1, s.Commands)
		}
		last = out
	}
	if len(last) != 1 || string(kafkatest.Header(last[0], "ce_type")) != TypeOutcomes {
		t.Fatalf("no request.outcomes after every result: %v", last)
	}
	checkSchema(t, "request.outcomes", last[0].Value)
	var o Outcomes
	if err := json.Unmarshal(last[0].Value, &o); err != nil {
		t.Fatal(err)
	}
	if o.Commands != s.Commands || o.Counts.Applied+o.Counts.Failed+o.Counts.Stale != o.Commands || len(o.Failures) != o.Counts.Failed+o.Counts.Stale {
		t.Errorf("outcomes %+v for %d commands", o, s.Commands)
	}
	if o.Counts.Failed != 0 {
		t.Errorf("the writer failed commands of the request: %+v", o.Failures)
	}
}

// summary waits for the n-th request.completed of a request and returns it.
func (l *loop) summary(id string, n int) Summary {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		var got []Summary
		for _, r := range l.seen {
			if string(kafkatest.Header(r, "ce_type")) != TypeCompleted || string(kafkatest.Header(r, "ce_subject")) != id {
				continue
			}
			var s Summary
			if err := json.Unmarshal(r.Value, &s); err != nil {
				l.t.Fatal(err)
			}
			got = append(got, s)
		}
		if len(got) >= n {
			return got[n-1]
		}
		fs := l.results.PollFetches(ctx)
		if ctx.Err() != nil {
			l.t.Fatalf("waiting for request.completed %d of %s: %v", n, id, ctx.Err())
		}
		l.seen = append(l.seen, fs.Records()...)
	}
}
