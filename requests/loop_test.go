package requests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/events"
	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/internal/pipeline"
	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
	"github.com/leadconv/leadconv/internal/testutil/pgtest"
	"github.com/leadconv/leadconv/internal/testutil/redistest"
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
	t      *testing.T
	kc     *kafkatest.Cluster
	cfg    *config.File
	store  *matcher.Store // reads; each pipeline run has its own owners
	rdb    redis.UniversalClient
	ns     string
	ledger *RedisLedger
	mirror *writer.Mirror
	dbURL  string
	db     *pgtest.DB
	adm    *kadm.Client
	// results reads the results topic as it grows.
	results *kgo.Client
	seen    []*kgo.Record
	// feedback has the pipeline read the writer's results.
	feedback bool
	// hold is how long quiet wants nothing new.
	hold time.Duration
	// killed marks the services (by consumer group) being killed.
	killed map[string]*atomic.Bool
}

// loopOptions shape a loop: the partitions of every topic, the engine
// settings on top of the shipped defaults (YAML under defaults.engine) and
// whether the pipeline reads the writer's results.
type loopOptions struct {
	partitions int32
	engine     string
	feedback   bool
}

func newLoop(t *testing.T, o loopOptions) *loop {
	t.Helper()
	var yml strings.Builder
	yml.WriteString("defaults:\n")
	if o.engine != "" {
		yml.WriteString("  engine:\n    " + o.engine + "\n")
	}
	yml.WriteString("  contact_fields:\n")
	for c, l := range gen.ContactFields() {
		fmt.Fprintf(&yml, "    %s: %s\n", c, l)
	}
	cfg, err := config.Parse([]byte(yml.String()))
	if err != nil {
		t.Fatal(err)
	}
	srv := redistest.New(t)
	ns := redistest.Namespace(t)
	db := pgtest.New(t)
	if err := writer.Migrate(context.Background(), db.Pool()); err != nil {
		t.Fatal(err)
	}
	l := &loop{
		t: t, kc: kafkatest.New(t, o.partitions, loopRecords, loopByTenant, loopCommands, loopResults, loopRequests, loopDLQ), cfg: cfg,
		feedback: o.feedback, killed: map[string]*atomic.Bool{"pipeline": {}, "writer": {}},
		store: matcher.NewStore(srv.Client(), matcher.StoreOptions{Namespace: ns, Rules: cfg.Rules}),
		rdb:   srv.Client(), ns: ns,
		ledger: NewRedisLedger(srv.Client(), ns),
		mirror: writer.NewMirror(db.Pool()), dbURL: db.URL, db: db,
	}
	l.adm = kadm.NewClient(l.kc.Client())
	l.results = l.kc.Client(kgo.ConsumeTopics(loopResults), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	return l
}

// end is the number of records written to topic.
func (l *loop) end(topic string) int64 {
	l.t.Helper()
	ends, err := l.adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		l.t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// committed is the number of topic's records group has committed.
func (l *loop) committed(group, topic string) int64 {
	l.t.Helper()
	offs, err := l.adm.FetchOffsets(context.Background(), group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return 0
	}
	if err != nil {
		l.t.Fatal(err)
	}
	var n int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.At > 0 {
			n += o.At
		}
	})
	return n
}

// load puts the generated records in the mirror, with a note on every
// fifth, and their upserts on the records topic.
func (l *loop) load(set *gen.Set) {
	l.t.Helper()
	l.kc.Produce(l.prepare(set)...)
}

// prepare puts the generated records in the mirror, with a note on every
// fifth, and returns their upserts for the records topic, keyed by tenant
// and entity.
func (l *loop) prepare(set *gen.Set) []*kgo.Record {
	l.t.Helper()
	ctx := context.Background()
	truth := set.Truth()
	recs := set.Records()
	var out []*kgo.Record
	for i := range recs {
		r := &recs[i]
		if i%5 == 0 {
			if err := l.mirror.AddRelated(ctx, r.Tenant, "note-"+r.ID, "note", r.Ref()); err != nil {
				l.t.Fatal(err)
			}
			r.RelatedCount = 1
		}
		b, err := json.Marshal(record.Event{Op: record.OpUpsert, Record: *r})
		if err != nil {
			l.t.Fatal(err)
		}
		out = append(out, &kgo.Record{Topic: loopRecords, Key: []byte(r.Tenant + "/" + truth[r.Ref()]), Value: b})
	}
	if err := l.mirror.Put(ctx, recs...); err != nil {
		l.t.Fatal(err)
	}
	return out
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
			// A killed service's errors are its death throes.
			if err := <-done; err != nil && !l.killed[name].Load() {
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
		Brokers: l.kc.Addrs(), Group: "pipeline", RecordsTopic: loopRecords, ByTenantTopic: loopByTenant,
		Requests: func(lc *pipeline.Handler) pipeline.RequestHandler { return l.requests(lc) }, RequestsTopic: loopRequests, CommandsTopic: loopCommands, DLQTopic: loopDLQ,
		CommitInterval: 100 * time.Millisecond, MaxPollRecords: 10_000, Logger: zerolog.Nop(),
	}
	if l.feedback {
		cfg.ResultsTopic = loopResults
	}
	p, err := pipeline.New(cfg, func() pipeline.Owner {
		return matcher.NewStore(l.rdb, matcher.StoreOptions{Namespace: l.ns, Rules: l.cfg.Rules})
	}, l.cfg)
	if err != nil {
		l.t.Fatal(err)
	}
	return l.service("pipeline", p.Run)
}

func (l *loop) writer() (stop func()) {
	return l.service("writer", func(ctx context.Context) error {
		return writer.Run(ctx, writer.Config{Brokers: l.kc.Addrs(), Group: "writer", CommandsTopic: loopCommands,
			RecordsTopic: loopRecords, ResultsTopic: loopResults, PostgresURL: l.dbURL, Logger: zerolog.Nop()})
	})
}

// requests is the handler of the requests the pipeline routes to the
// owners, planning through lc (nil: from nothing).
func (l *loop) requests(lc Lifecycle) *Handler {
	src := &Source{Graph: l.store, Records: l.mirror}
	tenants := func(name string) (Tenant, error) {
		t, err := l.cfg.Tenant(name)
		if err != nil {
			return Tenant{}, err
		}
		return Tenant{Engine: t.Engine, Policy: Policy{Roles: []string{"sales_admin"}}, Verifier: testVerifier(l.t)}, nil
	}
	return NewHandler(HandlerConfig{CommandsTopic: loopCommands, EventsTopic: loopResults, Lifecycle: lc, Logger: zerolog.Nop()}, src, tenants, l.ledger)
}

// quiet waits until the pipeline and the writer have committed everything
// and nothing new was written for l.hold (longer than a settle window, so
// no window is pending).
func (l *loop) quiet() {
	l.t.Helper()
	var last [3]int64
	since := time.Now()
	hold := l.hold
	if hold == 0 {
		hold = 250 * time.Millisecond
	}
	kafkatest.WaitFor(l.t, 60*time.Second, "the loop to go quiet", func() bool {
		ends := [3]int64{l.end(loopRecords), l.end(loopByTenant), l.end(loopCommands)}
		done := l.committed("pipeline", loopRecords) >= ends[0] && l.committed("pipeline", loopByTenant) >= ends[1] &&
			l.committed("writer", loopCommands) >= ends[2] && l.committed("pipeline", loopRequests) >= l.end(loopRequests) &&
			(!l.feedback || l.committed("pipeline", loopResults) >= l.end(loopResults))
		if !done || ends != last {
			since = time.Now()
		}
		last = ends
		time.Sleep(50 * time.Millisecond)
		return time.Since(since) >= hold
	})
}

// waitCommands waits until at least n commands were written.
func (l *loop) waitCommands(n int64) {
	l.t.Helper()
	kafkatest.WaitFor(l.t, 30*time.Second, "commands", func() bool { return l.end(loopCommands) >= n })
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
	o := loopOptions{partitions: 1, engine: "merge_contacts: true"}
	steady := newLoop(t, o)
	steady.load(set)
	stopP, stopW := steady.pipeline(), steady.writer()
	steady.quiet()
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
	restarted.waitCommands(restarted.end(loopCommands) + 1)
	stopW2()
	restarted.writer()
	restarted.quiet()
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
	leads := l.list(loopTenant, record.Lead)
	contacts := l.list(loopTenant, record.Contact)

	// No two live records in one matcher cluster, unless the cluster was
	// handed to a person (review.requested, conversion.failed).
	reviewed := l.reviewed(loopTenant)
	clusters, err := l.store.Clusters(ctx, loopTenant)
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
	if err := l.db.Pool().QueryRow(ctx, "SELECT count(*) FROM deleted_records").Scan(&deleted); err != nil {
		t.Fatal(err)
	}
	if deleted == 0 {
		t.Error("no contact was merged away")
	}
	l.checkNotes(loopTenant, leads, contacts, (len(set.Records())+4)/5)
	l.checkExplained(contacts)
}

// checkNotes asserts no note was lost and every one hangs on a live
// record, none on a converted lead: merges and conversions moved them.
func (l *loop) checkNotes(tenant string, leads, contacts map[string]record.Record, want int) {
	t := l.t
	t.Helper()
	ctx := context.Background()
	rows, err := l.db.Pool().Query(ctx, "SELECT parent_object, parent_id FROM related WHERE tenant = $1", tenant)
	if err != nil {
		t.Fatal(err)
	}
	notes := 0
	for rows.Next() {
		var obj, id string
		if err := rows.Scan(&obj, &id); err != nil {
			t.Fatal(err)
		}
		notes++
		switch record.Object(obj) {
		case record.Lead:
			if r, ok := leads[id]; !ok || isTrue(r.Fields[writer.FieldIsConverted]) {
				t.Errorf("%s: a note hangs on lead %s, converted or gone", tenant, id)
			}
		case record.Contact:
			if _, ok := contacts[id]; !ok {
				t.Errorf("%s: a note hangs on contact %s, which is gone", tenant, id)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if notes != want {
		t.Errorf("%s: %d notes, want %d", tenant, notes, want)
	}
}

// checkExplained asserts each contact a command wrote holds the values of
// the last command applied to it, every one of them explained.
func (l *loop) checkExplained(contacts map[string]record.Record) {
	t := l.t
	t.Helper()
	cmds := map[string]engine.Command{}
	for _, r := range l.kc.ReadAll(loopCommands) {
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
	rows, err := l.db.Pool().Query(context.Background(), `SELECT DISTINCT ON (r->>'id') r->>'id', command_id
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

func (l *loop) list(tenant string, obj record.Object) map[string]record.Record {
	l.t.Helper()
	recs, err := l.mirror.List(context.Background(), tenant, obj)
	if err != nil {
		l.t.Fatal(err)
	}
	out := make(map[string]record.Record, len(recs))
	for _, r := range recs {
		out[r.ID] = r
	}
	return out
}

// reviewed returns the tenant's records named by review.requested and
// conversion.failed commands the writer stored, with the reason.
func (l *loop) reviewed(tenant string) map[record.Ref]string {
	l.t.Helper()
	rows, err := l.db.Pool().Query(context.Background(), "SELECT reason, data FROM cluster_reviews WHERE tenant = $1", tenant)
	if err != nil {
		l.t.Fatal(err)
	}
	out := map[record.Ref]string{}
	for rows.Next() {
		var reason string
		var d struct {
			Records []record.Ref `json:"records"`
		}
		if err := rows.Scan(&reason, &d); err != nil {
			l.t.Fatal(err)
		}
		for _, r := range d.Records {
			out[r] = reason
		}
	}
	if err := rows.Err(); err != nil {
		l.t.Fatal(err)
	}
	return out
}

// canonical renders the mirror without the ids the writer derives from
// command ids (which depend on cluster versions): a created contact or
// account is named by the leads converted into it.
func (l *loop) canonical() string {
	l.t.Helper()
	leads := l.list(loopTenant, record.Lead)
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
	for id, c := range l.list(loopTenant, record.Contact) {
		f := maps.Clone(c.Fields)
		delete(f, writer.FieldAccountID)
		b, _ := json.Marshal(f)
		lines = append(lines, fmt.Sprintf("contact %s related=%d %s", name(id), c.RelatedCount, b))
	}
	for _, a := range l.list(loopTenant, record.Account) {
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
	before := l.list(loopTenant, record.Lead)
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
	l.kc.Produce(rec)
	s := l.summary("mass-1", 1)
	l.quiet()
	after := l.list(loopTenant, record.Lead)
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
	l.kc.Produce(rec)
	if again := l.summary("mass-1", 2); !reflect.DeepEqual(again, s) {
		t.Errorf("re-submission reported %+v, first %+v", again, s)
	}
	l.quiet()
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
	for _, r := range l.kc.ReadAll(loopResults) {
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
