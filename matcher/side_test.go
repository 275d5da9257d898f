package matcher

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"slices"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/leadconv/leadconv/internal/testutil/redistest"
)

// Side state goes with the batch: ApplyPlanned calls the plan between
// deciding and writing, writes what it returns in the same fenced call (a
// warm batch with side state still costs one round trip), hands a new
// owner the side state once (the taken part: the shelved part is not read),
// lists the tenants with side state under the owner's index name, and a
// fenced owner's side-state writes are refused.
func TestSideState(t *testing.T) {
	srv := redistest.New(t)
	ctx := context.Background()
	ns := redistest.Namespace(t)
	stream, _, _ := genStream(3, 60, 300)
	str := func(s string) *string { return &s }
	trips := func(s *Store) (sum, count float64) {
		var m dto.Metric
		if err := s.res.roundTrips.Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetHistogram().GetSampleSum(), float64(m.GetHistogram().GetSampleCount())
	}
	tenant := stream[0].Tenant

	a := newTestStore(t, srv, DefaultConfig(), ns)
	a.IndexSide("p0")
	var restored []map[string]map[string]string
	plan := func(side map[string]Side) PlanFunc {
		return func(_ context.Context, d Decided) (map[string]Side, error) {
			if len(d.Changes) == 0 {
				t.Error("plan called without the batch's changes")
			}
			restored = append(restored, d.Restored)
			return side, nil
		}
	}
	if _, err := a.ApplyPlanned(ctx, stream[:100], plan(map[string]Side{tenant: {Taken: map[string]*string{"c1": str("one"), "c2": str("two")}, Shelved: map[string]*string{"s1": str("shelved")}}})); err != nil {
		t.Fatal(err)
	}
	sum0, n0 := trips(a)
	if _, err := a.ApplyPlanned(ctx, stream[100:150], plan(map[string]Side{tenant: {Taken: map[string]*string{"c2": nil, "c3": str("three")}}})); err != nil {
		t.Fatal(err)
	}
	if sum1, n1 := trips(a); sum1-sum0 != 1 || n1-n0 != 1 {
		t.Fatalf("a warm batch with side state: %v round trips", sum1-sum0)
	}
	if len(restored) != 2 || len(restored[0][tenant]) != 0 || restored[1] != nil {
		t.Fatalf("restored %v: want the (empty) side state once, for the first batch", restored)
	}
	got, err := srv.Client().HGetAll(ctx, tenantKeys(ns, tenant).side).Result()
	if err != nil || !maps.Equal(got, map[string]string{"c1": "one", "c3": "three"}) {
		t.Fatalf("side state in Redis %v, %v", got, err)
	}
	if shelf, err := srv.Client().HGetAll(ctx, tenantKeys(ns, tenant).shelf).Result(); err != nil || !maps.Equal(shelf, map[string]string{"s1": "shelved"}) {
		t.Fatalf("shelved side state in Redis %v, %v", shelf, err)
	}

	// The next owner finds the tenant by the index and takes it with its
	// side state; the first is fenced, its side-state write refused.
	b := newTestStore(t, srv, DefaultConfig(), ns)
	b.IndexSide("p0")
	names, err := b.Indexed(ctx)
	if err != nil || len(names) != 1 || names[0] != tenant {
		t.Fatalf("indexed %v, %v", names, err)
	}
	took, err := b.Take(ctx, names)
	if err != nil || !maps.Equal(took[tenant], got) {
		t.Fatalf("taken %v, %v; want %v", took, err, got)
	}
	if err := a.WriteSide(ctx, map[string]Side{tenant: {Taken: map[string]*string{"c1": str("zombie")}}}); !errors.Is(err, ErrFenced) {
		t.Fatalf("the zombie's side-state write: %v, want ErrFenced", err)
	}
	if _, err := a.ApplyPlanned(ctx, stream[150:160], plan(nil)); !errors.Is(err, ErrFenced) {
		t.Fatalf("the zombie's batch: %v, want ErrFenced", err)
	}
	if err := b.WriteSide(ctx, map[string]Side{tenant: {Taken: map[string]*string{"c1": nil}, Shelved: map[string]*string{"s1": nil}}}); err != nil {
		t.Fatal(err)
	}
	restored = nil
	if _, err := b.ApplyPlanned(ctx, stream[150:200], plan(nil)); err != nil {
		t.Fatal(err)
	}
	if restored[0] != nil {
		t.Fatalf("side state handed out again: %v", restored[0])
	}
	if got, _ := srv.Client().HGetAll(ctx, tenantKeys(ns, tenant).side).Result(); !maps.Equal(got, map[string]string{"c3": "three"}) {
		t.Fatalf("side state after the new owner's delete: %v", got)
	}
	if n, _ := srv.Client().Exists(ctx, tenantKeys(ns, tenant).shelf).Result(); n != 0 {
		t.Fatal("shelved side state left after the new owner's delete")
	}
	if err := b.WriteSide(ctx, map[string]Side{"never-taken": {Taken: map[string]*string{"x": str("y")}}}); err == nil {
		t.Fatal("side state written for a tenant the store does not own")
	}
}

// Side state is read back by field (an owner's evicted entries): within a
// batch in one round trip counted with the batch's, and outside one; a
// shelved field first, else a taken one; a field Redis does not hold is
// absent from the answer.
func TestReadSide(t *testing.T) {
	srv := redistest.New(t)
	ctx := context.Background()
	ns := redistest.Namespace(t)
	stream, _, _ := genStream(3, 60, 300)
	str := func(s string) *string { return &s }
	tenant := stream[0].Tenant
	s := newTestStore(t, srv, DefaultConfig(), ns)
	if _, err := s.ApplyPlanned(ctx, stream[:100], func(context.Context, Decided) (map[string]Side, error) {
		return map[string]Side{tenant: {Taken: map[string]*string{"c1": str("one"), "c2": str("two")}, Shelved: map[string]*string{"c2": str("two shelved"), "c3": str("three")}}}, nil
	}); err != nil {
		t.Fatal(err)
	}
	// Shelved first, else taken.
	want := map[string][]string{tenant: {"c2", "c3", "c1", "gone"}, "other": {"c1"}}
	got, err := s.ReadSide(ctx, want)
	if err != nil || !maps.Equal(got[tenant], map[string]string{"c1": "one", "c2": "two shelved", "c3": "three"}) || len(got["other"]) != 0 {
		t.Fatalf("ReadSide %v, %v", got, err)
	}
	var m dto.Metric
	if err := s.res.roundTrips.Write(&m); err != nil {
		t.Fatal(err)
	}
	sum0 := m.GetHistogram().GetSampleSum()
	var inBatch map[string]map[string]string
	if _, err := s.ApplyPlanned(ctx, stream[100:150], func(ctx context.Context, d Decided) (map[string]Side, error) {
		var err error
		inBatch, err = d.ReadSide(ctx, map[string][]string{tenant: {"c1"}})
		return nil, err
	}); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(inBatch[tenant], map[string]string{"c1": "one"}) {
		t.Fatalf("read within the batch: %v", inBatch)
	}
	if err := s.res.roundTrips.Write(&m); err != nil {
		t.Fatal(err)
	}
	if n := m.GetHistogram().GetSampleSum() - sum0; n != 2 {
		t.Fatalf("a warm batch reading side state: %v round trips, want 2 (the read and the write)", n)
	}
}

// What a batch reports of a cluster the store holds (Decided.Holds while
// it is planned, Holds after), and a later owner reads back the same
// cluster (Current) outside a batch: its version and records as the
// batch reported them, gone clusters without records. A store that did
// not take the tenant reads nothing.
func TestCurrent(t *testing.T) {
	srv := redistest.New(t)
	ctx := context.Background()
	ns := redistest.Namespace(t)
	stream, _, _ := genStream(5, 80, 400)
	tenant := stream[0].Tenant
	a := newTestStore(t, srv, DefaultConfig(), ns)
	last := map[string]Change{}
	held := 0
	for i := 0; i < len(stream); i += 50 {
		_, err := a.ApplyPlanned(ctx, stream[i:min(i+50, len(stream))], func(_ context.Context, d Decided) (map[string]Side, error) {
			for _, c := range d.Changes {
				if c.Tenant != tenant {
					continue
				}
				last[c.ClusterID] = c
			}
			for _, c := range last {
				if got, want := d.Holds(tenant, c.ClusterID, c.Version), !c.Removed; got != want {
					t.Errorf("batch %d: holds cluster %s at %d: %v, want %v", i, c.ClusterID, c.Version, got, want)
				}
				if d.Holds(tenant, c.ClusterID, c.Version-1) {
					t.Errorf("holds cluster %s at an earlier version", c.ClusterID)
				}
				if !c.Removed {
					held++
				}
			}
			return nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if held == 0 || len(last) < 10 {
		t.Fatalf("%d clusters, %d held", len(last), held)
	}
	// A batch that fails leaves the store knowing nothing of the tenant's
	// clusters (its resident state dropped), so side state written before
	// the retry is stored whole: what the lifecycle holds of the failed
	// batch is not in Redis.
	var decided []Change
	boom := errors.New("boom")
	if _, err := a.ApplyPlanned(ctx, stream[len(stream)-20:], func(_ context.Context, d Decided) (map[string]Side, error) {
		decided = d.Changes
		return nil, boom
	}); !errors.Is(err, boom) || len(decided) == 0 {
		t.Fatalf("failed batch: %v, %d changes", err, len(decided))
	}
	for _, c := range append(decided, slices.Collect(maps.Values(last))...) {
		if a.Holds(tenant, c.ClusterID, c.Version) {
			t.Fatalf("after a failed batch the store holds cluster %s at %d", c.ClusterID, c.Version)
		}
	}
	ids := slices.Sorted(maps.Keys(last))
	b := newTestStore(t, srv, DefaultConfig(), ns)
	if _, err := b.Current(ctx, tenant, ids); err == nil {
		t.Fatal("read clusters of a tenant not taken")
	}
	if _, err := b.Take(ctx, []string{tenant}); err != nil {
		t.Fatal(err)
	}
	cur, err := b.Current(ctx, tenant, ids)
	if err != nil {
		t.Fatal(err)
	}
	removed := 0
	for _, id := range ids {
		c, got := last[id], cur[id]
		if c.Removed {
			removed++
		}
		if got.Version != c.Version || !reflect.DeepEqual(got.Records, c.Members) {
			t.Fatalf("cluster %s: version %d, %d records; the batch reported %d, %d records", id, got.Version, len(got.Records), c.Version, len(c.Members))
		}
		if !b.Holds(tenant, id, c.Version) != c.Removed {
			t.Fatalf("the next owner holds cluster %s: %v", id, !c.Removed)
		}
	}
	if removed == 0 {
		t.Fatal("no cluster went")
	}
}
