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
	"sync"
	"testing"
	"time"

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

// TestStoreCombinesCalls holds the store's turn while several calls queue
// up, then checks that one batch applied them all and that every call got
// exactly the changes of its own events, indexed into its own slice.
func TestStoreCombinesCalls(t *testing.T) {
	srv := redistest.New(t)
	ctx := context.Background()
	s := newTestStore(t, srv, DefaultConfig(), redistest.Namespace(t))
	const calls = 5
	batches := make([][]record.Event, calls)
	for i := range batches {
		// Call i holds leads i-0 and i-1 that match each other, and i-2
		// that matches call 0's leads: clusters span calls.
		mail := fmt.Sprintf("p%d@x.com", i)
		batches[i] = []record.Event{
			upsertLead(fmt.Sprintf("%d-0", i), 1, person("Ann", "Lee", mail)),
			upsertLead(fmt.Sprintf("%d-1", i), 2, person("Ann", "Lee", mail)),
			upsertLead(fmt.Sprintf("%d-2", i), 3, person("Bo", "Ek", "p0@x.com")),
		}
	}
	s.turn <- struct{}{} // as if another batch were being applied
	got := make([][]Change, calls)
	errs := make([]error, calls)
	var wg sync.WaitGroup
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = s.Apply(ctx, batches[i])
		}()
	}
	for queued := 0; queued < calls; {
		time.Sleep(time.Millisecond)
		s.mu.Lock()
		queued = len(s.queue)
		s.mu.Unlock()
	}
	<-s.turn
	wg.Wait()
	for i := range calls {
		if errs[i] != nil {
			t.Fatalf("call %d: %v", i, errs[i])
		}
		if len(got[i]) == 0 {
			t.Fatalf("call %d got no changes", i)
		}
		for _, c := range got[i] {
			if c.Index < 0 || c.Index >= len(batches[i]) || c.Trigger != batches[i][c.Index].Ref() {
				t.Fatalf("call %d got change %+v of another call", i, c)
			}
		}
	}
	if n := promtest.CollectAndCount(s.combined); n != 1 {
		t.Fatalf("combined histogram has %d series", n)
	}
	var m dto.Metric
	if err := s.combined.Write(&m); err != nil {
		t.Fatal(err)
	}
	if h := m.GetHistogram(); h.GetSampleCount() != 1 || h.GetSampleSum() != calls {
		t.Fatalf("batches to Redis: %d holding %v calls, want 1 holding %d", h.GetSampleCount(), h.GetSampleSum(), calls)
	}
	// Every p0 lead and every call's -2 lead form one cluster across calls.
	want := "0-0 0-1 0-2 1-2 2-2 3-2 4-2"
	if sets := clusterSets(t, s); !strings.Contains(sets, want) {
		t.Fatalf("clusters %s, want one of %q", sets, want)
	}
}

// TestStoreCombinedCallerGivesUp checks that when the caller holding the
// turn is cancelled, the calls combined with its own go back to the queue
// and are applied with the next turn instead of failing.
func TestStoreCombinedCallerGivesUp(t *testing.T) {
	srv := redistest.New(t)
	s := newTestStore(t, srv, DefaultConfig(), redistest.Namespace(t))
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	own := &applyReq{ctx: gone, events: []record.Event{upsertLead("a", 1, person("Ann", "Lee", "ann@x.com"))}, done: make(chan applyResult, 1)}
	other := &applyReq{ctx: context.Background(), events: []record.Event{upsertLead("b", 1, person("Ann", "Lee", "ann@x.com"))}, done: make(chan applyResult, 1)}
	for _, r := range []*applyReq{own, other} {
		r.pre = s.prepare(r.events)
	}
	s.applyCombined(gone, []*applyReq{own, other})
	if r := <-own.done; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("the cancelled caller got %v, want context.Canceled", r.err)
	}
	select {
	case r := <-other.done:
		t.Fatalf("the other caller got a result %+v, want to be queued again", r)
	default:
	}
	if len(s.queue) != 1 || s.queue[0] != other {
		t.Fatalf("queue = %v, want the other call only", s.queue)
	}
	// The next turn applies it.
	if _, err := s.Apply(context.Background(), []record.Event{upsertLead("c", 1, person("Bo", "Ek", "bo@x.com"))}); err != nil {
		t.Fatal(err)
	}
	r := <-other.done
	if r.err != nil || len(r.changes) != 1 || r.changes[0].Trigger.ID != "b" || r.changes[0].Index != 0 {
		t.Fatalf("the requeued call got %+v", r)
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

// TestStoreConcurrentMatchesOracle applies one shuffled stream from several
// goroutines of two store instances at once and compares the clusters with
// the connected components of the same rules over the final records.
func TestStoreConcurrentMatchesOracle(t *testing.T) {
	srv := redistest.New(t)
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			checkConcurrentOracle(t, func() redis.UniversalClient { return srv.Client() }, oracleRun{seed: seed, tenants: []string{"acme"}})
		})
	}
}

// oracleRun is one run of checkConcurrentOracle.
type oracleRun struct {
	seed    uint64
	tenants []string // each gets its own stream, all applied mixed
	events  int      // per tenant; default 4000
	// midway, when set, runs once after half the batches were handed out,
	// while the workers apply.
	midway func(stores []*Store)
}

// checkConcurrentOracle is the body of the oracle test, on any client (one
// server, a cluster): each tenant's stream, mixed with the others and
// shuffled, is applied from eight goroutines of two store instances at once,
// and each tenant's clusters must equal the connected components of the
// same rules over its final records. It returns the two stores.
func checkConcurrentOracle(t *testing.T, newClient func() redis.UniversalClient, run oracleRun) []*Store {
	t.Helper()
	ctx := context.Background()
	var stream []record.Event
	finals := map[string]map[string]record.Record{}
	tenantBans := map[string][][2]record.Ref{}
	for i, tenant := range run.tenants {
		s, final, bans := genStream(run.seed+uint64(i)*1000, 600, cmp.Or(run.events, 4000))
		for k := range s {
			s[k].Tenant = tenant
		}
		stream = append(stream, s...)
		finals[tenant], tenantBans[tenant] = final, bans
	}
	// Bans apply whatever their order relative to upserts, so the order of
	// the stream may be shuffled freely.
	rng := rand.New(rand.NewPCG(run.seed, 2))
	rng.Shuffle(len(stream), func(i, j int) { stream[i], stream[j] = stream[j], stream[i] })
	ns := redistest.Namespace(t)
	stores := []*Store{
		newTestStoreOn(t, newClient(), DefaultConfig(), ns),
		newTestStoreOn(t, newClient(), DefaultConfig(), ns),
	}
	work := make(chan []record.Event)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			failed := false
			for batch := range work {
				// After a failure keep draining so the feeder never blocks.
				if failed {
					continue
				}
				changes, err := stores[w%2].Apply(ctx, batch)
				if err != nil {
					errs <- err
					failed = true
					continue
				}
				// Calls are combined: each must get its own changes.
				for _, c := range changes {
					if c.Index >= len(batch) || c.Trigger != batch[c.Index].Ref() {
						errs <- fmt.Errorf("change %+v is not of this call", c)
						failed = true
						break
					}
				}
			}
		}()
	}
	half := len(stream) / 2
	for len(stream) > 0 {
		n := min(1+rng.IntN(40), len(stream))
		work <- slices.Clone(stream[:n])
		stream = stream[n:]
		if run.midway != nil && len(stream) <= half {
			run.midway(stores)
			run.midway = nil
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The two instances must have raced: otherwise the optimistic checks
	// were never exercised.
	if n := promtest.ToFloat64(stores[0].conflicts) + promtest.ToFloat64(stores[1].conflicts); n == 0 {
		t.Error("no conflict between the two instances: the test did not exercise the optimistic checks")
	}
	for _, tenant := range run.tenants {
		got, want := tenantClusterSets(t, stores[0], tenant), oracleSets(t, finals[tenant], tenantBans[tenant])
		if got != want {
			t.Fatalf("tenant %s: store clusters differ from the oracle\nonly in store: %v\nonly in oracle: %v", tenant, setDiff(got, want), setDiff(want, got))
		}
	}
	return stores
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
// the script cache does not) and kills it for a while in the middle of a
// stream: every failure is an error the caller retries, and the final
// clusters still equal the oracle's. Batches of 150 events are applied in
// several runs, sent while the rest is decided.
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
			if n := promtest.ToFloat64(s.reloads); n < 1 {
				t.Fatalf("script reloads = %v, want at least one after a restart", n)
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
