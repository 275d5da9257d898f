package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/leadconv/leadconv/internal/pipeline"
	"github.com/leadconv/leadconv/internal/testutil/redistest"
)

var smallBench = []string{"bench", "--events", "1500", "--latency-events", "200", "--latency-runs", "2", "--rate", "1000", "--partitions", "2"}

// A small run on a given Redis prints every figure and leaves no keys.
func TestBenchPrintsEveryFigure(t *testing.T) {
	t.Parallel()
	srv := redistest.New(t)
	code, stdout, stderr := runMain(t, map[string]string{"REDIS_URL": srv.URL()}, smallBench...)
	if code != exitOK {
		t.Fatalf("code %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"raw ceiling        1500 events", "full pipeline      1500 events", "of the raw ceiling", "200 events at 1000/s: p50 ", "p99 ", "median command p99 of 2; command / batch p99 of each run in order: ", "commands: p50 ", "less settle 2s", "peak RSS", "cpu full", "cpu latency         400 events", "both hops, none of the pipeline's work", "cpu floor           200 events", "hash fields and ", "written per event by hash: a "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "bench: latency") {
		t.Errorf("no phase progress on stderr:\n%s", stderr)
	}
	if n := keyCount(t, srv); n != 0 {
		t.Errorf("bench left %d keys in Redis", n)
	}
}

// Without a Redis URL it starts its own redis-server; --json is the whole
// result.
func TestBenchOwnRedisJSON(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := runMain(t, nil, append(smallBench, "--json")...)
	if code != exitOK {
		t.Fatalf("code %d\n%s\n%s", code, stdout, stderr)
	}
	var res pipeline.BenchResult
	var cpu struct{ CPU []PhaseCPU }
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout)
	}
	if err := json.Unmarshal([]byte(stdout), &cpu); err != nil || len(cpu.CPU) != 5 {
		t.Fatalf("cpu = %+v (%v), want the raw, full, producer, floor and latency phases", cpu.CPU, err)
	}
	for _, c := range cpu.CPU {
		if c.ProcessPerEvent <= 0 || c.RedisPerEvent <= 0 {
			t.Errorf("phase %s: no CPU time measured: %+v", c.Phase, c)
		}
	}
	if res.Raw.PerSec <= 0 || res.Full.PerSec <= 0 || res.Full.Events != 1500 || res.Latency.P99 <= 0 || res.Latency.P50 > res.Latency.P99 || res.Ratio <= 0 {
		t.Fatalf("implausible result %+v", res)
	}
	var sum, bytes float64
	for _, n := range res.MatcherFull.FieldsByHash {
		sum += n
	}
	for _, n := range res.MatcherFull.BytesByHash {
		bytes += n
	}
	// Every full-run event writes at least its record (one field for
	// several updates of it in a batch), the lifecycle its side state.
	if f := res.MatcherFull; f.Fields < float64(res.Full.Events) || f.Bytes <= f.Fields || sum != f.Fields || bytes != f.Bytes || f.BytesByHash["r"] <= f.FieldsByHash["r"] || f.FieldsByHash["r"] == 0 || f.FieldsByHash["side"] == 0 {
		t.Fatalf("full run wrote %v hash fields (%v), %v bytes, for %d events", f.Fields, f.FieldsByHash, f.Bytes, res.Full.Events)
	}
	if len(res.LatencyRuns) != 2 || (res.Latency != res.LatencyRuns[0] && res.Latency != res.LatencyRuns[1]) || cpu.CPU[4].Events != 400 {
		t.Fatalf("latency %+v of runs %+v (cpu over %d events), want the lower-command-p99 one of two runs over 400", res.Latency, res.LatencyRuns, cpu.CPU[4].Events)
	}
	// The load generator alone, over the first run's records (and its
	// warm-up event).
	if c := cpu.CPU[2]; c.Phase != "producer" || c.Events != 201 || res.ProducerEvents != 201 {
		t.Fatalf("producer phase %+v, %d events", c, res.ProducerEvents)
	}
	// The floor over the first run's records less its warm-up.
	if c, f := cpu.CPU[3], res.Floor; c.Phase != "floor" || c.Events != 200 || f.Events != 200 || f.P50 <= 0 || f.P50 > f.P99 || f.P99 > f.Max {
		t.Fatalf("floor phase %+v, floor %+v", c, f)
	}
	if lo := min(res.LatencyRuns[0].CmdP99, res.LatencyRuns[1].CmdP99); res.Latency.CmdP99 != lo {
		t.Fatalf("reported command p99 %v, want the median run's (the lower of two) %v", res.Latency.CmdP99, lo)
	}
}

// --stored gives the throughput tenant its stored records first: reported
// apart, with the preload's CPU per event; a heap profile and a CPU profile
// of the full run are written.
func TestBenchStored(t *testing.T) {
	t.Parallel()
	srv := redistest.New(t)
	dir := t.TempDir()
	heap, cpu := filepath.Join(dir, "heap.prof"), filepath.Join(dir, "cpu.prof")
	code, stdout, stderr := runMain(t, map[string]string{"REDIS_URL": srv.URL()}, append(smallBench, "--stored", "3000", "--memprofile", heap, "--cpuprofile-full", cpu)...)
	if code != exitOK {
		t.Fatalf("code %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"stored             3000 records per tenant: ", "in Redis 3000 records, ", "taken by the full run's owners in ", "cpu stored ", "RSS MiB at start ", "taken ", "redis          used_memory MiB at start ", "full run: bound 512 MiB"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	for _, prof := range []string{heap, cpu} {
		if fi, err := os.Stat(prof); err != nil || fi.Size() == 0 {
			t.Errorf("no profile %s: %v", prof, err)
		}
	}
	if n := keyCount(t, srv); n != 0 {
		t.Errorf("bench left %d keys in Redis", n)
	}
}

func TestBenchUsageErrors(t *testing.T) {
	for _, c := range []struct{ arg, val string }{{"--rate", "0"}, {"--stored", "-1"}} {
		code, _, stderr := runMain(t, nil, "bench", c.arg, c.val)
		if code != exitUsage || !strings.Contains(stderr, c.arg+" "+c.val) {
			t.Fatalf("%s %s: code %d, stderr %q", c.arg, c.val, code, stderr)
		}
	}
}
