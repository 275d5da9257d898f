package pipeline

import (
	"strings"
	"testing"
	"time"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/lifecycle"
	"github.com/leadconv/leadconv/record"
)

// Stubs a take found under stubField move into their own fields, a few a
// write; an entry the batch writes moves its own first, so that a later
// write never puts the stub the take read over what the entry became.
func TestOldStubsMoveBeforeTheirEntriesAreWritten(t *testing.T) {
	defer func(n int) { legacyPerWrite = n }(legacyPerWrite)
	legacyPerWrite = 1
	at := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	stub := func(s string) *string { return &s }
	ts := &tenantState{name: "acme", lc: lifecycle.New(lifecycle.Options{}), wm: at, saved: at,
		legacy: map[string]*string{"x": stub("lead/1"), "y": stub("lead/2"), "z": nil, "w": stub("lead/3")}}
	o := &owner{tenants: map[string]*tenantState{"acme": ts}}
	ts.lc.Change(lifecycle.Change{At: at, Cluster: engine.Cluster{Tenant: "acme", ID: "x", Version: 2,
		Records: []record.Record{{Tenant: "acme", Object: record.Lead, ID: "1", CreatedAt: at, ModifiedAt: at}}}})
	ts.lc.Touch("w") // w's entry is gone: the write removes it
	never := func(string, string, int64) bool { return false }

	side, _, err := o.dirty(never)
	if err != nil {
		t.Fatal(err)
	}
	taken := side["acme"].Taken
	if v, ok := taken["x"]; !ok || v == nil || !strings.HasPrefix(*v, "{") {
		t.Fatalf("x's field: %v, want its open entry", v)
	}
	if v, ok := taken[stubField+"x"]; !ok || v != nil {
		t.Fatalf("x's old stub: %v, %v; want it deleted", v, ok)
	}
	if v, ok := taken["w"]; !ok || v != nil {
		t.Fatalf("w's field: %v, %v; want it deleted", v, ok)
	}
	if v, ok := taken[stubField+"w"]; !ok || v != nil {
		t.Fatalf("w's old stub: %v, %v; want it deleted with its entry", v, ok)
	}
	for _, id := range []string{"x", "w"} {
		if _, ok := ts.legacy[id]; ok {
			t.Fatalf("%s's old stub still to move after its entry was written", id)
		}
	}
	// Besides x's, one more moved (legacyPerWrite), one is left.
	moved := 0
	for _, id := range []string{"y", "z"} {
		if v, ok := taken[stubField+id]; ok && v == nil {
			moved++
		}
	}
	if moved != 1 || len(ts.legacy) != 1 {
		t.Fatalf("%d more moved, %d left; want 1 and 1", moved, len(ts.legacy))
	}

	// A failed write gives them back; the next write moves the rest, and
	// x's field is not written again.
	o.touch(map[string][]string{"acme": {"x", "w", stubField + "x", stubField + "w"}})
	if len(ts.legacy) != 4 {
		t.Fatalf("after a failed write %d old stubs to move, want 4", len(ts.legacy))
	}
	for range 4 {
		if side, _, err = o.dirty(never); err != nil {
			t.Fatal(err)
		}
		taken = side["acme"].Taken
	}
	if len(ts.legacy) != 0 {
		t.Fatalf("%d old stubs left after four writes", len(ts.legacy))
	}
	if v, ok := taken["x"]; ok && (v == nil || !strings.HasPrefix(*v, "{")) {
		t.Fatalf("x's field written %v after its entry, want its entry or nothing", *v)
	}
}
