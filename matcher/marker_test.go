package matcher

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/leadconv/leadconv/internal/testutil/redistest"
	"github.com/leadconv/leadconv/record"
)

// A rebuild marks the namespace rebuilding: until it ends, owners refuse
// (an interrupted rebuild is incomplete state), whether or not they expect
// state; the rebuild's own store applies without writing the marker, and
// EndRebuild marks the namespace complete.
func TestStoreRebuildMarker(t *testing.T) {
	srv := redistest.New(t)
	ctx := context.Background()
	ns := redistest.Namespace(t)
	rs, err := Compile(DefaultConfig(), record.FieldMap{"AccountName": "Company"})
	if err != nil {
		t.Fatal(err)
	}
	open := func(o StoreOptions) *Store {
		o.Namespace, o.Rules = ns, func(string) (*Ruleset, error) { return rs, nil }
		return NewStore(srv.Client(), o)
	}
	ann := upsertLead("1", 1, person("Ann", "Lee", "ann@x.com"))
	if err := BeginRebuild(ctx, srv.Client(), ns); err != nil {
		t.Fatal(err)
	}
	if _, err := open(StoreOptions{Rebuild: true}).Apply(ctx, []record.Event{ann}); err != nil {
		t.Fatal(err)
	}
	m, err := ReadMarker(ctx, srv.Client(), ns)
	if err != nil || m.Created != "" || m.Rebuilding == "" {
		t.Fatalf("marker during the rebuild: %+v, %v", m, err)
	}
	for _, expected := range []bool{false, true} {
		_, err := open(StoreOptions{StateExpected: expected}).Apply(ctx, []record.Event{upsertLead("2", 2, person("Anne", "Lee", "ann@x.com"))})
		if !errors.Is(err, ErrStateLost) || !strings.Contains(err.Error(), "rebuild of the namespace is running or was interrupted") ||
			!strings.Contains(err.Error(), RebuildCommand(ns)) {
			t.Fatalf("owner (state expected %v) during a rebuild: %v", expected, err)
		}
	}
	if err := EndRebuild(ctx, srv.Client(), ns); err != nil {
		t.Fatal(err)
	}
	if m, err = ReadMarker(ctx, srv.Client(), ns); err != nil || m.Created == "" || m.Rebuilding != "" {
		t.Fatalf("marker after the rebuild: %+v, %v", m, err)
	}
	if _, err := open(StoreOptions{StateExpected: true}).Apply(ctx, []record.Event{upsertLead("2", 2, person("Anne", "Lee", "ann@x.com"))}); err != nil {
		t.Fatalf("owner after the rebuild: %v", err)
	}
	// A second rebuild takes the completeness away before deleting.
	if err := BeginRebuild(ctx, srv.Client(), ns); err != nil {
		t.Fatal(err)
	}
	if m, err = ReadMarker(ctx, srv.Client(), ns); err != nil || m.Created != "" || m.Rebuilding == "" {
		t.Fatalf("marker as a second rebuild begins: %+v, %v", m, err)
	}
	if _, err := open(StoreOptions{}).Apply(ctx, []record.Event{ann}); !errors.Is(err, ErrStateLost) {
		t.Fatalf("owner as a second rebuild begins: %v", err)
	}
}

// The marker's format: set with a namespace's first write, and with the
// first write of a store on state written before the field existed; a
// store that finds a later format when it takes a tenant, at its first
// batch or later, refuses and writes nothing; a rebuild sets this one.
func TestStoreFormatMarker(t *testing.T) {
	srv := redistest.New(t)
	ctx := context.Background()
	ns := redistest.Namespace(t)
	rdb := srv.Client()
	rs, err := Compile(DefaultConfig(), record.FieldMap{"AccountName": "Company"})
	if err != nil {
		t.Fatal(err)
	}
	open := func() *Store {
		return NewStore(rdb, StoreOptions{Namespace: ns, Rules: func(string) (*Ruleset, error) { return rs, nil }})
	}
	format := func() int {
		t.Helper()
		m, err := ReadMarker(ctx, rdb, ns)
		if err != nil {
			t.Fatal(err)
		}
		return m.Format
	}
	lead := func(tenant, id string, minute int) record.Event {
		e := upsertLead(id, minute, person("Ann", "Lee", "ann@x.com"))
		e.Tenant = tenant
		return e
	}
	if _, err := open().Apply(ctx, []record.Event{lead("acme", "1", 1)}); err != nil {
		t.Fatal(err)
	}
	if f := format(); f != StoredFormat {
		t.Fatalf("format after the first write %d, want %d", f, StoredFormat)
	}
	rdb.HDel(ctx, MarkerKey(ns), markerFormat)
	if f := format(); f != 1 {
		t.Fatalf("format without its field %d, want 1", f)
	}
	if _, err := open().Apply(ctx, []record.Event{lead("acme", "2", 2)}); err != nil {
		t.Fatal(err)
	}
	if f := format(); f != StoredFormat {
		t.Fatalf("format after a write on format 1: %d, want %d", f, StoredFormat)
	}

	running := open()
	if _, err := running.Apply(ctx, []record.Event{lead("acme", "3", 3)}); err != nil {
		t.Fatal(err)
	}
	rdb.HSet(ctx, MarkerKey(ns), markerFormat, StoredFormat+1)
	records := func(tenant string) int64 { return rdb.HLen(ctx, tenantKeys(ns, tenant).hashes[hR]).Val() }
	before := records("acme")
	for _, s := range []*Store{running, open()} {
		// The running store at the take of a tenant new to it, then a new
		// store at its first take.
		for range 2 {
			_, err := s.Apply(ctx, []record.Event{lead("acme", "4", 4), lead("other", "5", 5)})
			if !errors.Is(err, ErrNewerFormat) || !strings.Contains(err.Error(), fmt.Sprintf("format %d", StoredFormat+1)) {
				t.Fatalf("apply on a newer format: %v", err)
			}
		}
	}
	if records("acme") != before || records("other") != 0 {
		t.Fatalf("records %d then %d, other tenant %d: written on a newer format", before, records("acme"), records("other"))
	}
	if f := format(); f != StoredFormat+1 {
		t.Fatalf("format lowered to %d", f)
	}
	if err := BeginRebuild(ctx, rdb, ns); err != nil {
		t.Fatal(err)
	}
	if err := EndRebuild(ctx, rdb, ns); err != nil {
		t.Fatal(err)
	}
	if f := format(); f != StoredFormat {
		t.Fatalf("format after a rebuild %d, want %d", f, StoredFormat)
	}
}
