package matcher

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/leadconv/leadconv/internal/cpustat"
	"github.com/leadconv/leadconv/internal/testutil/redistest"
	"github.com/leadconv/leadconv/matcher/gen"
	"github.com/leadconv/leadconv/record"
)

var (
	benchStored = flag.String("matcher.stored", "10000,100000", "comma-separated numbers of leads stored before the measured run (add 1000000 for the scaling figure)")
	benchEvents = flag.Int("matcher.events", 100_000, "events applied in the measured run")
	benchBatch  = flag.Int("matcher.batch", 500, "events per Apply call, as one fetched batch")
	benchCache  = flag.Int64("matcher.cache-bytes", 0, "resident state budget in bytes (0: the default)")
	benchCPU    = flag.String("matcher.cpuprofile", "", "write a CPU profile of the measured run (not the preload) to this file, suffixed with the stored count")
)

// BenchmarkStoreThroughput applies generated leads (about 30% duplicates)
// on top of a store already holding matcher.stored leads, by one owner (the
// single writer of the tenant, warm after the preload), and reports
// events/s beside the ceiling of one pipelined EVALSHA of a 5-command
// script per event, measured in the same run, the CPU time per event of
// this process (the store, and the benchmark's own small share) and of the
// Redis server, the collector's share of it and its cycles, the round
// trips per batch, the hash fields and bytes written per event and the
// resident bytes.
//
//	go test -run '^$' -bench StoreThroughput -benchtime 1x ./matcher/
func BenchmarkStoreThroughput(b *testing.B) {
	for _, f := range strings.Split(*benchStored, ",") {
		stored, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			b.Fatalf("-matcher.stored: %v", err)
		}
		b.Run(fmt.Sprintf("stored=%d", stored), func(b *testing.B) {
			set := gen.New(gen.Options{Seed: 7, Records: stored + *benchEvents, ContactShare: 0.2})
			events := set.Events()
			preload, measured := events[:stored], events[stored:]
			var rate, ceiling, goCPU, redisCPU, gcCPU, gcCycles, trips, resident, rss, fields, bytes float64
			for range b.N {
				b.StopTimer()
				srv := redistest.New(b)
				rdb := srv.Client()
				s := benchStore(b, rdb)
				applyAll(b, s, preload)
				self0, redis0 := cpuNow(b, rdb)
				st0 := s.res.Stats()
				gc0 := gcNow()
				stopProfile := startCPUProfile(b, stored)
				b.StartTimer()
				start := time.Now()
				applyAll(b, s, measured)
				rate = float64(len(measured)) / time.Since(start).Seconds()
				b.StopTimer()
				stopProfile()
				self1, redis1 := cpuNow(b, rdb)
				gc1 := gcNow()
				gcCycles = gc1.cycles - gc0.cycles
				gcCPU = (gc1.cpu - gc0.cpu) * 1e6 / float64(len(measured))
				goCPU = float64((self1 - self0).Microseconds()) / float64(len(measured))
				redisCPU = float64((redis1 - redis0).Microseconds()) / float64(len(measured))
				st := s.res.Stats().Sub(st0)
				trips = st.RoundTrips / st.Batches
				fields, bytes = st.Fields/float64(len(measured)), st.Bytes/float64(len(measured))
				resident = float64(s.res.Bytes()) / (1 << 20)
				rss = float64(readRSS()) / (1 << 20)
				ceiling = evalshaCeiling(b, rdb, len(measured))
				b.StartTimer()
			}
			b.ReportMetric(trips, "round_trips/batch")
			b.ReportMetric(fields, "fields_written/event")
			b.ReportMetric(bytes, "bytes_written/event")
			b.ReportMetric(resident, "resident_MiB")
			b.ReportMetric(rss, "rss_MiB")
			b.ReportMetric(rate, "events/s")
			b.ReportMetric(ceiling, "ceiling_events/s")
			b.ReportMetric(rate/ceiling, "ratio")
			b.ReportMetric(goCPU, "go_cpu_µs/event")
			b.ReportMetric(redisCPU, "redis_cpu_µs/event")
			b.ReportMetric(gcCPU, "gc_cpu_µs/event")
			b.ReportMetric(gcCycles, "gc_cycles")
		})
	}
}

// gcReading is the collector's work so far: cycles completed and CPU
// seconds (mark workers and assists). A tenant of a million records makes
// a heap whose cycle outlasts a short measured run: whether one falls in
// it moves the process's CPU per event by a multiple, so it is reported.
type gcReading struct{ cycles, cpu float64 }

func gcNow() gcReading {
	ms := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(ms)
	return gcReading{cycles: float64(ms[0].Value.Uint64()), cpu: ms[1].Value.Float64()}
}

// startCPUProfile profiles the measured run when -matcher.cpuprofile is
// set; the returned function stops it.
func startCPUProfile(b *testing.B, stored int) (stop func()) {
	if *benchCPU == "" {
		return func() {}
	}
	f, err := os.Create(fmt.Sprintf("%s.%d", *benchCPU, stored))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// cpuNow returns the CPU time used so far by this process and by Redis: the
// per-event figures they give hardly move with the load of other processes,
// unlike events/s.
func cpuNow(b *testing.B, rdb redis.UniversalClient) (self, server time.Duration) {
	self, err := cpustat.Self()
	if err != nil {
		b.Fatal(err)
	}
	server, err = cpustat.Redis(context.Background(), rdb)
	if err != nil {
		b.Fatal(err)
	}
	return self, server
}

// BenchmarkStoreMemory reports the Redis memory per stored lead: used_memory
// after loading matcher.events generated leads minus before, divided by them.
//
//	go test -run '^$' -bench StoreMemory -benchtime 1x ./matcher/
func BenchmarkStoreMemory(b *testing.B) {
	set := gen.New(gen.Options{Seed: 11, Records: *benchEvents, ContactShare: 0.2})
	var perLead, fields float64
	for range b.N {
		srv := redistest.New(b)
		rdb := srv.Client()
		s := benchStore(b, rdb)
		ctx := context.Background()
		before, err := redistest.UsedMemory(ctx, rdb)
		if err != nil {
			b.Fatal(err)
		}
		applyAll(b, s, set.Events())
		after, err := redistest.UsedMemory(ctx, rdb)
		if err != nil {
			b.Fatal(err)
		}
		perLead = float64(after-before) / float64(len(set.Events()))
	}
	var n int
	for _, ev := range set.Events() {
		n += len(ev.Fields)
	}
	fields = float64(n) / float64(len(set.Events()))
	b.ReportMetric(perLead, "B/lead")
	b.ReportMetric(fields, "fields/lead")
}

func benchStore(b *testing.B, rdb redis.UniversalClient) *Store {
	rs, err := Compile(DefaultConfig(), gen.ContactFields())
	if err != nil {
		b.Fatal(err)
	}
	return NewStore(rdb, StoreOptions{Namespace: "bench", Rules: func(string) (*Ruleset, error) { return rs, nil },
		Resident: NewResident(ResidentOptions{MaxBytes: *benchCache})})
}

// applyAll applies events in batches, in order, as the owner of their
// partition does.
func applyAll(b *testing.B, s *Store, events []record.Event) {
	ctx := context.Background()
	for i := 0; i < len(events); i += *benchBatch {
		if _, err := s.Apply(ctx, events[i:min(i+*benchBatch, len(events))]); err != nil {
			b.Fatal(err)
		}
	}
}

// ceilingScript is the reference per-event cost: five commands on hashes
// of one hash tag, about what the lightest real event needs.
var ceilingScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
local c = redis.call('HGET', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[1])
return v and 1 or 0
`)

// evalshaCeiling runs n pipelined EVALSHA calls in the same batches and
// sequence as applyAll and returns calls per second.
func evalshaCeiling(b *testing.B, rdb redis.UniversalClient, n int) float64 {
	ctx := context.Background()
	if err := ceilingScript.Load(ctx, rdb).Err(); err != nil {
		b.Fatal(err)
	}
	keys := []string{"ceil:{t}:r", "ceil:{t}:v", "ceil:{t}:c"}
	value := strings.Repeat("x", 300)
	size := *benchBatch
	start := time.Now()
	for i := 0; i < n; i += size {
		pipe := rdb.Pipeline()
		for j := i; j < min(i+size, n); j++ {
			ceilingScript.EvalSha(ctx, pipe, keys, "r"+strconv.Itoa(j), value)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

// readRSS is this process's resident set in bytes (VmRSS; 0 where /proc is
// not available).
func readRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
