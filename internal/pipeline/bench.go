package pipeline

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
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
	"github.com/leadconv/leadconv/record"
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
	Tenants int
	// Stored, when set, gives every throughput tenant that many stored
	// records before the full run (storeTenants): the generator's stream
	// up to its Stored-th record, applied through the owners' handler
	// without Kafka, as a replay applies a topic; the throughput events
	// are the stream's next events, so they meet its blocks and clusters.
	Stored     int
	Partitions int32 // default 6
	// ResidentBytes bounds the owners' resident state (0: the default),
	// LifecycleBytes their settled lifecycle entries (0: the default).
	ResidentBytes, LifecycleBytes int64
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
	// MemProfile, when set, receives a heap profile (pprof) taken at the
	// end of the full run, after a collection: the largest the measured
	// state gets, the throughput topics of an in-process broker still held.
	MemProfile io.Writer
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
	// ProducerEvents were offered at the latency runs' rate to a topic no
	// one reads, before them: the load generator's own cost (phase
	// "producer"), which the latency runs' process CPU includes.
	ProducerEvents int
	// Floor is the latency runs' Kafka topology at their rate with none of
	// their work (floor): the least their latency and CPU can be here.
	Floor Latency
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
	// ResidentMax is the resident state's bound; ResidentPeakFull the
	// largest estimate seen after a batch of the full run (the bound is
	// kept after each batch) and ResidentFull the estimate after its last
	// batch.
	// EvictionsFull counts the full run's evictions
	// (leadconv_matcher_resident_evictions_total; -1 when the metrics are
	// registered elsewhere).
	ResidentMax, ResidentPeakFull, ResidentFull int64
	EvictionsFull                               float64
	// LifecycleMax is the settled lifecycle entries' bound, LifecycleFull
	// their estimate at the end of the full run, LifecycleEvictedFull and
	// LifecycleLoadedFull the entries the full run evicted and read back.
	LifecycleMax, LifecycleFull               int64
	LifecycleEvictedFull, LifecycleLoadedFull float64
	// RedisMemory is the Redis server's used_memory at the RSS points.
	RedisMemory []RSSSample
	// Stored is the preload of BenchConfig.Stored, zero without.
	Stored StoredLoad
}

// StoredLoad is what giving the throughput tenants their stored records
// (BenchConfig.Stored) took; none of it is in the measured figures.
type StoredLoad struct {
	// Records per tenant; Events applied, every tenant's (the records'
	// creations and the updates among them).
	Records, Events int
	// Generate is generating and encoding every tenant's events, the
	// throughput ones included; Elapsed applying the stored ones, the
	// closing flush and sync included; PerSec is Events / Elapsed.
	Generate, Elapsed time.Duration
	PerSec            float64
	// Commands were planned by the preload (not produced: no writer runs);
	// Retries counts its batches retried after a transient failure.
	Commands, Retries int
	// InRedis counts the records in the tenants' record hashes after the
	// preload, Lifecycle their lifecycle entries (the taken side state's
	// fields: an open entry or a shelved one's stub each, and the clock).
	InRedis, Lifecycle int64
	// Take is the full run's owners taking the tenants (epoch, side state,
	// the lifecycle restored, a small tenant loaded whole) on a warm-up
	// event each, before the full run's clock starts.
	Take time.Duration
	// PeakRSS is the process's peak RSS by the end of the preload (the
	// generator's data sets included); it is reset then, so that
	// BenchResult.PeakRSS is of what follows.
	PeakRSS int64
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
	benchLatIdle     = "bench.latency.idle"
	benchDLQ         = "bench.dlq"
	// The Kafka floor at the rate (floor): both hops, no matching.
	benchFloorRecords  = "bench.floor.records"
	benchFloorByTenant = "bench.floor.records.by-tenant"
	benchFloorOut      = "bench.floor.out"
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
	rss := func(point string) {
		res.RSS = append(res.RSS, RSSSample{point, readRSS("VmRSS")})
		res.RedisMemory = append(res.RedisMemory, RSSSample{point, redisUsedMemory(ctx, bc.Redis)})
	}
	progress := func(phase string) {
		if bc.Progress != nil {
			bc.Progress(phase)
		}
	}
	rss("start")

	brokers := bc.Brokers
	topics := []string{benchRecords, benchByTenant, benchRawOut, benchCommands, benchLatRecords, benchLatByTenant, benchLatCommands, benchLatIdle, benchDLQ,
		benchFloorRecords, benchFloorByTenant, benchFloorOut}
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

	reg := bc.Registerer
	if reg == nil {
		// A registry of its own, for the evictions counter.
		reg = prometheus.NewRegistry()
	}
	resident := matcher.NewResident(matcher.ResidentOptions{MaxBytes: bc.ResidentBytes, Logger: bc.Logger, Registerer: reg})
	res.ResidentMax = cmp.Or(bc.ResidentBytes, matcher.DefaultResidentBytes)
	var sideWrites atomic.Int64
	owners := func() Owner {
		return sideCounter{matcher.NewStore(bc.Redis, matcher.StoreOptions{Namespace: bc.Namespace, Rules: bc.Config.Rules, Resident: resident}), &sideWrites}
	}

	if bc.Stored > 0 {
		progress("generate")
	} else {
		progress("produce")
	}
	parts := make([][]*kgo.Record, bc.Tenants)
	stored := make([][]*kgo.Record, bc.Tenants)
	t0 := time.Now()
	for t := range parts {
		tenant := "bench"
		if bc.Tenants > 1 {
			tenant += "-" + strconv.Itoa(t)
		}
		// Each tenant's event time runs at its share of the offered rate: a
		// backlog of the stream the latency runs offer live, so that the
		// settle windows close as they would on it.
		step := time.Duration(bc.Tenants) * time.Second / time.Duration(bc.Rate)
		if stored[t], parts[t], err = benchRecordsOf(bc.Seed+uint64(t)*1000, tenant, bc.Stored, bc.Events/bc.Tenants, benchRecords, step); err != nil {
			return res, err
		}
	}
	var warmups []*kgo.Record
	if bc.Stored > 0 {
		res.Stored.Generate = time.Since(t0)
		progress("stored")
		if warmups, err = storeTenants(ctx, bc, stored, &res.Stored); err != nil {
			return res, err
		}
		stored = nil
		debug.FreeOSMemory()
		rss("stored")
		res.Stored.PeakRSS = readRSS("VmHWM")
		resetPeakRSS()
		progress("produce")
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
	recs, parts = nil, nil // the broker holds them now
	rss("produced")

	if err := rawScript.Load(ctx, bc.Redis).Err(); err != nil {
		return res, fmt.Errorf("pipeline: bench: load script: %w", err)
	}
	progress("raw")
	raw := consumer.HandlerFunc(func(ctx context.Context, _ string, _ int32, recs []*kgo.Record) (consumer.Result, error) {
		return rawWork(ctx, bc, recs, benchRawOut)
	})
	res.Raw, err = throughput(ctx, n, func(done func(string, int32, []*kgo.Record)) (runner, error) {
		return consumer.New(consumer.Config{
			Brokers: brokers, Group: "bench-raw", Topics: []string{benchRecords}, DLQTopic: benchDLQ,
			Processed: done, Logger: bc.Logger, Opts: bc.KafkaOpts,
		}, raw)
	}, nil, nil)
	if err != nil {
		return res, err
	}
	rss("raw")

	// With stored tenants the owners take them first, each on a warm-up
	// event, while the input is not fetched yet (take): the full run is of
	// the owners holding them, as a running service does.
	var take func(context.Context) error
	var warming atomic.Bool
	warmed := make(chan struct{}, len(warmups))
	var full *Pipeline
	if bc.Stored > 0 {
		progress("take")
		warming.Store(true)
		take = func(ctx context.Context) error {
			t0 := time.Now()
			if err := produceTo(ctx, bc, brokers, warmups); err != nil {
				return err
			}
			for range warmups {
				select {
				case <-warmed:
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(10 * time.Minute):
					return errors.New("pipeline: bench: the owners did not take the stored tenants within 10 minutes")
				}
			}
			res.Stored.Take = time.Since(t0)
			// The take's garbage (the side state as read) is the take's:
			// collected now, not by the full run's first cycles.
			runtime.GC()
			rss("taken")
			warming.Store(false)
			progress("full")
			full.Client().ResumeFetchTopics(benchRecords)
			return nil
		}
	} else {
		progress("full")
	}
	stats0 := resident.Stats()
	evictions0 := metricValue(reg, "leadconv_matcher_resident_evictions_total")
	var residentPeak, residentLast atomic.Int64
	// The full run's own pipeline metrics: its owners' lifecycle bound.
	fullReg := prometheus.NewRegistry()
	res.LifecycleMax = cmp.Or(bc.LifecycleBytes, DefaultLifecycleBytes)
	res.Full, err = throughput(ctx, n, func(done func(string, int32, []*kgo.Record)) (runner, error) {
		p, err := New(Config{
			Brokers: brokers, Group: "bench-full", RecordsTopic: benchRecords, ByTenantTopic: benchByTenant,
			CommandsTopic: benchCommands, DLQTopic: benchDLQ, Logger: bc.Logger,
			LifecycleBytes: bc.LifecycleBytes, Registerer: fullReg,
			FetchMinBytes: bc.FetchMinBytes, FetchMaxWait: bc.FetchMaxWait, Opts: bc.KafkaOpts,
			// Done once the owners processed the routed events.
			Processed: func(topic string, p int32, recs []*kgo.Record) {
				if topic != benchByTenant {
					return
				}
				if warming.Load() {
					for range recs {
						select {
						case warmed <- struct{}{}:
						default: // a warm-up processed again
						}
					}
					return
				}
				b := resident.Bytes()
				residentLast.Store(b)
				for {
					if peak := residentPeak.Load(); b <= peak || residentPeak.CompareAndSwap(peak, b) {
						break
					}
				}
				done(topic, p, recs)
			},
		}, owners, bc.Config)
		if err == nil && take != nil {
			// Fetched once the owners took the tenants.
			p.Client().PauseFetchTopics(benchRecords)
		}
		full = p
		return p, err
	}, take, func() error {
		// The owners still hold their state: its memory is measured now.
		progress("after full")
		rss("full")
		res.MatcherFull = resident.Stats().Sub(stats0)
		res.ResidentPeakFull, res.ResidentFull = residentPeak.Load(), residentLast.Load()
		res.EvictionsFull = -1
		if evictions0 >= 0 {
			res.EvictionsFull = metricValue(reg, "leadconv_matcher_resident_evictions_total") - evictions0
		}
		res.LifecycleFull = int64(metricValue(fullReg, "leadconv_lifecycle_settled_bytes"))
		res.LifecycleEvictedFull = metricValue(fullReg, "leadconv_lifecycle_evictions_total")
		res.LifecycleLoadedFull = metricValue(fullReg, "leadconv_lifecycle_loads_total")
		if bc.MemProfile != nil {
			runtime.GC()
			if err := pprof.WriteHeapProfile(bc.MemProfile); err != nil {
				return fmt.Errorf("pipeline: bench: heap profile: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	if res.Raw.PerSec > 0 {
		res.Ratio = res.Full.PerSec / res.Raw.PerSec
	}
	stats1 := resident.Stats()
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
		if _, runs[k], err = benchRecordsOf(bc.Seed+1+uint64(k), tenant, 0, n, benchLatRecords, time.Second/time.Duration(bc.Rate)); err != nil {
			return res, err
		}
	}
	lt, err := bc.Config.Tenant("bench-latency")
	if err != nil {
		return res, fmt.Errorf("pipeline: bench: %w", err)
	}
	res.Settle = time.Duration(lt.Engine.Settle)
	// The load generator's own cost, which the latency phase's process CPU
	// includes (it produces in this process): the first run's records
	// offered at the rate to a topic no one reads.
	idle := onTopic(runs[0], benchLatIdle)
	progress("producer")
	var perr atomic.Pointer[error]
	offer(ctx, cl, idle, bc.Rate, &perr)
	if err := cl.Flush(ctx); err != nil {
		return res, fmt.Errorf("pipeline: bench: producer run: %w", err)
	}
	if err := perr.Load(); err != nil {
		return res, fmt.Errorf("pipeline: bench: producer run: %w", *err)
	}
	res.ProducerEvents = len(idle)
	if res.Floor, err = floor(ctx, bc, brokers, cl, runs[0], progress); err != nil {
		return res, err
	}
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

// onTopic returns copies of recs on topic.
func onTopic(recs []*kgo.Record, topic string) []*kgo.Record {
	out := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		c := *r
		c.Topic = topic
		out[i] = &c
	}
	return out
}

// rawWork is the raw ceiling's work on a batch: one pipelined EVALSHA of
// rawScript per event, then one record per event out on topic.
func rawWork(ctx context.Context, bc BenchConfig, recs []*kgo.Record, topic string) (consumer.Result, error) {
	pipe := bc.Redis.Pipeline()
	for _, r := range recs {
		rawScript.EvalSha(ctx, pipe, []string{bc.Namespace + ":raw:" + string(r.Key)}, r.Value)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return consumer.Result{}, fmt.Errorf("bench: raw script: %w", err)
	}
	out := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		out[i] = &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value}
	}
	return consumer.Result{Out: out}, nil
}

// floor offers recs (a latency run's, the first a warm-up not counted) at
// bc.Rate through the latency runs' Kafka topology with none of their
// work: one consumer of both hops, with the pipelines' fetch settings,
// routing each event to a by-tenant topic (one key: one partition, as a
// tenant's events are routed), then rawWork on it. Its latency is from
// produce to the acknowledgement of the second hop's batch; its phase
// ("floor", after "floor warm-up": the group's join is not in it) is what
// the latency runs' process and Redis CPU per event cost at the least on
// this machine, the load generator included.
func floor(ctx context.Context, bc BenchConfig, brokers []string, cl *kgo.Client, recs []*kgo.Record, progress func(string)) (Latency, error) {
	progress("floor warm-up")
	offered := onTopic(recs, benchFloorRecords)
	arr := newArrivals(benchFloorByTenant)
	route := []byte("floor")
	h := consumer.HandlerFunc(func(ctx context.Context, topic string, _ int32, recs []*kgo.Record) (consumer.Result, error) {
		if topic != benchFloorRecords {
			return rawWork(ctx, bc, recs, benchFloorOut)
		}
		out := make([]*kgo.Record, len(recs))
		for i, r := range recs {
			// The produce time kept: latency counts the hop.
			out[i] = &kgo.Record{Topic: benchFloorByTenant, Key: route, Value: r.Value, Timestamp: r.Timestamp}
		}
		return consumer.Result{Out: out}, nil
	})
	c, err := consumer.New(consumer.Config{
		Brokers: brokers, Group: "bench-floor", Topics: []string{benchFloorRecords, benchFloorByTenant}, DLQTopic: benchDLQ,
		FetchMinBytes: bc.FetchMinBytes, FetchMaxWait: bc.FetchMaxWait, Logger: bc.Logger, Opts: bc.KafkaOpts,
		Processed: arr.processed,
	}, h)
	if err != nil {
		return Latency{}, err
	}
	stop := run(ctx, c)
	wait := func(signal <-chan struct{}, what string) error {
		select {
		case <-signal:
			return nil
		case <-ctx.Done():
			return errors.Join(ctx.Err(), stop())
		case <-time.After(time.Minute):
			return errors.Join(fmt.Errorf("pipeline: bench: floor: %s not processed within a minute", what), stop())
		}
	}
	stamp(offered[0], time.Now())
	if err := cl.ProduceSync(ctx, offered[0]).FirstErr(); err != nil {
		return Latency{}, errors.Join(fmt.Errorf("pipeline: bench: floor warm-up: %w", err), stop())
	}
	if err := wait(arr.warm, "the warm-up"); err != nil {
		return Latency{}, err
	}
	offered = offered[1:]
	arr.expect(len(offered))
	progress("floor")
	var perr atomic.Pointer[error]
	offer(ctx, cl, offered, bc.Rate, &perr)
	if err := wait(arr.all, "the offered events"); err != nil {
		return Latency{}, err
	}
	if err := perr.Load(); err != nil {
		return Latency{}, errors.Join(fmt.Errorf("pipeline: bench: floor: produce: %w", *err), stop())
	}
	if err := stop(); err != nil {
		return Latency{}, fmt.Errorf("pipeline: bench: floor: %w", err)
	}
	lat := arr.recorded()
	l := Latency{Rate: bc.Rate, Events: len(lat)}
	l.P50, l.P99, l.Max = quantiles(lat)
	return l, nil
}

// arrivals records, per record processed on topic, the time since its
// produce time. The first batch processed is a run's warm-up: it closes
// warm and is not counted. all is signalled once the run's records were
// recorded.
type arrivals struct {
	topic     string
	warm, all chan struct{}
	mu        sync.Mutex
	lat       []time.Duration
	want      int
}

func newArrivals(topic string) *arrivals {
	return &arrivals{topic: topic, warm: make(chan struct{}), all: make(chan struct{}, 1)}
}

// processed is the Processed hook of a pipeline or a consumer.
func (a *arrivals) processed(topic string, _ int32, recs []*kgo.Record) {
	if topic != a.topic {
		return
	}
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	select {
	case <-a.warm:
	default:
		// Nothing else is produced before the warm-up is processed.
		close(a.warm)
		return
	}
	for _, r := range recs {
		a.lat = append(a.lat, now.Sub(r.Timestamp))
	}
	if len(a.lat) >= a.want {
		select {
		case a.all <- struct{}{}:
		default:
		}
	}
}

// expect starts a run of n records: what was recorded goes, and a late
// signal of the previous run.
func (a *arrivals) expect(n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lat, a.want = make([]time.Duration, 0, n), n
	select {
	case <-a.all:
	default:
	}
}

// recorded returns what was recorded since expect.
func (a *arrivals) recorded() []time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lat
}

// storeTenants applies every tenant's stored events (benchRecordsOf's
// pre) through a handler of the owners, without Kafka, as a replay does:
// on event time, the windows still open at the end flushed, their marks
// written. Its owners are those of the partitions the tenants are routed
// to, so the full run's owners find the tenants in their side index; they
// are released at the end, so that the full run's owners take the tenants
// afresh, as after a restart. Their resident state has a budget of its
// own: the full run's starts cold. What the owners plan is not produced
// (the bench runs no writer either): a conversion planned is in the
// lifecycle's state as emitted. It returns each tenant's last stored
// event, to be offered again as the warm-up that makes the full run's
// owners take the tenant: a replay, which changes nothing.
func storeTenants(ctx context.Context, bc BenchConfig, stored [][]*kgo.Record, sl *StoredLoad) ([]*kgo.Record, error) {
	sl.Records = bc.Stored
	resident := matcher.NewResident(matcher.ResidentOptions{MaxBytes: bc.ResidentBytes, Logger: bc.Logger})
	h := NewHandler(HandlerConfig{CommandsTopic: benchCommands, Logger: bc.Logger, LifecycleBytes: bc.LifecycleBytes}, func() Owner {
		return matcher.NewStore(bc.Redis, matcher.StoreOptions{Namespace: bc.Namespace, Rules: bc.Config.Rules, Resident: resident})
	}, bc.Config)
	// Batches of the size the full run's owners get from a backlog: the
	// plans do not depend on batch boundaries, the round trips do.
	const batch = 3000
	t0 := time.Now()
	var warmups []*kgo.Record
	partitions := map[int32]bool{}
	for _, pre := range stored {
		if len(pre) == 0 {
			continue
		}
		p := routedPartition(string(pre[0].Key), bc.Partitions)
		partitions[p] = true
		for _, r := range pre {
			r.Partition = p
		}
		for lo := 0; lo < len(pre); lo += batch {
			recs := pre[lo:min(len(pre), lo+batch)]
			out, err := h.Handle(ctx, benchByTenant, p, recs)
			// A transient failure (a write whose reply timed out on a
			// loaded machine) is retried, as the consumer retries it: the
			// events already applied are recognised as replays.
			for attempt := 0; err != nil && attempt < 10 && ctx.Err() == nil && !errors.Is(err, consumer.ErrPartitionLost); attempt++ {
				sl.Retries++
				bc.Logger.Warn().Err(err).Int("attempt", attempt+1).Msg("bench: store: batch failed; retrying")
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(consumer.Backoff(attempt, 100*time.Millisecond, 5*time.Second, rand.Int64N)):
				}
				out, err = h.Handle(ctx, benchByTenant, p, recs)
			}
			if err != nil {
				return nil, fmt.Errorf("pipeline: bench: store: %w", err)
			}
			if len(out.Poison) > 0 {
				return nil, fmt.Errorf("pipeline: bench: store: %d events refused, the first %s: %s", len(out.Poison), out.Poison[0].Code, out.Poison[0].Reason)
			}
			sl.Commands += len(out.Out)
		}
		sl.Events += len(pre)
		last := *pre[len(pre)-1]
		warmups = append(warmups, &last)
	}
	out, err := h.Flush(ctx)
	if err == nil {
		sl.Commands += len(out)
		err = h.Sync(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("pipeline: bench: store: %w", err)
	}
	for p := range partitions {
		h.Release(benchByTenant, p)
	}
	sl.Elapsed = time.Since(t0)
	sl.PerSec = float64(sl.Events) / sl.Elapsed.Seconds()
	for _, pre := range stored {
		if len(pre) == 0 {
			continue
		}
		tenant := string(pre[0].Key)
		k := bc.Namespace + ":{" + tenant + "}:" // matcher/README.md, Key layout
		r, err := bc.Redis.HLen(ctx, k+"r").Result()
		if err != nil {
			return nil, fmt.Errorf("pipeline: bench: store: %w", err)
		}
		side, err := bc.Redis.HLen(ctx, k+"side").Result()
		if err != nil {
			return nil, fmt.Errorf("pipeline: bench: store: %w", err)
		}
		sl.InRedis += r
		sl.Lifecycle += side
	}
	return warmups, nil
}

// produceTo produces recs to the partitions they name, as they are.
func produceTo(ctx context.Context, bc BenchConfig, brokers []string, recs []*kgo.Record) error {
	cl, err := kgo.NewClient(append(slices.Clip(bc.KafkaOpts), kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		return fmt.Errorf("pipeline: bench: client: %w", err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("pipeline: bench: produce: %w", err)
	}
	return nil
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
// at benchStart + i*step (the generator's are a second apart). With stored
// > 0 they are preceded, in one stream, by the events up to the creation of
// its stored-th record (and the updates among them), returned as pre keyed
// by tenant, as the by-tenant topic holds them, on the partition the
// tenant is routed to: the n events that follow update those records too,
// and duplicate them at the generator's rate.
func benchRecordsOf(seed uint64, tenant string, stored, n int, topic string, step time.Duration) (pre, recs []*kgo.Record, err error) {
	evs := gen.New(gen.Options{Seed: seed, Tenant: tenant, Records: stored + n, ContactShare: 0.2, Updates: 0.2, Start: benchStart}).Events()
	split := 0
	for created := 0; created < stored && split < len(evs); split++ {
		if evs[split].CreatedAt.Equal(evs[split].ModifiedAt) { // its creation
			created++
		}
	}
	encode := func(evs []record.Event, topic string, key func(*record.Event) string) ([]*kgo.Record, error) {
		out := make([]*kgo.Record, len(evs))
		for i := range evs {
			ev := evs[i]
			ev.CreatedAt, ev.ModifiedAt = scaleTime(ev.CreatedAt, step), scaleTime(ev.ModifiedAt, step)
			b, err := json.Marshal(&ev)
			if err != nil {
				return nil, fmt.Errorf("pipeline: bench: encode event: %w", err)
			}
			out[i] = &kgo.Record{Topic: topic, Key: []byte(key(&ev)), Value: b}
		}
		return out, nil
	}
	if pre, err = encode(evs[:split], benchByTenant, func(*record.Event) string { return tenant }); err != nil {
		return nil, nil, err
	}
	recs, err = encode(evs[split:min(len(evs), split+n)], topic, func(ev *record.Event) string { return ev.Tenant + "/" + ev.ID })
	return pre, recs, err
}

// scaleTime puts a generated event time (benchStart + i seconds) at
// benchStart + i*step.
func scaleTime(t time.Time, step time.Duration) time.Time {
	if t.IsZero() {
		return t
	}
	return benchStart.Add(time.Duration(int64(t.Sub(benchStart)/time.Second) * int64(step)))
}

// benchStart is the generated events' first event time.
var benchStart = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

// runner is a consumer or a pipeline.
type runner interface {
	Run(ctx context.Context) error
}

// throughput runs what start builds until n input records were processed
// and returns the rate. With warm, the clock starts once warm returned
// (what was processed before does not count); end, when set, is called
// once the clock stopped, before what start built is stopped.
func throughput(ctx context.Context, n int, start func(done func(string, int32, []*kgo.Record)) (runner, error), warm func(context.Context) error, end func() error) (Throughput, error) {
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
	stop := run(ctx, r)
	if warm != nil {
		if err := warm(ctx); err != nil {
			return Throughput{}, errors.Join(err, stop())
		}
	}
	t0 := time.Now()
	select {
	case <-all:
	case <-ctx.Done():
	}
	elapsed := time.Since(t0)
	if end != nil && ctx.Err() == nil {
		if err := end(); err != nil {
			return Throughput{}, errors.Join(err, stop())
		}
	}
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
	arr := newArrivals(benchLatByTenant)
	p, err := New(Config{
		Brokers: brokers, Group: "bench-latency", RecordsTopic: benchLatRecords, ByTenantTopic: benchLatByTenant,
		CommandsTopic: benchLatCommands, DLQTopic: benchDLQ, Logger: bc.Logger,
		FetchMinBytes: bc.FetchMinBytes, FetchMaxWait: bc.FetchMaxWait,
		Opts: append(slices.Clip(bc.KafkaOpts), kgo.WithHooks(acks)),
		// Routed records keep their produce time: latency counts the hop.
		Processed: arr.processed,
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
	case <-arr.warm:
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
		arr.expect(len(recs))
		var perr atomic.Pointer[error]
		offer(ctx, cl, recs, bc.Rate, &perr)
		select {
		case <-arr.all:
		case <-ctx.Done():
		case <-time.After(time.Minute):
		}
		if err := ctx.Err(); err != nil {
			return nil, errors.Join(err, stop())
		}
		if err := perr.Load(); err != nil {
			return nil, errors.Join(fmt.Errorf("pipeline: bench: latency run: produce: %w", *err), stop())
		}
		got := arr.recorded()
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

// routedPartition is the by-tenant partition of tenant's events: the
// routing's key partitioner (the consumer's) over partitions.
func routedPartition(tenant string, partitions int32) int32 {
	return int32(kgo.StickyKeyPartitioner(nil).ForTopic(benchByTenant).Partition(&kgo.Record{Key: []byte(tenant)}, int(partitions)))
}

// resetPeakRSS resets the process's peak RSS (VmHWM) to its current RSS,
// where Linux allows it.
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// redisUsedMemory is the server's used_memory (INFO memory; on a Redis
// Cluster the sum over its masters), 0 when unreadable.
func redisUsedMemory(ctx context.Context, rdb redis.UniversalClient) int64 {
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		var total atomic.Int64
		_ = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			total.Add(redisUsedMemory(ctx, c))
			return nil
		})
		return total.Load()
	}
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// metricValue is the sum of the series of the counter or gauge name in
// reg, -1 when reg cannot be read (not a Gatherer).
func metricValue(reg prometheus.Registerer, name string) float64 {
	g, ok := reg.(prometheus.Gatherer)
	if !ok {
		return -1
	}
	mfs, err := g.Gather()
	if err != nil {
		return -1
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return total
}
