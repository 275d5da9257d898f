package matcher

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/leadconv/leadconv/internal/testutil/redistest"
	"github.com/leadconv/leadconv/record"
)

// TestStoreWritesTenantsInWaves writes batches of more tenants than a store
// pins connections for: every tenant is stored, the store never holds more
// than maxFences connections, the least recently written are the ones
// closed, and a tenant taken by another owner in the second wave fences the
// store.
func TestStoreWritesTenantsInWaves(t *testing.T) {
	srv := redistest.New(t)
	ctx := context.Background()
	ns := redistest.Namespace(t)
	s := newTestStore(t, srv, DefaultConfig(), ns)
	const n = maxFences*2 + 5
	batch := func(minute int) []record.Event {
		var evs []record.Event
		for i := range n {
			ev := upsertLead("1", minute, person("Ann", "Lee", fmt.Sprintf("ann%d@x.com", minute)))
			ev.Tenant = fmt.Sprintf("t%03d", i)
			evs = append(evs, ev)
		}
		return evs
	}
	if _, err := s.Apply(ctx, batch(1)); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		k := tenantKeys(ns, fmt.Sprintf("t%03d", i))
		if got, err := srv.Client().HLen(ctx, k.hashes[hR]).Result(); err != nil || got != 1 {
			t.Fatalf("tenant %d: %d records stored (%v)", i, got, err)
		}
	}
	if len(s.fences) > maxFences {
		t.Fatalf("%d fences pinned, at most %d", len(s.fences), maxFences)
	}
	if got := promtest.ToFloat64(s.res.arms); got != n {
		t.Fatalf("fence arms = %v, want %d (one per tenant)", got, n)
	}
	// A batch of the tenants the store still pins arms nothing.
	var pinned []record.Event
	for _, ev := range batch(2) {
		if s.fences[ev.Tenant] != nil {
			pinned = append(pinned, ev)
		}
	}
	if len(pinned) == 0 {
		t.Fatal("no fence kept after the batch")
	}
	if _, err := s.Apply(ctx, pinned); err != nil {
		t.Fatal(err)
	}
	if got := promtest.ToFloat64(s.res.arms); got != n {
		t.Fatalf("fence arms = %v after a batch of pinned tenants, want still %d", got, n)
	}
	// Another owner takes a tenant of the second wave.
	b := newTestStore(t, srv, DefaultConfig(), ns)
	taken := fmt.Sprintf("t%03d", maxFences+3)
	ev := upsertLead("2", 3, person("Bo", "Ek", "bo@x.com"))
	ev.Tenant = taken
	if _, err := b.Apply(ctx, []record.Event{ev}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Apply(ctx, batch(3))
	if !errors.Is(err, ErrFenced) || !strings.Contains(err.Error(), taken) {
		t.Fatalf("stale owner's batch: %v, want ErrFenced naming %s", err, taken)
	}
	if rec, ok, err := b.Get(ctx, taken, record.Ref{Object: record.Lead, ID: "1"}); err != nil || !ok || rec.ModifiedAt.Equal(batch(3)[0].Record.ModifiedAt) {
		t.Fatalf("the taken tenant got the stale owner's write (ok %v, err %v)", ok, err)
	}
}

// TestStoreEpochTouchedNotMoved: something other than an owner touching the
// epoch (the same value written back) aborts the write, which writes
// nothing and fails; the retry arms the fence again and writes.
func TestStoreEpochTouchedNotMoved(t *testing.T) {
	srv := redistest.New(t)
	ctx := context.Background()
	ns := redistest.Namespace(t)
	s := newTestStore(t, srv, DefaultConfig(), ns)
	if _, err := s.Apply(ctx, []record.Event{upsertLead("1", 1, person("Ann", "Lee", "ann@x.com"))}); err != nil {
		t.Fatal(err)
	}
	k := tenantKeys(ns, "acme")
	if err := srv.Client().Set(ctx, k.epoch, s.epochs["acme"], 0).Err(); err != nil {
		t.Fatal(err)
	}
	second := upsertLead("2", 2, person("Bo", "Ek", "bo@x.com"))
	_, err := s.Apply(ctx, []record.Event{second})
	if err == nil || errors.Is(err, ErrFenced) || errors.Is(err, ErrStateLost) {
		t.Fatalf("write after the epoch was touched: %v, want a plain error", err)
	}
	if n, _ := srv.Client().HLen(ctx, k.hashes[hR]).Result(); n != 1 {
		t.Fatalf("%d records stored: the aborted write wrote", n)
	}
	if _, err := s.Apply(ctx, []record.Event{second}); err != nil {
		t.Fatal(err)
	}
	if n, _ := srv.Client().HLen(ctx, k.hashes[hR]).Result(); n != 2 {
		t.Fatalf("%d records stored after the retry, want 2", n)
	}
}

// TestStoreWriteFailsOnAFailedCommand: a tenant hash of another type
// (written by something else than an owner) fails the batch instead of
// leaving it half written unnoticed.
func TestStoreWriteFailsOnAFailedCommand(t *testing.T) {
	srv := redistest.New(t)
	ctx := context.Background()
	ns := redistest.Namespace(t)
	s := newTestStore(t, srv, DefaultConfig(), ns)
	k := tenantKeys(ns, "acme")
	if err := srv.Client().Set(ctx, k.hashes[hB], "not a hash", 0).Err(); err != nil {
		t.Fatal(err)
	}
	_, err := s.Apply(ctx, []record.Event{upsertLead("1", 1, person("Ann", "Lee", "ann@x.com"))})
	if err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Fatalf("write over a key of another type: %v, want WRONGTYPE", err)
	}
}
