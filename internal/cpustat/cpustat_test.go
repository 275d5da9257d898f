package cpustat

import (
	"context"
	"testing"

	"github.com/leadconv/leadconv/internal/testutil/redistest"
)

func TestSelfGrowsWithWork(t *testing.T) {
	before, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for i := range 50_000_000 {
		x ^= i * i
	}
	after, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Fatalf("CPU time went from %v to %v over a busy loop (%d)", before, after, x)
	}
}

func TestRedisReadsTheServersCPU(t *testing.T) {
	srv := redistest.New(t)
	rdb := srv.Client()
	ctx := context.Background()
	before, err := Redis(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	pipe := rdb.Pipeline()
	for i := range 200_000 {
		pipe.HSet(ctx, "h", i, i)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	after, err := Redis(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Fatalf("server CPU went from %v to %v over 200,000 writes", before, after)
	}
}
