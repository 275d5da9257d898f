package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"

	"github.com/leadconv/leadconv/consumer"
	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	in  = "in"
	out = "out"
	dlq = "dlq"
)

// echo emits one output per input and sends values starting with "bad" to
// the dead-letter topic.
func echo(_ context.Context, _ string, _ int32, recs []*kgo.Record) (consumer.Result, error) {
	var res consumer.Result
	for _, r := range recs {
		if len(r.Value) >= 3 && string(r.Value[:3]) == "bad" {
			res.Poison = append(res.Poison, consumer.Poison{Record: r, Code: "not_json"})
			continue
		}
		res.Out = append(res.Out, &kgo.Record{Topic: out, Key: r.Key, Value: r.Value})
	}
	return res, nil
}

// unavailable is a transient error as the matcher's Redis errors are.
type unavailable struct{}

func (unavailable) Error() string     { return "redis: connection refused" }
func (unavailable) ErrorCode() string { return "redis_unavailable" }
func (unavailable) Transient() bool   { return true }

var errUnavailable error = unavailable{}

func produceN(c *kafkatest.Cluster, n int, value func(i int) string) {
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: in, Key: []byte(strconv.Itoa(i)), Value: []byte(value(i))}
	}
	c.Produce(recs...)
}

func start(t *testing.T, c *kafkatest.Cluster, h consumer.Handler, m *consumer.Metrics) (stop func() error) {
	t.Helper()
	_, stop = startConsumer(t, c, h, m)
	return stop
}

func startConsumer(t *testing.T, c *kafkatest.Cluster, h consumer.Handler, m *consumer.Metrics) (*consumer.Consumer, func() error) {
	t.Helper()
	cons, err := consumer.New(consumer.Config{
		Brokers: c.Addrs(), Group: "g", Topics: []string{in}, DLQTopic: dlq,
		CommitInterval: 100 * time.Millisecond, MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond,
		RevokeGrace: 5 * time.Second, Logger: zerolog.Nop(), Metrics: m,
	}, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx) }()
	var once sync.Once
	var rerr error
	stop := func() error {
		once.Do(func() { cancel(); rerr = <-done })
		return rerr
	}
	t.Cleanup(func() { _ = stop() })
	return cons, stop
}

func committed(t *testing.T, c *kafkatest.Cluster) int64 {
	t.Helper()
	return c.Committed("g", in)
}

func values(recs []*kgo.Record) map[string]int {
	m := map[string]int{}
	for _, r := range recs {
		m[string(r.Value)]++
	}
	return m
}

func TestConsumeProduceCommitAndDeadLetters(t *testing.T) {
	c := kafkatest.New(t, 3, in, out, dlq)
	produceN(c, 300, func(i int) string {
		if i%50 == 7 {
			return fmt.Sprintf("bad %d", i)
		}
		return fmt.Sprintf("v%d", i)
	})
	reg := prometheus.NewRegistry()
	m := consumer.NewMetrics(reg)
	stop := start(t, c, consumer.HandlerFunc(echo), m)
	kafkatest.WaitFor(t, 20*time.Second, "all output", func() bool { return c.EndOffsets(out)+c.EndOffsets(dlq) == 300 })
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if got := committed(t, c); got != 300 {
		t.Fatalf("committed %d offsets, want 300", got)
	}
	outs := values(c.ReadAll(out))
	if len(outs) != 294 {
		t.Fatalf("got %d distinct outputs, want 294", len(outs))
	}
	dead := c.ReadAll(dlq)
	if len(dead) != 6 {
		t.Fatalf("got %d dead letters, want 6", len(dead))
	}
	for _, d := range dead {
		if got := string(kafkatest.Header(d, consumer.HeaderErrorCode)); got != "not_json" {
			t.Errorf("code header %q", got)
		}
		if got := string(kafkatest.Header(d, consumer.HeaderSourceTopic)); got != in {
			t.Errorf("topic header %q", got)
		}
		p, _ := strconv.Atoi(string(kafkatest.Header(d, consumer.HeaderSourcePartition)))
		o, _ := strconv.ParseInt(string(kafkatest.Header(d, consumer.HeaderSourceOffset)), 10, 64)
		src := c.Client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{in: {int32(p): kgo.NewOffset().At(o)}}))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		fs := src.PollRecords(ctx, 1)
		cancel()
		if r := fs.Records(); len(r) != 1 || string(r[0].Value) != string(d.Value) {
			t.Errorf("headers point at %d/%d, which does not hold the dead letter", p, o)
		}
	}
	if got := testutil.ToFloat64(m.DeadLetters.WithLabelValues("not_json")); got != 6 {
		t.Errorf("dlq metric %v, want 6", got)
	}
}

func TestTransientErrorsAreRetriedNeverDeadLettered(t *testing.T) {
	c := kafkatest.New(t, 2, in, out, dlq)
	produceN(c, 100, func(i int) string { return fmt.Sprintf("v%d", i) })
	var calls atomic.Int64
	flaky := consumer.HandlerFunc(func(ctx context.Context, topic string, p int32, recs []*kgo.Record) (consumer.Result, error) {
		if calls.Add(1) <= 5 {
			return consumer.Result{}, errUnavailable
		}
		return echo(ctx, topic, p, recs)
	})
	m := consumer.NewMetrics(prometheus.NewRegistry())
	stop := start(t, c, flaky, m)
	kafkatest.WaitFor(t, 20*time.Second, "all output", func() bool { return c.EndOffsets(out) >= 100 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := c.EndOffsets(dlq); n != 0 {
		t.Fatalf("%d transient failures went to the dead-letter topic", n)
	}
	if got := len(values(c.ReadAll(out))); got != 100 {
		t.Fatalf("%d distinct outputs, want 100", got)
	}
	if got := testutil.ToFloat64(m.Retries.WithLabelValues("handle", "redis_unavailable")); got != 5 {
		t.Fatalf("retries metric %v, want 5", got)
	}
}

// The broker refusing the output (a non-retriable produce error, so the
// client hands it back) is transient for the consumer: the batch's output is
// produced again with backoff, nothing is dead-lettered, and the offsets
// move only once the output is in.
func TestProduceErrorsAreRetried(t *testing.T) {
	c := kafkatest.New(t, 1, in, out, dlq)
	produceN(c, 30, func(i int) string { return fmt.Sprintf("v%d", i) })
	var refused atomic.Int64
	// Input is already written: every produce request from here on carries
	// the consumer's output. Refuse the first three.
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if refused.Load() >= 3 {
			return nil, nil, false
		}
		refused.Add(1)
		r := req.(*kmsg.ProduceRequest)
		resp := r.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.PolicyViolation.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	m := consumer.NewMetrics(prometheus.NewRegistry())
	stop := start(t, c, consumer.HandlerFunc(echo), m)
	kafkatest.WaitFor(t, 20*time.Second, "the commit", func() bool { return committed(t, c) == 30 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.Retries.WithLabelValues("produce", "policy_violation")); got < 1 {
		t.Fatalf("produce retries %v, want at least one", got)
	}
	if n := c.EndOffsets(dlq); n != 0 {
		t.Fatalf("%d records dead-lettered by refused produces", n)
	}
	if got := len(values(c.ReadAll(out))); got != 30 {
		t.Fatalf("%d distinct outputs, want 30", got)
	}
}

// The group's offsets must not move while the output of the batch is not yet
// acknowledged: a produce held by the broker keeps the commit back.
func TestCommitOnlyAfterOutputAcked(t *testing.T) {
	c := kafkatest.New(t, 1, in, out, dlq)
	produceN(c, 10, func(i int) string { return fmt.Sprintf("v%d", i) })
	release := make(chan struct{})
	var held atomic.Bool
	// Input is already written: the only produce requests from here on carry
	// the consumer's output. Hold the first one.
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		if held.CompareAndSwap(false, true) {
			c.SleepControl(func() { <-release })
		}
		return nil, nil, false
	})
	stop := start(t, c, consumer.HandlerFunc(echo), nil)
	kafkatest.WaitFor(t, 10*time.Second, "the produce to be held", held.Load)
	time.Sleep(300 * time.Millisecond) // several commit intervals
	if got := committed(t, c); got != 0 {
		t.Fatalf("committed %d before the output was acknowledged", got)
	}
	close(release)
	kafkatest.WaitFor(t, 10*time.Second, "the commit", func() bool { return committed(t, c) == 10 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// A second member joining mid-stream takes partitions away from the first
// (cooperative rebalance): nothing is lost, and every record is processed by
// exactly one member because revoked workers commit what they finished.
func TestRebalanceLosesNothing(t *testing.T) {
	c := kafkatest.New(t, 4, in, out, dlq)
	const n = 2000
	produceN(c, n, func(i int) string { return fmt.Sprintf("v%d", i) })
	slow := consumer.HandlerFunc(func(ctx context.Context, topic string, p int32, recs []*kgo.Record) (consumer.Result, error) {
		time.Sleep(2 * time.Millisecond)
		return echo(ctx, topic, p, recs)
	})
	stopA := start(t, c, slow, nil)
	kafkatest.WaitFor(t, 10*time.Second, "first output", func() bool { return c.EndOffsets(out) > 0 })
	stopB := start(t, c, slow, nil)
	kafkatest.WaitFor(t, 30*time.Second, "all output", func() bool { return committed(t, c) == n })
	if err := stopA(); err != nil {
		t.Fatal(err)
	}
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	got := values(c.ReadAll(out))
	if len(got) != n {
		t.Fatalf("%d distinct outputs, want %d", len(got), n)
	}
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{{0, 10 * time.Millisecond}, {1, 20 * time.Millisecond}, {3, 80 * time.Millisecond}, {10, time.Second}, {100, time.Second}} {
		if got := consumer.Backoff(tc.n, 10*time.Millisecond, time.Second, nil); got != tc.want {
			t.Errorf("Backoff(%d) = %s, want %s", tc.n, got, tc.want)
		}
		if got := consumer.Backoff(tc.n, 10*time.Millisecond, time.Second, func(q int64) int64 { return q }); got != tc.want*3/4 {
			t.Errorf("Backoff(%d) with full jitter = %s, want %s", tc.n, got, tc.want*3/4)
		}
	}
}

// A handler failing forever (Redis down) must neither dead-letter nor commit
// anything, and must not keep a shutdown waiting once its queue is full.
func TestShutdownDuringOutage(t *testing.T) {
	c := kafkatest.New(t, 1, in, out, dlq)
	produceN(c, 20, func(i int) string { return fmt.Sprintf("v%d", i) })
	var calls atomic.Int64
	down := consumer.HandlerFunc(func(context.Context, string, int32, []*kgo.Record) (consumer.Result, error) {
		calls.Add(1)
		return consumer.Result{}, errUnavailable
	})
	cons, err := consumer.New(consumer.Config{
		Brokers: c.Addrs(), Group: "g", Topics: []string{in}, DLQTopic: dlq, MaxPollRecords: 1,
		MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, RevokeGrace: 200 * time.Millisecond,
		Logger: zerolog.Nop(),
	}, down)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx) }()
	kafkatest.WaitFor(t, 10*time.Second, "retries", func() bool { return calls.Load() > 10 })
	time.Sleep(100 * time.Millisecond) // let the poll loop fill the worker's queue
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("shutdown hung behind a failing worker")
	}
	if got := committed(t, c); got != 0 {
		t.Fatalf("committed %d offsets of failed batches", got)
	}
	if n := c.EndOffsets(dlq) + c.EndOffsets(out); n != 0 {
		t.Fatalf("%d records produced during the outage", n)
	}
}

// A partition whose batches keep failing holds up no other: the poll loop
// never waits on its worker, its fetching is paused once the worker is
// maxQueued batches behind, and it resumes and catches up once the failure
// clears, with nothing lost.
func TestFailingPartitionIsIsolated(t *testing.T) {
	c := kafkatest.New(t, 2, in, out, dlq)
	var healthy atomic.Int64
	var broken atomic.Bool
	broken.Store(true)
	h := consumer.HandlerFunc(func(ctx context.Context, topic string, p int32, recs []*kgo.Record) (consumer.Result, error) {
		if p == 0 && broken.Load() {
			return consumer.Result{}, errUnavailable
		}
		if p == 1 {
			healthy.Add(int64(len(recs)))
		}
		return echo(ctx, topic, p, recs)
	})
	m := consumer.NewMetrics(prometheus.NewRegistry())
	stop := start(t, c, h, m)
	total := 0
	for round := range 10 {
		before := healthy.Load()
		recs := make([]*kgo.Record, 20)
		for i := range recs {
			recs[i] = &kgo.Record{Topic: in, Key: []byte(strconv.Itoa(i)), Value: []byte(fmt.Sprintf("r%d-%d", round, i))}
		}
		c.Produce(recs...)
		total += len(recs)
		kafkatest.WaitFor(t, 10*time.Second, fmt.Sprintf("round %d on the healthy partition", round), func() bool {
			return healthy.Load() > before
		})
	}
	if got := testutil.ToFloat64(m.Paused); got < 1 {
		t.Fatalf("paused metric %v: the failing partition was never paused", got)
	}
	broken.Store(false)
	kafkatest.WaitFor(t, 20*time.Second, "every record committed", func() bool { return committed(t, c) == int64(total) })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := len(values(c.ReadAll(out))); got != total {
		t.Fatalf("%d distinct outputs, want %d", got, total)
	}
}

// bigInput writes value of size bytes to in (whose topic limit is raised so
// the broker takes it), followed by two small records.
func bigInput(t *testing.T, c *kafkatest.Cluster, value string, size int) {
	t.Helper()
	adm := kadm.NewClient(c.Client())
	limit := "4000000"
	res, err := adm.AlterTopicConfigs(context.Background(), []kadm.AlterConfig{{Name: "max.message.bytes", Value: &limit}}, in)
	if err == nil {
		_, err = res.On(in, nil)
	}
	if err != nil {
		t.Fatalf("raise the input topic's limit: %v", err)
	}
	big := value + strings.Repeat("x", size-len(value))
	p := c.Client(kgo.ProducerBatchMaxBytes(4_000_000), kgo.DefaultProduceTopic(in))
	if err := p.ProduceSync(context.Background(), kgo.StringRecord(big), kgo.StringRecord("v1"), kgo.StringRecord("v2")).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func TestOversizeInputIsDeadLetteredBounded(t *testing.T) {
	c := kafkatest.New(t, 1, in, out, dlq)
	bigInput(t, c, "bad", 1_100_000)
	reg := prometheus.NewRegistry()
	stop := start(t, c, consumer.HandlerFunc(echo), consumer.NewMetrics(reg))
	kafkatest.WaitFor(t, 20*time.Second, "the partition to move on", func() bool { return c.Committed("g", in) == 3 })
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if got := values(c.ReadAll(out)); got["v1"] != 1 || got["v2"] != 1 {
		t.Fatalf("outputs %v, want v1 and v2 once", got)
	}
	dead := c.ReadAll(dlq)
	if len(dead) != 1 {
		t.Fatalf("got %d dead letters, want 1", len(dead))
	}
	d := dead[0]
	if got := string(kafkatest.Header(d, consumer.HeaderValueTruncated)); got != "1100000" {
		t.Errorf("truncated header %q, want the original size 1100000", got)
	}
	if len(d.Value) == 0 || len(d.Value) > 64<<10 || string(d.Value[:3]) != "bad" {
		t.Errorf("dead letter value of %d bytes, want a prefix of the input", len(d.Value))
	}
	if got := string(kafkatest.Header(d, consumer.HeaderErrorCode)); got != "not_json" {
		t.Errorf("code header %q", got)
	}
	if got := string(kafkatest.Header(d, consumer.HeaderSourceOffset)); got != "0" {
		t.Errorf("offset header %q, want 0", got)
	}
}

func TestOversizeCommandIsDeadLetteredNotRetried(t *testing.T) {
	c := kafkatest.New(t, 1, in, out, dlq)
	produceN(c, 3, func(i int) string { return fmt.Sprintf("v%d", i) })
	h := func(ctx context.Context, topic string, p int32, recs []*kgo.Record) (consumer.Result, error) {
		res, err := echo(ctx, topic, p, recs)
		for _, r := range res.Out {
			if string(r.Value) == "v1" {
				r.Value = []byte(strings.Repeat("c", 1_100_000))
				r.Headers = []kgo.RecordHeader{{Key: "ce_id", Value: []byte("cmd-1")}}
			}
		}
		return res, err
	}
	reg := prometheus.NewRegistry()
	m := consumer.NewMetrics(reg)
	stop := start(t, c, consumer.HandlerFunc(h), m)
	kafkatest.WaitFor(t, 20*time.Second, "the partition to move on", func() bool { return c.Committed("g", in) == 3 })
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if got := values(c.ReadAll(out)); got["v0"] != 1 || got["v2"] != 1 || len(got) != 2 {
		t.Fatalf("outputs %v, want v0 and v2 once", got)
	}
	dead := c.ReadAll(dlq)
	if len(dead) != 1 {
		t.Fatalf("got %d dead letters, want 1", len(dead))
	}
	d := dead[0]
	for k, want := range map[string]string{
		consumer.HeaderErrorCode: consumer.CodeCommandTooLarge, consumer.HeaderCommandTopic: out,
		consumer.HeaderValueTruncated: "1100000", "ce_id": "cmd-1", consumer.HeaderSourceTopic: in,
	} {
		if got := string(kafkatest.Header(d, k)); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if len(d.Value) == 0 || len(d.Value) > 64<<10 {
		t.Errorf("dead letter value of %d bytes, want a bounded prefix", len(d.Value))
	}
	if got := testutil.ToFloat64(m.DeadLetters.WithLabelValues(consumer.CodeCommandTooLarge)); got != 1 {
		t.Errorf("dlq metric %v, want 1", got)
	}
}

func TestDeadLetterFitsTheLimit(t *testing.T) {
	src := &kgo.Record{Topic: in, Key: []byte("k"), Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("v")}}}
	for _, size := range []int{0, 10, consumer.DefaultMaxProduceBytes - consumer.DeadLetterOverhead - 200, consumer.DefaultMaxProduceBytes, 5 << 20} {
		src.Value = []byte(strings.Repeat("a", size))
		d := consumer.DeadLetter(dlq, consumer.Poison{Record: src, Code: "oversize"}, consumer.DefaultMaxProduceBytes)
		n := len(d.Key) + len(d.Value)
		for _, h := range d.Headers {
			n += len(h.Key) + len(h.Value)
		}
		if n+consumer.DeadLetterOverhead > consumer.DefaultMaxProduceBytes {
			t.Errorf("value of %d bytes: dead letter of %d bytes exceeds the limit", size, n)
		}
		whole := len(d.Value) == size
		if trunc := kafkatest.Header(d, consumer.HeaderValueTruncated); whole != (trunc == nil) {
			t.Errorf("value of %d bytes: kept %d bytes, truncated header %q", size, len(d.Value), trunc)
		}
		if string(kafkatest.Header(d, "h")) != "v" || string(d.Key) != "k" {
			t.Errorf("value of %d bytes: key or original headers lost", size)
		}
	}
}

// A dead letter the DLQ topic refuses as too large (its max.message.bytes
// below the producer's limit) is produced again without its value, key and
// original headers, keeping the code and coordinates; the partition moves
// on.
func TestDeadLetterRefusedByTheTopicIsShrunk(t *testing.T) {
	c := kafkatest.New(t, 1, in, out, dlq)
	limit := "2000"
	res, err := kadm.NewClient(c.Client()).AlterTopicConfigs(context.Background(), []kadm.AlterConfig{{Name: "max.message.bytes", Value: &limit}}, dlq)
	if err == nil {
		_, err = res.On(dlq, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	// Random bytes: the producer's compression cannot shrink them.
	noise := make([]byte, 10_000)
	for i := range noise {
		noise[i] = byte(rand.N(256))
	}
	c.Produce(&kgo.Record{Topic: in, Value: append([]byte("bad"), noise...),
		Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("v")}}}, &kgo.Record{Topic: in, Value: []byte("v1")})
	stop := start(t, c, consumer.HandlerFunc(echo), nil)
	kafkatest.WaitFor(t, 20*time.Second, "the partition to move on", func() bool { return c.Committed("g", in) == 2 })
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	dead := c.ReadAll(dlq)
	if len(dead) != 1 {
		t.Fatalf("got %d dead letters, want 1", len(dead))
	}
	d := dead[0]
	if len(d.Value) != 0 || kafkatest.Header(d, "h") != nil {
		t.Errorf("dead letter kept %d value bytes, header h %q", len(d.Value), kafkatest.Header(d, "h"))
	}
	for k, want := range map[string]string{consumer.HeaderErrorCode: "not_json", consumer.HeaderSourceOffset: "0", consumer.HeaderValueTruncated: "10003"} {
		if got := string(kafkatest.Header(d, k)); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
}

// A handler error wrapping ErrPartitionLost (a fenced owner) is never
// retried: the partition's worker stops at once with nothing committed,
// other partitions go on, and the partition is processed again once the
// group hands it over (here: to the next member after a restart).
func TestPartitionLostStopsWorker(t *testing.T) {
	c := kafkatest.New(t, 2, in, out, dlq)
	var calls0 atomic.Int64
	h := consumer.HandlerFunc(func(ctx context.Context, topic string, p int32, recs []*kgo.Record) (consumer.Result, error) {
		if p == 0 {
			calls0.Add(1)
			return consumer.Result{}, fmt.Errorf("apply: %w", consumer.ErrPartitionLost)
		}
		return echo(ctx, topic, p, recs)
	})
	produceN(c, 100, func(i int) string { return fmt.Sprintf("v%d", i) })
	m := consumer.NewMetrics(prometheus.NewRegistry())
	stop := start(t, c, h, m)
	kafkatest.WaitFor(t, 10*time.Second, "the lost partition tried once", func() bool { return calls0.Load() > 0 })
	// Produce more while stopped: a paused partition fetches none of it.
	produceN(c, 100, func(i int) string { return fmt.Sprintf("w%d", i) })
	kafkatest.WaitFor(t, 10*time.Second, "the other partition done", func() bool {
		return c.EndOffsets(out) > 0 && c.Committed("g", in) > 0 && c.Committed("g", in) == c.EndOffsets(out)
	})
	time.Sleep(500 * time.Millisecond) // backoff is 1..10ms: a retry would have happened many times
	if got := calls0.Load(); got != 1 {
		t.Fatalf("the lost partition's batch was handled %d times, want 1 (no retry)", got)
	}
	if got := testutil.ToFloat64(m.Lost); got != 1 {
		t.Fatalf("fenced metric %v, want 1", got)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got, total := committed(t, c), int64(200); got >= total {
		t.Fatalf("committed %d of %d: the lost partition was committed", got, total)
	}
	// The partition's next owner processes what was not committed.
	stop = start(t, c, consumer.HandlerFunc(echo), nil)
	kafkatest.WaitFor(t, 20*time.Second, "every record committed by the next owner", func() bool { return committed(t, c) == 200 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := len(values(c.ReadAll(out))); got != 200 {
		t.Fatalf("%d distinct outputs, want 200", got)
	}
}

// A handler error nobody classified (a bug) is permanent: the batch is
// tried maxAttempts (3) times, then record by record (once each), and only
// the record that still fails is dead-lettered, as handler_failed; the
// partition moves on with nothing else lost.
func TestPermanentHandlerErrorIsDeadLettered(t *testing.T) {
	c := kafkatest.New(t, 1, in, out, dlq)
	produceN(c, 50, func(i int) string { return fmt.Sprintf("v%d", i) })
	var withBad atomic.Int64
	h := consumer.HandlerFunc(func(ctx context.Context, topic string, p int32, recs []*kgo.Record) (consumer.Result, error) {
		for _, r := range recs {
			if string(r.Value) == "v13" {
				withBad.Add(1)
				return consumer.Result{}, errors.New("plan: index out of range")
			}
		}
		return echo(ctx, topic, p, recs)
	})
	m := consumer.NewMetrics(prometheus.NewRegistry())
	cons, stop := startConsumer(t, c, h, m)
	kafkatest.WaitFor(t, 20*time.Second, "every record committed", func() bool { return committed(t, c) == 50 })
	if err := cons.Retrying(); err != nil {
		t.Fatalf("a permanent failure reported as retrying: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := withBad.Load(); n < 3 || n > 4 {
		t.Fatalf("the failing record was handled %d times, want 3 (alone in its batch) or 4 (3 with its batch, once alone)", n)
	}
	dead := c.ReadAll(dlq)
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dead))
	}
	for k, want := range map[string]string{consumer.HeaderErrorCode: consumer.CodeHandlerFailed, consumer.HeaderSourceOffset: "13"} {
		if got := string(kafkatest.Header(dead[0], k)); got != want {
			t.Errorf("dead letter %s = %q, want %q", k, got, want)
		}
	}
	got := values(c.ReadAll(out))
	if len(got) != 49 || got["v13"] != 0 || got["v14"] == 0 {
		t.Fatalf("%d distinct outputs (v13 %d, v14 %d), want the 49 others", len(got), got["v13"], got["v14"])
	}
	if n := testutil.ToFloat64(m.DeadLetters.WithLabelValues(consumer.CodeHandlerFailed)); n != 1 {
		t.Fatalf("dead letters metric %v, want 1", n)
	}
}

// A transient failure (an I/O error, here a refused connection) is retried
// for as long as it lasts, and meanwhile Retrying names the partition and
// the partitions-retrying gauge counts it; once it clears, both clear and
// nothing was dead-lettered.
func TestTransientFailureIsReported(t *testing.T) {
	c := kafkatest.New(t, 1, in, out, dlq)
	produceN(c, 20, func(i int) string { return fmt.Sprintf("v%d", i) })
	var broken atomic.Bool
	broken.Store(true)
	var calls atomic.Int64
	h := consumer.HandlerFunc(func(ctx context.Context, topic string, p int32, recs []*kgo.Record) (consumer.Result, error) {
		if broken.Load() {
			calls.Add(1)
			return consumer.Result{}, fmt.Errorf("matcher: apply: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
		}
		return echo(ctx, topic, p, recs)
	})
	m := consumer.NewMetrics(prometheus.NewRegistry())
	cons, stop := startConsumer(t, c, h, m)
	kafkatest.WaitFor(t, 10*time.Second, "retries past the permanent bound", func() bool { return calls.Load() > 10 })
	err := cons.Retrying()
	if err == nil || !strings.Contains(err.Error(), "partition in/0 retrying (unavailable)") {
		t.Fatalf("Retrying = %v, want partition in/0 named", err)
	}
	if got := testutil.ToFloat64(m.Retrying); got != 1 {
		t.Fatalf("partitions retrying %v, want 1", got)
	}
	if got := committed(t, c); got != 0 {
		t.Fatalf("committed %d during the outage", got)
	}
	broken.Store(false)
	kafkatest.WaitFor(t, 20*time.Second, "every record committed", func() bool { return committed(t, c) == 20 })
	if err := cons.Retrying(); err != nil {
		t.Fatalf("Retrying after recovery: %v", err)
	}
	if got := testutil.ToFloat64(m.Retrying); got != 0 {
		t.Fatalf("partitions retrying %v after recovery, want 0", got)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := c.EndOffsets(dlq); n != 0 {
		t.Fatalf("%d records dead-lettered by a transient failure", n)
	}
	if got := len(values(c.ReadAll(out))); got != 20 {
		t.Fatalf("%d distinct outputs, want 20", got)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		code      string
		transient bool
	}{
		{"coded", fmt.Errorf("apply: %w", errUnavailable), "redis_unavailable", true},
		{"dial refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, consumer.CodeUnavailable, true},
		{"deadline", fmt.Errorf("read: %w", context.DeadlineExceeded), consumer.CodeUnavailable, true},
		{"eof", fmt.Errorf("read: %w", io.EOF), consumer.CodeUnavailable, true},
		{"retriable broker error", fmt.Errorf("produce: %w", kerr.NotLeaderForPartition), "not_leader_for_partition", true},
		{"broker refusal", kerr.PolicyViolation, "policy_violation", false},
		{"unclassified", errors.New("plan: index out of range"), consumer.CodeHandlerFailed, false},
	} {
		code, transient := consumer.Classify(tc.err)
		if code != tc.code || transient != tc.transient {
			t.Errorf("%s: Classify = %q %v, want %q %v", tc.name, code, transient, tc.code, tc.transient)
		}
	}
}

// A handler that fails permanently on everything (a broken deployment)
// dead-letters every record once each, instead of stalling the partition.
func TestHandlerFailingEverythingDeadLettersEachRecord(t *testing.T) {
	c := kafkatest.New(t, 1, in, out, dlq)
	produceN(c, 30, func(i int) string { return fmt.Sprintf("v%d", i) })
	h := consumer.HandlerFunc(func(context.Context, string, int32, []*kgo.Record) (consumer.Result, error) {
		return consumer.Result{}, errors.New("tenant config: nil engine")
	})
	stop := start(t, c, h, nil)
	kafkatest.WaitFor(t, 20*time.Second, "every record committed", func() bool { return committed(t, c) == 30 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	dead := c.ReadAll(dlq)
	offsets := map[string]bool{}
	for _, d := range dead {
		if code := string(kafkatest.Header(d, consumer.HeaderErrorCode)); code != consumer.CodeHandlerFailed {
			t.Fatalf("code %q, want %s", code, consumer.CodeHandlerFailed)
		}
		offsets[string(kafkatest.Header(d, consumer.HeaderSourceOffset))] = true
	}
	if len(dead) != 30 || len(offsets) != 30 {
		t.Fatalf("%d dead letters of %d offsets, want each of the 30 once", len(dead), len(offsets))
	}
}
