package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"

	"github.com/leadconv/leadconv/consumer"
	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/internal/pipeline"
	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
	"github.com/leadconv/leadconv/internal/testutil/redistest"
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
}

func newEnv(t *testing.T, partitions int32) *env {
	t.Helper()
	var yml strings.Builder
	yml.WriteString("defaults:\n  contact_fields:\n")
	for c, l := range gen.ContactFields() {
		fmt.Fprintf(&yml, "    %s: %s\n", c, l)
	}
	cfg, err := config.Parse([]byte(yml.String()))
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, kc: kafkatest.New(t, partitions, recordsTopic, commandsTopic, dlqTopic), srv: redistest.New(t), cfg: cfg}
}

func (e *env) store(ns string) *matcher.Store {
	return matcher.NewStore(e.srv.Client(), matcher.StoreOptions{Namespace: ns, Rules: e.cfg.Rules})
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

func (e *env) pipeline(store pipeline.Store, reg prometheus.Registerer) *pipeline.Pipeline {
	e.t.Helper()
	p, err := pipeline.New(pipeline.Config{
		Brokers: e.kc.Addrs(), Group: group, RecordsTopic: recordsTopic, CommandsTopic: commandsTopic, DLQTopic: dlqTopic,
		MaxRecordBytes: maxBytes, CommitInterval: 100 * time.Millisecond, MaxPollRecords: 200,
		Logger: zerolog.Nop(), Registerer: reg,
	}, store, e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) committed() int64 { return e.kc.Committed(group, recordsTopic) }

// reference runs the records topic through a Handler without a consumer
// group, partition by partition, into a fresh namespace: what one instance
// computes from the same per-partition order.
func (e *env) reference() (ids map[string]bool, clusters string) {
	e.t.Helper()
	st := e.store(redistest.Namespace(e.t))
	h := pipeline.NewHandler(pipeline.HandlerConfig{CommandsTopic: commandsTopic, MaxRecordBytes: maxBytes}, st, e.cfg)
	byPart := map[int32][]*kgo.Record{}
	for _, r := range e.kc.ReadAll(recordsTopic) {
		byPart[r.Partition] = append(byPart[r.Partition], r)
	}
	ids = map[string]bool{}
	for p, recs := range byPart {
		for chunk := range slices.Chunk(recs, 64) {
			res, err := h.Handle(context.Background(), recordsTopic, p, chunk)
			if err != nil {
				e.t.Fatal(err)
			}
			for _, r := range res.Out {
				ids[string(kafkatest.Header(r, "ce_id"))] = true
			}
		}
	}
	return ids, clusterSets(e.t, st)
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

// commandIDs reads the commands topic, checking every record is a
// well-formed command CloudEvent, and counts each id.
func (e *env) commandIDs() map[string]int {
	e.t.Helper()
	ids := map[string]int{}
	for _, r := range e.kc.ReadAll(commandsTopic) {
		var cmd engine.Command
		if err := json.Unmarshal(r.Value, &cmd); err != nil {
			e.t.Fatalf("command value: %v", err)
		}
		if got := string(kafkatest.Header(r, "ce_id")); got != cmd.ID {
			e.t.Fatalf("ce_id %s but command_id %s", got, cmd.ID)
		}
		if got := string(kafkatest.Header(r, "ce_type")); got != cmd.Type() {
			e.t.Fatalf("ce_type %s for kind %s", got, cmd.Kind)
		}
		if string(r.Key) != cmd.Tenant+"/"+cmd.ClusterID {
			e.t.Fatalf("key %s for cluster %s", r.Key, cmd.ClusterID)
		}
		ids[cmd.ID]++
	}
	return ids
}

func sameIDs(t *testing.T, got map[string]int, want map[string]bool) {
	t.Helper()
	var missing, invented int
	for id := range want {
		if got[id] == 0 {
			missing++
		}
	}
	for id := range got {
		if !want[id] {
			invented++
		}
	}
	if missing > 0 || invented > 0 || len(want) == 0 {
		t.Fatalf("command ids: %d missing, %d invented, %d expected", missing, invented, len(want))
	}
}

func poison() []*kgo.Record {
	big := fmt.Sprintf(`{"tenant":"acme","object":"lead","id":"big","op":"upsert","fields":{"Notes":%q}}`, strings.Repeat("x", maxBytes))
	return []*kgo.Record{
		{Topic: recordsTopic, Key: []byte("p1"), Value: []byte("not json")},
		{Topic: recordsTopic, Key: []byte("p2"), Value: []byte(`{"tenant":"acme","object":"deal","id":"d1","op":"upsert"}`)},
		{Topic: recordsTopic, Key: []byte("p3"), Value: []byte(`{"tenant":"acme","object":"lead","id":"x1","op":"explode"}`)},
		{Topic: recordsTopic, Key: []byte("p4"), Value: []byte(big)},
		{Topic: recordsTopic, Key: []byte("p5"), Value: []byte(`{"tenant":"acme","object":"lead","id":"x2","op":"upsert","fields":{},"colour":"red"}`)},
	}
}

var poisonCodes = []string{pipeline.CodeNotJSON, pipeline.CodeOversize, pipeline.CodeSchemaViolation, pipeline.CodeUnknownObject, pipeline.CodeUnknownOp}

// One pipeline over a generated stream with poison records mixed in: the
// poison lands in the DLQ with its code, everything else flows, and the
// commands and clusters are exactly those one offline instance computes.
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
	stop := e.start(e.pipeline(e.store(redistest.Namespace(t)), reg))
	kafkatest.WaitFor(t, 30*time.Second, "every record committed", func() bool { return e.committed() == int64(len(all)) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	var codes []string
	for _, d := range e.kc.ReadAll(dlqTopic) {
		codes = append(codes, string(kafkatest.Header(d, consumer.HeaderErrorCode)))
		if string(kafkatest.Header(d, consumer.HeaderSourceTopic)) != recordsTopic || kafkatest.Header(d, consumer.HeaderSourceOffset) == nil {
			t.Errorf("dead letter without its origin: %v", d.Headers)
		}
	}
	sort.Strings(codes)
	if !slices.Equal(codes, poisonCodes) {
		t.Fatalf("dead-letter codes %v, want %v", codes, poisonCodes)
	}

	got := e.commandIDs()
	wantIDs, _ := e.reference()
	sameIDs(t, got, wantIDs)
	for id, n := range got {
		if n > 1 {
			t.Fatalf("command %s produced %d times in a clean run", id, n)
		}
	}
	if in := counterSum(t, reg, "leadconv_events_in_total"); int(in) != len(recs) {
		t.Fatalf("events in %v, want %d", in, len(recs))
	}
	if dead := counterSum(t, reg, "leadconv_dlq_records_total"); int(dead) != len(poisonCodes) {
		t.Fatalf("dlq metric %v", dead)
	}
	if out := counterSum(t, reg, "leadconv_commands_out_total"); int(out) != len(got) {
		t.Fatalf("commands out %v, want %d", out, len(got))
	}
}

func counterSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue()
			}
		}
	}
	return v
}

// dropCommits makes the broker acknowledge the group's offset commits
// without storing them while enabled: what a crash between producing and
// committing leaves behind.
func dropCommits(c *kafkatest.Cluster, enabled *atomic.Bool) {
	c.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !enabled.Load() {
			return nil, nil, false
		}
		r := req.(*kmsg.OffsetCommitRequest)
		resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition = rp.Partition
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
}

// A pipeline dies after producing commands whose input offsets it never
// committed; a new one takes over. No input is lost (the final clusters and
// command ids are exactly one clean instance's) and every command produced
// again carries the id it had the first time.
func TestCrashAndRestart(t *testing.T) {
	e := newEnv(t, 3)
	recs := data(400)
	half := len(recs) / 2
	var drop atomic.Bool
	dropCommits(e.kc, &drop)
	ns := redistest.Namespace(t)

	e.kc.Produce(recs[:half]...)
	stop := e.start(e.pipeline(e.store(ns), nil))
	kafkatest.WaitFor(t, 30*time.Second, "some progress committed", func() bool { return e.committed() > 0 })
	drop.Store(true) // the crash: nothing from here on is committed
	kafkatest.WaitFor(t, 30*time.Second, "the first half processed", func() bool {
		return len(e.commandIDs()) > 0 && e.committed() < int64(half) && processed(e, ns, recs[:half])
	})
	_ = stop()
	before := e.commandIDs()
	if e.committed() >= int64(half) {
		t.Fatal("the crash left nothing to re-process")
	}

	drop.Store(false)
	e.kc.Produce(recs[half:]...)
	stop = e.start(e.pipeline(e.store(ns), nil))
	kafkatest.WaitFor(t, 30*time.Second, "every record committed", func() bool { return e.committed() == int64(len(recs)) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	after := e.commandIDs()
	wantIDs, wantClusters := e.reference()
	sameIDs(t, after, wantIDs)
	var again int
	for id, n := range after {
		if n > before[id] && before[id] > 0 {
			again++
		}
	}
	if again == 0 {
		t.Fatal("the restart re-emitted no command: the test did not exercise re-processing")
	}
	if got := clusterSets(t, e.store(ns)); got != wantClusters {
		t.Fatalf("clusters after the restart differ from one clean run")
	}
}

// processed reports whether the store holds the last event of every record
// in evs (the pipeline reached the end of them).
func processed(e *env, ns string, recs []*kgo.Record) bool {
	last := map[record.Ref]record.Event{}
	for _, r := range recs {
		var ev record.Event
		_ = json.Unmarshal(r.Value, &ev)
		last[ev.Ref()] = ev
	}
	st := e.store(ns)
	for ref := range last {
		v, err := st.View(context.Background(), "acme", ref)
		if err != nil || v.Cluster == "" {
			return false
		}
	}
	return true
}

// Two instances in one group split the partitions and end with the same
// clusters and command ids as one instance.
func TestTwoInstances(t *testing.T) {
	e := newEnv(t, 4)
	recs := data(400)
	ns := redistest.Namespace(t)
	stopA := e.start(e.pipeline(e.store(ns), nil))
	stopB := e.start(e.pipeline(e.store(ns), nil))
	e.kc.Produce(recs...)
	kafkatest.WaitFor(t, 30*time.Second, "every record committed", func() bool { return e.committed() == int64(len(recs)) })
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	wantIDs, wantClusters := e.reference()
	sameIDs(t, e.commandIDs(), wantIDs)
	if got := clusterSets(t, e.store(ns)); got != wantClusters {
		t.Fatalf("clusters of two instances differ from one")
	}
	if strings.Count(wantClusters, "\n") < 10 || !strings.Contains(wantClusters, " ") {
		t.Fatalf("the data set formed too few duplicate clusters:\n%s", wantClusters)
	}
}
