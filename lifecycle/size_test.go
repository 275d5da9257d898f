package lifecycle

import (
	"encoding/json"
	"maps"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/leadconv/leadconv/engine"
	leadgen "github.com/leadconv/leadconv/matcher/gen"
	"github.com/leadconv/leadconv/record"
)

// The estimate Evict bounds (entrySize) stands for the heap settled entries
// take as an owner holds them after reading them back: decoded from their
// stored JSON into the lifecycle's map. Measured against the heap, over
// generated clusters planned to their end, it is never under the heap (so
// --lifecycle-cache-bytes bounds what it says) nor over it by more than a
// third (so the bound is not wasted). It does not count the claims index
// or the eviction queue (README, Lifecycle durability).
func TestEntrySizeEstimatesTheHeap(t *testing.T) {
	// What planned them is garbage by the first collection: only what
	// the entries hold after is counted.
	stored := settledEntriesJSON(t)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	held := make(map[string]*Entry)
	estimate := 0
	for _, b := range stored {
		e := new(Entry)
		if err := json.Unmarshal(b, e); err != nil {
			t.Fatal(err)
		}
		held[e.ClusterID] = e
		estimate += entrySize(e)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	runtime.KeepAlive(held)
	runtime.KeepAlive(stored) // not freed between the two readings
	ratio := float64(heap) / float64(estimate)
	t.Logf("%d settled entries: heap %d bytes, estimated %d (heap/estimate %.2f), %d bytes an entry", len(held), heap, estimate, ratio, heap/int64(len(held)))
	if ratio < 0.75 || ratio > 1 {
		t.Fatalf("heap/estimate %.2f, want 0.75 to 1", ratio)
	}
}

// settledEntriesJSON plans generated clusters to their end and returns
// the settled entries as an owner stores them.
func settledEntriesJSON(t *testing.T) [][]byte {
	t.Helper()
	set := leadgen.New(leadgen.Options{Seed: 7, Records: 6000})
	byEntity := map[string][]record.Record{}
	truth := set.Truth()
	for _, r := range set.Records() {
		e := truth[r.Ref()]
		byEntity[e] = append(byEntity[e], r)
	}
	l := New(Options{})
	cfg := cfgWith(nil)
	at := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	for _, e := range slices.Sorted(maps.Keys(byEntity)) {
		l.Change(Change{Cluster: engine.Cluster{Tenant: "acme", ID: "k-" + e, Version: 1, Records: byEntity[e]}, At: at})
	}
	planAll(t, l, cfg, l.Due(at.Add(time.Hour)))
	changed, _ := l.TakeDirty()
	stored := make([][]byte, 0, len(changed))
	for _, e := range changed {
		if !e.Settled {
			t.Fatalf("cluster %s not settled", e.ClusterID)
		}
		b, err := e.AppendJSON(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, b)
	}
	if len(stored) < 1000 {
		t.Fatalf("only %d entries", len(stored))
	}
	return stored
}
