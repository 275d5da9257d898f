package main

import (
	"math"
	"os"
	"runtime/debug"
	"testing"

	"github.com/rs/zerolog"
)

func TestGCPercent(t *testing.T) {
	for _, tc := range []struct {
		name    string
		gogcSet bool
		limit   int64
		want    int
	}{
		{"a limit, no GOGC", false, 1 << 30, gcPercentUnderLimit},
		{"a limit, GOGC set", true, 1 << 30, 0},
		{"no limit", false, math.MaxInt64, 0},
		{"no limit, GOGC set", true, math.MaxInt64, 0},
	} {
		if got := gcPercent(tc.gogcSet, tc.limit); got != tc.want {
			t.Errorf("%s: gcPercent = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// Under a limit given by GOMEMLIMIT (which the runtime read at start, as
// here by hand), and with no GOGC, tuneGC raises GOGC; with GOGC set it
// leaves it.
func TestTuneGCUnderALimit(t *testing.T) {
	prevLimit := debug.SetMemoryLimit(1 << 30)
	prevPercent := debug.SetGCPercent(100)
	t.Cleanup(func() {
		debug.SetMemoryLimit(prevLimit)
		debug.SetGCPercent(prevPercent)
	})
	t.Setenv("GOMEMLIMIT", "1GiB")
	gogc, hadGOGC := os.LookupEnv("GOGC")
	os.Unsetenv("GOGC")
	t.Cleanup(func() {
		if hadGOGC {
			os.Setenv("GOGC", gogc)
		}
	})
	tuneGC(zerolog.Nop())
	if p := debug.SetGCPercent(100); p != gcPercentUnderLimit {
		t.Fatalf("GOGC %d under a limit, want %d", p, gcPercentUnderLimit)
	}
	t.Setenv("GOGC", "150")
	debug.SetGCPercent(150)
	tuneGC(zerolog.Nop())
	if p := debug.SetGCPercent(150); p != 150 {
		t.Fatalf("GOGC %d with GOGC=150 set, want it left", p)
	}
}
