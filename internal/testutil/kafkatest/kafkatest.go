// Package kafkatest runs an in-process Kafka cluster (kfake) for tests and
// offers small helpers to produce to and read back from it.
package kafkatest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Cluster is a kfake cluster closed at the end of the test.
type Cluster struct {
	*kfake.Cluster
	t testing.TB
}

// New starts a single-broker cluster with the given topics, each with
// partitions partitions.
func New(t testing.TB, partitions int32, topics ...string) *Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...))
	if err != nil {
		t.Fatalf("kafkatest: start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return &Cluster{Cluster: c, t: t}
}

// Addrs returns the broker addresses.
func (c *Cluster) Addrs() []string { return c.ListenAddrs() }

// Client returns a client of the cluster closed at the end of the test.
func (c *Cluster) Client(opts ...kgo.Opt) *kgo.Client {
	c.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.Addrs()...)}, opts...)...)
	if err != nil {
		c.t.Fatalf("kafkatest: client: %v", err)
	}
	c.t.Cleanup(cl.Close)
	return cl
}

// Produce writes recs synchronously and fails the test on any error.
func (c *Cluster) Produce(recs ...*kgo.Record) {
	c.t.Helper()
	cl := c.Client()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		c.t.Fatalf("kafkatest: produce: %v", err)
	}
}

// EndOffsets returns the sum of the end offsets of topic's partitions: the
// number of records ever written to it.
func (c *Cluster) EndOffsets(topic string) int64 {
	c.t.Helper()
	adm := kadm.NewClient(c.Client())
	ends, err := adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		c.t.Fatalf("kafkatest: end offsets: %v", err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// Committed returns the sum of group's committed offsets on topic: how many
// of its records the group finished. A group that has not joined or committed
// yet has finished none (kfake answers GROUP_ID_NOT_FOUND until then).
func (c *Cluster) Committed(group, topic string) int64 {
	c.t.Helper()
	offs, err := kadm.NewClient(c.Client()).FetchOffsets(context.Background(), group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return 0
	}
	if err != nil {
		c.t.Fatalf("kafkatest: committed offsets of %s: %v", group, err)
	}
	var n int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.At > 0 {
			n += o.At
		}
	})
	return n
}

// Working returns how many members of group have partitions assigned while
// the group is stable (no rebalance in progress).
func (c *Cluster) Working(group string) int {
	c.t.Helper()
	gs, err := kadm.NewClient(c.Client()).DescribeGroups(context.Background(), group)
	if err != nil {
		c.t.Fatalf("kafkatest: describe %s: %v", group, err)
	}
	g := gs[group]
	if g.Err != nil || g.State != "Stable" {
		return 0
	}
	n := 0
	for _, m := range g.Members {
		if a, ok := m.Assigned.AsConsumer(); ok && len(a.Topics) > 0 {
			n++
		}
	}
	return n
}

// ReadAll reads every record of topic written so far, partition by partition
// in offset order.
func (c *Cluster) ReadAll(topic string) []*kgo.Record {
	c.t.Helper()
	want := c.EndOffsets(topic)
	cl := c.Client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for int64(len(out)) < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			c.t.Fatalf("kafkatest: read %s: %d of %d records: %v", topic, len(out), want, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { c.t.Fatalf("kafkatest: fetch %s: %v", topic, err) })
		out = append(out, fs.Records()...)
	}
	return out
}

// WaitFor polls cond every 10ms until it holds or timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Header returns the value of the first header named key, or nil.
func Header(r *kgo.Record, key string) []byte {
	for _, h := range r.Headers {
		if h.Key == key {
			return h.Value
		}
	}
	return nil
}
