package matcher

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/leadconv/leadconv/internal/testutil/redistest"
	"github.com/leadconv/leadconv/record"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newTestStore(t *testing.T, srv *redistest.Server, cfg Config, ns string) *Store {
	t.Helper()
	return newTestStoreOn(t, srv.Client(), cfg, ns)
}

// newTestStoreOn is a store on any client: one server or a cluster.
func newTestStoreOn(t *testing.T, client redis.UniversalClient, cfg Config, ns string) *Store {
	t.Helper()
	rs, err := Compile(cfg, record.FieldMap{"AccountName": "Company"})
	if err != nil {
		t.Fatal(err)
	}
	return NewStore(client, StoreOptions{Namespace: ns, Rules: func(string) (*Ruleset, error) { return rs, nil }})
}

func upsertLead(id string, minute int, f record.Fields) record.Event {
	return record.Event{Op: record.OpUpsert, Record: record.Record{
		Tenant: "acme", Object: record.Lead, ID: id,
		CreatedAt: t0, ModifiedAt: t0.Add(time.Duration(minute) * time.Minute), Fields: f,
	}}
}

func person(first, last, email string) record.Fields {
	return record.Fields{"FirstName": first, "LastName": last, "Email": email}
}

// clusterSets renders acme's clusters as sorted "id id|id" strings.
func clusterSets(t *testing.T, s *Store) string {
	t.Helper()
	return tenantClusterSets(t, s, "acme")
}

func tenantClusterSets(t *testing.T, s *Store, tenant string) string {
	t.Helper()
	all, err := s.Clusters(context.Background(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, members := range all {
		var ids []string
		for _, m := range members {
			ids = append(ids, m.ID)
		}
		sort.Strings(ids)
		parts = append(parts, strings.Join(ids, " "))
	}
	sort.Strings(parts)
	return strings.Join(parts, "|")
}

func TestStoreClusterLifecycle(t *testing.T) {
	srv := redistest.New(t)
	ctx := context.Background()
	steps := []struct {
		name   string
		events []record.Event
		want   string
	}{
		{"first lead", []record.Event{upsertLead("1", 1, person("Ann", "Lee", "ann@x.com"))}, "1"},
		{"duplicate joins", []record.Event{upsertLead("2", 2, person("Anne", "Lee", "ANN@x.com"))}, "1 2"},
		{"unrelated lead", []record.Event{upsertLead("3", 3, person("Bob", "Ray", "bob@y.com"))}, "1 2|3"},
		{"bridge joins two clusters", []record.Event{
			upsertLead("4", 4, person("Bob", "Ray", "bob@y.com")),
			upsertLead("5", 5, person("Zed", "Zee", "z@z.com")),
		}, "1 2|3 4|5"},
		{"update links 5 to the first cluster", []record.Event{upsertLead("5", 6, person("Ann", "Lee", "ann@x.com"))}, "1 2 5|3 4"},
		{"stale event ignored", []record.Event{upsertLead("5", 5, person("Zed", "Zee", "z@z.com"))}, "1 2 5|3 4"},
		{"update removes the last link: split", []record.Event{upsertLead("2", 7, person("Anne", "Lee", "anne@other.com"))}, "1 5|2|3 4"},
		{"delete", []record.Event{{Op: record.OpDelete, Record: record.Record{Tenant: "acme", Object: record.Lead, ID: "1", ModifiedAt: t0.Add(8 * time.Minute)}}}, "2|3 4|5"},
		{"late upsert older than the delete stays dead", []record.Event{upsertLead("1", 7, person("Ann", "Lee", "ann@x.com"))}, "2|3 4|5"},
		{"converted lead leaves matching", []record.Event{upsertLead("4", 9, record.Fields{"Email": "bob@y.com", "IsConverted": true})}, "2|3|5"},
		{"contact through the field map", []record.Event{{Op: record.OpUpsert, Record: record.Record{
			Tenant: "acme", Object: record.Contact, ID: "c1", CreatedAt: t0, ModifiedAt: t0.Add(10 * time.Minute),
			Fields: record.Fields{"Email": "bob@y.com", "AccountName": "Ray Inc"}}}}, "2|3 c1|5"},
		{"patch merges into the stored state", []record.Event{{Op: record.OpPatch, Record: record.Record{
			Tenant: "acme", Object: record.Lead, ID: "2", ModifiedAt: t0.Add(11 * time.Minute),
			Fields: record.Fields{"Email": "ann@x.com"}}}}, "2 5|3 c1"},
	}
	s := newTestStore(t, srv, DefaultConfig(), redistest.Namespace(t))
	for _, st := range steps {
		if _, err := s.Apply(ctx, st.events); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := clusterSets(t, s); got != st.want {
			t.Fatalf("%s: clusters %q, want %q", st.name, got, st.want)
		}
	}
	// The patched record kept its other fields.
	v, err := s.View(ctx, "acme", record.Ref{Object: record.Lead, ID: "2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Members) != 2 || len(v.Neighbours) != 1 || v.Neighbours[0].ID != "5" {
		t.Fatalf("view of lead 2 = %+v", v)
	}
}

func TestStoreChangesAndReplay(t *testing.T) {
	srv := redistest.New(t)
	ctx := context.Background()
	s := newTestStore(t, srv, DefaultConfig(), redistest.Namespace(t))
	events := []record.Event{
		upsertLead("a", 1, person("Ann", "Lee", "ann@x.com")),
		upsertLead("b", 2, person("Bo", "Ek", "bo@x.com")),
		upsertLead("c", 3, person("Ann", "Lee", "ann@x.com")),
		upsertLead("d", 4, person("Bo", "Ek", "bo@x.com")),
		upsertLead("c", 5, person("Bo", "Ek", "bo@x.com")), // c moves to b's cluster
	}
	first, err := s.Apply(ctx, events)
	if err != nil {
		t.Fatal(err)
	}
	// The move reports c's new cluster and the one it left.
	var last Change
	for _, c := range first {
		if c.Index == 4 && slices.ContainsFunc(c.Members, func(r record.Record) bool { return r.ID == "c" }) {
			last = c
		}
	}
	if last.Trigger.ID != "c" || len(last.Members) != 3 {
		t.Fatalf("c's cluster after the move = %+v", last)
	}
	var sawSplitOrLeave bool
	for _, c := range first {
		if c.Index == 4 && len(c.Before) == 2 && len(c.Members) == 1 {
			sawSplitOrLeave = true
		}
	}
	if !sawSplitOrLeave {
		t.Fatalf("moving c out of a's cluster reported no change for it: %+v", first)
	}
	for _, m := range last.Members {
		if m.Tenant != "acme" || m.Fields.Str("Email") != "bo@x.com" {
			t.Fatalf("member %+v lost its state", m)
		}
	}
	// A replay changes nothing and reports the clusters as they are, with
	// the same ids and versions.
	again, err := s.Apply(ctx, events[len(events)-1:])
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 1 || again[0].ClusterID != last.ClusterID || again[0].Version != last.Version {
		t.Fatalf("replay reported %+v, want cluster %s v%d", again, last.ClusterID, last.Version)
	}
	// Same stream into a fresh namespace: the same cluster ids and versions.
	fresh := newTestStore(t, srv, DefaultConfig(), redistest.Namespace(t)+"fresh")
	second, err := fresh.Apply(ctx, events)
	if err != nil {
		t.Fatal(err)
	}
	if len(second) != len(first) {
		t.Fatalf("fresh replay: %d changes, want %d", len(second), len(first))
	}
	for i := range first {
		if first[i].ClusterID != second[i].ClusterID || first[i].Version != second[i].Version {
			t.Fatalf("change %d: %s v%d vs %s v%d", i, first[i].ClusterID, first[i].Version, second[i].ClusterID, second[i].Version)
		}
	}
}

func TestStoreReviewBans(t *testing.T) {
	srv := redistest.New(t)
	ctx := context.Background()
	s := newTestStore(t, srv, DefaultConfig(), redistest.Namespace(t))
	a, b := record.Ref{Object: record.Lead, ID: "a"}, record.Ref{Object: record.Lead, ID: "b"}
	steps := []struct {
		ev   record.Event
		want string
	}{
		{upsertLead("a", 1, person("Ann", "Lee", "ann@x.com")), "a"},
		{upsertLead("b", 2, person("Ann", "Lee", "ann@x.com")), "a b"},
		{record.Event{Op: record.OpNotDuplicate, Record: record.Record{Tenant: "acme", Object: record.Lead, ID: "a"}, Other: &b}, "a|b"},
		{upsertLead("b", 3, person("Ann", "Lee", "ann@x.com ")), "a|b"},  // a later update does not re-link
		{upsertLead("c", 4, person("Ann", "Lee", "ann@x.com")), "a b c"}, // but a third record joins both
		{record.Event{Op: record.OpClearNotDuplicate, Record: record.Record{Tenant: "acme", Object: record.Lead, ID: "b"}, Other: &a}, "a b c"},
	}
	for i, st := range steps {
		if _, err := s.Apply(ctx, []record.Event{st.ev}); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := clusterSets(t, s); got != st.want {
			t.Fatalf("step %d: clusters %q, want %q", i, got, st.want)
		}
	}
	v, err := s.View(ctx, "acme", a)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Bans) != 0 || len(v.Neighbours) != 2 {
		t.Fatalf("after clearing the ban, view of a = %+v", v)
	}
	if _, err := s.Apply(ctx, []record.Event{{Op: record.OpNotDuplicate, Record: record.Record{Tenant: "acme", Object: record.Lead, ID: "a"}, Other: &b}}); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.View(ctx, "acme", a); len(v.Bans) != 1 || v.Bans[0] != b {
		t.Fatalf("ban not listed in the view: %+v", v)
	}
}

func TestStoreAccounts(t *testing.T) {
	srv := redistest.New(t)
	ctx := context.Background()
	s := newTestStore(t, srv, DefaultConfig(), redistest.Namespace(t))
	acct := func(id string, minute int, name string, op record.Op) record.Event {
		return record.Event{Op: op, Record: record.Record{Tenant: "acme", Object: record.Account, ID: id,
			ModifiedAt: t0.Add(time.Duration(minute) * time.Minute), Fields: record.Fields{"Name": name}}}
	}
	if _, err := s.Apply(ctx, []record.Event{acct("A1", 1, "Acme, Inc.", record.OpUpsert), acct("A2", 1, "Globex GmbH", record.OpUpsert)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.ResolveAccounts(ctx, "acme", []string{"ACME Inc", "Globex", "Initech"})
	if err != nil {
		t.Fatal(err)
	}
	if got["ACME Inc"] != "A1" || got["Globex"] != "A2" || len(got) != 2 {
		t.Fatalf("resolved %v", got)
	}
	// A change carries its members' accounts, read with it: "" for none.
	person := func(id, company string) record.Event {
		return record.Event{Op: record.OpUpsert, Record: record.Record{Tenant: "acme", Object: record.Lead, ID: id,
			ModifiedAt: t0, Fields: record.Fields{"Email": "pat@example.com", "LastName": "Lee", "Company": company}}}
	}
	changes, err := s.Apply(ctx, []record.Event{person("x", "ACME Inc"), person("y", "Initech")})
	if err != nil {
		t.Fatal(err)
	}
	last := changes[len(changes)-1]
	if want := map[string]string{"ACME Inc": "A1", "Initech": ""}; len(last.Members) != 2 || !maps.Equal(last.Accounts, want) {
		t.Fatalf("change accounts %v (members %d), want %v", last.Accounts, len(last.Members), want)
	}
	if _, err := s.Apply(ctx, []record.Event{acct("A1", 2, "Initech", record.OpUpsert), acct("A2", 3, "", record.OpDelete)}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.ResolveAccounts(ctx, "acme", []string{"ACME Inc", "Globex", "Initech"})
	if got["Initech"] != "A1" || len(got) != 1 {
		t.Fatalf("after rename and delete: %v", got)
	}
	all, _ := s.Clusters(ctx, "acme")
	for _, members := range all {
		if slices.ContainsFunc(members, func(r record.Ref) bool { return r.Object == record.Account }) {
			t.Fatalf("accounts joined person clusters: %v", all)
		}
	}
}

// genStream builds an order-independent event stream: full upserts (with
// strictly increasing modified times per record), deletes and not_duplicate
// bans, so the final state is the same whatever order the events apply in.
func genStream(seed uint64, records, events int) (stream []record.Event, final map[string]record.Record, bans [][2]record.Ref) {
	rng := rand.New(rand.NewPCG(seed, 1))
	firsts := []string{"Ann", "Anne", "Bob", "Robert", "Cy", "Dee", "Eva", "Finn", "Gus", "Hal"}
	lasts := []string{"Lee", "Leigh", "Smith", "Smyth", "Ng", "Okafor", "Ruiz", "Tanaka"}
	companies := []string{"Acme", "Acme Inc", "Globex", "Initech LLC", ""}
	fields := func() record.Fields {
		p := rng.IntN(records / 3)
		f := record.Fields{
			"FirstName": firsts[p%len(firsts)], "LastName": lasts[(p/3)%len(lasts)],
			"Company": companies[p%len(companies)],
		}
		switch rng.IntN(4) {
		case 0:
			f["Email"] = fmt.Sprintf("p%d@example.com", p)
		case 1:
			f["Phone"] = fmt.Sprintf("+1 555 %04d", p)
		case 2:
			f["Email"] = fmt.Sprintf("P%d@Example.com ", p)
			f["Phone"] = fmt.Sprintf("(555) %04d", p)
		}
		return f
	}
	final = map[string]record.Record{}
	minute := map[string]int{}
	for range events {
		id := fmt.Sprintf("r%d", rng.IntN(records))
		obj := record.Lead
		if id[len(id)-1] == '7' {
			obj = record.Contact
		}
		minute[id]++
		r := record.Record{Tenant: "acme", Object: obj, ID: id, CreatedAt: t0, ModifiedAt: t0.Add(time.Duration(minute[id]) * time.Minute)}
		key := string(obj) + "/" + id
		switch x := rng.IntN(20); {
		case x == 0:
			stream = append(stream, record.Event{Op: record.OpDelete, Record: r})
			delete(final, key)
		case x == 1 && obj == record.Lead:
			r.Fields = fields()
			r.Fields["IsConverted"] = true
			stream = append(stream, record.Event{Op: record.OpUpsert, Record: r})
			delete(final, key)
		case x == 2 && len(final) > 2:
			other := fmt.Sprintf("r%d", rng.IntN(records))
			if other == id {
				continue
			}
			o := record.Ref{Object: record.Lead, ID: other}
			if other[len(other)-1] == '7' {
				o.Object = record.Contact
			}
			stream = append(stream, record.Event{Op: record.OpNotDuplicate, Record: record.Record{Tenant: "acme", Object: obj, ID: id}, Other: &o})
			bans = append(bans, [2]record.Ref{{Object: obj, ID: id}, o})
		default:
			r.Fields = fields()
			stream = append(stream, record.Event{Op: record.OpUpsert, Record: r})
			final[key] = r
		}
	}
	return stream, final, bans
}

func oracleSets(t *testing.T, final map[string]record.Record, bans [][2]record.Ref) string {
	t.Helper()
	rs, err := Compile(DefaultConfig(), record.FieldMap{"AccountName": "Company"})
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]record.Record, 0, len(final))
	for _, r := range final {
		recs = append(recs, r)
	}
	var parts []string
	for _, c := range Components(rs, recs, bans) {
		var ids []string
		for _, m := range c {
			ids = append(ids, m.ID)
		}
		sort.Strings(ids)
		parts = append(parts, strings.Join(ids, " "))
	}
	sort.Strings(parts)
	return strings.Join(parts, "|")
}

// TestStoreOwnersOverTimeMatchOracle runs one shuffled stream, as one
// partition's log, through a succession of owners: each new owner starts
// from an earlier "committed offset" than its predecessor reached (so it
// redoes some of its work), some are restarts of the process with a cold
// or tiny resident budget (read-through, eviction), and after every
// handover the previous owner, now a zombie, tries its next batch and is
// refused. The final clusters must equal the connected components of the
// same rules over the final records.
func TestStoreOwnersOverTimeMatchOracle(t *testing.T) {
	srv := redistest.New(t)
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			checkOwnersOracle(t, srv.Client(), oracleRun{seed: seed, tenants: []string{"acme"}})
		})
	}
}

// oracleRun is one run of checkOwnersOracle.
type oracleRun struct {
	seed    uint64
	tenants []string // each gets its own stream, all applied mixed
	events  int      // per tenant; default 4000
	// midway, when set, runs once after half the stream was applied.
	midway func()
}

// checkOwnersOracle is the body of the oracle test, on any client (one
// server, a cluster). The tenants' streams, mixed and shuffled as one
// partition's log, go through a succession of owners: each new owner
// starts from an earlier "committed offset" than its predecessor reached
// (so it redoes some of its work), with the default, a cold or a tiny
// resident budget (read-through, eviction), and after every handover the
// previous owner, now a zombie, tries a batch of the tenants the new owner
// took and is refused. Each tenant's final clusters must equal the
// connected components of the same rules over its final records. It
// returns the owners' fence reconnects after midway ran.
func checkOwnersOracle(t *testing.T, client redis.UniversalClient, run oracleRun) (reconnects float64) {
	t.Helper()
	ctx := context.Background()
	rs, err := Compile(DefaultConfig(), record.FieldMap{"AccountName": "Company"})
	if err != nil {
		t.Fatal(err)
	}
	var stream []record.Event
	finals := map[string]map[string]record.Record{}
	tenantBans := map[string][][2]record.Ref{}
	for i, tenant := range run.tenants {
		s, final, bans := genStream(run.seed+uint64(i)*1000, 600, cmp.Or(run.events, 4000))
		for k := range s {
			s[k].Tenant = tenant
		}
		for id, r := range final {
			r.Tenant = tenant
			final[id] = r
		}
		stream = append(stream, s...)
		finals[tenant], tenantBans[tenant] = final, bans
	}
	rng := rand.New(rand.NewPCG(run.seed, 2))
	// Bans apply whatever their order relative to upserts, so the order of
	// the stream may be shuffled freely.
	rng.Shuffle(len(stream), func(i, j int) { stream[i], stream[j] = stream[j], stream[i] })
	ns := redistest.Namespace(t)
	var stores []*Store
	owner := func(budget int64) *Store {
		s := NewStore(client, StoreOptions{Namespace: ns, Rules: func(string) (*Ruleset, error) { return rs, nil },
			Resident: NewResident(ResidentOptions{MaxBytes: budget})})
		stores = append(stores, s)
		return s
	}
	sets := func(s *Store) string {
		var all []string
		for _, tenant := range run.tenants {
			all = append(all, tenant+":"+tenantClusterSets(t, s, tenant))
		}
		return strings.Join(all, "\n")
	}
	// Budgets: the default (the tenant is loaded whole), and 256 KiB, under
	// which the tenant is read through and evicted from.
	budgets := []int64{0, 256 << 10}
	cur := owner(0)
	taken := map[string]bool{} // the tenants cur applied since it took over
	var zombie *Store
	committed, done, owners, refused, early := 0, 0, 1, 0, 0
	for done < len(stream) {
		n := min(1+rng.IntN(60), len(stream)-done)
		batch := stream[done : done+n]
		if _, err := cur.Apply(ctx, batch); err != nil {
			t.Fatal(err)
		}
		for _, ev := range batch {
			taken[ev.Tenant] = true
		}
		if run.midway != nil && done < len(stream)/2 && done+n >= len(stream)/2 {
			for _, s := range stores {
				reconnects -= promtest.ToFloat64(s.res.broken)
			}
			run.midway()
		}
		done += n
		if zombie != nil {
			// The new owner took those tenants with its first batch of
			// them: the stale owner's batch of them must be refused whole.
			var stale []record.Event
			for _, ev := range stream[done:min(done+40, len(stream))] {
				if taken[ev.Tenant] {
					stale = append(stale, ev)
				}
			}
			if len(stale) > 0 {
				before := sets(cur)
				if _, err := zombie.Apply(ctx, stale); !errors.Is(err, ErrFenced) {
					t.Fatalf("zombie's batch: err = %v, want ErrFenced", err)
				}
				if after := sets(cur); after != before {
					t.Fatal("a refused batch changed the clusters")
				}
				refused++
			}
			zombie = nil
		}
		if rng.IntN(4) == 0 {
			committed = done
		}
		if rng.IntN(12) == 0 && done < len(stream) {
			// Rebalance or restart: a new owner from the committed offset.
			// Until it touches a tenant, the old one may still get a batch
			// in: the new owner reads after taking the tenant, so it sees
			// that batch and redoes it.
			zombie, cur = cur, owner(budgets[owners%len(budgets)])
			taken = map[string]bool{}
			owners++
			if rng.IntN(2) == 0 {
				if _, err := zombie.Apply(ctx, stream[done:min(done+40, len(stream))]); err != nil {
					t.Fatalf("the old owner before the handover took effect: %v", err)
				}
				early++
			}
			done = committed
		}
	}
	t.Logf("%d owners, %d zombie batches refused, %d applied before the new owner started", owners, refused, early)
	if owners < 4 || refused < 3 {
		t.Fatalf("%d owners, %d refused zombie batches: the stream did not exercise handovers", owners, refused)
	}
	for _, tenant := range run.tenants {
		got, want := tenantClusterSets(t, cur, tenant), oracleSets(t, finals[tenant], tenantBans[tenant])
		if got != want {
			t.Fatalf("%s: store clusters differ from the oracle\nonly in store: %v\nonly in oracle: %v", tenant, setDiff(got, want), setDiff(want, got))
		}
	}
	for _, s := range stores {
		reconnects += promtest.ToFloat64(s.res.broken)
	}
	return reconnects
}

// TestStoreFencesStaleOwner runs two owners of one tenant at once: the
// first is refused as soon as the second took the tenant, writes nothing
// (not even a new lead of its own), and every event the second applies is
// kept.
func TestStoreFencesStaleOwner(t *testing.T) {
	srv := redistest.New(t)
	ctx := context.Background()
	ns := redistest.Namespace(t)
	a := newTestStore(t, srv, DefaultConfig(), ns)
	b := newTestStore(t, srv, DefaultConfig(), ns)
	if _, err := a.Apply(ctx, []record.Event{upsertLead("1", 1, person("Ann", "Lee", "ann@x.com"))}); err != nil {
		t.Fatal(err)
	}
	// b takes the tenant over, redoing a's event (a replay) and adding one.
	if _, err := b.Apply(ctx, []record.Event{upsertLead("1", 1, person("Ann", "Lee", "ann@x.com")), upsertLead("2", 2, person("Anne", "Lee", "ann@x.com"))}); err != nil {
		t.Fatal(err)
	}
	_, err := a.Apply(ctx, []record.Event{upsertLead("3", 3, person("Ann", "Lee", "ann@x.com"))})
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("stale owner's write: err = %v, want ErrFenced", err)
	}
	if _, ok, err := b.Get(ctx, "acme", record.Ref{Object: record.Lead, ID: "3"}); err != nil || ok {
		t.Fatalf("the refused lead was stored (ok %v, err %v)", ok, err)
	}
	// Once fenced, always fenced: even a tenant it never touched.
	other := upsertLead("9", 1, person("Bo", "Ek", "bo@x.com"))
	other.Tenant = "globex"
	if _, err := a.Apply(ctx, []record.Event{other}); !errors.Is(err, ErrFenced) {
		t.Fatalf("fenced owner on another tenant: err = %v", err)
	}
	if n := promtest.ToFloat64(a.res.fenced); n != 1 {
		t.Fatalf("fenced metric = %v, want 1", n)
	}
	// The new owner carries on; nothing it applied was lost.
	if _, err := b.Apply(ctx, []record.Event{upsertLead("3", 3, person("Ann", "Lee", "ann@x.com"))}); err != nil {
		t.Fatal(err)
	}
	if got := clusterSets(t, b); got != "1 2 3" {
		t.Fatalf("clusters %q, want 1 2 3", got)
	}
}

// TestStoreWarmBatchIsOneRoundTrip checks the resident state: once a
// tenant is warm, a batch reads nothing and costs one round trip (the
// fenced write), and a new owner with a small budget reads through.
func TestStoreWarmBatchIsOneRoundTrip(t *testing.T) {
	srv := redistest.New(t)
	ctx := context.Background()
	ns := redistest.Namespace(t)
	stream, final, bans := genStream(9, 200, 1200)
	s := newTestStore(t, srv, DefaultConfig(), ns)
	trips := func(s *Store) (sum, count float64) {
		var m dto.Metric
		if err := s.res.roundTrips.Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetHistogram().GetSampleSum(), float64(m.GetHistogram().GetSampleCount())
	}
	for i := 0; i < 600; i += 50 {
		if _, err := s.Apply(ctx, stream[i:i+50]); err != nil {
			t.Fatal(err)
		}
	}
	sum0, n0 := trips(s)
	miss0 := promtest.ToFloat64(s.res.miss)
	for i := 600; i < 1200; i += 50 {
		if _, err := s.Apply(ctx, stream[i:i+50]); err != nil {
			t.Fatal(err)
		}
	}
	sum1, n1 := trips(s)
	if n1-n0 != 12 || sum1-sum0 != 12 {
		t.Fatalf("warm batches: %v round trips over %v batches, want one each", sum1-sum0, n1-n0)
	}
	if miss := promtest.ToFloat64(s.res.miss) - miss0; miss != 0 {
		t.Fatalf("warm batches read %v keys from Redis", miss)
	}
	if s.res.Bytes() <= 0 {
		t.Fatal("resident bytes not accounted")
	}
	// A second owner, bounded to 64 KiB, starts cold: it reads through,
	// stays within (about) its budget and decides the same.
	small := NewStore(srv.Client(), StoreOptions{Namespace: ns, Rules: s.opts.Rules, Resident: NewResident(ResidentOptions{MaxBytes: 64 << 10})})
	again := slices.Clone(stream[1100:])
	if _, err := small.Apply(ctx, again); err != nil {
		t.Fatal(err)
	}
	if promtest.ToFloat64(small.res.miss) == 0 {
		t.Fatal("a cold owner read nothing")
	}
	if b := small.res.Bytes(); b > 64<<10 {
		t.Fatalf("resident %d bytes over a budget of %d", b, 64<<10)
	}
	if got, want := clusterSets(t, small), oracleSets(t, final, bans); got != want {
		t.Fatalf("clusters differ from the oracle\nonly in store: %v\nonly in oracle: %v", setDiff(got, want), setDiff(want, got))
	}
}

// The written-fields metrics count what the fenced write set: a first batch
// of leads that match nothing sets every field of the tenant's hashes once,
// so the counts equal the fields and value bytes Redis then holds.
func TestStoreCountsWrittenFields(t *testing.T) {
	srv := redistest.New(t)
	ctx := context.Background()
	ns := redistest.Namespace(t)
	reg := prometheus.NewRegistry()
	rs := mustCompile(t, DefaultConfig(), nil)
	s := NewStore(srv.Client(), StoreOptions{Namespace: ns, Rules: func(string) (*Ruleset, error) { return rs, nil },
		Resident: NewResident(ResidentOptions{Registerer: reg})})
	var batch []record.Event
	for i := range 20 {
		batch = append(batch, upsertLead(fmt.Sprintf("l%02d", i), i, person(fmt.Sprintf("First%c", 'a'+i), fmt.Sprintf("Last%c", 'a'+i), fmt.Sprintf("p%d@example%d.com", i, i))))
	}
	if _, err := s.Apply(ctx, batch); err != nil {
		t.Fatal(err)
	}
	k := tenantKeys(ns, "acme")
	var fields, bytes int64
	for i, key := range k.hashes {
		all, err := srv.Client().HGetAll(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, v := range all {
			n += len(v)
		}
		fields, bytes = fields+int64(len(all)), bytes+int64(n)
		if got := promtest.ToFloat64(s.res.written[i]); got != float64(len(all)) {
			t.Errorf("hash %s: %v fields counted, Redis holds %d", hashNames[i], got, len(all))
		}
	}
	st := s.res.Stats()
	if fields == 0 || st.Fields != float64(fields) || st.Bytes != float64(bytes) {
		t.Fatalf("counted %v fields, %v bytes; Redis holds %d fields, %d bytes", st.Fields, st.Bytes, fields, bytes)
	}
	if n, err := promtest.GatherAndCount(reg, "leadconv_matcher_written_fields_total", "leadconv_matcher_written_bytes_total"); err != nil || n != 2*len(hashNames) {
		t.Fatalf("registered series: %d, %v", n, err)
	}
}

// A tenant with more fields in a hash than a page of loadWhole is loaded
// whole by a new owner over several round trips (one HGETALL of a tenant of
// a million records outlasted the read timeout), and then reads nothing:
// what the pages hold is the whole state, deciding as the oracle does.
func TestStoreLoadsALargeTenantInPages(t *testing.T) {
	srv := redistest.New(t)
	ctx := context.Background()
	ns := redistest.Namespace(t)
	// Pairs of one person each, in distinct small blocks.
	letters := func(n int) string {
		b := []byte{'K'}
		for ; n > 0; n /= 26 {
			b = append(b, byte('a'+n%26))
		}
		return string(b)
	}
	final := map[string]record.Record{}
	var stream []record.Event
	for i := range loadPage + 600 {
		ev := upsertLead(fmt.Sprintf("l%d", i), 1, person(letters(i/2+1), letters(i/2+9000), fmt.Sprintf("u%d@example.com", i/2)))
		stream = append(stream, ev)
		final["lead/"+ev.Record.ID] = ev.Record
	}
	a := newTestStore(t, srv, DefaultConfig(), ns)
	for i := 0; i < len(stream); i += 3000 {
		if _, err := a.Apply(ctx, stream[i:min(i+3000, len(stream))]); err != nil {
			t.Fatal(err)
		}
	}
	b := newTestStore(t, srv, DefaultConfig(), ns)
	if _, err := b.Apply(ctx, stream[len(stream)-1:]); err != nil { // a replay takes the tenant
		t.Fatal(err)
	}
	var m dto.Metric
	if err := b.res.rtDur.WithLabelValues("load").(prometheus.Histogram).Write(&m); err != nil {
		t.Fatal(err)
	}
	if n := m.GetHistogram().GetSampleCount(); n < 2 {
		t.Fatalf("a tenant of %d records was loaded in %d round trips, want pages of %d", len(stream), n, loadPage)
	}
	if v := b.tenants["acme"]; v == nil || !v.complete {
		t.Fatal("the tenant is not held whole after the load")
	}
	// New duplicates of stored leads, and new people: decided from memory.
	var more []record.Event
	for i := range 300 {
		k := i * 17
		ev := upsertLead(fmt.Sprintf("n%d", i), 2, person(letters(k+1), letters(k+9000), fmt.Sprintf("u%d@example.com", k)))
		more = append(more, ev)
		final["lead/"+ev.Record.ID] = ev.Record
	}
	if _, err := b.Apply(ctx, more); err != nil {
		t.Fatal(err)
	}
	if miss := promtest.ToFloat64(b.res.miss); miss != 0 {
		t.Fatalf("the owner holding the tenant whole read %v keys", miss)
	}
	if got, want := clusterSets(t, b), oracleSets(t, final, nil); got != want {
		t.Fatalf("clusters differ from the oracle\nonly in store: %v\nonly in oracle: %v", setDiff(got, want), setDiff(want, got))
	}
}

// A whole load that fails (here: HSCAN refused by the ACL) is done again
// by the tenant's next batch, although the epoch was taken by the first:
// the owner then holds the tenant whole and reads nothing.
func TestStoreLoadsAgainAfterAFailedLoad(t *testing.T) {
	srv := redistest.New(t)
	ctx := context.Background()
	ns := redistest.Namespace(t)
	a := newTestStore(t, srv, DefaultConfig(), ns)
	var stream []record.Event
	for i := range 40 {
		stream = append(stream, upsertLead(fmt.Sprintf("l%d", i), 1, person("Ann", fmt.Sprintf("Lee%c", 'a'+i/2), fmt.Sprintf("ann%d@x.com", i/2))))
	}
	if _, err := a.Apply(ctx, stream); err != nil {
		t.Fatal(err)
	}
	admin := srv.Client()
	if err := admin.Do(ctx, "ACL", "SETUSER", "loader", "on", ">pw", "~*", "&*", "+@all", "-hscan").Err(); err != nil {
		t.Fatal(err)
	}
	opts := srv.Options()
	opts.Username, opts.Password = "loader", "pw"
	client := redis.NewClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	b := newTestStoreOn(t, client, DefaultConfig(), ns)
	again := stream[len(stream)-1:] // a replay takes the tenant
	if _, err := b.Apply(ctx, again); err == nil || !strings.Contains(err.Error(), "load") {
		t.Fatalf("first batch with HSCAN refused: err = %v, want the load's error", err)
	}
	if err := admin.Do(ctx, "ACL", "SETUSER", "loader", "+hscan").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Apply(ctx, again); err != nil {
		t.Fatal(err)
	}
	if v := b.tenants["acme"]; v == nil || !v.complete {
		t.Fatal("the tenant is not held whole after the failed load was done again")
	}
	more := []record.Event{upsertLead("n1", 2, person("Ann", "Leea", "ann0@x.com")), upsertLead("n2", 2, person("Bo", "Ek", "bo@x.com"))}
	if _, err := b.Apply(ctx, more); err != nil {
		t.Fatal(err)
	}
	if miss := promtest.ToFloat64(b.res.miss); miss != 0 {
		t.Fatalf("the owner read %v keys through", miss)
	}
}

// setDiff lists the clusters of a (as clusterSets formats them) not in b.
func setDiff(a, b string) []string {
	in := map[string]bool{}
	for _, c := range strings.Split(b, "|") {
		in[c] = true
	}
	var out []string
	for _, c := range strings.Split(a, "|") {
		if !in[c] {
			out = append(out, c)
		}
	}
	return out
}

// TestStoreOutOfOrder checks that whatever order a record's events arrive
// in, the newest one decides whether it takes part in matching.
func TestStoreOutOfOrder(t *testing.T) {
	srv := redistest.New(t)
	ctx := context.Background()
	converted := upsertLead("a", 2, person("Ann", "Lee", "ann@x.com"))
	converted.Fields["IsConverted"] = true
	del := record.Event{Op: record.OpDelete, Record: record.Record{Tenant: "acme", Object: record.Lead, ID: "a", ModifiedAt: t0.Add(4 * time.Minute)}}
	ban := record.Event{Op: record.OpNotDuplicate, Record: record.Record{Tenant: "acme", Object: record.Lead, ID: "a"}, Other: &record.Ref{Object: record.Lead, ID: "b"}}
	tests := []struct {
		name   string
		events []record.Event
		batch  []record.Event // applied together, after events
		want   string
	}{
		{"delete after conversion, older upsert late", []record.Event{converted, del, upsertLead("a", 3, person("Ann", "Lee", "ann@x.com"))}, nil, ""},
		{"delete first, older upsert late", []record.Event{del, upsertLead("a", 1, person("Ann", "Lee", "ann@x.com"))}, nil, ""},
		{"upsert newer than the delete", []record.Event{del, upsertLead("a", 5, person("Ann", "Lee", "ann@x.com"))}, nil, "a"},
		{"patch cannot revive a converted lead", []record.Event{converted, {Op: record.OpPatch, Record: record.Record{
			Tenant: "acme", Object: record.Lead, ID: "a", ModifiedAt: t0.Add(9 * time.Minute), Fields: record.Fields{"Phone": "1"}}}}, nil, ""},
		// A review decision on a deleted record writes no state: the older
		// upsert behind it in the same batch is still stale.
		{"review decision then older upsert in one batch", []record.Event{del}, []record.Event{ban, upsertLead("a", 1, person("Ann", "Lee", "ann@x.com"))}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStore(t, srv, DefaultConfig(), redistest.Namespace(t))
			for _, ev := range tc.events {
				if _, err := s.Apply(ctx, []record.Event{ev}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.Apply(ctx, tc.batch); err != nil {
				t.Fatal(err)
			}
			if got := clusterSets(t, s); got != tc.want {
				t.Fatalf("clusters = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestStoreRedisRestart restarts the server (with AOF, so data survives but
// the connections do not) and kills it for a while in the middle of a
// stream: every failure is an error the caller retries, and the final
// clusters still equal the oracle's.
func TestStoreRedisRestart(t *testing.T) {
	for _, c := range []struct{ size, restartAt, killAt int }{{30, 10, 20}, {150, 2, 4}} {
		t.Run(fmt.Sprintf("batch=%d", c.size), func(t *testing.T) {
			srv := redistest.New(t, "--appendonly", "yes", "--appendfsync", "always")
			ctx := context.Background()
			stream, final, bans := genStream(4, 300, 1500)
			s := newTestStore(t, srv, DefaultConfig(), redistest.Namespace(t))
			var failures int
			for batch := 0; len(stream) > 0; batch++ {
				switch batch {
				case c.restartAt:
					srv.Restart()
				case c.killAt:
					srv.Kill()
					if _, err := s.Apply(ctx, stream[:1]); err == nil {
						t.Fatal("Apply succeeded with the server down")
					}
					srv.Restart()
				}
				n := min(c.size, len(stream))
				for tries := 0; ; tries++ {
					_, err := s.Apply(ctx, stream[:n])
					if err == nil {
						break
					}
					failures++
					if tries == 20 {
						t.Fatalf("batch %d still failing: %v", batch, err)
					}
					time.Sleep(10 * time.Millisecond)
				}
				stream = stream[n:]
			}
			if got, want := clusterSets(t, s), oracleSets(t, final, bans); got != want {
				t.Fatalf("after restarts\nonly in store: %v\nonly in oracle: %v", setDiff(got, want), setDiff(want, got))
			}
			if n := promtest.ToFloat64(s.res.broken); n < 1 {
				t.Fatalf("fence reconnects = %v, want at least one after a restart", n)
			}
			t.Logf("%d failed attempts retried", failures)
		})
	}
}

func TestStoreGetAndLeads(t *testing.T) {
	srv := redistest.New(t)
	ctx := context.Background()
	s := newTestStore(t, srv, DefaultConfig(), redistest.Namespace(t))
	conv := upsertLead("c", 1, person("Cy", "Ng", "cy@x.com"))
	conv.Fields["IsConverted"] = true
	contact := upsertLead("k", 1, record.Fields{"FirstName": "Kim", "AccountName": "Acme"})
	contact.Object = record.Contact
	events := []record.Event{conv, contact, {Op: record.OpDelete, Record: record.Record{Tenant: "acme", Object: record.Lead, ID: "d"}}}
	want := map[string]bool{}
	for i := range 1200 { // more than one HSCAN page
		id := fmt.Sprintf("l%04d", i)
		events = append(events, upsertLead(id, 2, person("Ann", "Lee", id+"@x.com")))
		want[id] = true
	}
	if _, err := s.Apply(ctx, events); err != nil {
		t.Fatal(err)
	}
	r, ok, err := s.Get(ctx, "acme", record.Ref{Object: record.Lead, ID: "l0007"})
	if err != nil || !ok || r.Fields.Str("Email") != "l0007@x.com" || !r.ModifiedAt.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("Get(l0007) = %+v, %v, %v", r, ok, err)
	}
	for _, ref := range []record.Ref{{Object: record.Lead, ID: "c"}, {Object: record.Lead, ID: "d"}, {Object: record.Lead, ID: "zz"}} {
		if _, ok, err := s.Get(ctx, "acme", ref); ok || err != nil {
			t.Fatalf("Get(%s) = %v, %v; want not found", ref, ok, err)
		}
	}
	got := map[string]bool{}
	if err := s.Leads(ctx, "acme", func(r record.Record) error {
		if r.Object != record.Lead || got[r.ID] {
			t.Fatalf("Leads gave %s twice or a non-lead", r.Ref())
		}
		got[r.ID] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("Leads gave %d leads, want %d", len(got), len(want))
	}
}

// A held record leaves matching until an upsert re-reads it: patches do not
// bring it back (their base is unknown), an upsert does even when its
// modified time precedes the hold's (a re-read of the change that caused
// the gap), and a hold older than the stored state changes nothing.
func TestStoreHold(t *testing.T) {
	srv := redistest.New(t)
	ctx := context.Background()
	hold := func(id string, minutes int) record.Event {
		return record.Event{Op: record.OpHold, Record: record.Record{Tenant: "acme", Object: record.Lead, ID: id, ModifiedAt: t0.Add(time.Duration(minutes) * time.Minute)}}
	}
	steps := []struct {
		name   string
		events []record.Event
		want   string
	}{
		{"duplicates", []record.Event{upsertLead("1", 1, person("Ann", "Lee", "ann@x.com")), upsertLead("2", 2, person("Ann", "Lee", "ann@x.com"))}, "1 2"},
		{"hold leaves the cluster", []record.Event{hold("2", 5)}, "1"},
		{"patch of a held record is ignored", []record.Event{{Op: record.OpPatch, Record: record.Record{
			Tenant: "acme", Object: record.Lead, ID: "2", ModifiedAt: t0.Add(6 * time.Minute), Fields: record.Fields{"Email": "ann@x.com"}}}}, "1"},
		{"hold of an unknown record", []record.Event{hold("9", 6)}, "1"},
		{"patch of an unknown held record is ignored", []record.Event{{Op: record.OpPatch, Record: record.Record{
			Tenant: "acme", Object: record.Lead, ID: "9", ModifiedAt: t0.Add(7 * time.Minute), Fields: record.Fields{"Email": "ann@x.com"}}}}, "1"},
		{"the re-read upsert ends the hold", []record.Event{upsertLead("2", 4, person("Ann", "Lee", "ann@x.com"))}, "1 2"},
		{"a hold older than the state changes nothing", []record.Event{hold("2", 3)}, "1 2"},
		{"the re-read of the unknown record joins", []record.Event{upsertLead("9", 7, person("Ann", "Lee", "ann@x.com"))}, "1 2 9"},
	}
	s := newTestStore(t, srv, DefaultConfig(), redistest.Namespace(t))
	for _, st := range steps {
		if _, err := s.Apply(ctx, st.events); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got := clusterSets(t, s); got != st.want {
			t.Fatalf("%s: clusters %q, want %q", st.name, got, st.want)
		}
	}
}

// The namespace's marker is written with its first state; an owner told
// that state existed (its partition has committed offsets) refuses to apply
// when the marker is missing (Redis came back empty), naming the command
// that rebuilds the namespace, and writes nothing; one that expects no
// state starts afresh and marks it.
func TestStoreStateLost(t *testing.T) {
	srv := redistest.New(t)
	ctx := context.Background()
	ns := redistest.Namespace(t)
	rs, err := Compile(DefaultConfig(), record.FieldMap{"AccountName": "Company"})
	if err != nil {
		t.Fatal(err)
	}
	open := func(expected bool) *Store {
		return NewStore(srv.Client(), StoreOptions{Namespace: ns, StateExpected: expected, Rules: func(string) (*Ruleset, error) { return rs, nil }})
	}
	ann := upsertLead("1", 1, person("Ann", "Lee", "ann@x.com"))
	if _, err := open(false).Apply(ctx, []record.Event{ann}); err != nil {
		t.Fatal(err)
	}
	if v, err := srv.Client().HGet(ctx, ns+":meta", "created").Result(); err != nil || v == "" {
		t.Fatalf("marker after the first write: %q, %v", v, err)
	}
	// State is there: the next owner of the partition applies.
	if _, err := open(true).Apply(ctx, []record.Event{upsertLead("2", 2, person("Anne", "Lee", "ann@x.com"))}); err != nil {
		t.Fatal(err)
	}

	running := open(false)
	if _, err := running.Apply(ctx, []record.Event{ann}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Client().FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	// Under a running owner: its tenant's epoch vanished.
	if _, err := running.Apply(ctx, []record.Event{upsertLead("3", 3, person("Ann", "Lee", "ann@x.com"))}); !errors.Is(err, ErrStateLost) {
		t.Fatalf("running owner after the state was lost: %v", err)
	}
	lost := open(true)
	for range 2 { // refused for good
		_, err := lost.Apply(ctx, []record.Event{upsertLead("3", 3, person("Ann", "Lee", "ann@x.com"))})
		if !errors.Is(err, ErrStateLost) || !strings.Contains(err.Error(), RebuildCommand(ns)) {
			t.Fatalf("apply after the state was lost: %v", err)
		}
	}
	if n, err := srv.Client().HLen(ctx, tenantKeys(ns, "acme").hashes[hR]).Result(); err != nil || n != 0 {
		t.Fatalf("the refused owner stored %d records (%v)", n, err)
	}
	if n, _ := srv.Client().Exists(ctx, ns+":meta").Result(); n != 0 {
		t.Fatal("the refused owner wrote the marker: the next owner would not notice the loss")
	}
	// A rebuild (nothing expected) starts afresh and marks the namespace.
	if _, err := open(false).Apply(ctx, []record.Event{ann}); err != nil {
		t.Fatal(err)
	}
	if n, _ := srv.Client().Exists(ctx, ns+":meta").Result(); n != 1 {
		t.Fatal("no marker after the rebuild's first write")
	}
}

// A replayed event (one the store already holds, redelivered) reports its
// cluster as it is at the replay's place in the batch, not as the batch's
// later events leave it: the same events cut into other batches report
// the same changes, so a planner that plans mid-batch plans the same.
func TestReplayReportsItsClusterAtItsPlace(t *testing.T) {
	srv := redistest.New(t)
	ctx := context.Background()
	ns := redistest.Namespace(t)
	a := upsertLead("a", 1, person("Ann", "Lee", "ann@x.com"))
	b := upsertLead("b", 2, person("Ann", "Lee", "ann@x.com"))
	for _, warm := range []bool{true, false} {
		s := newTestStore(t, srv, DefaultConfig(), ns+fmt.Sprint(warm))
		first, err := s.Apply(ctx, []record.Event{a})
		if err != nil {
			t.Fatal(err)
		}
		if !warm {
			s = newTestStore(t, srv, DefaultConfig(), ns+fmt.Sprint(warm))
		}
		got, err := s.Apply(ctx, []record.Event{a, b})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) < 2 || got[0].Index != 0 || slices.ContainsFunc(got[1:], func(c Change) bool { return c.Index != 1 }) {
			t.Fatalf("warm %v: changes %+v, want the replay's then b's", warm, got)
		}
		if r := got[0]; r.ClusterID != first[0].ClusterID || r.Version != first[0].Version || len(r.Members) != 1 || r.Members[0].ID != "a" {
			t.Errorf("warm %v: the replay reports %s v%d with %d members, want %s v%d with a alone", warm, r.ClusterID, r.Version, len(r.Members), first[0].ClusterID, first[0].Version)
		}
		if !slices.ContainsFunc(got[1:], func(c Change) bool { return len(c.Members) == 2 }) {
			t.Errorf("warm %v: b's changes %+v, none with a and b", warm, got[1:])
		}
	}
}

// State written before a cluster's field held its version (cl
// "<oldest>\t<members>", the version in the cv hash; a gone cluster's
// version alone) is read as it was meant: a new owner, loading the tenant
// whole or reading it through, reports the next change at the versions a
// store that never wrote the old format does, and writes the versions into
// the cluster fields, never into cv.
func TestStoreReadsVersionsKeptInTheCvHash(t *testing.T) {
	srv := redistest.New(t)
	ctx := context.Background()
	rdb := srv.Client()
	events := []record.Event{
		upsertLead("a", 1, person("Ann", "Lee", "ann@x.com")),
		upsertLead("b", 2, person("Bo", "Ek", "bo@x.com")),
		upsertLead("c", 3, person("Ann", "Lee", "ann@x.com")),
		upsertLead("d", 4, person("Bo", "Ek", "bo@x.com")),
		upsertLead("c", 5, person("Bo", "Ek", "bo@x.com")),
		upsertLead("e", 6, person("Cy", "Oh", "cy@x.com")),
		upsertLead("e", 7, person("Bo", "Ek", "bo@x.com")), // e's own cluster goes
	}
	next := []record.Event{
		upsertLead("d", 8, person("Ann", "Lee", "ann@x.com")),
		upsertLead("e", 9, person("Cy", "Oh", "cy@x.com")),
	}
	ref := newTestStore(t, srv, DefaultConfig(), redistest.Namespace(t)+"ref")
	if _, err := ref.Apply(ctx, events); err != nil {
		t.Fatal(err)
	}
	want, err := ref.Apply(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	// A third owner reads the versions the second wrote over cv's stale
	// ones.
	then := []record.Event{upsertLead("c", 10, person("Ann", "Lee", "ann@x.com"))}
	wantThen, err := ref.Apply(ctx, then)
	if err != nil {
		t.Fatal(err)
	}
	same := func(t *testing.T, got, want []Change) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%d changes, want %d: %+v", len(got), len(want), got)
		}
		for i := range want {
			if got[i].ClusterID != want[i].ClusterID || got[i].Version != want[i].Version || got[i].Removed != want[i].Removed {
				t.Errorf("change %d: %s v%d removed %v, want %s v%d removed %v", i, got[i].ClusterID, got[i].Version, got[i].Removed, want[i].ClusterID, want[i].Version, want[i].Removed)
			}
		}
	}
	for _, mode := range []struct {
		name     string
		resident *Resident
	}{
		{"loaded whole", nil},
		{"read through", NewResident(ResidentOptions{MaxBytes: 1})},
	} {
		t.Run(mode.name, func(t *testing.T) {
			ns := redistest.Namespace(t)
			old := newTestStore(t, srv, DefaultConfig(), ns)
			if _, err := old.Apply(ctx, events); err != nil {
				t.Fatal(err)
			}
			k := tenantKeys(ns, "acme")
			cl, cv := k.hashes[hCL], k.hashes[hCV]
			all, err := rdb.HGetAll(ctx, cl).Result()
			if err != nil {
				t.Fatal(err)
			}
			gone := 0
			for id, raw := range all {
				c, ver, folded := parseCluster(raw)
				if !folded || ver == 0 {
					t.Fatalf("cluster %s written as %q, without its version", id, raw)
				}
				rdb.HSet(ctx, cv, id, ver)
				if c == nil {
					gone++
					rdb.HDel(ctx, cl, id)
				} else {
					rdb.HSet(ctx, cl, id, strings.TrimPrefix(raw, fmt.Sprintf("v%d\t", ver)))
				}
			}
			if gone == 0 {
				t.Fatal("no gone cluster in the old state: the test lacks its case")
			}
			legacy, _ := rdb.HGetAll(ctx, cv).Result()
			rs := mustCompile(t, DefaultConfig(), record.FieldMap{"AccountName": "Company"})
			s := NewStore(rdb, StoreOptions{Namespace: ns, Rules: func(string) (*Ruleset, error) { return rs, nil }, Resident: mode.resident})
			v, err := s.View(ctx, "acme", record.Ref{Object: record.Lead, ID: "a"})
			if err != nil {
				t.Fatal(err)
			}
			if v.Version != mustInt(t, legacy[v.Cluster]) {
				t.Fatalf("view of a: version %d, cv holds %s", v.Version, legacy[v.Cluster])
			}
			got, err := s.Apply(ctx, next)
			if err != nil {
				t.Fatal(err)
			}
			same(t, got, want)
			last := map[string]int64{}
			for _, c := range want {
				last[c.ClusterID] = c.Version
			}
			for id, ver := range last {
				raw, err := rdb.HGet(ctx, cl, id).Result()
				if _, v, folded := parseCluster(raw); err != nil || !folded || v != ver {
					t.Errorf("cluster %s stored as %q (%v), want its version %d in it", id, raw, err, ver)
				}
			}
			if now, _ := rdb.HGetAll(ctx, cv).Result(); !maps.Equal(now, legacy) {
				t.Fatalf("cv written: %v, was %v", now, legacy)
			}
			third := NewStore(rdb, StoreOptions{Namespace: ns, Rules: func(string) (*Ruleset, error) { return rs, nil }, Resident: mode.resident})
			got, err = third.Apply(ctx, then)
			if err != nil {
				t.Fatal(err)
			}
			same(t, got, wantThen)
		})
	}
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}
