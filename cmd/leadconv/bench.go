package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/internal/cpustat"
	"github.com/leadconv/leadconv/internal/kafkaconn"
	"github.com/leadconv/leadconv/internal/pipeline"
	"github.com/leadconv/leadconv/internal/redisconn"
	"github.com/leadconv/leadconv/matcher"
)

func benchCommand() *command {
	return &command{
		name:     "bench",
		synopsis: "measure the end-to-end throughput and latency of the pipeline",
		usage:    "[flags]",
		help: `Measures, in one run on this machine:

  raw ceiling    Kafka in -> one pipelined EVALSHA per event -> Kafka out,
                 through the same consumer, produce and commit path, with no
                 matching or planning: the most this machine can do
  full pipeline  the same generated events through the matcher, the engine
                 and the CloudEvents encoding: events/s and its share of the
                 raw ceiling
  latency        at a fixed offered rate, from a fresh consumer group:
                 p50/p99/max from an event's produce to the acknowledgement
                 of its batch (its state durable), and, per command, from
                 the last change of its cluster (the command's CloudEvents
                 time; the events' event time is their produce time) to
                 the command's acknowledgement, less the settle window;
                 one warm-up event, not counted, is processed first so the
                 group's join is not measured;
                 --latency-runs N repeats it N times through the same
                 pipeline, each with a fresh tenant, and reports the run
                 with the median command p99 beside every run's p99s (on a
                 machine whose speed drifts, the steadier figure)
  floor          the first latency run's events at the same rate through the
                 latency runs' Kafka topology (routed to a by-tenant topic,
                 then the raw ceiling's work, with the same consumer, fetch,
                 produce and commit path) and none of their decoding,
                 matching or planning: the least the latency runs' p99 and
                 CPU per event can be on this machine; run just before them

--stored N gives every throughput tenant N stored records before the full
run: the generator's stream up to its N-th record (leads and contacts,
duplicates and updates at its usual rates), applied through the owners'
handler without Kafka, as replay applies a topic (matcher state and
lifecycle, conversions planned included); the throughput events are the
stream's next ones, so they meet its blocks and clusters. The full run's
owners then take the tenants on one warm-up event each (a replay of the
last stored event) before its clock starts: the full figures are of an
owner holding a tenant of N records, from the start of its resident state
after a restart. The preload's time, the take's and the preload's peak RSS
are reported apart (the peak is reset after it).

--settle sets the tenants' settle window (0: every instant's cluster
states planned once a later instant, or a tick, is read). The throughput
events' event time runs at
--rate, spread over the tenants: a backlog of the stream the latency runs
offer live.

plus the process's resident memory at each phase and its peak, and the CPU
time per event of each phase, of this process and of the Redis server (load
on the machine hardly moves it, unlike wall time).

The full pipeline and the latency runs include the routing hop: events go
to a by-tenant topic first, then to the owner of their tenant's partition.
--tenants spreads the throughput events over that many tenants (one alone
is the single-owner ceiling). The owners' Redis round trips per batch and
resident hit rate are reported per phase.

Kafka: an in-process broker (kfake) unless --brokers names a cluster, on
which the bench creates the topics bench.records, bench.records.by-tenant,
bench.raw.out, bench.commands, bench.latency.records,
bench.latency.records.by-tenant, bench.latency.commands, bench.latency.idle,
bench.floor.records, bench.floor.records.by-tenant, bench.floor.out and
bench.dlq.

Redis: --redis-url, else $REDIS_URL, else a private redis-server started
from $PATH on a free port (no persistence) and stopped at the end. The state
is written under a fresh namespace, deleted at the end. The in-process
Redis is never used: it would measure miniredis, not leadconv.

Example (the figures in BENCHMARKS.md):
  leadconv bench --events 200000 --rate 2000 --latency-runs 5`,
		setup: func(fs *flagSet) func(context.Context, *env, []string) error {
			var bc pipeline.BenchConfig
			fs.IntVar(&bc.Events, "events", 200_000, "generated events of the throughput runs")
			fs.IntVar(&bc.Stored, "stored", 0, "stored records each throughput tenant holds before the full run (0: none)")
			fs.IntVar(&bc.Tenants, "tenants", 1, "tenants the throughput events are spread over (1: one tenant alone, one owner: the single-owner ceiling)")
			fs.Int64Var(&bc.ResidentBytes, "matcher-cache-bytes", 0, "memory bound of the owners' resident matcher state (0: the service default)")
			fs.Int64Var(&bc.LifecycleBytes, "lifecycle-cache-bytes", 0, "memory bound of the owners' settled lifecycle entries (0: the service default)")
			partitions := fs.Int("partitions", 6, "partitions of the benchmark topics (one worker each)")
			fs.IntVar(&bc.Rate, "rate", 2000, "offered rate of the latency run, events/s")
			fs.IntVar(&bc.LatencyEvents, "latency-events", 20_000, "events of each latency run")
			fs.IntVar(&bc.LatencyRuns, "latency-runs", 1, "latency runs, each with a fresh tenant; the one with the median p99 is reported first")
			fs.Uint64Var(&bc.Seed, "seed", 1, "random seed of the generated events")
			settle := fs.Duration("settle", time.Duration(engine.DefaultSettle), "settle window of the tenants (0: plan every batch's changes at once)")
			brokers := fs.String("brokers", "", "Kafka brokers, comma separated; empty starts an in-process broker")
			redisURL := fs.String("redis-url", "", "Redis URL; empty uses $REDIS_URL or starts redis-server from $PATH")
			asJSON := fs.Bool("json", false, "print the result as JSON instead of text")
			var fo fetchOptions
			fo.register(fs)
			var ko kafkaconn.Options
			registerKafkaSecurity(fs, &ko)
			cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof)")
			fullProfile := fs.String("cpuprofile-full", "", "write a CPU profile of the full run alone (from its clock's start to its end) to this file")
			memProfile := fs.String("memprofile", "", "write a heap profile taken at the end of the full run to this file (go tool pprof)")
			var lo logOptions
			fs.StringVar(&lo.level, "log-level", "warn", "log level: trace, debug, info, warn or error")
			fs.StringVar(&lo.format, "log-format", "auto", "log format: auto (console on a terminal, JSON otherwise), json or console")
			fs.fromEnv("redis-url", "REDIS_URL")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				for name, v := range map[string]int{"--events": bc.Events, "--tenants": bc.Tenants, "--partitions": *partitions, "--rate": bc.Rate, "--latency-events": bc.LatencyEvents, "--latency-runs": bc.LatencyRuns} {
					if v <= 0 {
						return usagef("%s %d: must be positive", name, v)
					}
				}
				if *cpuProfile != "" && *fullProfile != "" {
					return usagef("--cpuprofile and --cpuprofile-full: one CPU profile at a time")
				}
				if bc.Stored < 0 {
					return usagef("--stored %d: must not be negative", bc.Stored)
				}
				if err := fo.check(); err != nil {
					return err
				}
				if *settle < 0 {
					return usagef("--settle %s: must not be negative", *settle)
				}
				bc.Settle = settle
				bc.Partitions = int32(*partitions)
				bc.FetchMinBytes, bc.FetchMaxWait = int32(fo.minBytes), fo.maxWait
				log, err := lo.logger(e)
				if err != nil {
					return err
				}
				bc.Logger = log
				// The collector as run sets it, so that the figures are run's.
				if gogc, limit := tuneGC(log); gogc > 0 {
					fmt.Fprintf(e.stderr, "bench: GOGC %d under a memory limit of %d MiB\n", gogc, limit>>20)
				}
				url := *redisURL
				if url == "" {
					srv, err := startRedisServer(ctx)
					if err != nil {
						return err
					}
					defer srv.stop()
					url = srv.url
				}
				rdb, closeRedis, err := openRedis(ctx, redisconn.Options{URL: url}, false)
				if err != nil {
					return err
				}
				defer closeRedis()
				bc.Redis = rdb
				bc.Namespace = "bench" + strconv.FormatInt(time.Now().UnixNano(), 36)
				defer deleteNamespace(context.WithoutCancel(ctx), rdb, bc.Namespace)
				if *brokers != "" {
					o := serviceOptions{brokers: *brokers}
					bc.Brokers = o.brokerList()
					if bc.KafkaOpts, err = connectKafka(ctx, &ko, bc.Brokers); err != nil {
						return err
					}
				}
				if *cpuProfile != "" {
					stop, err := startCPUProfile("--cpuprofile", *cpuProfile)
					if err != nil {
						return err
					}
					defer stop()
				}
				if *memProfile != "" {
					f, err := os.Create(*memProfile)
					if err != nil {
						return fmt.Errorf("--memprofile: %w", err)
					}
					defer f.Close()
					bc.MemProfile = f
				}
				start := time.Now()
				var marks []cpuMark
				var stopFull func()
				var fullErr error
				bc.Progress = func(phase string) {
					fmt.Fprintf(e.stderr, "bench: %s (%s)\n", phase, time.Since(start).Round(time.Second))
					marks = append(marks, markCPU(ctx, phase, rdb))
					switch {
					case phase == "full" && *fullProfile != "":
						stopFull, fullErr = startCPUProfile("--cpuprofile-full", *fullProfile)
					case phase == "after full" && stopFull != nil:
						stopFull()
						stopFull = nil
					}
				}
				res, err := pipeline.Bench(ctx, bc)
				if stopFull != nil {
					stopFull()
				}
				if err = errors.Join(err, fullErr); err != nil {
					return err
				}
				marks = append(marks, markCPU(ctx, "end", rdb))
				out := benchOutput{BenchResult: res, CPU: cpuPerEvent(marks, map[string]int{"stored": res.Stored.Events, "raw": res.Raw.Events, "full": res.Full.Events, "producer": res.ProducerEvents, "floor": res.Floor.Events, "latency": latencyEvents(res)})}
				if *asJSON {
					enc := json.NewEncoder(e.stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(out)
				}
				printBench(e.stdout, out)
				return nil
			}
		},
	}
}

// benchOutput is the result plus the CPU time the phases used.
type benchOutput struct {
	pipeline.BenchResult
	CPU []PhaseCPU `json:"cpu,omitempty"`
}

// PhaseCPU is the CPU time per event of one phase, of this process (the
// pipeline, the bench's producer and, unless --brokers is set, the
// in-process broker) and of the Redis server: unlike wall time it hardly
// moves with the load of other processes on the machine. Phase "producer"
// is the producer alone, at the latency runs' rate: what the latency
// phase's process figure holds beside the pipeline's own; phase "floor"
// the producer with the latency runs' Kafka topology and no work.
type PhaseCPU struct {
	Phase                          string
	Events                         int
	ProcessPerEvent, RedisPerEvent time.Duration
}

// cpuMark is the CPU time used so far when a phase starts.
type cpuMark struct {
	phase                 string
	self, redis           time.Duration
	redisKnown, selfKnown bool
}

func markCPU(ctx context.Context, phase string, rdb redis.UniversalClient) cpuMark {
	m := cpuMark{phase: phase}
	var err error
	m.self, err = cpustat.Self()
	m.selfKnown = err == nil
	m.redis, err = cpustat.Redis(ctx, rdb)
	m.redisKnown = err == nil
	return m
}

// cpuPerEvent turns consecutive marks into CPU time per event of the
// phases named in events.
func cpuPerEvent(marks []cpuMark, events map[string]int) []PhaseCPU {
	var out []PhaseCPU
	for i := 0; i+1 < len(marks); i++ {
		a, b := marks[i], marks[i+1]
		n := events[a.phase]
		if n == 0 || !a.selfKnown || !b.selfKnown {
			continue
		}
		pc := PhaseCPU{Phase: a.phase, Events: n, ProcessPerEvent: (b.self - a.self) / time.Duration(n)}
		if a.redisKnown && b.redisKnown {
			pc.RedisPerEvent = (b.redis - a.redis) / time.Duration(n)
		}
		out = append(out, pc)
	}
	return out
}

// latencyEvents counts the events of every latency run.
func latencyEvents(r pipeline.BenchResult) int {
	n := 0
	for _, l := range r.LatencyRuns {
		n += l.Events
	}
	return n
}

func printBench(w io.Writer, out benchOutput) {
	r := out.BenchResult
	if s := r.Stored; s.Records > 0 {
		fmt.Fprintf(w, "stored         %8d records per tenant: %d events generated in %s, applied in %s (%.0f events/s, %d commands planned, %d batches retried); in Redis %d records, %d lifecycle entries; taken by the full run's owners in %s; peak RSS %d MiB\n",
			s.Records, s.Events, s.Generate.Round(time.Millisecond), s.Elapsed.Round(time.Millisecond), s.PerSec, s.Commands, s.Retries, s.InRedis, s.Lifecycle, s.Take.Round(time.Millisecond), s.PeakRSS>>20)
	}
	fmt.Fprintf(w, "raw ceiling    %8d events in %-8s %9.0f events/s\n", r.Raw.Events, r.Raw.Elapsed.Round(time.Millisecond), r.Raw.PerSec)
	fmt.Fprintf(w, "full pipeline  %8d events in %-8s %9.0f events/s  (%.0f%% of the raw ceiling)\n",
		r.Full.Events, r.Full.Elapsed.Round(time.Millisecond), r.Full.PerSec, r.Ratio*100)
	l := r.Latency
	fmt.Fprintf(w, "latency        %8d events at %d/s: p50 %s, p99 %s, max %s (produce to batch ack)\n",
		l.Events, l.Rate, ms(l.P50), ms(l.P99), ms(l.Max))
	fmt.Fprintf(w, "               %8d commands: p50 %s, p99 %s, max %s (cluster's last change to command ack, less settle %s; %d negative)\n",
		l.Commands, ms(l.CmdP50), ms(l.CmdP99), ms(l.CmdMax), r.Settle, l.CmdNegative)
	if len(r.LatencyRuns) > 1 {
		p99s := make([]string, len(r.LatencyRuns))
		for i, l := range r.LatencyRuns {
			p99s[i] = ms(l.CmdP99) + " / " + ms(l.P99)
		}
		fmt.Fprintf(w, "               the run with the median command p99 of %d; command / batch p99 of each run in order: %s\n", len(r.LatencyRuns), strings.Join(p99s, ", "))
	}
	if f := r.Floor; f.Events > 0 {
		fmt.Fprintf(w, "floor          %8d events at %d/s: p50 %s, p99 %s, max %s (produce to batch ack, both hops, none of the pipeline's work)\n",
			f.Events, f.Rate, ms(f.P50), ms(f.P99), ms(f.Max))
	}
	if r.PeakRSS > 0 {
		parts := make([]string, 0, len(r.RSS))
		for _, s := range r.RSS {
			parts = append(parts, fmt.Sprintf("%s %d", s.Point, s.Bytes>>20))
		}
		fmt.Fprintf(w, "memory         peak RSS %d MiB; RSS MiB at %s\n", r.PeakRSS>>20, strings.Join(parts, ", "))
	}
	if len(r.RedisMemory) > 0 {
		parts := make([]string, 0, len(r.RedisMemory))
		for _, s := range r.RedisMemory {
			parts = append(parts, fmt.Sprintf("%s %d", s.Point, s.Bytes>>20))
		}
		fmt.Fprintf(w, "redis          used_memory MiB at %s\n", strings.Join(parts, ", "))
	}
	fmt.Fprintf(w, "matcher        resident %d MiB at the end; full run: bound %d MiB, largest after a batch %d MiB, %d MiB at its end, %.0f evictions\n",
		r.ResidentBytes>>20, r.ResidentMax>>20, r.ResidentPeakFull>>20, r.ResidentFull>>20, r.EvictionsFull)
	fmt.Fprintf(w, "lifecycle      settled entries at the end of the full run %d MiB (bound %d MiB); full run: %.0f evicted, %.0f read back\n",
		r.LifecycleFull>>20, r.LifecycleMax>>20, r.LifecycleEvictedFull, r.LifecycleLoadedFull)
	events := map[string]float64{}
	for _, c := range out.CPU {
		events[c.Phase] = float64(c.Events)
	}
	for _, m := range []struct {
		phase string
		s     matcher.Stats
		sides int64
	}{{"full", r.MatcherFull, r.SideWritesFull}, {"latency", r.MatcherLatency, r.SideWritesLatency}} {
		if m.s.Batches > 0 {
			// A complete tenant looks nothing up: everything is resident.
			n := max(1, events[m.phase])
			fmt.Fprintf(w, "matcher %-7s %8.0f batches: %.2f Redis round trips/batch, %.0f keys read through, %.0f resident lookups (%.1f%% hits); %d lifecycle writes without input (%.2f round trips per batch in all); %.1f hash fields and %.0f bytes written per event\n",
				m.phase, m.s.Batches, m.s.RoundTrips/m.s.Batches, m.s.Misses, m.s.Hits, 100*m.s.Hits/max(1, m.s.Hits+m.s.Misses), m.sides, (m.s.RoundTrips+float64(m.sides))/m.s.Batches, m.s.Fields/n, m.s.Bytes/n)
			var by []string
			for _, h := range slices.Sorted(maps.Keys(m.s.FieldsByHash)) {
				if f := m.s.FieldsByHash[h]; f > 0 {
					by = append(by, fmt.Sprintf("%s %.2f / %.0f", h, f/n, m.s.BytesByHash[h]/n))
				}
			}
			fmt.Fprintf(w, "               fields / bytes written per event by hash: %s\n", strings.Join(by, ", "))
		}
	}
	for _, c := range out.CPU {
		fmt.Fprintf(w, "cpu %-10s %8d events: process %s/event, redis %s/event\n", c.Phase, c.Events,
			c.ProcessPerEvent.Round(100*time.Nanosecond), c.RedisPerEvent.Round(100*time.Nanosecond))
	}
}

func ms(d time.Duration) string { return d.Round(10 * time.Microsecond).String() }

// redisServer is a private redis-server process.
type redisServer struct {
	cmd *exec.Cmd
	url string
	dir string
}

// startRedisServer starts redis-server from $PATH on a free port, without
// persistence, and waits until it answers.
func startRedisServer(ctx context.Context) (*redisServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("no Redis: set --redis-url or $REDIS_URL, or install redis-server (apt-get install redis-server)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	dir, err := os.MkdirTemp("", "leadconv-bench-redis")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	s := &redisServer{cmd: cmd, url: fmt.Sprintf("redis://127.0.0.1:%d/0", port), dir: dir}
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), MaxRetries: -1})
	defer rdb.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if err := rdb.Ping(ctx).Err(); err == nil {
			return s, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.stop()
			return nil, fmt.Errorf("redis-server on port %d did not answer", port)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *redisServer) stop() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	_ = os.RemoveAll(s.dir)
}

// startCPUProfile profiles this process until the returned stop is called.
func startCPUProfile(flag, path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
