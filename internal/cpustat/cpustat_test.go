package cpustat

import (
	"context"
	"testing"
	"time"

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

// On a cluster the CPU is every master's: the sum lies between the masters'
// figures read one by one before and after it (CPU time only grows), which
// one node's figure alone would not reach.
func TestRedisSumsClusterMasters(t *testing.T) {
	cs := redistest.NewCluster(t, 3)
	ctx := context.Background()
	each := func() time.Duration {
		var total time.Duration
		for _, n := range cs.Nodes {
			d, err := Redis(ctx, n.Client())
			if err != nil {
				t.Fatal(err)
			}
			total += d
		}
		return total
	}
	before := each()
	sum, err := Redis(ctx, cs.Client())
	if err != nil {
		t.Fatal(err)
	}
	if after := each(); sum < before || sum > after {
		t.Fatalf("cluster CPU %v, the masters' one by one %v before and %v after", sum, before, after)
	}
}
