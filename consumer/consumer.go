// Package consumer runs a franz-go consumer group with one worker goroutine
// per assigned partition. Each worker hands its fetched batch to a Handler,
// produces what the handler returns (commands and dead letters), waits until
// the broker acknowledged every record, and only then marks the batch's
// offsets for commit. Marks are committed periodically, when partitions are
// revoked (after their workers stopped) and at shutdown, so an offset is never
// committed before the output it caused is durable: at-least-once, with the
// handler's deterministic ids making re-emitted output recognisable.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Dead-letter headers. Values are codes and coordinates, never error text:
// error messages can carry field values (PII).
const (
	HeaderErrorCode = "leadconv_error_code"
	// HeaderErrorReason names the failing JSON path and rule
	// (`/created_at: format date-time`), when the handler knows it.
	HeaderErrorReason     = "leadconv_error_reason"
	HeaderSourceTopic     = "leadconv_source_topic"
	HeaderSourcePartition = "leadconv_source_partition"
	HeaderSourceOffset    = "leadconv_source_offset"
	// HeaderValueTruncated is set on a dead letter whose value was cut to a
	// prefix to fit the producer's limit: the original value's size in bytes.
	HeaderValueTruncated = "leadconv_value_truncated"
	// HeaderCommandTopic names the topic an oversize command was meant for.
	HeaderCommandTopic = "leadconv_command_topic"
)

// CodeCommandTooLarge is the dead-letter code of a command the broker can
// never take (over the producer's record limit).
const CodeCommandTooLarge = "command_too_large"

// DefaultMaxProduceBytes is franz-go's and Kafka's default record batch
// limit (max.message.bytes).
const DefaultMaxProduceBytes = 1_000_012

// DeadLetterOverhead is the room a dead letter needs beyond its input value:
// batch and record framing plus the code and coordinates headers. An input
// of at most MaxProduceBytes-DeadLetterOverhead is dead-lettered whole.
const DeadLetterOverhead = 4 << 10

// maxDeadLetterPrefix bounds the value kept of a record too large to
// dead-letter whole: enough to recognise it, small for any DLQ topic.
const maxDeadLetterPrefix = 64 << 10

// ErrPartitionLost, wrapped in a Handler error, says this member can never
// process the partition (another owner took its state, or the state was
// lost): retrying cannot succeed.
// The partition's worker stops without committing and its fetching stays
// paused until the group revokes the partition and hands it over; the new
// owner reads the batch again.
var ErrPartitionLost = errors.New("consumer: partition taken by another owner")

// Poison is an input record that can never be processed, with a
// machine-readable code naming why.
type Poison struct {
	Record *kgo.Record
	Code   string
	// Reason is the failing JSON path and rule, never a value; optional.
	Reason string
}

// Result is what a handler made of one batch.
type Result struct {
	// Out is produced before the batch is committed; records need a Topic.
	Out []*kgo.Record
	// Poison records go to the dead-letter topic with code headers.
	Poison []Poison
}

// Handler processes one batch of one partition. An error fails the whole
// batch, classified by Classify: a transient one (Redis or the broker
// unavailable) is retried with backoff for as long as it lasts; a permanent
// one at most a few times, then the batch's records are handled one by one
// and those that still fail are dead-lettered with the error's code
// (CodeHandlerFailed when unclassified). Handle must be idempotent:
// re-applying a batch yields the same output. Known per-record failures
// belong in Result.Poison instead. An error wrapping ErrPartitionLost is
// not retried: the worker stops.
type Handler interface {
	Handle(ctx context.Context, topic string, partition int32, recs []*kgo.Record) (Result, error)
}

// Releaser is implemented by handlers that keep state per partition (its
// owner): Release is called once a partition's worker stopped, before the
// partition can be processed again here, so the next batch of it starts a
// new owner.
type Releaser interface {
	Release(topic string, partition int32)
}

// Ticker is implemented by handlers with work due without input (settle
// timers). When a partition's worker has no batch queued it asks Due and,
// once that time came, calls Tick; Tick's Result is produced like a
// batch's, with no offsets to commit, and its errors are retried like a
// batch's. Ticks are at least MinTick apart, so a handler always due does
// not spin its worker.
type Ticker interface {
	// Due reports when the partition next has work due; false: none.
	Due(topic string, partition int32) (time.Time, bool)
	Tick(ctx context.Context, topic string, partition int32) (Result, error)
}

// MinTick is the least time between two ticks of a partition. Small: a
// window closed on the wall clock waits for it (at 20 ms the command p99
// of a tenant whose input paused was about 70 ms, at 5 ms about 42;
// BENCHMARKS.md).
const MinTick = 5 * time.Millisecond

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, topic string, partition int32, recs []*kgo.Record) (Result, error)

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, topic string, partition int32, recs []*kgo.Record) (Result, error) {
	return f(ctx, topic, partition, recs)
}

// Config configures a Consumer.
type Config struct {
	Brokers []string
	Group   string
	Topics  []string
	// DLQTopic receives poison records (default "leadconv.dlq").
	DLQTopic string
	ClientID string
	// MaxPollRecords bounds one poll across all partitions (default 5000).
	MaxPollRecords int
	// RevokeGrace is how long a revoked or stopping worker may take to finish
	// its batch before it is abandoned uncommitted (default 10s).
	RevokeGrace time.Duration
	// CommitInterval is the period of marked-offset commits (default 1s).
	CommitInterval time.Duration
	// LagInterval is the period of the lag metric's refresh from the
	// group's committed offsets (default 10s).
	LagInterval time.Duration
	// FetchMinBytes and FetchMaxWait: a fetch waits up to FetchMaxWait for
	// FetchMinBytes of records across its partitions (defaults 8 KiB and
	// 10ms). At low rates that gathers several events per batch, where
	// answering at the first record makes every batch pay its round trips
	// for one or two events: at 2,000 events/s it cost 30% less CPU per
	// event, a steadier p99 and a median 6 ms higher (BENCHMARKS.md). At
	// high rates the bytes are there at once. FetchMinBytes 1 answers as
	// soon as anything arrives.
	FetchMinBytes int32
	FetchMaxWait  time.Duration
	// ResetOffset is where a group without committed offsets starts
	// (default: the start of the topic).
	ResetOffset *kgo.Offset
	// Backoff bounds the retry delay of transient failures (defaults 50ms..5s).
	MinBackoff, MaxBackoff time.Duration
	// Processed, when set, is called by a partition's worker after the
	// output of recs was acknowledged and their offsets marked for commit
	// (benchmarks measure latency to the ack with it). It must not block.
	Processed func(topic string, partition int32, recs []*kgo.Record)
	// MaxProduceBytes is the producer's record batch limit (default
	// DefaultMaxProduceBytes), capped per topic by SetTopicLimits. Dead
	// letters are cut to fit the dead-letter topic's.
	MaxProduceBytes int
	// Opts are appended to the client options (TLS, SASL, tests).
	Opts    []kgo.Opt
	Logger  zerolog.Logger
	Metrics *Metrics
}

// Fetch defaults; FetchMaxWait cannot go below MinFetchMaxWait (franz-go's
// floor).
const (
	DefaultFetchMinBytes = 8 << 10
	DefaultFetchMaxWait  = 10 * time.Millisecond
	MinFetchMaxWait      = 10 * time.Millisecond
)

func (c *Config) defaults() {
	if c.DLQTopic == "" {
		c.DLQTopic = "leadconv.dlq"
	}
	if c.ClientID == "" {
		c.ClientID = "leadconv"
	}
	if c.MaxPollRecords <= 0 {
		c.MaxPollRecords = 5000
	}
	if c.RevokeGrace <= 0 {
		c.RevokeGrace = 10 * time.Second
	}
	if c.CommitInterval <= 0 {
		c.CommitInterval = time.Second
	}
	if c.LagInterval <= 0 {
		c.LagInterval = 10 * time.Second
	}
	if c.FetchMinBytes <= 0 {
		c.FetchMinBytes = DefaultFetchMinBytes
	}
	if c.FetchMaxWait <= 0 {
		c.FetchMaxWait = DefaultFetchMaxWait
	}
	if c.MaxProduceBytes <= 0 {
		c.MaxProduceBytes = DefaultMaxProduceBytes
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 50 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Second
	}
}

type tp struct {
	topic     string
	partition int32
}

// Consumer is one member of the consumer group.
type Consumer struct {
	cfg     Config
	h       Handler
	cl      *kgo.Client
	log     zerolog.Logger
	metrics *Metrics

	mu      sync.Mutex
	workers map[tp]*worker
	// base is the parent of every worker context: cancelled only when the
	// consumer is done, never by the poll context, so that a shutdown lets
	// in-flight batches finish.
	base       context.Context
	baseCancel context.CancelFunc
	// limits are the output topics' max.message.bytes (SetTopicLimits).
	limits atomic.Pointer[map[string]int]
	// lagNow asks for a lag refresh (partitions were assigned).
	lagNow chan struct{}
	// clientCancel aborts the client's requests: a shutdown past its
	// deadline interrupts a rejoin the broker holds.
	clientCancel context.CancelFunc
}

// New creates the client and joins nothing yet; Run starts consuming.
func New(cfg Config, h Handler) (*Consumer, error) {
	cfg.defaults()
	if len(cfg.Brokers) == 0 || cfg.Group == "" || len(cfg.Topics) == 0 {
		return nil, errors.New("consumer: brokers, group and topics are required")
	}
	c := &Consumer{cfg: cfg, h: h, log: cfg.Logger, metrics: cfg.Metrics, workers: map[tp]*worker{}, lagNow: make(chan struct{}, 1)}
	c.base, c.baseCancel = context.WithCancel(context.Background())
	clientCtx, clientCancel := context.WithCancel(context.Background())
	reset := kgo.NewOffset().AtStart()
	if cfg.ResetOffset != nil {
		reset = *cfg.ResetOffset
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		// The topics are added by Run: a client consuming them would join
		// the group at once and hold partitions it does not process while
		// the service still waits for its dependencies.
		kgo.ConsumerGroup(cfg.Group),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.ConsumeResetOffset(reset),
		kgo.BlockRebalanceOnPoll(),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(cfg.CommitInterval),
		kgo.OnPartitionsAssigned(c.assigned),
		kgo.OnPartitionsRevoked(c.revoked),
		kgo.OnPartitionsLost(c.lost),
		// Keys are tenant/cluster_id: the default sticky key partitioner keeps
		// every command of a cluster on one partition, in order.
		kgo.ProducerLinger(time.Millisecond),
		// Asked once per partition, at its first produce (after
		// SetTopicLimits).
		kgo.ProducerBatchMaxBytesFn(func(topic string) int32 { return int32(c.Limit(topic)) }),
		kgo.FetchMinBytes(cfg.FetchMinBytes),
		kgo.FetchMaxWait(cfg.FetchMaxWait),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.WithContext(clientCtx),
	}
	cl, err := kgo.NewClient(append(opts, cfg.Opts...)...)
	if err != nil {
		clientCancel()
		return nil, fmt.Errorf("consumer: new client: %w", err)
	}
	c.cl, c.clientCancel = cl, clientCancel
	return c, nil
}

// SetTopicLimits caps the producer's limit per topic (their
// max.message.bytes), so that no batch exceeds what the broker accepts for
// its topic; call it before Run.
func (c *Consumer) SetTopicLimits(limits map[string]int) {
	c.limits.Store(&limits)
}

// Limit is the largest record batch produced to topic: MaxProduceBytes, or
// the topic's limit when smaller.
func (c *Consumer) Limit(topic string) int {
	if m := c.limits.Load(); m != nil {
		if l, ok := (*m)[topic]; ok && l < c.cfg.MaxProduceBytes {
			return l
		}
	}
	return c.cfg.MaxProduceBytes
}

// Committed reports whether the group has a committed offset past the start
// of the partition (fetched on joining, or committed since): work on it was
// done before, by this member or another.
func (c *Consumer) Committed(topic string, partition int32) bool {
	o, ok := c.cl.CommittedOffsets()[topic][partition]
	return ok && o.Offset > 0
}

// Client returns the underlying client, for readiness pings.
func (c *Consumer) Client() *kgo.Client { return c.cl }

// closeMargin is what the final commit and the leave may take beyond
// RevokeGrace when the workers used all of it.
const closeMargin = 2 * time.Second

// Run polls until ctx is cancelled, then shuts down gracefully: it stops
// fetching, lets workers finish their batches (within RevokeGrace), commits
// what they completed and leaves the group, all within RevokeGrace plus
// closeMargin. It returns nil on a clean stop.
func (c *Consumer) Run(ctx context.Context) error {
	defer c.baseCancel()
	c.cl.AddConsumeTopics(c.cfg.Topics...)
	lagDone := make(chan struct{})
	lagCtx, stopLag := context.WithCancel(ctx)
	go func() {
		defer close(lagDone)
		c.refreshLag(lagCtx)
	}()
	defer func() { stopLag(); <-lagDone }()
	for {
		fetches := c.cl.PollRecords(ctx, c.cfg.MaxPollRecords)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			c.cl.AllowRebalance()
			break
		}
		fetches.EachError(func(t string, p int32, err error) {
			// Fetch errors are retried by the client; surface them for operators.
			c.log.Warn().Str("topic", t).Int32("partition", p).Err(err).Msg("fetch error")
		})
		c.mu.Lock()
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			w := c.workers[tp{p.Topic, p.Partition}]
			if w == nil {
				// Cannot happen with BlockRebalanceOnPoll: records only come
				// for partitions assigned before this poll.
				return
			}
			// Never waits: a worker that falls behind (an outage, a slow
			// batch) has its partition paused instead.
			w.enqueue(p.Records)
		})
		c.mu.Unlock()
		c.cl.AllowRebalance()
	}
	deadline := time.Now().Add(c.cfg.RevokeGrace)
	c.stopAll()
	if d := time.Now().Add(closeMargin); d.After(deadline) {
		deadline = d
	}
	cctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	err := c.cl.CommitMarkedOffsets(cctx)
	if err != nil {
		err = fmt.Errorf("consumer: final commit: %w", err)
	}
	// Leaving waits for a pending rebalance to complete: the broker answers
	// the rejoin only once every member rejoined, up to the rebalance
	// timeout (SIGTERM took 38s in a trial). Past the deadline the client's
	// requests are aborted and the member stops without leaving; the group
	// drops it at its session timeout.
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		c.cl.CloseAllowingRebalance()
	}()
	select {
	case <-closed:
	case <-cctx.Done():
		c.log.Warn().Msg("stopped before leaving the group: a rebalance is pending; the group drops this member at its session timeout")
		c.clientCancel()
		<-closed
	}
	c.clientCancel()
	return err
}

// refreshLag sets the lag of every partition this member owns, every
// LagInterval and after each assignment, until ctx is done: the high
// watermark less the group's committed offset, so that a partition whose
// records arrive while nothing is committed (a stuck worker) shows a
// growing lag.
func (c *Consumer) refreshLag(ctx context.Context) {
	if c.metrics == nil {
		return
	}
	adm := kadm.NewClient(c.cl)
	t := time.NewTicker(c.cfg.LagInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.lagNow:
		}
		if err := c.setLag(ctx, adm); err != nil && ctx.Err() == nil {
			c.log.Debug().Err(err).Msg("lag not refreshed")
		}
	}
}

func (c *Consumer) setLag(ctx context.Context, adm *kadm.Client) error {
	c.mu.Lock()
	var owned []string
	for k := range c.workers {
		if !slices.Contains(owned, k.topic) {
			owned = append(owned, k.topic)
		}
	}
	c.mu.Unlock()
	if len(owned) == 0 {
		return nil
	}
	committed, err := adm.FetchOffsetsForTopics(ctx, c.cfg.Group, owned...)
	if err != nil {
		return fmt.Errorf("fetch committed offsets: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, owned...)
	if err != nil {
		return fmt.Errorf("list end offsets: %w", err)
	}
	// A partition never committed is behind from its start.
	starts, err := adm.ListStartOffsets(ctx, owned...)
	if err != nil {
		return fmt.Errorf("list start offsets: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.workers {
		end, ok := ends.Lookup(k.topic, k.partition)
		if !ok || end.Err != nil {
			continue
		}
		from := int64(-1)
		if o, ok := committed.Lookup(k.topic, k.partition); ok && o.Err == nil {
			from = o.At
		}
		if from < 0 {
			if s, ok := starts.Lookup(k.topic, k.partition); ok && s.Err == nil {
				from = s.Offset
			}
		}
		if from >= 0 {
			c.metrics.Lag.WithLabelValues(k.topic, strconv.Itoa(int(k.partition))).Set(float64(max(0, end.Offset-from)))
		}
	}
	return nil
}

func (c *Consumer) stopAll() {
	c.mu.Lock()
	all := make(map[string][]int32)
	for k := range c.workers {
		all[k.topic] = append(all[k.topic], k.partition)
	}
	c.mu.Unlock()
	c.stop(all, c.cfg.RevokeGrace)
}

func (c *Consumer) assigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for topic, parts := range assigned {
		for _, p := range parts {
			k := tp{topic, p}
			if c.workers[k] != nil {
				continue
			}
			w := c.newWorker(topic, p)
			c.workers[k] = w
			go w.run()
		}
	}
	c.log.Info().Interface("partitions", assigned).Msg("partitions assigned")
	// New partitions get their series at once, not at the next tick.
	select {
	case c.lagNow <- struct{}{}:
	default:
	}
}

// revoked stops the workers of the revoked partitions and waits for them
// before committing: a mark after this callback returns could commit an
// offset for a partition another member already consumes.
func (c *Consumer) revoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	c.stop(revoked, c.cfg.RevokeGrace)
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		c.log.Warn().Err(err).Msg("commit on revoke failed")
	}
	c.log.Info().Interface("partitions", revoked).Msg("partitions revoked")
}

// lost stops workers at once: the partitions already belong to someone else
// and a commit would be rejected or, worse, rewind them.
func (c *Consumer) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	c.stop(lost, 0)
	c.log.Warn().Interface("partitions", lost).Msg("partitions lost")
}

// stop ends the named workers: each finishes its current batch within grace,
// then is cancelled (abandoning the batch unmarked). Batches still queued are
// dropped unmarked; the next owner re-reads them.
func (c *Consumer) stop(parts map[string][]int32, grace time.Duration) {
	c.mu.Lock()
	var ws []*worker
	for topic, ps := range parts {
		for _, p := range ps {
			k := tp{topic, p}
			if w := c.workers[k]; w != nil {
				ws = append(ws, w)
				delete(c.workers, k)
				if c.metrics != nil {
					// Another member reports it now.
					c.metrics.Lag.DeleteLabelValues(topic, strconv.Itoa(int(p)))
				}
			}
		}
	}
	c.mu.Unlock()
	for _, w := range ws {
		close(w.quit)
	}
	expired := time.After(grace)
	for _, w := range ws {
		select {
		case <-w.done:
		case <-expired:
			// Past the grace period: abandon every unfinished batch.
			for _, w := range ws {
				w.cancel()
			}
			<-w.done
		}
	}
	for _, w := range ws {
		w.cancel()
		w.unpause()
		if r, ok := c.h.(Releaser); ok {
			r.Release(w.topic, w.partition)
		}
	}
}

// Backoff returns the delay before retry attempt n (0-based): exponential
// from min, capped at max, with up to 25% jitter removed so that workers
// retrying the same outage spread out.
func Backoff(n int, min, max time.Duration, jitter func(int64) int64) time.Duration {
	d := min
	for range n {
		d *= 2
		if d >= max {
			d = max
			break
		}
	}
	if q := int64(d) / 4; q > 0 && jitter != nil {
		d -= time.Duration(jitter(q))
	}
	return d
}

// sleep waits d or until ctx is done, reporting whether the full delay passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
