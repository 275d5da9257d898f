package matcher

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/leadconv/leadconv/internal/testutil/redistest"
)

// TestStoreOnRedisCluster runs the oracle test on a three-master Redis
// Cluster, with one tenant on each master, and kills the tenant
// connections (fences) of one master midway: the owners dial them again
// and redo the writes, and every tenant still ends with the oracle's
// clusters. Pipelines are split by slot on a cluster, so this is
// also the test of the store's pipelines there.
func TestStoreOnRedisCluster(t *testing.T) {
	cs := redistest.NewCluster(t, 3)
	ctx := context.Background()
	// Tenants whose hash tags land on three different masters.
	var tenants []string
	var killed *redistest.Server
	seen := map[*redistest.Server]bool{}
	for i := 0; len(tenants) < 3 && i < 100; i++ {
		tenant := fmt.Sprintf("tenant%d", i)
		n := cs.NodeOf(ctx, tenantKeys("x", tenant).epoch)
		if seen[n] {
			continue
		}
		seen[n] = true
		tenants = append(tenants, tenant)
		killed = n
	}
	if len(tenants) < 3 {
		t.Fatalf("found tenants on %d masters only", len(tenants))
	}
	reconnects := checkOwnersOracle(t, cs.Client(), oracleRun{
		seed: 7, tenants: tenants, events: 2000,
		midway: func() {
			if n := killFences(t, killed); n == 0 {
				t.Error("no fence connection to kill on the master")
			}
		},
	})
	if reconnects == 0 {
		t.Fatal("no fence reconnect after one master killed its tenant connections: the loss was never met")
	}
	// Each master holds keys of exactly its tenant's slot.
	for _, n := range cs.Nodes {
		if k, err := n.Client().DBSize(ctx).Result(); err != nil || k == 0 {
			t.Errorf("a master holds %d keys (%v): the tenants are not spread", k, err)
		}
	}
}

// killFences kills the fence connections (client name leadconv-fence) on
// srv and returns how many it killed.
func killFences(t *testing.T, srv *redistest.Server) int {
	t.Helper()
	ctx := context.Background()
	list, err := srv.Client().ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(list, "\n") {
		if !strings.Contains(line, " name="+fenceClientName+" ") {
			continue
		}
		id, _, _ := strings.Cut(strings.TrimPrefix(line, "id="), " ")
		if err := srv.Client().ClientKillByFilter(ctx, "ID", id).Err(); err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}
