package pipeline

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/consumer"
	"github.com/leadconv/leadconv/events"
	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/matcher/gen"
)

// BenchConfig configures Bench. Zero values take the defaults named per
// field.
type BenchConfig struct {
	// Redis serves the matcher store and the raw ceiling's script
	// (required). Bench writes under Namespace and leaves the keys there:
	// the caller deletes them.
	Redis     redis.UniversalClient
	Namespace string // default "bench"
	// Brokers is an existing cluster; empty starts an in-process kfake
	// broker, whose memory then counts in the process's RSS.
	Brokers []string
	// KafkaOpts are the clients' extra options for Brokers (TLS, SASL).
	KafkaOpts []kgo.Opt
	// Config is the tenants' configuration; nil uses the defaults with the
	// generator's contact field map, so generated contacts match leads.
	Config *config.File
	// Settle, when set, is the settle window of that generated
	// configuration (with Config nil); nil keeps the shipped default.
	Settle *time.Duration
	// Events is the size of the throughput data set (default 200,000).
	Events int
	// Tenants spreads the throughput data set over this many tenants
	// (default 1: one tenant alone, the single-owner ceiling).
	Tenants    int
	Partitions int32 // default 6
	// ResidentBytes bounds the owners' resident state (0: the default).
	ResidentBytes int64
	// Rate is the offered rate of the latency run in events/s (default
	// 2,000), for LatencyEvents events (default 20,000: ten seconds).
	Rate          int
	LatencyEvents int
	// LatencyRuns repeats the latency run (default 1), each with a fresh
	// tenant, through the same running pipeline: on a machine whose speed
	// drifts, the median of several runs is the steadier figure.
	LatencyRuns int
	Seed        uint64 // default 1
	// FetchMinBytes and FetchMaxWait tune the pipelines' fetching
	// (consumer.Config; zero: the defaults).
	FetchMinBytes int32
	FetchMaxWait  time.Duration
	Logger        zerolog.Logger
	// Registerer, when set, registers the owners' matcher metrics (round
	// trips per batch, resident bytes and hit rate).
	Registerer prometheus.Registerer
	// Progress, when set, is told when a phase starts.
	Progress func(phase string)
}

// Throughput is one run over a pre-produced topic: from the consumer's
// start to the acknowledgement of the last event's output.
type Throughput struct {
	Events  int
	Elapsed time.Duration
	PerSec  float64
}

// Latency is the distribution of the time from an event's produce to the
// acknowledgement of its batch (its state durable, the commands planned at
// once acknowledged), at a fixed offered rate, and of the time from the
// last change of a cluster to the acknowledgement of each command planned
// for it, less the settle window (CommandLatency).
type Latency struct {
	Rate          int
	Events        int
	P50, P99, Max time.Duration
	// Commands were acknowledged during the run, each planned for a
	// cluster whose latest change, its CloudEvents time, the run's event
	// time made the time of its produce.
	Commands int
	// CmdP50, CmdP99 and CmdMax are of the commands' ack time less their
	// CloudEvents time less the settle window: what planning and producing
	// add to the wait the window asks for. A cluster planned by max_settle
	// while still changing comes out negative (CmdNegative counts them).
	CmdP50, CmdP99, CmdMax time.Duration
	CmdNegative            int
}

// BenchResult is what Bench measured. RSS figures are the process's
// resident set in bytes (0 where /proc is not available): at the start and
// the end of each phase, and the peak (VmHWM) over the whole run.
type BenchResult struct {
	Raw  Throughput
	Full Throughput
	// Latency is the run with the median command p99; LatencyRuns are all
	// the runs, in order.
	Latency     Latency
	LatencyRuns []Latency
	// Settle is the latency tenants' settle window.
	Settle time.Duration
	// Ratio is Full.PerSec / Raw.PerSec.
	Ratio   float64
	RSS     []RSSSample
	PeakRSS int64
	// ResidentBytes is the owners' resident matcher state at the end.
	ResidentBytes int64
	// MatcherFull and MatcherLatency are the owners' batches, Redis round
	// trips and resident hits and misses of the full and latency phases.
	MatcherFull, MatcherLatency matcher.Stats
	// SideWritesFull and SideWritesLatency count the owners' writes of
	// lifecycle state with no input batch (a timer fired, plans released):
	// round trips beside the batches' (MatcherFull, MatcherLatency).
	SideWritesFull, SideWritesLatency int64
}

// sideCounter counts an owner's WriteSide calls.
type sideCounter struct {
	Owner
	n *atomic.Int64
}

func (s sideCounter) WriteSide(ctx context.Context, side map[string]matcher.Side) error {
	if len(side) > 0 { // an empty one writes nothing
		s.n.Add(1)
	}
	return s.Owner.WriteSide(ctx, side)
}

// RSSSample is the resident set at a named point of the run.
type RSSSample struct {
	Point string
	Bytes int64
}

// Topics and groups of the benchmark; the raw and full runs read the same
// input with different groups.
const (
	benchRecords     = "bench.records"
	benchByTenant    = "bench.records.by-tenant"
	benchLatByTenant = "bench.latency.records.by-tenant"
	benchRawOut      = "bench.raw.out"
	benchCommands    = "bench.commands"
	benchLatRecords  = "bench.latency.records"
	benchLatCommands = "bench.latency.commands"
	benchDLQ         = "bench.dlq"
)

// rawScript is the raw ceiling's per-event work: one script call that
// stores the event's size under its id, no matching logic.
var rawScript = redis.NewScript(`return redis.call('SET', KEYS[1], string.len(ARGV[1]))`)

// Bench measures, in one run: the raw ceiling (Kafka in, one pipelined
// EVALSHA per event, one record per event out, through the same consumer,
// commit and produce path), the full pipeline over the same generated
// events, and the latency from produce to command ack at a fixed offered
// rate with a fresh tenant.
func Bench(ctx context.Context, bc BenchConfig) (BenchResult, error) {
	var res BenchResult
	if bc.Redis == nil {
		return res, errors.New("pipeline: bench: a Redis client is required")
	}
	bc.defaults()
	if bc.Config == nil {
		cfg, err := generatedConfig(bc.Settle)
		if err != nil {
			return res, err
		}
		bc.Config = cfg
	}
	rss := func(point string) { res.RSS = append(res.RSS, RSSSample{point, readRSS("VmRSS")}) }
	progress := func(phase string) {
		if bc.Progress != nil {
			bc.Progress(phase)
		}
	}
	rss("start")

	brokers := bc.Brokers
	topics := []string{benchRecords, benchByTenant, benchRawOut, benchCommands, benchLatRecords, benchLatByTenant, benchLatCommands, benchDLQ}
	if len(brokers) == 0 {
		fake, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(bc.Partitions, topics...))
		if err != nil {
			return res, fmt.Errorf("pipeline: bench: start kfake: %w", err)
		}
		defer fake.Close()
		brokers = fake.ListenAddrs()
	}
	cl, err := kgo.NewClient(append(slices.Clip(bc.KafkaOpts), kgo.SeedBrokers(brokers...), kgo.ProducerLinger(time.Millisecond),
		kgo.MaxBufferedRecords(1<<16))...)
	if err != nil {
		return res, fmt.Errorf("pipeline: bench: client: %w", err)
	}
	defer cl.Close()
	if len(bc.Brokers) > 0 {
		if _, err := kadm.NewClient(cl).CreateTopics(ctx, bc.Partitions, 1, nil, topics...); err != nil {
			return res, fmt.Errorf("pipeline: bench: create topics: %w", err)
		}
	}

	progress("produce")
	parts := make([][]*kgo.Record, bc.Tenants)
	for t := range parts {
		tenant := "bench"
		if bc.Tenants > 1 {
			tenant += "-" + strconv.Itoa(t)
		}
		// Each tenant's event time runs at its share of the offered rate: a
		// backlog of the stream the latency runs offer live, so that the
		// settle windows close as they would on it.
		step := time.Duration(bc.Tenants) * time.Second / time.Duration(bc.Rate)
		if parts[t], err = benchRecordsOf(bc.Seed+uint64(t)*1000, tenant, bc.Events/bc.Tenants, benchRecords, step); err != nil {
			return res, err
		}
	}
	// Interleaved, as the tenants' change streams would arrive.
	var recs []*kgo.Record
	for i := 0; i == 0 || i < len(parts[0]); i++ {
		for _, part := range parts {
			if i < len(part) {
				recs = append(recs, part[i])
			}
		}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return res, fmt.Errorf("pipeline: bench: produce input: %w", err)
	}
	n := len(recs)
	recs = nil // the broker holds them now
	rss("produced")

	if err := rawScript.Load(ctx, bc.Redis).Err(); err != nil {
		return res, fmt.Errorf("pipeline: bench: load script: %w", err)
	}
	resident := matcher.NewResident(matcher.ResidentOptions{MaxBytes: bc.ResidentBytes, Logger: bc.Logger, Registerer: bc.Registerer})
	var sideWrites atomic.Int64
	owners := func() Owner {
		return sideCounter{matcher.NewStore(bc.Redis, matcher.StoreOptions{Namespace: bc.Namespace, Rules: bc.Config.Rules, Resident: resident}), &sideWrites}
	}
	progress("raw")
	raw := consumer.HandlerFunc(func(ctx context.Context, _ string, _ int32, recs []*kgo.Record) (consumer.Result, error) {
		pipe := bc.Redis.Pipeline()
		for _, r := range recs {
			rawScript.EvalSha(ctx, pipe, []string{bc.Namespace + ":raw:" + string(r.Key)}, r.Value)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return consumer.Result{}, fmt.Errorf("bench: raw script: %w", err)
		}
		out := make([]*kgo.Record, len(recs))
		for i, r := range recs {
			out[i] = &kgo.Record{Topic: benchRawOut, Key: r.Key, Value: r.Value}
		}
		return consumer.Result{Out: out}, nil
	})
	res.Raw, err = throughput(ctx, n, func(done func(string, int32, []*kgo.Record)) (runner, error) {
		return consumer.New(consumer.Config{
			Brokers: brokers, Group: "bench-raw", Topics: []string{benchRecords}, DLQTopic: benchDLQ,
			Processed: done, Logger: bc.Logger, Opts: bc.KafkaOpts,
		}, raw)
	})
	if err != nil {
		return res, err
	}
	rss("raw")

	progress("full")
	stats0 := resident.Stats()
	res.Full, err = throughput(ctx, n, func(done func(string, int32, []*kgo.Record)) (runner, error) {
		return New(Config{
			Brokers: brokers, Group: "bench-full", RecordsTopic: benchRecords, ByTenantTopic: benchByTenant,
			CommandsTopic: benchCommands, DLQTopic: benchDLQ, Logger: bc.Logger,
			FetchMinBytes: bc.FetchMinBytes, FetchMaxWait: bc.FetchMaxWait, Opts: bc.KafkaOpts,
			// Done once the owners processed the routed events.
			Processed: func(topic string, p int32, recs []*kgo.Record) {
				if topic == benchByTenant {
					done(topic, p, recs)
				}
			},
		}, owners, bc.Config)
	})
	if err != nil {
		return res, err
	}
	if res.Raw.PerSec > 0 {
		res.Ratio = res.Full.PerSec / res.Raw.PerSec
	}
	rss("full")
	stats1 := resident.Stats()
	res.MatcherFull = stats1.Sub(stats0)
	res.SideWritesFull = sideWrites.Swap(0)

	if len(bc.Brokers) == 0 {
		// The in-process broker holds every record of the throughput runs in
		// this process's heap, which a deployed leadconv never does (its
		// broker runs elsewhere): drop those topics, so the latency run
		// measures the pipeline rather than the collector scanning them.
		// The freed heap goes back to the system now, not while the latency
		// runs are measured.
		if _, err := kadm.NewClient(cl).DeleteTopics(ctx, benchRecords, benchByTenant, benchRawOut, benchCommands); err != nil {
			return res, fmt.Errorf("pipeline: bench: delete throughput topics: %w", err)
		}
		debug.FreeOSMemory()
		rss("throughput topics dropped")
	}

	// The latency runs' events are made before the phase starts, so their
	// generation is not counted in its CPU time.
	runs := make([][]*kgo.Record, bc.LatencyRuns)
	for k := range runs {
		// One more event than measured in the first run: it warms up (the
		// consumer group joins and gets its partitions), and is not counted.
		n := bc.LatencyEvents
		if k == 0 {
			n++
		}
		tenant := "bench-latency"
		if k > 0 {
			tenant += "-" + strconv.Itoa(k+1)
		}
		// Their event time is their produce time (offer stamps it).
		if runs[k], err = benchRecordsOf(bc.Seed+1+uint64(k), tenant, n, benchLatRecords, time.Second/time.Duration(bc.Rate)); err != nil {
			return res, err
		}
	}
	lt, err := bc.Config.Tenant("bench-latency")
	if err != nil {
		return res, fmt.Errorf("pipeline: bench: %w", err)
	}
	res.Settle = time.Duration(lt.Engine.Settle)
	progress("latency")
	res.LatencyRuns, err = latency(ctx, bc, brokers, cl, owners, runs, res.Settle, time.Duration(lt.Engine.MaxSettle))
	if err != nil {
		return res, err
	}
	byP99 := slices.Clone(res.LatencyRuns)
	slices.SortStableFunc(byP99, func(a, b Latency) int { return cmp.Compare(a.CmdP99, b.CmdP99) })
	res.Latency = byP99[(len(byP99)-1)/2]
	rss("latency")
	res.PeakRSS = readRSS("VmHWM")
	res.ResidentBytes = resident.Bytes()
	res.MatcherLatency = resident.Stats().Sub(stats1)
	res.SideWritesLatency = sideWrites.Load()
	return res, nil
}

func (bc *BenchConfig) defaults() {
	if bc.Namespace == "" {
		bc.Namespace = "bench"
	}
	if bc.Events <= 0 {
		bc.Events = 200_000
	}
	if bc.Partitions <= 0 {
		bc.Partitions = 6
	}
	if bc.Rate <= 0 {
		bc.Rate = 2000
	}
	if bc.LatencyEvents <= 0 {
		bc.LatencyEvents = 20_000
	}
	if bc.Seed == 0 {
		bc.Seed = 1
	}
	if bc.LatencyRuns <= 0 {
		bc.LatencyRuns = 1
	}
	if bc.Tenants <= 0 {
		bc.Tenants = 1
	}
}

// GeneratedConfig is the shipped defaults with the contact field map of
// matcher/gen's data sets.
func GeneratedConfig() (*config.File, error) { return generatedConfig(nil) }

// generatedConfig is GeneratedConfig with the settle window, when set.
func generatedConfig(settle *time.Duration) (*config.File, error) {
	var yml strings.Builder
	yml.WriteString("defaults:\n")
	if settle != nil {
		fmt.Fprintf(&yml, "  engine:\n    settle: %s\n", *settle)
	}
	yml.WriteString("  contact_fields:\n")
	fields := gen.ContactFields()
	for _, c := range slices.Sorted(maps.Keys(fields)) {
		fmt.Fprintf(&yml, "    %s: %s\n", c, fields[c])
	}
	cfg, err := config.Parse([]byte(yml.String()))
	if err != nil {
		return nil, fmt.Errorf("pipeline: generated config: %w", err)
	}
	return cfg, nil
}

// benchRecordsOf generates n record events of tenant as input records keyed
// by tenant/id (a record's events stay in order on one partition), event i
// at benchStart + i*step (the generator's are a second apart).
func benchRecordsOf(seed uint64, tenant string, n int, topic string, step time.Duration) ([]*kgo.Record, error) {
	evs := gen.New(gen.Options{Seed: seed, Tenant: tenant, Records: n, ContactShare: 0.2, Updates: 0.2, Start: benchStart}).Events()
	evs = evs[:min(n, len(evs))]
	scale := func(t time.Time) time.Time {
		if t.IsZero() {
			return t
		}
		return benchStart.Add(time.Duration(int64(t.Sub(benchStart)/time.Second) * int64(step)))
	}
	recs := make([]*kgo.Record, len(evs))
	for i := range evs {
		evs[i].CreatedAt, evs[i].ModifiedAt = scale(evs[i].CreatedAt), scale(evs[i].ModifiedAt)
		b, err := json.Marshal(&evs[i])
		if err != nil {
			return nil, fmt.Errorf("pipeline: bench: encode event: %w", err)
		}
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(evs[i].Tenant + "/" + evs[i].ID), Value: b}
	}
	return recs, nil
}

// benchStart is the generated events' first event time.
var benchStart = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

// runner is a consumer or a pipeline.
type runner interface {
	Run(ctx context.Context) error
}

// throughput runs what start builds until n input records were processed
// and returns the rate.
func throughput(ctx context.Context, n int, start func(done func(string, int32, []*kgo.Record)) (runner, error)) (Throughput, error) {
	var processed atomic.Int64
	var once sync.Once
	all := make(chan struct{})
	r, err := start(func(_ string, _ int32, recs []*kgo.Record) {
		if processed.Add(int64(len(recs))) >= int64(n) {
			once.Do(func() { close(all) })
		}
	})
	if err != nil {
		return Throughput{}, err
	}
	t0 := time.Now()
	stop := run(ctx, r)
	select {
	case <-all:
	case <-ctx.Done():
	}
	elapsed := time.Since(t0)
	if err := errors.Join(stop(), ctx.Err()); err != nil {
		return Throughput{}, fmt.Errorf("pipeline: bench: %w", err)
	}
	return Throughput{Events: n, Elapsed: elapsed, PerSec: float64(n) / elapsed.Seconds()}, nil
}

// run starts r; stop ends it gracefully and returns its error.
func run(ctx context.Context, r runner) (stop func() error) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return func() error {
		cancel()
		return <-done
	}
}

// latency offers each run's events at bc.Rate events/s to one running
// pipeline, a run after the previous one is done, and records, per event,
// the time from its produce to the acknowledgement of its batch and, per
// command, the time from its cluster's last change to its acknowledgement
// less the settle window. A run is done once every event was processed
// and the owners hold nothing back. The first event of the first run warms
// up and is not counted, nor are its commands.
func latency(ctx context.Context, bc BenchConfig, brokers []string, cl *kgo.Client, owners Owners, runs [][]*kgo.Record, settle, maxSettle time.Duration) ([]Latency, error) {
	warmup := runs[0][0]
	runs[0] = runs[0][1:]
	acks := &commandAcks{topic: benchLatCommands, settle: settle}
	var mu sync.Mutex
	var lat []time.Duration
	want := 0
	all := make(chan struct{}, 1)
	warm := make(chan struct{})
	p, err := New(Config{
		Brokers: brokers, Group: "bench-latency", RecordsTopic: benchLatRecords, ByTenantTopic: benchLatByTenant,
		CommandsTopic: benchLatCommands, DLQTopic: benchDLQ, Logger: bc.Logger,
		FetchMinBytes: bc.FetchMinBytes, FetchMaxWait: bc.FetchMaxWait,
		Opts: append(slices.Clip(bc.KafkaOpts), kgo.WithHooks(acks)),
		// Routed records keep their produce time: latency counts the hop.
		Processed: func(topic string, _ int32, recs []*kgo.Record) {
			if topic != benchLatByTenant {
				return
			}
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			select {
			case <-warm:
			default:
				// Nothing else is produced before the warm-up is processed.
				close(warm)
				return
			}
			for _, r := range recs {
				lat = append(lat, now.Sub(r.Timestamp))
			}
			if len(lat) >= want {
				select {
				case all <- struct{}{}:
				default:
				}
			}
		},
	}, owners, bc.Config)
	if err != nil {
		return nil, err
	}
	// Done once the owners hold no plan back and wrote every release.
	quiet := func() error {
		limit := time.After(settle + maxSettle + time.Minute)
		for {
			if unplanned, unwritten := p.handler.Pending(); unplanned == 0 && unwritten == 0 {
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-limit:
				return errors.New("pipeline: bench: latency run: plans still held a minute after their settle windows")
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	stop := run(ctx, p)
	stamp(warmup, time.Now())
	if err := cl.ProduceSync(ctx, warmup).FirstErr(); err != nil {
		return nil, errors.Join(fmt.Errorf("pipeline: bench: latency warm-up: %w", err), stop())
	}
	select {
	case <-warm:
	case <-ctx.Done():
		return nil, errors.Join(ctx.Err(), stop())
	case <-time.After(time.Minute):
		return nil, errors.Join(errors.New("pipeline: bench: latency warm-up not processed within a minute"), stop())
	}
	if err := quiet(); err != nil {
		return nil, errors.Join(err, stop())
	}
	acks.take()
	var out []Latency
	for _, recs := range runs {
		mu.Lock()
		lat, want = make([]time.Duration, 0, len(recs)), len(recs)
		select {
		case <-all: // a late signal of the previous run
		default:
		}
		mu.Unlock()
		var perr atomic.Pointer[error]
		offer(ctx, cl, recs, bc.Rate, &perr)
		select {
		case <-all:
		case <-ctx.Done():
		case <-time.After(time.Minute):
		}
		if err := ctx.Err(); err != nil {
			return nil, errors.Join(err, stop())
		}
		if err := perr.Load(); err != nil {
			return nil, errors.Join(fmt.Errorf("pipeline: bench: latency run: produce: %w", *err), stop())
		}
		mu.Lock()
		got := lat
		mu.Unlock()
		if len(got) < len(recs) {
			return nil, errors.Join(fmt.Errorf("pipeline: bench: latency run: %d of %d events processed within a minute of the last produce", len(got), len(recs)), stop())
		}
		if err := quiet(); err != nil {
			return nil, errors.Join(err, stop())
		}
		cmds := acks.take()
		if len(cmds) == 0 {
			return nil, errors.Join(errors.New("pipeline: bench: latency run: no command acknowledged"), stop())
		}
		l := Latency{Rate: bc.Rate, Events: len(recs), Commands: len(cmds)}
		l.P50, l.P99, l.Max = quantiles(got)
		l.CmdP50, l.CmdP99, l.CmdMax = quantiles(cmds)
		for _, d := range cmds {
			if d < 0 {
				l.CmdNegative++
			}
		}
		out = append(out, l)
	}
	if err := stop(); err != nil {
		return nil, fmt.Errorf("pipeline: bench: latency run: %w", err)
	}
	return out, nil
}

// quantiles sorts d and returns its p50, p99 and max.
func quantiles(d []time.Duration) (p50, p99, maxOf time.Duration) {
	slices.Sort(d)
	q := func(f float64) time.Duration { return d[min(len(d)-1, int(f*float64(len(d))))] }
	return q(0.50), q(0.99), d[len(d)-1]
}

// commandAcks is a produce hook that records, per command acknowledged on
// topic, the time since its CloudEvents time (its cluster's latest change)
// less settle.
type commandAcks struct {
	topic  string
	settle time.Duration
	mu     sync.Mutex
	lat    []time.Duration
}

// OnProduceRecordUnbuffered is called when the broker acknowledged r, before
// the producer's ProduceSync returns (kgo.HookProduceRecordUnbuffered).
func (c *commandAcks) OnProduceRecordUnbuffered(r *kgo.Record, err error) {
	if err != nil || r.Topic != c.topic {
		return
	}
	now := time.Now()
	for _, h := range r.Headers {
		if h.Key != events.HeaderPrefix+"time" {
			continue
		}
		if at, err := time.Parse(time.RFC3339Nano, string(h.Value)); err == nil {
			c.mu.Lock()
			c.lat = append(c.lat, now.Sub(at)-c.settle)
			c.mu.Unlock()
		}
		return
	}
}

// take returns what was recorded since the last take.
func (c *commandAcks) take() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.lat
	c.lat = nil
	return out
}

// stamp makes now r's produce time and its event's modified_at, so that the
// event time the settle windows run on is the time it was offered.
func stamp(r *kgo.Record, now time.Time) {
	const key = `"modified_at":"`
	r.Timestamp = now
	i := bytes.Index(r.Value, []byte(key))
	if i < 0 {
		return
	}
	i += len(key)
	j := bytes.IndexByte(r.Value[i:], '"')
	if j < 0 {
		return
	}
	v := make([]byte, 0, len(r.Value)+16)
	v = now.UTC().AppendFormat(append(v, r.Value[:i]...), time.RFC3339Nano)
	r.Value = append(v, r.Value[i+j:]...)
}

// offer produces recs at rate events/s, paced by the clock: at any moment
// rate*elapsed events are out, whatever the ticker's jitter. Each record is
// stamped (stamp) when it is handed over. The first produce error goes
// into perr, whenever it comes.
func offer(ctx context.Context, cl *kgo.Client, recs []*kgo.Record, rate int, perr *atomic.Pointer[error]) {
	t0 := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for sent := 0; sent < len(recs) && ctx.Err() == nil; {
		<-tick.C
		due := min(len(recs), int(time.Since(t0).Seconds()*float64(rate)))
		for ; sent < due; sent++ {
			stamp(recs[sent], time.Now())
			cl.Produce(ctx, recs[sent], func(_ *kgo.Record, err error) {
				if err != nil {
					perr.CompareAndSwap(nil, &err)
				}
			})
		}
	}
}

// readRSS reads a memory line (VmRSS, VmHWM) of /proc/self/status in bytes;
// 0 when it is not available.
func readRSS(key string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
