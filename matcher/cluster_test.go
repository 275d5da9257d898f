package matcher

import (
	"context"
	"fmt"
	"testing"

	"github.com/leadconv/leadconv/internal/testutil/redistest"
)

// TestStoreOnRedisCluster runs the oracle test on a three-master Redis
// Cluster, with one tenant on each master, and flushes the script cache of
// one master midway: its NOSCRIPT replies reload the script and the writes
// are redone, and every tenant still ends with the oracle's clusters. Pipelines are split by slot on a cluster, so this is
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
		n := cs.NodeOf(ctx, tenantKeys("x", tenant).epoch)
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
	// The first calls load the script (a fresh server has none); after the
	// flush, the owners of that master's tenant load it again.
	reloads := checkOwnersOracle(t, cs.Client(), oracleRun{
		seed: 7, tenants: tenants, events: 2000,
		midway: func() {
			if err := flushed.Client().ScriptFlush(ctx).Err(); err != nil {
				t.Errorf("script flush: %v", err)
			}
		},
	})
	if reloads == 0 {
		t.Fatal("no script reload after one master lost its script cache: the loss was never met")
	}
	// Each master holds keys of exactly its tenant's slot.
	for _, n := range cs.Nodes {
		if k, err := n.Client().DBSize(ctx).Result(); err != nil || k == 0 {
			t.Errorf("a master holds %d keys (%v): the tenants are not spread", k, err)
		}
	}
}
