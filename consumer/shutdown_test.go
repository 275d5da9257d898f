package consumer_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/consumer"
	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
)

// A shutdown while a rebalance is pending is bounded by RevokeGrace and a
// small margin: leaving the group would wait until every member rejoined
// (here a member that never does, up to its 20s rebalance timeout).
func TestShutdownDuringPendingRebalanceIsBounded(t *testing.T) {
	c := kafkatest.New(t, 4, in, out, dlq)
	produceN(c, 100, func(i int) string { return fmt.Sprintf("v%d", i) })
	const grace = time.Second
	const rebalance = 20 * time.Second
	cons, err := consumer.New(consumer.Config{
		Brokers: c.Addrs(), Group: "g", Topics: []string{in}, DLQTopic: dlq,
		CommitInterval: 100 * time.Millisecond, RevokeGrace: grace, Logger: zerolog.Nop(),
		Opts: []kgo.Opt{kgo.HeartbeatInterval(100 * time.Millisecond), kgo.RebalanceTimeout(rebalance)},
	}, consumer.HandlerFunc(echo))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx) }()
	kafkatest.WaitFor(t, 10*time.Second, "the first member's commits", func() bool { return committed(t, c) == 100 })

	// B joins, polls once and then never allows a rebalance: the group's
	// next rebalance waits for it.
	// Their closes would wait for the rebalance too: their requests are
	// aborted at the end instead.
	others, abort := context.WithCancel(context.Background())
	defer abort()
	groupOpts := []kgo.Opt{kgo.WithContext(others), kgo.ConsumerGroup("g"), kgo.ConsumeTopics(in), kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.HeartbeatInterval(100 * time.Millisecond), kgo.RebalanceTimeout(rebalance)}
	var assigned atomic.Bool
	b := c.Client(append(groupOpts, kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { assigned.Store(len(m[in]) > 0) }))...)
	defer b.AllowRebalance() // its Close would hang on the rebalance it holds
	kafkatest.WaitFor(t, 10*time.Second, "B's assignment", func() bool {
		pctx, pcancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer pcancel()
		b.PollFetches(pctx)
		if !assigned.Load() {
			b.AllowRebalance()
			return false
		}
		return true
	})
	// C joins: a rebalance starts that B holds up.
	cc := c.Client(groupOpts...)
	go cc.PollFetches(ctx)
	time.Sleep(time.Second)

	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(rebalance):
		t.Fatal("shutdown waited for the pending rebalance")
	}
	took := time.Since(start)
	t.Logf("stopped %s after the cancel", took.Round(time.Millisecond))
	if bound := grace + 2*time.Second + time.Second; took > bound {
		t.Fatalf("shutdown took %s, more than RevokeGrace %s and the margin", took, grace)
	}
}
