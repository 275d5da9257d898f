package consumer_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
