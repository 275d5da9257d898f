package matcher

import (
	"context"
	"errors"
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
