package pipeline_test

import (
	"flag"
	"slices"
	"testing"
	"time"

	"github.com/leadconv/leadconv/internal/pipeline"
	"github.com/leadconv/leadconv/internal/testutil/redistest"
)

var benchEvents = flag.Int("bench.events", 200_000, "events of BenchmarkEndToEnd's throughput runs")

// Bench itself works: small runs of every phase process every event, and
// the figures are consistent with each other.
func TestBenchSmall(t *testing.T) {
	srv := redistest.New(t)
	settle := 200 * time.Millisecond
	res, err := pipeline.Bench(t.Context(), pipeline.BenchConfig{
		Redis: srv.Client(), Namespace: redistest.Namespace(t), Events: 1500, Partitions: 3,
		Rate: 2000, LatencyEvents: 300, LatencyRuns: 3, Settle: &settle,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Raw.Events != 1500 || res.Full.Events != 1500 || res.Latency.Events != 300 {
		t.Fatalf("events raw %d full %d latency %d", res.Raw.Events, res.Full.Events, res.Latency.Events)
	}
	if res.Raw.PerSec <= 0 || res.Full.PerSec <= 0 || res.Ratio != res.Full.PerSec/res.Raw.PerSec {
		t.Fatalf("rates raw %v full %v ratio %v", res.Raw.PerSec, res.Full.PerSec, res.Ratio)
	}
	for _, l := range res.LatencyRuns {
		if l.Events != 300 || l.P50 <= 0 || l.P50 > l.P99 || l.P99 > l.Max || l.Max > time.Minute {
			t.Fatalf("latency run %+v", l)
		}
		// No command comes out before its cluster's settle window passed
		// (max_settle, 30 s, is longer than the run).
		if l.Commands == 0 || l.CmdNegative != 0 || l.CmdP50 < 0 || l.CmdP50 > l.CmdP99 || l.CmdP99 > l.CmdMax || l.CmdMax > time.Minute {
			t.Fatalf("latency run's commands %+v", l)
		}
	}
	// The floor: the first run's events through the latency runs' Kafka
	// topology alone.
	if f := res.Floor; f.Events != 300 || f.Rate != 2000 || f.P50 <= 0 || f.P50 > f.P99 || f.P99 > f.Max || f.Max > time.Minute {
		t.Fatalf("floor %+v", f)
	}
	p99s := make([]time.Duration, len(res.LatencyRuns))
	for i, l := range res.LatencyRuns {
		p99s[i] = l.CmdP99
	}
	slices.Sort(p99s)
	if res.Settle != settle {
		t.Fatalf("settle %s, want %s", res.Settle, settle)
	}
	// The windows still open when a run's input ends close on the wall
	// clock: their plans and releases are written without input.
	if res.SideWritesLatency == 0 {
		t.Fatal("no lifecycle write without input counted in the latency runs")
	}
	if len(p99s) != 3 || res.Latency.CmdP99 != p99s[1] || !slices.Contains(res.LatencyRuns, res.Latency) {
		t.Fatalf("reported %+v, want the run with the median command p99 of %+v", res.Latency, res.LatencyRuns)
	}
	// With the in-process broker, the throughput topics are dropped before
	// the latency run.
	var points []string
	for _, r := range res.RSS {
		points = append(points, r.Point)
	}
	want := []string{"start", "produced", "raw", "full", "throughput topics dropped", "latency"}
	if res.PeakRSS <= 0 || !slices.Equal(points, want) {
		t.Fatalf("rss %+v peak %d, want the points %q", res.RSS, res.PeakRSS, want)
	}
}

// With Stored, the throughput tenant holds that many records (and the
// lifecycle entries of their plans) before the full run, and the full
// run's events meet them: with a budget too small to load the tenant
// whole, they read stored keys through, and the budget holds after every
// batch.
func TestBenchStored(t *testing.T) {
	srv := redistest.New(t)
	const stored = 4000
	res, err := pipeline.Bench(t.Context(), pipeline.BenchConfig{
		Redis: srv.Client(), Namespace: redistest.Namespace(t), Events: 1000, Stored: stored, Partitions: 2,
		ResidentBytes: 2 << 20, LatencyEvents: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := res.Stored
	if s.Records != stored || s.InRedis != stored || s.Events <= stored || s.Lifecycle == 0 || s.Commands == 0 {
		t.Fatalf("stored %+v: want %d records in Redis, created by more events (updates among them), with lifecycle entries and commands", s, stored)
	}
	if s.Elapsed <= 0 || s.Take <= 0 || s.PeakRSS <= 0 || res.Full.Events != 1000 {
		t.Fatalf("stored %+v, full %+v", s, res.Full)
	}
	if m := res.MatcherFull; m.Misses == 0 || m.Batches == 0 {
		t.Fatalf("full run's matcher %+v: nothing stored read through", m)
	}
	if res.ResidentMax != 2<<20 || res.ResidentPeakFull <= 0 || res.ResidentPeakFull > res.ResidentMax || res.EvictionsFull <= 0 {
		t.Fatalf("resident bound %d, largest after a batch %d, %v evictions", res.ResidentMax, res.ResidentPeakFull, res.EvictionsFull)
	}
	var points []string
	for _, r := range res.RSS {
		points = append(points, r.Point)
	}
	want := []string{"start", "stored", "produced", "raw", "taken", "full", "throughput topics dropped", "latency"}
	if !slices.Equal(points, want) || len(res.RedisMemory) != len(want) || res.RedisMemory[1].Bytes <= res.RedisMemory[0].Bytes {
		t.Fatalf("rss %+v, redis %+v, want the points %q, Redis grown by the stored records", res.RSS, res.RedisMemory, want)
	}
}

// BenchmarkEndToEnd is the end-to-end benchmark: run it once with
//
//	go test -run '^$' -bench EndToEnd -benchtime 1x ./internal/pipeline/
func BenchmarkEndToEnd(b *testing.B) {
	srv := redistest.New(b)
	var res pipeline.BenchResult
	for b.Loop() {
		var err error
		res, err = pipeline.Bench(b.Context(), pipeline.BenchConfig{Redis: srv.Client(), Namespace: redistest.Namespace(b), Events: *benchEvents})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(res.Raw.PerSec, "raw_events/s")
	b.ReportMetric(res.Full.PerSec, "full_events/s")
	b.ReportMetric(res.Ratio, "full/raw")
	b.ReportMetric(float64(res.Latency.P50.Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(res.Latency.P99.Microseconds())/1000, "p99_ms")
	b.ReportMetric(float64(res.PeakRSS)/(1<<20), "peak_rss_MiB")
	for _, s := range res.RSS {
		b.Logf("rss at %s: %d MiB", s.Point, s.Bytes>>20)
	}
}
