package matcher

import (
	"context"
	"fmt"
	"testing"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/leadconv/leadconv/internal/testutil/redistest"
)

// TestStoreOnRedisCluster runs the oracle test on a three-master Redis
// Cluster, with one tenant on each master, and flushes the script cache of
// one master midway: its NOSCRIPT replies reload the scripts (on every
// master) and the batches are redone, and every tenant still ends with the
// oracle's clusters. Pipelines are split by slot on a cluster, so this is
// also the test of the store's pipelines there.
func TestStoreOnRedisCluster(t *testing.T) {
	cs := redistest.NewCluster(t, 3)
	ctx := context.Background()
	// Tenants whose hash tags land on three different masters.
	var tenants []string
	var flushed *redistest.Server
	seen := map[*redistest.Server]bool{}
	for i := 0; len(tenants) < 3 && i < 100; i++ {
		tenant := fmt.Sprintf("tenant%d", i)
		n := cs.NodeOf(ctx, tenantKeys("x", tenant).records)
		if seen[n] {
			continue
		}
		seen[n] = true
		tenants = append(tenants, tenant)
		flushed = n
	}
	if len(tenants) < 3 {
		t.Fatalf("found tenants on %d masters only", len(tenants))
	}
	reloads := func(stores []*Store) float64 {
		return promtest.ToFloat64(stores[0].reloads) + promtest.ToFloat64(stores[1].reloads)
	}
	// The first calls load the scripts (a fresh server has none); what the
	// flush causes comes after.
	var before float64
	stores := checkConcurrentOracle(t, func() redis.UniversalClient { return cs.Client() }, oracleRun{
		seed: 7, tenants: tenants, events: 2000,
		midway: func(stores []*Store) {
			before = reloads(stores)
			if err := flushed.Client().ScriptFlush(ctx).Err(); err != nil {
				t.Errorf("script flush: %v", err)
			}
		},
	})
	if n := reloads(stores); n <= before {
		t.Fatalf("script reloads = %v, %v before one master lost its script cache: the loss was never met", n, before)
	}
	// Each master holds keys of exactly its tenant's slot.
	for _, n := range cs.Nodes {
		if k, err := n.Client().DBSize(ctx).Result(); err != nil || k == 0 {
			t.Errorf("a master holds %d keys (%v): the tenants are not spread", k, err)
		}
	}
}
