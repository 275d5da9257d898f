package main

import (
	"log/slog"
	"math"
	"os"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/rs/zerolog"
)

// gcPercentUnderLimit is GOGC for a process whose heap a memory limit
// bounds: the collector runs a fifth as often as at the runtime's 100, and
// near the limit the limit makes it work harder instead. At 2,000 events/s
// it took the command p99 from 30–32 ms to 18–19 ms with the broker in its
// own process, for ×1.7–3.0 the peak RSS (BENCHMARKS.md, *The collector
// and the p99*).
const gcPercentUnderLimit = 400

// gcPercent is the GOGC tuneGC sets: 0 leaves the runtime's, which it
// does when the operator set GOGC or no memory limit bounds the heap.
func gcPercent(gogcSet bool, limit int64) int {
	if gogcSet || limit <= 0 || limit == math.MaxInt64 {
		return 0
	}
	return gcPercentUnderLimit
}

// tuneGC sets the collector of a long-running command: a memory limit of
// 90 % of the container's (cgroup) limit unless GOMEMLIMIT is set
// (automemlimit), then, under a limit, GOGC 400 unless GOGC is set. It
// logs and returns what it set (0: the runtime's).
func tuneGC(log zerolog.Logger) (gogc int, limit int64) {
	limit, err := memlimit.Set(memlimit.WithRatio(0.9), memlimit.WithProvider(memlimit.FromCgroup),
		memlimit.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Warn().Err(err).Msg("the container's memory limit cannot be read: the collector keeps the runtime's settings")
		return 0, limit
	}
	_, set := os.LookupEnv("GOGC")
	p := gcPercent(set, limit)
	if p > 0 {
		debug.SetGCPercent(p)
	}
	ev := log.Info().Bool("gogc_from_env", set)
	if p > 0 {
		ev = ev.Int("gogc", p)
	}
	if limit < math.MaxInt64 {
		ev = ev.Int64("memory_limit_bytes", limit)
	}
	ev.Msg("collector")
	return p, limit
}
