package consumer_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/consumer"
	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
)

// lags returns the lag series of m by "topic/partition".
func lags(t *testing.T, m *consumer.Metrics) map[string]float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 64)
	m.Lag.Collect(ch)
	close(ch)
	out := map[string]float64{}
	for pm := range ch {
		var d dto.Metric
		if err := pm.Write(&d); err != nil {
			t.Fatal(err)
		}
		var topic, part string
		for _, l := range d.GetLabel() {
			switch l.GetName() {
			case "topic":
				topic = l.GetValue()
			case "partition":
				part = l.GetValue()
			}
		}
		out[topic+"/"+part] = d.GetGauge().GetValue()
	}
	return out
}

func member(t *testing.T, c *kafkatest.Cluster, h consumer.Handler) (*consumer.Metrics, func()) {
	t.Helper()
	m := consumer.NewMetrics(prometheus.NewRegistry())
	cons, err := consumer.New(consumer.Config{
		Brokers: c.Addrs(), Group: "g", Topics: []string{in}, DLQTopic: dlq,
		CommitInterval: 100 * time.Millisecond, LagInterval: 50 * time.Millisecond, RevokeGrace: 5 * time.Second,
		Logger: zerolog.Nop(), Metrics: m,
		Opts: []kgo.Opt{kgo.HeartbeatInterval(100 * time.Millisecond)},
	}, h)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return m, stop
}

// The lag is the group's committed offset against the high watermark: a
// partition whose worker is stuck shows every record that arrived, and
// falls to 0 once it committed; a partition revoked from a member leaves
// its series.
func TestLagFromCommittedOffsets(t *testing.T) {
	c := kafkatest.New(t, 2, in, out, dlq)
	release := make(chan struct{})
	stuck := consumer.HandlerFunc(func(ctx context.Context, topic string, p int32, recs []*kgo.Record) (consumer.Result, error) {
		if p == 0 {
			select {
			case <-release:
			case <-ctx.Done():
				return consumer.Result{}, ctx.Err()
			}
		}
		return echo(ctx, topic, p, recs)
	})
	m, _ := member(t, c, stuck)
	kafkatest.WaitFor(t, 10*time.Second, "both partitions' lag at 0", func() bool {
		l := lags(t, m)
		return len(l) == 2 && l[in+"/0"] == 0 && l[in+"/1"] == 0
	})

	cl := c.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produce := func(p int32, n int) {
		recs := make([]*kgo.Record, n)
		for i := range recs {
			recs[i] = &kgo.Record{Topic: in, Partition: p, Value: []byte("v" + strconv.Itoa(i))}
		}
		if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, 7)
	produce(1, 5)
	kafkatest.WaitFor(t, 10*time.Second, "the stuck partition's lag", func() bool {
		l := lags(t, m)
		return l[in+"/0"] == 7 && l[in+"/1"] == 0
	})
	produce(0, 3)
	kafkatest.WaitFor(t, 10*time.Second, "the stuck partition's lag growing", func() bool { return lags(t, m)[in+"/0"] == 10 })
	close(release)
	kafkatest.WaitFor(t, 10*time.Second, "the lag back at 0 after the commit", func() bool { return lags(t, m)[in+"/0"] == 0 })

	// A second member takes one partition: each member reports only its own.
	m2, _ := member(t, c, consumer.HandlerFunc(echo))
	kafkatest.WaitFor(t, 20*time.Second, "one series per member", func() bool {
		a, b := lags(t, m), lags(t, m2)
		if len(a) != 1 || len(b) != 1 {
			return false
		}
		for k := range a {
			if _, ok := b[k]; ok {
				return false
			}
		}
		return true
	})
}

// A produce that fails names the output topic, in the retry's warning and
// in leadconv_produce_errors_total{topic}: the warning used to carry only
// the worker's input topic, pointing an operator at the wrong one.
func TestProduceErrorsNameTheOutputTopic(t *testing.T) {
	c := kafkatest.New(t, 1, in, dlq) // no "out"
	produceN(c, 3, func(i int) string { return "v" + strconv.Itoa(i) })
	var logs syncBuf
	m := consumer.NewMetrics(prometheus.NewRegistry())
	cons, err := consumer.New(consumer.Config{
		Brokers: c.Addrs(), Group: "g", Topics: []string{in}, DLQTopic: dlq,
		MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond, RevokeGrace: time.Second,
		Logger: zerolog.New(&logs), Metrics: m,
		Opts: []kgo.Opt{kgo.UnknownTopicRetries(0)},
	}, consumer.HandlerFunc(echo))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx) }()
	kafkatest.WaitFor(t, 20*time.Second, "a retry naming the output topic", func() bool {
		return strings.Contains(logs.String(), `"error":"produce to out: `) && testutil.ToFloat64(m.ProduceErrors.WithLabelValues(out)) > 0
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := committed(t, c); n != 0 {
		t.Fatalf("%d offsets committed without the output", n)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
