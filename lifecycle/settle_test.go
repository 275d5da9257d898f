package lifecycle

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/record"
)

// trio drives three lifecycles through the same steps: one that settles
// entries (drops their records), one that keeps them, and one that settles
// and evicts every entry it can after each step, writing what changed to
// a store as an owner writes its side state (open entries; settled ones
// shelved, with their stubs), loading what the next step wants back from
// it, and restored from it as an owner takes a tenant.
type trio struct {
	t                  *testing.T
	cfg                *engine.Config
	got, ref, ev       *Lifecycle
	open, stubs, shelf map[string]string
	loads, evicts      int
	stubbed, protected int
	stale              int // stubs restored beside their entries' open copies
}

func newTrio(t *testing.T, opts Options) *trio {
	w := &trio{t: t, cfg: cfgWith(nil), got: New(opts), ref: New(opts), ev: New(opts),
		open: map[string]string{}, stubs: map[string]string{}, shelf: map[string]string{}}
	w.ref.keepSettled = true
	return w
}

// load loads the shelved entries ids into ev.
func (w *trio) load(ids []string) {
	w.t.Helper()
	es := make([]Entry, len(ids))
	for i, id := range ids {
		if err := json.Unmarshal([]byte(w.shelf[id]), &es[i]); err != nil {
			w.t.Fatalf("entry %s as shelved: %v", id, err)
		}
	}
	w.ev.Load(es)
	w.loads += len(es)
}

// all applies f to each, after loading into ev what changes of the
// clusters ids and the records refs want.
func (w *trio) all(ids []string, refs []record.Ref, f func(l *Lifecycle)) {
	w.t.Helper()
	w.load(w.ev.Wanted(ids, refs))
	for _, l := range []*Lifecycle{w.got, w.ref, w.ev} {
		f(l)
	}
}

// sync writes what changed in ev to the store, evicts all it can, and
// fails on any read of an evicted entry.
func (w *trio) sync(where string) {
	w.t.Helper()
	changed, removed := w.ev.TakeDirty()
	for _, e := range changed {
		b, err := e.AppendJSON(nil, nil)
		if err != nil {
			w.t.Fatal(err)
		}
		// As the owner writes: an open entry leaves a shelved copy and
		// stub stale.
		id := e.ClusterID
		if e.Settled {
			w.shelf[id], w.stubs[id] = string(b), string(e.AppendStub(nil))
			delete(w.open, id)
		} else {
			w.open[id] = string(b)
		}
	}
	for _, id := range removed {
		delete(w.open, id)
		delete(w.stubs, id)
		delete(w.shelf, id)
	}
	w.evicts += w.ev.Evict(0)
	for id := range w.ev.evicted {
		if _, ok := w.shelf[id]; !ok {
			w.t.Fatalf("%s: evicted %s not shelved; changed %v removed %v", where, id, len(changed), removed)
		}
	}
	if n := w.ev.Faults(); n > 0 {
		w.t.Fatalf("%s: %d reads of evicted entries", where, n)
	}
}

// plan plans the Ready of each and fails on any difference.
func (w *trio) plan(where string, rs [3][]Ready) {
	w.t.Helper()
	var cmds [3][]engine.Command
	for i, l := range []*Lifecycle{w.got, w.ref, w.ev} {
		if i > 0 && !slices.Equal(names(rs[i]), names(rs[0])) {
			w.t.Fatalf("%s: due %v, lifecycle %d %v", where, names(rs[0]), i, names(rs[i]))
		}
		cmds[i] = planAll(w.t, l, w.cfg, rs[i])
	}
	for i := 1; i < 3; i++ {
		if !slices.Equal(shows(cmds[i]), shows(cmds[0])) || !slices.EqualFunc(cmds[i], cmds[0], func(x, y engine.Command) bool { return x.ID == y.ID }) {
			w.t.Fatalf("%s: planned %q, lifecycle %d %q", where, shows(cmds[0]), i, shows(cmds[i]))
		}
	}
}

func (w *trio) due(now time.Time) [3][]Ready {
	return [3][]Ready{w.got.Due(now), w.ref.Due(now), w.ev.Due(now)}
}

// restore restores each from JSON: got and ref from their snapshots, ev
// from its store, as an owner takes a tenant: its open entries and the
// stubs of the shelved ones, then the shelved entries Protected names.
func (w *trio) restore() {
	w.got, w.ref = restoreJSON(w.t, w.got), restoreJSON(w.t, w.ref)
	var es []Entry
	for _, id := range slices.Sorted(maps.Keys(w.open)) {
		var e Entry
		if err := json.Unmarshal([]byte(w.open[id]), &e); err != nil {
			w.t.Fatal(err)
		}
		es = append(es, e)
	}
	var stubs []Stub
	for id, s := range w.stubs {
		st, err := ParseStub(id, s)
		if err != nil {
			w.t.Fatal(err)
		}
		stubs = append(stubs, st)
		if _, ok := w.open[id]; ok {
			w.stale++
		}
	}
	w.ev = Restore(w.ev.opts, es, stubs)
	p := w.ev.Protected()
	w.load(p)
	w.stubbed, w.protected = w.stubbed+len(stubs), w.protected+len(p)
}

func restoreJSON(t *testing.T, l *Lifecycle) *Lifecycle {
	t.Helper()
	b, err := json.Marshal(l.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	var es []Entry
	if err := json.Unmarshal(b, &es); err != nil {
		t.Fatal(err)
	}
	r := Restore(l.opts, es, nil)
	r.keepSettled = l.keepSettled
	return r
}

func refsOf(rs []record.Record) []record.Ref {
	out := make([]record.Ref, len(rs))
	for i := range rs {
		out[i] = rs[i].Ref()
	}
	return out
}

// A settled entry keeps only its cluster's id and version, and may be
// evicted. Over random streams (records moving between clusters, clusters
// joined and emptied, updates, echoes of both kinds, writer results of
// every outcome, mass-conversion requests, restores from JSON) a lifecycle
// that settles plans exactly what one that keeps every record plans, and
// so does one that evicts every entry it can after each step and loads
// back what the next step wants: commands and ids, results awaited or
// not. Its settled entries hold no records, and no evicted entry is read
// without being loaded.
func TestSettledEntriesPlanAsIfTheyKeptTheirRecords(t *testing.T) {
	settled, results, onSettled, loads, evicts, echoes, stubbed, protected, stale := 0, 0, 0, 0, 0, 0, 0, 0, 0
	for seed := range uint64(60) {
		r := rand.New(rand.NewPCG(seed, 7))
		opts := Options{Settle: 2 * time.Second, MaxSettle: 6 * time.Second, AwaitResults: seed%2 == 1}
		if seed%3 == 0 {
			opts.Settle, opts.MaxSettle = 0, 0
		}
		w := newTrio(t, opts)
		// The records, each in one cluster; clusters by id.
		recs := map[string]record.Record{}
		where := map[string]string{}
		versions := map[string]int64{}
		clusters := map[string][]string{}
		for i := range 14 {
			id := fmt.Sprintf("L%d", i)
			if i%4 == 3 {
				id = fmt.Sprintf("C%d", i)
			}
			recs[id] = rec(id, 0, fmt.Sprintf("Title=t%d", r.IntN(3)))
		}
		change := func(id string, at time.Time, echo bool) Change {
			versions[id]++
			rs := make([]record.Record, 0, len(clusters[id]))
			for _, rid := range slices.Sorted(slices.Values(clusters[id])) {
				rs = append(rs, recs[rid])
			}
			return Change{Cluster: cl(id, versions[id], rs...), At: at, Echo: echo}
		}
		apply := func(c Change) {
			w.all([]string{c.Cluster.ID}, refsOf(c.Cluster.Records), func(l *Lifecycle) { l.Change(c) })
		}
		var held []Ready
		for step := range 250 {
			now := sec(step)
			here := fmt.Sprintf("seed %d step %d", seed, step)
			switch op := r.IntN(15); {
			case op < 4:
				// A record moves to another cluster (or a new one); the
				// one it left changes or goes, at times into it.
				rid := slices.Sorted(maps.Keys(recs))[r.IntN(len(recs))]
				to := fmt.Sprintf("k%d", r.IntN(8))
				from := where[rid]
				if from == to {
					continue
				}
				var cs []Change
				if from != "" {
					clusters[from] = slices.DeleteFunc(clusters[from], func(x string) bool { return x == rid })
					if len(clusters[from]) == 0 {
						versions[from]++
						into := ""
						if r.IntN(2) == 0 {
							into = to
						}
						cs = append(cs, Change{Cluster: cl(from, versions[from]), At: now, Removed: true, MergedInto: into})
					} else {
						cs = append(cs, change(from, now, false))
					}
				}
				clusters[to] = append(clusters[to], rid)
				where[rid] = to
				cs = append(cs, change(to, now, false))
				if r.IntN(2) == 0 {
					slices.Reverse(cs)
				}
				for _, c := range cs {
					apply(c)
				}
			case op < 6:
				// A record is updated; at times it is an echo.
				ids := slices.Sorted(maps.Keys(where))
				if len(ids) == 0 {
					continue
				}
				rid := ids[r.IntN(len(ids))]
				rc := recs[rid]
				rc.ModifiedAt = now
				rc.Fields = maps.Clone(rc.Fields)
				rc.Fields["Phone"] = fmt.Sprint(r.IntN(5))
				recs[rid] = rc
				apply(change(where[rid], now, r.IntN(3) == 0))
			case op < 8:
				// Due, as an owner plans it: held, planned, acked later.
				w.plan(here, w.due(now))
			case op == 8:
				rs := w.due(now)
				for i, l := range []*Lifecycle{w.got, w.ref, w.ev} {
					for _, rd := range rs[i] {
						l.Hold(rd)
					}
				}
				w.plan(here+" (held)", rs)
				held = append(held, rs[0]...)
			case op == 9 && len(held) > 0:
				h := held[0]
				held = held[1:]
				w.all(nil, nil, func(l *Lifecycle) { l.Acked(h) })
			case op == 9:
				// The CRM's echo of a lead's conversion.
				lead := fmt.Sprintf("L%d", r.IntN(14))
				var got [3]bool
				i := 0
				w.all(nil, []record.Ref{{Object: record.Lead, ID: lead}}, func(l *Lifecycle) {
					got[i] = l.Echo(lead, "C-"+lead, "A-"+lead)
					i++
				})
				if got[1] != got[0] || got[2] != got[0] {
					t.Fatalf("%s: echo of %s taken %v", here, lead, got)
				}
				if got[0] {
					echoes++
				}
			case op == 10 && len(w.ref.sent) > 0, op == 11 && len(w.ref.sent) > 0 && r.IntN(2) == 0:
				ids := slices.Sorted(maps.Keys(w.ref.sent))
				res := Result{CommandID: ids[r.IntN(len(ids))], Outcome: []string{OutcomeApplied, OutcomeFailed, OutcomeStale, OutcomeSkippedDuplicate}[r.IntN(4)], Reason: "x"}
				if res.Outcome == OutcomeApplied {
					res.Records = []record.Ref{{Object: record.Contact, ID: fmt.Sprintf("C-%d", step)}, {Object: record.Account, ID: fmt.Sprintf("A-%d", step)}}
				}
				var got [3]bool
				i := 0
				w.all(nil, nil, func(l *Lifecycle) {
					got[i] = l.Result(res, now)
					i++
				})
				if got[1] != got[0] || got[2] != got[0] {
					t.Fatalf("%s: result taken %v", here, got)
				}
				results++
			case op == 11:
				w.restore()
				held = w.got.Held()
			case op >= 12:
				// A request converts a cluster now, often a settled one.
				var ids []string
				for _, id := range slices.Sorted(maps.Keys(clusters)) {
					if e := w.got.entries[id]; len(clusters[id]) > 0 && (r.IntN(2) == 0 || e != nil && e.Settled) {
						ids = append(ids, id)
					}
				}
				if len(ids) == 0 {
					continue
				}
				id := ids[r.IntN(len(ids))]
				c := change(id, now, false)
				// A request reads the cluster as it stands; it does not change it.
				versions[id]--
				c.Cluster.Version--
				if e := w.got.entries[id]; e != nil && e.Settled {
					onSettled++
				}
				var cmds [3][]engine.Command
				i := 0
				w.all([]string{id}, refsOf(c.Cluster.Records), func(l *Lifecycle) {
					pp := engine.PrepareFrom(w.cfg, c.Cluster, l.RequestHistory(c.Cluster))
					res := pp.Plan(nil)
					st, changed := pp.State()
					l.RequestPlanned(c.Cluster, res.Commands, st, changed)
					cmds[i] = res.Commands
					i++
				})
				if !slices.Equal(shows(cmds[1]), shows(cmds[0])) || !slices.Equal(shows(cmds[2]), shows(cmds[0])) {
					t.Fatalf("%s: request planned %q, %q, %q", here, shows(cmds[0]), shows(cmds[1]), shows(cmds[2]))
				}
			}
			w.sync(here)
			for _, e := range w.got.entries {
				waits := e.Pending != nil || len(e.Outstanding) > 0 || len(e.Held) > 0
				switch {
				case e.Settled && (waits || len(e.Seen.Records) > 0 || e.MergedInto != ""):
					t.Fatalf("%s: settled entry %+v", here, e)
				case e.Settled:
					settled++
				case !waits && len(e.Seen.Records) > 0:
					t.Fatalf("%s: entry %s waits for nothing and keeps its records", here, e.ClusterID)
				}
			}
		}
		w.plan(fmt.Sprintf("seed %d: flush", seed), [3][]Ready{w.got.Flush(), w.ref.Flush(), w.ev.Flush()})
		for i, l := range []*Lifecycle{w.ref, w.ev} {
			if a, b := w.got.Stats(), l.Stats(); !maps.Equal(a.Failed, b.Failed) || a.Reconciled != b.Reconciled {
				t.Fatalf("seed %d: stats %+v, lifecycle %d %+v", seed, a, i+1, b)
			}
		}
		loads, evicts = loads+w.loads, evicts+w.evicts
		stubbed, protected, stale = stubbed+w.stubbed, protected+w.protected, stale+w.stale
	}
	if settled < 5000 || results < 100 || onSettled < 200 || loads < 1000 || evicts < 1000 || echoes < 50 || stubbed < 500 || protected < 50 || stale < 50 {
		t.Fatalf("exercised too little: %d settled entries seen, %d results, %d requests of settled clusters, %d loads, %d evictions, %d echoes taken, %d stubs restored (%d stale), %d loaded at restore",
			settled, results, onSettled, loads, evicts, echoes, stubbed, stale, protected)
	}
	t.Logf("%d stubs restored (%d stale), %d loaded at restore", stubbed, stale, protected)
}
