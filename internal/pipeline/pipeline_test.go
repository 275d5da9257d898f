package pipeline_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"

	"github.com/leadconv/leadconv/consumer"
	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/events"
	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/internal/pipeline"
	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
	"github.com/leadconv/leadconv/internal/testutil/redistest"
	"github.com/leadconv/leadconv/internal/topics"
	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/matcher/gen"
	"github.com/leadconv/leadconv/record"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// go-redis keeps a pool reaper per client; clients close at cleanup.
		goleak.IgnoreAnyFunction("github.com/redis/go-redis/v9/internal/pool.(*ConnPool).reaper"))
}

const (
	recordsTopic  = "leadconv.records"
	byTenantTopic = "leadconv.records.by-tenant"
	commandsTopic = "leadconv.commands"
	dlqTopic      = "leadconv.dlq"
	group         = "leadconv"
	maxBytes      = 8 << 10
)

type env struct {
	t   *testing.T
	kc  *kafkatest.Cluster
	srv *redistest.Server
	cfg *config.File
	// pipes are the pipelines built, for settled.
	pipes []*pipeline.Pipeline
}

// newEnv starts kfake with the pipeline's topics and a redis-server started
// with redisArgs.
func newEnv(t *testing.T, partitions int32, redisArgs ...string) *env {
	t.Helper()
	cfg, err := pipeline.GeneratedConfig()
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, kc: kafkatest.New(t, partitions, recordsTopic, byTenantTopic, commandsTopic, dlqTopic), srv: redistest.New(t, redisArgs...), cfg: cfg}
}

func (e *env) store(ns string) *matcher.Store {
	return matcher.NewStore(e.srv.Client(), matcher.StoreOptions{Namespace: ns, Rules: e.cfg.Rules})
}

// owners makes a new store (owner) of ns per partition, as the service does.
func (e *env) owners(ns string) pipeline.Owners {
	return func() pipeline.Owner { return e.store(ns) }
}

// data is a generated stream keyed by entity, so that a duplicate cluster's
// events share a partition and their order is the same in every run.
func data(n int) []*kgo.Record {
	set := gen.New(gen.Options{Seed: 7, Records: n, ContactShare: 0.2, Updates: 0.2})
	truth := set.Truth()
	var out []*kgo.Record
	for _, ev := range set.Events() {
		b, err := json.Marshal(ev)
		if err != nil {
			panic(err)
		}
		out = append(out, &kgo.Record{Topic: recordsTopic, Key: []byte(ev.Tenant + "/" + truth[ev.Ref()]), Value: b})
	}
	return out
}

func (e *env) start(p *pipeline.Pipeline) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	e.t.Cleanup(func() { _ = stop() })
	return stop
}

// pipeline builds a member of the test group; opts adjust its config.
func (e *env) pipeline(owners pipeline.Owners, reg prometheus.Registerer, opts ...func(*pipeline.Config)) *pipeline.Pipeline {
	e.t.Helper()
	cfg := pipeline.Config{
		Brokers: e.kc.Addrs(), Group: group, RecordsTopic: recordsTopic, CommandsTopic: commandsTopic, DLQTopic: dlqTopic,
		MaxRecordBytes: maxBytes, CommitInterval: 100 * time.Millisecond, MaxPollRecords: 200,
		Logger: zerolog.Nop(), Registerer: reg,
		// Members learn of a rebalance at their next heartbeat.
		Opts: []kgo.Opt{kgo.HeartbeatInterval(50 * time.Millisecond)},
	}
	for _, o := range opts {
		o(&cfg)
	}
	p, err := pipeline.New(cfg, owners, e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.pipes = append(e.pipes, p)
	return p
}

// settled reports whether no pipeline holds a plan back: the settle windows
// closed on the wall clock, their commands acknowledged.
func (e *env) settled() bool {
	for _, p := range e.pipes {
		if unplanned, unwritten := p.Handler().Pending(); unplanned+unwritten > 0 {
			return false
		}
	}
	return true
}

func (e *env) committed() int64 { return e.kc.Committed(group, recordsTopic) }

// routed counts the records routed to the by-tenant topic: its records
// but the owners' ticks.
func (e *env) routed() int64 {
	n := int64(0)
	for _, r := range e.kc.ReadAll(byTenantTopic) {
		if !isTickRecord(r) {
			n++
		}
	}
	return n
}

// done reports whether the group committed n input records and every
// record it routed to the by-tenant topic.
func (e *env) done(n int64) bool {
	routed := e.kc.EndOffsets(byTenantTopic)
	return e.committed() == n && routed > 0 && e.kc.Committed(group, byTenantTopic) == routed
}

// reference runs the by-tenant topic through a Handler without a consumer
// group, partition by partition, into a fresh namespace, in event time and
// flushed at the end: what one owner per partition computes from the log
// the live owners had, their ticks included: the clusters, and the
// commands: their ids and what they do (effects).
func (e *env) reference() (clusters string, outcome map[string]bool) {
	e.t.Helper()
	ns := redistest.Namespace(e.t)
	h := pipeline.NewHandler(pipeline.HandlerConfig{CommandsTopic: commandsTopic, MaxRecordBytes: maxBytes}, e.owners(ns), e.cfg)
	byPart := map[int32][]*kgo.Record{}
	for _, r := range e.kc.ReadAll(byTenantTopic) {
		byPart[r.Partition] = append(byPart[r.Partition], r)
	}
	outcome = map[string]bool{}
	add := func(out []*kgo.Record) {
		for _, r := range out {
			ev, err := kafkatest.CloudEvent(r)
			if err != nil {
				e.t.Fatal(err)
			}
			outcome["id "+ev.ID()] = true
			for _, k := range effects(e.t, r) {
				outcome[k] = true
			}
		}
	}
	for p, recs := range byPart {
		for chunk := range slices.Chunk(recs, 64) {
			res, err := h.Handle(context.Background(), byTenantTopic, p, chunk)
			if err != nil {
				e.t.Fatal(err)
			}
			add(res.Out)
		}
	}
	out, err := h.Flush(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	add(out)
	return clusterSets(e.t, e.store(ns)), outcome
}

// clusterSets renders the tenant's multi-member clusters as sorted member
// lists: ids differ by nothing but membership matters.
func clusterSets(t *testing.T, st *matcher.Store) string {
	t.Helper()
	all, err := st.Clusters(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, members := range all {
		var ids []string
		for _, m := range members {
			ids = append(ids, m.String())
		}
		sort.Strings(ids)
		parts = append(parts, strings.Join(ids, " "))
	}
	sort.Strings(parts)
	return strings.Join(parts, "\n")
}

// binaryHeaders are the headers of a binary-mode command record, in the
// order the CloudEvents Kafka binding lists them.
var binaryHeaders = []string{"ce_specversion", "ce_id", "ce_source", "ce_type", "ce_subject", "ce_time", "ce_dataschema", "content-type"}

// commandIDs reads the commands topic as a standard CloudEvents consumer
// does (sdk-go's binding), checks that every record is a well-formed command
// event keyed by its cluster, and counts each command id.
func (e *env) commandIDs() map[string]int {
	e.t.Helper()
	ids := map[string]int{}
	for _, r := range e.kc.ReadAll(commandsTopic) {
		ev, err := kafkatest.CloudEvent(r)
		if err != nil {
			e.t.Fatalf("sdk-go cannot read command record %d/%d: %v", r.Partition, r.Offset, err)
		}
		if ct := string(kafkatest.Header(r, "content-type")); ct != events.ContentCloudEventsJSON {
			var keys []string
			for _, h := range r.Headers {
				keys = append(keys, h.Key)
			}
			if !slices.Equal(keys, binaryHeaders) {
				e.t.Fatalf("binary record headers %v, want %v", keys, binaryHeaders)
			}
		}
		var cmd engine.Command
		if err := ev.DataAs(&cmd); err != nil {
			e.t.Fatalf("command data: %v", err)
		}
		switch {
		case ev.ID() != cmd.ID:
			e.t.Fatalf("event id %s but command_id %s", ev.ID(), cmd.ID)
		case ev.Type() != cmd.Type() || ev.Subject() != cmd.Subject || ev.Source() != events.Source(cmd.Tenant):
			e.t.Fatalf("event %s for command %s %s", ev, cmd.Kind, cmd.Subject)
		case ev.DataSchema() != events.SchemaURL(cmd.Kind) || ev.DataContentType() != events.ContentJSON || ev.Time().IsZero():
			e.t.Fatalf("event %s: schema, content type or time", ev)
		case string(r.Key) != cmd.Tenant+"/"+cmd.ClusterID:
			e.t.Fatalf("key %s for cluster %s", r.Key, cmd.ClusterID)
		}
		ids[cmd.ID]++
	}
	return ids
}

// sameOutcome checks what a run that paused (a crash, an outage, a
// rebalance) emitted against the reference: the same command ids (the
// windows its pauses closed on the wall clock closed at its ticks' places
// in the log, which the reference reads too), so the same effects, and
// each (kind, subject) under one id: a plan produced again carries the id
// it had the first time.
func (e *env) sameOutcome(want map[string]bool) {
	e.t.Helper()
	ids := map[string]map[string]bool{}
	got := map[string]bool{}
	for _, r := range e.kc.ReadAll(commandsTopic) {
		ev, err := kafkatest.CloudEvent(r)
		if err != nil {
			e.t.Fatal(err)
		}
		k := ev.Type() + " " + ev.Subject()
		if ids[k] == nil {
			ids[k] = map[string]bool{}
		}
		ids[k][ev.ID()] = true
		got["id "+ev.ID()] = true
		for _, x := range effects(e.t, r) {
			got[x] = true
		}
	}
	for k, n := range ids {
		if len(n) > 1 {
			e.t.Errorf("%s emitted under %d ids", k, len(n))
		}
	}
	for k := range got {
		if !want[k] {
			e.t.Errorf("%s, not in the reference", k)
		}
	}
	for k := range want {
		if !got[k] {
			e.t.Errorf("%s missing", k)
		}
	}
	if len(want) == 0 {
		e.t.Error("the reference emitted nothing")
	}
}

// effects are what a command does to the CRM's records, whatever the plan
// it came from: the leads it converts, the existing records it merges
// away, the records it hands to a person. (Merging the contact a pending
// conversion creates is how one plan order reaches the state another
// reaches by converting into the master directly: not an effect.)
func effects(t *testing.T, r *kgo.Record) []string {
	t.Helper()
	b, err := events.Payload(r)
	if err != nil {
		t.Fatal(err)
	}
	var c engine.Command
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	var out []string
	switch d := c.Data.(type) {
	case *engine.LeadConvert:
		out = append(out, "convert lead "+d.LeadID)
	case *engine.RecordsMerge:
		for _, id := range d.MergedIDs {
			out = append(out, "merge away "+string(d.Object)+" "+id)
		}
	case *engine.ReviewRequested:
		out = append(out, "review "+c.Subject)
	case *engine.ConversionFailed:
		out = append(out, "failed "+c.Subject)
	}
	return out
}

func poison() []*kgo.Record {
	big := fmt.Sprintf(`{"tenant":"acme","object":"lead","id":"big","op":"upsert","fields":{"Notes":%q}}`, strings.Repeat("x", maxBytes))
	return []*kgo.Record{
		{Topic: recordsTopic, Key: []byte("p1"), Value: []byte("not json")},
		{Topic: recordsTopic, Key: []byte("p2"), Value: []byte(`{"tenant":"acme","object":"deal","id":"d1","op":"upsert"}`)},
		{Topic: recordsTopic, Key: []byte("p3"), Value: []byte(`{"tenant":"acme","object":"lead","id":"x1","op":"explode"}`)},
		{Topic: recordsTopic, Key: []byte("p4"), Value: []byte(big)},
		{Topic: recordsTopic, Key: []byte("p5"), Value: []byte(`{"tenant":"acme","object":"lead","id":"x2","op":"upsert","fields":{},"colour":"red"}`)},
		{Topic: recordsTopic, Key: []byte("p6"), Value: []byte(`{"tenant":"acme","object":"lead","id":"x3","op":"delete"}`),
			Headers: []kgo.RecordHeader{{Key: "ce_specversion", Value: []byte("0.3")}}},
		{Topic: recordsTopic, Key: []byte("p7"), Value: []byte(`[]`),
			Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/cloudevents-batch+json")}}},
	}
}

var poisonCodes = []string{events.CodeBadCloudEvent, pipeline.CodeNotJSON, pipeline.CodeOversize, pipeline.CodeSchemaViolation,
	pipeline.CodeUnknownObject, pipeline.CodeUnknownOp, events.CodeUnsupportedContent}

// One pipeline over a generated stream with poison records mixed in: each
// poison record lands in the DLQ with its code and a pointer to its origin,
// everything else flows, and the commands do exactly what one offline
// instance's do (their ids too unless the input stalled for longer than a
// settle window mid-stream: the live windows also close on the wall clock).
func TestEndToEnd(t *testing.T) {
	e := newEnv(t, 3)
	recs := data(400)
	// Some events arrive wrapped as CloudEvents, binary and structured.
	for i, r := range recs {
		switch i % 7 {
		case 3:
			r.Headers = []kgo.RecordHeader{{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: []byte(fmt.Sprint(i))},
				{Key: "ce_source", Value: []byte("crm")}, {Key: "ce_type", Value: []byte("com.example.record")}, {Key: "content-type", Value: []byte("application/json")}}
		case 5:
			r.Value = []byte(fmt.Sprintf(`{"specversion":"1.0","id":"%d","source":"crm","type":"com.example.record","datacontenttype":"application/json","data":%s}`, i, r.Value))
			r.Headers = []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/cloudevents+json")}}
		}
	}
	all := slices.Concat(recs[:100], poison(), recs[100:])
	e.kc.Produce(all...)
	reg := prometheus.NewRegistry()
	stop := e.start(e.pipeline(e.owners(redistest.Namespace(t)), reg))
	kafkatest.WaitFor(t, 30*time.Second, "every record committed", func() bool { return e.done(int64(len(all))) && e.settled() })
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	source := map[string][]byte{}
	for _, r := range e.kc.ReadAll(recordsTopic) {
		source[fmt.Sprintf("%d/%d", r.Partition, r.Offset)] = r.Value
	}
	var codes []string
	for _, d := range e.kc.ReadAll(dlqTopic) {
		codes = append(codes, string(kafkatest.Header(d, consumer.HeaderErrorCode)))
		at := string(kafkatest.Header(d, consumer.HeaderSourcePartition)) + "/" + string(kafkatest.Header(d, consumer.HeaderSourceOffset))
		if string(kafkatest.Header(d, consumer.HeaderSourceTopic)) != recordsTopic || !bytes.Equal(source[at], d.Value) {
			t.Errorf("dead letter does not point at its origin: %v", d.Headers)
		}
	}
	sort.Strings(codes)
	if !slices.Equal(codes, poisonCodes) {
		t.Fatalf("dead-letter codes %v, want %v", codes, poisonCodes)
	}

	got := e.commandIDs()
	_, want := e.reference()
	e.sameOutcome(want)
	for id, n := range got {
		if n > 1 {
			t.Fatalf("command %s produced %d times in a clean run", id, n)
		}
	}
	if in := metricSum(t, reg, "leadconv_events_in_total"); int(in) != len(recs) {
		t.Fatalf("events in %v, want %d", in, len(recs))
	}
	if routed := metricSum(t, reg, "leadconv_events_routed_total"); int(routed) != len(recs) {
		t.Fatalf("events routed %v, want %d", routed, len(recs))
	}
	// One tenant: every event on one by-tenant partition, each record's
	// events in their input order.
	routed := e.kc.ReadAll(byTenantTopic)
	seq := func(recs []*kgo.Record) map[string][]string {
		out := map[string][]string{}
		for _, r := range recs {
			var ev struct{ ID string }
			if json.Unmarshal(r.Value, &ev) == nil && ev.ID != "" {
				out[ev.ID] = append(out[ev.ID], string(r.Value))
			}
		}
		return out
	}
	for _, r := range routed {
		if r.Partition != routed[0].Partition || string(r.Key) != "acme" {
			t.Fatalf("routed record on partition %d with key %q", r.Partition, r.Key)
		}
	}
	in, out := seq(recs), seq(routed)
	for id, vals := range in {
		if !slices.Equal(vals, out[id]) {
			t.Fatalf("events of %s differ or are out of order on the by-tenant topic", id)
		}
	}
	if dead := metricSum(t, reg, "leadconv_dlq_records_total"); int(dead) != len(poisonCodes) {
		t.Fatalf("dlq metric %v", dead)
	}
	if out := metricSum(t, reg, "leadconv_commands_out_total"); int(out) != len(got) {
		t.Fatalf("commands out %v, want %d", out, len(got))
	}
}

// An event the decoder let through but the store refuses is dead-lettered
// alone: the rest of its batch is applied and planned as usual.
func TestStoreRefusal(t *testing.T) {
	e := newEnv(t, 1)
	recs := data(40)
	for i, r := range recs {
		r.Offset = int64(i)
	}
	// A lenient decoder: it passes an empty tenant, which the store refuses.
	lenient := func(b []byte, _ int) (record.Event, error) {
		var ev record.Event
		err := json.Unmarshal(b, &ev)
		return ev, err
	}
	bad := &kgo.Record{Topic: recordsTopic, Offset: 99, Value: []byte(`{"tenant":"","object":"lead","id":"L1","op":"delete"}`)}
	batch := slices.Concat(recs[:20], []*kgo.Record{bad}, recs[20:])
	h := pipeline.NewHandler(pipeline.HandlerConfig{CommandsTopic: commandsTopic, Decode: lenient, Lifecycle: pipeline.Immediate}, e.owners(redistest.Namespace(t)), e.cfg)
	res, err := h.Handle(t.Context(), recordsTopic, 0, batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Poison) != 1 || res.Poison[0].Record != bad || res.Poison[0].Code != pipeline.CodeInvalidEvent {
		t.Fatalf("poison %+v", res.Poison)
	}
	clean := pipeline.NewHandler(pipeline.HandlerConfig{CommandsTopic: commandsTopic, Lifecycle: pipeline.Immediate}, e.owners(redistest.Namespace(t)), e.cfg)
	want, err := clean.Handle(t.Context(), recordsTopic, 0, recs)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(out []*kgo.Record) []string {
		var s []string
		for _, r := range out {
			s = append(s, string(kafkatest.Header(r, "ce_id")))
		}
		return s
	}
	if got, want := ids(res.Out), ids(want.Out); len(want) == 0 || !slices.Equal(got, want) {
		t.Fatalf("commands %v, want those of the batch without the refused event %v", got, want)
	}
}

// Structured mode: every command is one application/cloudevents+json record
// that sdk-go reads to the same command ids binary mode has.
func TestStructuredOutput(t *testing.T) {
	e := newEnv(t, 2)
	e.kc.Produce(data(120)...)
	stop := e.start(e.pipeline(e.owners(redistest.Namespace(t)), nil, func(c *pipeline.Config) { c.Structured = true }))
	kafkatest.WaitFor(t, 30*time.Second, "every record committed", func() bool { return e.done(e.kc.EndOffsets(recordsTopic)) && e.settled() })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, r := range e.kc.ReadAll(commandsTopic) {
		if len(r.Headers) != 1 || string(kafkatest.Header(r, "content-type")) != events.ContentCloudEventsJSON {
			t.Fatalf("structured record headers %v", r.Headers)
		}
	}
	_, want := e.reference()
	e.sameOutcome(want)
}

// metricSum is the sum of the named counter's or gauge's series.
func metricSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return v
}

// commitGate sits in front of the broker's offset commits. While drop is
// set it acknowledges them without storing them: what a crash between
// producing and committing leaves behind. It records the offsets the group
// asked to commit either way.
type commitGate struct {
	drop      atomic.Bool
	mu        sync.Mutex
	requested map[string]map[int32]int64 // by topic name, or id when the request names none
	ids       func(topic string) string
}

func newCommitGate(c *kafkatest.Cluster) *commitGate {
	g := &commitGate{requested: map[string]map[int32]int64{}, ids: func(topic string) string {
		details, err := kadm.NewClient(c.Client()).ListTopics(context.Background(), topic)
		if err != nil {
			panic(err)
		}
		id := details[topic].ID
		return string(id[:])
	}}
	c.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		r := req.(*kmsg.OffsetCommitRequest)
		g.mu.Lock()
		for _, rt := range r.Topics {
			name := rt.Topic
			if name == "" {
				name = string(rt.TopicID[:])
			}
			if g.requested[name] == nil {
				g.requested[name] = map[int32]int64{}
			}
			for _, rp := range rt.Partitions {
				g.requested[name][rp.Partition] = max(g.requested[name][rp.Partition], rp.Offset)
			}
		}
		g.mu.Unlock()
		if !g.drop.Load() {
			return nil, nil, false
		}
		resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition = rp.Partition
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	return g
}

// requestedSum is how many records of topic the group asked to commit:
// every one of them had its output acknowledged.
func (g *commitGate) requestedSum(topic string) int64 {
	id := g.ids(topic)
	g.mu.Lock()
	defer g.mu.Unlock()
	var n int64
	for _, key := range []string{topic, id} {
		for _, o := range g.requested[key] {
			n += o
		}
	}
	return n
}

// A pipeline dies after producing the commands of input whose offsets it
// never committed; a new one takes over. No input is lost, nothing is
// planned twice: the final clusters and the command ids are exactly one
// clean instance's (a replayed event plans nothing again; a plan not known
// to be produced is held and produced again under its id). Both evict every
// settled lifecycle entry after each call (a bound of one byte) and read
// back what they need.
func TestCrashAndRestart(t *testing.T) {
	e := newEnv(t, 3)
	recs := data(400)
	quarter, half := len(recs)/4, len(recs)/2
	gate := newCommitGate(e.kc)
	ns := redistest.Namespace(t)
	bounded := func(c *pipeline.Config) { c.LifecycleBytes = 1 }
	reg := prometheus.NewRegistry()

	e.kc.Produce(recs[:quarter]...)
	stop := e.start(e.pipeline(e.owners(ns), nil, bounded))
	kafkatest.WaitFor(t, 30*time.Second, "the first quarter committed", func() bool { return e.done(int64(quarter)) })
	routedBefore := e.kc.Committed(group, byTenantTopic)
	gate.drop.Store(true) // the crash: nothing from here on is committed
	e.kc.Produce(recs[quarter:half]...)
	kafkatest.WaitFor(t, 30*time.Second, "the first half processed", func() bool {
		return gate.requestedSum(recordsTopic) == int64(half) && gate.requestedSum(byTenantTopic) == e.kc.EndOffsets(byTenantTopic)
	})
	_ = stop()
	e.commandIDs() // every command the dead run produced is a well-formed command event
	if e.kc.EndOffsets(byTenantTopic) <= routedBefore {
		t.Fatal("nothing processed after the last commit: the test does not exercise re-processing")
	}
	if got := e.committed(); got != int64(quarter) {
		t.Fatalf("committed %d after the crash, want %d", got, quarter)
	}
	if got := e.kc.Committed(group, byTenantTopic); got != routedBefore {
		t.Fatalf("by-tenant committed %d after the crash, want %d", got, routedBefore)
	}

	gate.drop.Store(false)
	e.kc.Produce(recs[half:]...)
	stop = e.start(e.pipeline(e.owners(ns), reg, bounded))
	kafkatest.WaitFor(t, 30*time.Second, "every record committed", func() bool { return e.done(int64(len(recs))) && e.settled() })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if counterValue(t, reg, "leadconv_lifecycle_loads_total") == 0 {
		t.Fatal("no evicted lifecycle entry read back after the restart")
	}
	e.commandIDs()
	wantClusters, want := e.reference()
	e.sameOutcome(want)
	if got := clusterSets(t, e.store(ns)); got != wantClusters {
		t.Fatalf("clusters after the restart differ from one clean run")
	}
}

// slowStore delays every Apply: the work of the first instance lasts long
// enough for the second one to join while it runs.
type slowStore struct{ *matcher.Store }

func (s slowStore) Apply(ctx context.Context, evs []record.Event) ([]matcher.Change, error) {
	time.Sleep(20 * time.Millisecond)
	return s.Store.Apply(ctx, evs)
}

// Two instances in one group, the second joining mid-stream (a cooperative
// rebalance revokes partitions from the first while it works): they split
// the partitions and end with the same clusters and command ids as one.
func TestTwoInstances(t *testing.T) {
	e := newEnv(t, 4)
	recs := data(400)
	ns := redistest.Namespace(t)
	var byA, byB atomic.Int64
	member := func(n *atomic.Int64) *pipeline.Pipeline {
		return e.pipeline(func() pipeline.Owner { return slowStore{e.store(ns)} }, nil, func(c *pipeline.Config) {
			c.MaxPollRecords = 40
			c.Processed = func(_ string, _ int32, recs []*kgo.Record) { n.Add(int64(len(recs))) }
		})
	}
	e.kc.Produce(recs[:len(recs)/2]...)
	stopA := e.start(member(&byA))
	kafkatest.WaitFor(t, 30*time.Second, "progress", func() bool { return e.committed() > 0 })
	stopB := e.start(member(&byB))
	kafkatest.WaitFor(t, 30*time.Second, "both members working", func() bool { return e.kc.Working(group) == 2 })
	e.kc.Produce(recs[len(recs)/2:]...)
	kafkatest.WaitFor(t, 30*time.Second, "every record committed", func() bool { return e.done(int64(len(recs))) && e.settled() })
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	if byA.Load() == 0 || byB.Load() == 0 {
		t.Fatalf("records processed by A %d, by B %d: the group did not split the work", byA.Load(), byB.Load())
	}
	wantClusters, want := e.reference()
	e.sameOutcome(want)
	if got := clusterSets(t, e.store(ns)); got != wantClusters {
		t.Fatalf("clusters of two instances differ from one")
	}
	if strings.Count(wantClusters, "\n") < 10 || !strings.Contains(wantClusters, " ") {
		t.Fatalf("the data set formed too few duplicate clusters:\n%s", wantClusters)
	}
}

// Redis goes away mid-stream and comes back (with its data: AOF, and
// without the scripts, which it forgets): the batches are retried with
// backoff, nothing goes to the DLQ, and the result is one clean run's.
func TestRedisOutage(t *testing.T) {
	e := newEnv(t, 3, "--appendonly", "yes", "--appendfsync", "always")
	recs := data(300)
	ns := redistest.Namespace(t)
	reg := prometheus.NewRegistry()
	// go-redis's own retries and dial retries would hide short outages
	// from the pipeline: fail fast so that its backoff is what is tested.
	opts := e.srv.Options()
	opts.MaxRetries, opts.DialerRetries = -1, 1
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	e.kc.Produce(recs[:100]...)
	p := e.pipeline(func() pipeline.Owner {
		return matcher.NewStore(rdb, matcher.StoreOptions{Namespace: ns, Rules: e.cfg.Rules})
	}, reg)
	stop := e.start(p)
	kafkatest.WaitFor(t, 30*time.Second, "the first records committed", func() bool { return e.done(100) })
	routed := e.kc.Committed(group, byTenantTopic)
	e.srv.Kill()
	e.kc.Produce(recs[100:]...)
	// Past the permanent failures' bound (3): a Redis outage is transient,
	// retried while it lasts, and the partition is named for /readyz.
	kafkatest.WaitFor(t, 30*time.Second, "retries", func() bool {
		return metricSum(t, reg, "leadconv_batch_retries_total") >= 6 && p.Retrying() != nil
	})
	if err := p.Retrying(); !strings.Contains(err.Error(), "partition "+byTenantTopic+"/") || !strings.Contains(err.Error(), "(redis_unavailable)") {
		t.Fatalf("Retrying = %v, want a by-tenant partition retrying redis_unavailable", err)
	}
	if got := metricSum(t, reg, "leadconv_partitions_retrying"); got < 1 {
		t.Fatalf("partitions retrying %v during the outage", got)
	}
	if got := e.kc.Committed(group, byTenantTopic); got != routed {
		t.Fatalf("by-tenant committed %d while Redis was down, want %d", got, routed)
	}
	e.srv.Restart()
	kafkatest.WaitFor(t, 30*time.Second, "every record committed", func() bool { return e.done(int64(len(recs))) && e.settled() })
	if err := p.Retrying(); err != nil {
		t.Fatalf("Retrying after Redis came back: %v", err)
	}
	if got := metricSum(t, reg, "leadconv_partitions_retrying"); got != 0 {
		t.Fatalf("partitions retrying %v after Redis came back", got)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := e.kc.EndOffsets(dlqTopic); n != 0 {
		t.Fatalf("%d records dead-lettered by a Redis outage", n)
	}
	wantClusters, want := e.reference()
	e.sameOutcome(want)
	if got := clusterSets(t, e.store(ns)); got != wantClusters {
		t.Fatalf("clusters after the outage differ from one clean run")
	}
}

// countingStore counts the account lookups a handler asks for besides those
// the matcher's changes carry.
type countingStore struct {
	*matcher.Store
	lookups atomic.Int32
}

func (s *countingStore) ResolveAccounts(ctx context.Context, tenant string, values []string) (map[string]string, error) {
	s.lookups.Add(1)
	return s.Store.ResolveAccounts(ctx, tenant, values)
}

// Leads whose company names an existing account convert into it. A change
// carries its accounts, so planning asks for none, and so does a replay,
// which reports its cluster as the owner holds it.
func TestExistingAccount(t *testing.T) {
	e := newEnv(t, 1)
	ev := func(off int64, object, id, fields string) *kgo.Record {
		return &kgo.Record{Topic: recordsTopic, Offset: off, Value: []byte(fmt.Sprintf(
			`{"tenant":"acme","object":%q,"id":%q,"op":"upsert","created_at":"2026-01-02T03:04:05Z","modified_at":"2026-01-02T03:04:05Z","fields":%s}`, object, id, fields))}
	}
	st := &countingStore{Store: e.store(redistest.Namespace(t))}
	h := pipeline.NewHandler(pipeline.HandlerConfig{CommandsTopic: commandsTopic, Lifecycle: pipeline.Immediate}, func() pipeline.Owner { return st }, e.cfg)
	handle := func(recs ...*kgo.Record) []*kgo.Record {
		res := handleIdle(t, h, recordsTopic, 0, recs)
		if len(res.Poison) > 0 {
			t.Fatalf("handle: poison %v", res.Poison)
		}
		return res.Out
	}
	handle(ev(0, "account", "A1", `{"Name":"Acme, Inc."}`))
	leads := []*kgo.Record{
		ev(1, "lead", "L1", `{"FirstName":"Pat","LastName":"Lee","Email":"pat@acme.example","Company":"ACME Inc"}`),
		ev(2, "lead", "L2", `{"FirstName":"Pat","LastName":"Lee","Email":"pat@acme.example","Company":"ACME Inc"}`),
	}
	accounts := func(out []*kgo.Record) []string {
		var ids []string
		for _, r := range out {
			ce, err := kafkatest.CloudEvent(r)
			if err != nil {
				t.Fatal(err)
			}
			var cmd engine.Command
			if err := ce.DataAs(&cmd); err != nil {
				t.Fatal(err)
			}
			if lc, ok := cmd.Data.(*engine.LeadConvert); ok {
				ids = append(ids, lc.Account.ID)
			}
		}
		return ids
	}
	intoA1 := func(ids []string) bool {
		return len(ids) > 0 && !slices.ContainsFunc(ids, func(id string) bool { return id != "A1" })
	}
	if got := accounts(handle(leads...)); !intoA1(got) || st.lookups.Load() != 0 {
		t.Fatalf("conversions into accounts %q with %d lookups besides the changes' own, want A1 only and none", got, st.lookups.Load())
	}
	if got := accounts(handle(leads...)); len(got) != 0 || st.lookups.Load() != 0 {
		t.Fatalf("the replay converted into %q with %d lookups, want nothing planned again", got, st.lookups.Load())
	}
	// A third duplicate goes into A1 too, from the owner's resident state.
	third := ev(3, "lead", "L3", `{"FirstName":"Pat","LastName":"Lee","Email":"pat@acme.example","Company":"ACME Inc"}`)
	if got := accounts(handle(third)); !intoA1(got) || st.lookups.Load() != 0 {
		t.Fatalf("the third lead converts into %q with %d lookups, want A1 only and none", got, st.lookups.Load())
	}
}

// Start-up creates a missing by-tenant topic with the input's partition
// count, and refuses to run when a co-partitioned topic has another count,
// naming both topics.
func TestTopicsAtStartUp(t *testing.T) {
	e := newEnv(t, 3)
	adm := kadm.NewClient(e.kc.Client())
	const created = "other.records.by-tenant"
	p := e.pipeline(e.owners(redistest.Namespace(t)), nil, func(c *pipeline.Config) { c.ByTenantTopic = created })
	if err := p.Prepare(t.Context()); err != nil {
		t.Fatal(err)
	}
	details, err := adm.ListTopics(t.Context(), created)
	if err != nil || len(details[created].Partitions) != 3 {
		t.Fatalf("by-tenant topic %v (err %v), want 3 partitions", details[created].Partitions, err)
	}
	p.Client().Close()

	if _, err := adm.CreateTopic(t.Context(), 5, 1, nil, "leadconv.requests"); err != nil {
		t.Fatal(err)
	}
	p = e.pipeline(e.owners(redistest.Namespace(t)), nil, func(c *pipeline.Config) {
		c.Topics = []topics.Topic{{Name: "leadconv.requests", Role: "requests", CoPartitioned: true}}
	})
	err = p.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), byTenantTopic+" (3 partitions)") || !strings.Contains(err.Error(), "leadconv.requests (5 partitions") {
		t.Fatalf("start-up error %v, want one naming both topics and their partition counts", err)
	}
}

// fenceCounter counts the Apply calls that found the owner fenced.
type fenceCounter struct {
	*matcher.Store
	n *atomic.Int64
}

func (s fenceCounter) ApplyPlanned(ctx context.Context, evs []record.Event, plan matcher.PlanFunc) ([]matcher.Change, error) {
	ch, err := s.Store.ApplyPlanned(ctx, evs, plan)
	if errors.Is(err, matcher.ErrFenced) {
		s.n.Add(1)
	}
	return ch, err
}

func (s fenceCounter) WriteSide(ctx context.Context, side map[string]matcher.Side) error {
	err := s.Store.WriteSide(ctx, side)
	if errors.Is(err, matcher.ErrFenced) {
		s.n.Add(1)
	}
	return err
}

// Another owner takes the tenant of a running member's partition: the
// member's owner is fenced, stops that partition without retrying or
// committing, and the partition's next owner processes the rest.
func TestFencedOwnerStopsRetrying(t *testing.T) {
	e := newEnv(t, 2)
	recs := data(200)
	ns := redistest.Namespace(t)
	var fenced atomic.Int64
	e.kc.Produce(recs[:100]...)
	stop := e.start(e.pipeline(func() pipeline.Owner { return fenceCounter{e.store(ns), &fenced} }, nil))
	kafkatest.WaitFor(t, 30*time.Second, "the first half committed", func() bool { return e.done(100) })

	// A second owner of the same tenants (a zombie's successor, or a
	// replay into the live namespace) takes them.
	tenants := map[string]record.Event{}
	for _, r := range recs {
		var ev record.Event
		if err := json.Unmarshal(r.Value, &ev); err != nil {
			t.Fatal(err)
		}
		tenants[ev.Tenant] = ev
	}
	intruder := e.store(ns)
	for _, ev := range tenants {
		if _, err := intruder.Apply(t.Context(), []record.Event{ev}); err != nil {
			t.Fatal(err)
		}
	}
	e.kc.Produce(recs[100:]...)
	// Fenced by its next write, a batch's or a timer's.
	kafkatest.WaitFor(t, 30*time.Second, "the owner fenced and the rest routed", func() bool {
		return fenced.Load() > 0 && e.routed() == int64(len(recs))
	})
	routed := e.kc.EndOffsets(byTenantTopic)
	time.Sleep(time.Second) // the retry backoff starts at 50ms
	if got := fenced.Load(); got > int64(len(tenants)) {
		t.Fatalf("a fenced owner applied %d times for %d tenants: it kept retrying", got, len(tenants))
	}
	if got := e.kc.Committed(group, byTenantTopic); got >= routed {
		t.Fatalf("committed %d of %d routed records: the fenced batch was committed", got, routed)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	stop = e.start(e.pipeline(e.owners(ns), nil))
	kafkatest.WaitFor(t, 30*time.Second, "every record committed by the next owner", func() bool { return e.done(int64(len(recs))) && e.settled() })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// Redis comes back empty: a new member, whose by-tenant partitions have
// committed offsets, finds the namespace's marker missing and applies
// nothing; StateLost (the /readyz check) names the rebuild command. The
// running member finds its tenant's epoch gone and stops the same way.
func TestStateLossRefused(t *testing.T) {
	e := newEnv(t, 2)
	recs := data(300)
	ns := redistest.Namespace(t)
	e.kc.Produce(recs[:100]...)
	p := e.pipeline(e.owners(ns), nil)
	stop := e.start(p)
	kafkatest.WaitFor(t, 30*time.Second, "the first part committed", func() bool { return e.done(100) })
	if err := p.Handler().StateLost(); err != nil {
		t.Fatalf("state lost before anything happened: %v", err)
	}
	if err := e.srv.Client().FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	e.kc.Produce(recs[100:200]...)
	kafkatest.WaitFor(t, 30*time.Second, "the running member saw the loss", func() bool { return p.Handler().StateLost() != nil })
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	if err := e.srv.Client().FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	committed := e.kc.Committed(group, byTenantTopic)
	e.kc.Produce(recs[200:]...)
	p = e.pipeline(e.owners(ns), nil)
	stop = e.start(p)
	kafkatest.WaitFor(t, 30*time.Second, "the new member refused", func() bool { return p.Handler().StateLost() != nil })
	err := p.Handler().StateLost()
	if !errors.Is(err, matcher.ErrStateLost) || !strings.Contains(err.Error(), matcher.RebuildCommand(ns)) {
		t.Fatalf("state lost: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	if got := e.kc.Committed(group, byTenantTopic); got != committed {
		t.Fatalf("by-tenant commits moved from %d to %d over lost state", committed, got)
	}
	if n, _ := e.srv.Client().Exists(t.Context(), ns+":meta").Result(); n != 0 {
		t.Fatal("the refusing member marked the namespace")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// State a newer leadconv wrote (the marker's format above
// matcher.StoredFormat) is not applied to: the new member stops the
// partitions, commits nothing, and says so for /readyz.
func TestNewerFormatRefused(t *testing.T) {
	e := newEnv(t, 2)
	recs := data(200)
	ns := redistest.Namespace(t)
	e.kc.Produce(recs[:100]...)
	p := e.pipeline(e.owners(ns), nil)
	stop := e.start(p)
	kafkatest.WaitFor(t, 30*time.Second, "the first part committed", func() bool { return e.done(100) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	rdb := e.srv.Client()
	if f, err := rdb.HGet(t.Context(), matcher.MarkerKey(ns), "format").Int(); err != nil || f != matcher.StoredFormat {
		t.Fatalf("marker format %d (%v), want %d", f, err, matcher.StoredFormat)
	}
	if err := rdb.HSet(t.Context(), matcher.MarkerKey(ns), "format", matcher.StoredFormat+1).Err(); err != nil {
		t.Fatal(err)
	}
	committed := e.kc.Committed(group, byTenantTopic)
	e.kc.Produce(recs[100:]...)
	p = e.pipeline(e.owners(ns), nil)
	stop = e.start(p)
	kafkatest.WaitFor(t, 30*time.Second, "the new member refused", func() bool { return p.Handler().StateLost() != nil })
	if err := p.Handler().StateLost(); !errors.Is(err, matcher.ErrNewerFormat) || !strings.Contains(err.Error(), fmt.Sprintf("format %d", matcher.StoredFormat+1)) {
		t.Fatalf("newer format: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	if got := e.kc.Committed(group, byTenantTopic); got != committed {
		t.Fatalf("by-tenant commits moved from %d to %d over a newer format", committed, got)
	}
	if f, _ := rdb.HGet(t.Context(), matcher.MarkerKey(ns), "format").Int(); f != matcher.StoredFormat+1 {
		t.Fatalf("the refusing member lowered the format to %d", f)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
