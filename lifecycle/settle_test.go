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

// twins drives a lifecycle that settles entries (drops their records) and
// one that keeps them, through the same steps.
type twins struct {
	t        *testing.T
	cfg      *engine.Config
	opts     Options
	got, ref *Lifecycle
}

func (w *twins) both(f func(l *Lifecycle)) {
	f(w.got)
	f(w.ref)
}

// plan plans rs of each (their own Ready) and fails on any difference.
func (w *twins) plan(where string, got, ref []Ready) {
	w.t.Helper()
	if g, r := names(got), names(ref); !slices.Equal(g, r) {
		w.t.Fatalf("%s: due %v, keeping records %v", where, g, r)
	}
	a, b := planAll(w.t, w.got, w.cfg, got), planAll(w.t, w.ref, w.cfg, ref)
	if !slices.Equal(shows(a), shows(b)) || !slices.EqualFunc(a, b, func(x, y engine.Command) bool { return x.ID == y.ID }) {
		w.t.Fatalf("%s: planned %q, keeping records %q", where, shows(a), shows(b))
	}
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
	r := Restore(l.opts, es)
	r.keepSettled = l.keepSettled
	return r
}

// A settled entry keeps only its cluster's id and version. Over random
// streams (records moving between clusters, clusters joined and emptied,
// updates, echoes, writer results of every outcome, mass-conversion
// requests, restores from JSON) a lifecycle that settles plans exactly
// what one that keeps every record plans, commands and ids, results
// awaited or not; and its settled entries hold no records.
func TestSettledEntriesPlanAsIfTheyKeptTheirRecords(t *testing.T) {
	settled, results, onSettled := 0, 0, 0
	for seed := range uint64(60) {
		r := rand.New(rand.NewPCG(seed, 7))
		opts := Options{Settle: 2 * time.Second, MaxSettle: 6 * time.Second, AwaitResults: seed%2 == 1}
		w := &twins{t: t, cfg: cfgWith(nil), opts: opts, got: New(opts), ref: New(opts)}
		w.ref.keepSettled = true
		if seed%3 == 0 {
			opts.Settle, opts.MaxSettle = 0, 0
			w.got.opts, w.ref.opts = opts, opts
		}
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
		var held []Ready
		for step := range 250 {
			now := sec(step)
			switch op := r.IntN(14); {
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
					w.both(func(l *Lifecycle) { l.Change(c) })
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
				c := change(where[rid], now, r.IntN(3) == 0)
				w.both(func(l *Lifecycle) { l.Change(c) })
			case op < 8:
				// Due, as an owner plans it: held, planned, acked later.
				w.plan(fmt.Sprintf("seed %d step %d", seed, step), w.got.Due(now), w.ref.Due(now))
			case op == 8:
				g, f := w.got.Due(now), w.ref.Due(now)
				for i := range g {
					w.got.Hold(g[i])
					w.ref.Hold(f[i])
				}
				w.plan(fmt.Sprintf("seed %d step %d (held)", seed, step), g, f)
				held = append(held, g...)
			case op == 9 && len(held) > 0:
				h := held[0]
				held = held[1:]
				w.both(func(l *Lifecycle) { l.Acked(h) })
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
				var cmds [2][]engine.Command
				if e := w.got.entries[id]; e != nil && e.Settled {
					onSettled++
				}
				for i, l := range []*Lifecycle{w.got, w.ref} {
					pp := engine.PrepareFrom(w.cfg, c.Cluster, l.RequestHistory(c.Cluster))
					res := pp.Plan(nil)
					st, changed := pp.State()
					l.RequestPlanned(c.Cluster, res.Commands, st, changed)
					cmds[i] = res.Commands
				}
				if !slices.Equal(shows(cmds[0]), shows(cmds[1])) {
					t.Fatalf("seed %d step %d: request planned %q, keeping records %q", seed, step, shows(cmds[0]), shows(cmds[1]))
				}
			case op == 10 && len(w.ref.sent) > 0, op == 11 && len(w.ref.sent) > 0 && r.IntN(2) == 0:
				ids := slices.Sorted(maps.Keys(w.ref.sent))
				res := Result{CommandID: ids[r.IntN(len(ids))], Outcome: []string{OutcomeApplied, OutcomeFailed, OutcomeStale, OutcomeSkippedDuplicate}[r.IntN(4)], Reason: "x"}
				if res.Outcome == OutcomeApplied {
					res.Records = []record.Ref{{Object: record.Contact, ID: fmt.Sprintf("C-%d", step)}, {Object: record.Account, ID: fmt.Sprintf("A-%d", step)}}
				}
				a, b := w.got.Result(res, now), w.ref.Result(res, now)
				if a != b {
					t.Fatalf("seed %d step %d: result taken %v, keeping records %v", seed, step, a, b)
				}
				results++
			case op == 11:
				w.got, w.ref = restoreJSON(t, w.got), restoreJSON(t, w.ref)
				held = w.got.Held()
			}
			for _, e := range w.got.entries {
				waits := e.Pending != nil || len(e.Outstanding) > 0 || len(e.Held) > 0
				switch {
				case e.Settled && (waits || len(e.Seen.Records) > 0):
					t.Fatalf("seed %d step %d: settled entry %+v", seed, step, e)
				case e.Settled:
					settled++
				case !waits && len(e.Seen.Records) > 0:
					t.Fatalf("seed %d step %d: entry %s waits for nothing and keeps its records", seed, step, e.ClusterID)
				}
			}
		}
		w.plan(fmt.Sprintf("seed %d: flush", seed), w.got.Flush(), w.ref.Flush())
		if a, b := w.got.Stats(), w.ref.Stats(); !maps.Equal(a.Failed, b.Failed) || a.Reconciled != b.Reconciled {
			t.Fatalf("seed %d: stats %+v, keeping records %+v", seed, a, b)
		}
	}
	if settled < 5000 || results < 100 || onSettled < 200 {
		t.Fatalf("exercised too little: %d settled entries seen, %d results, %d requests of settled clusters", settled, results, onSettled)
	}
}
