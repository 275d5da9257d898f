package lifecycle

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// Due and NextDue read the timers, Flush and Pending the clusters pending
// or holding (open), Held those holding; over random changes, plans,
// holds, releases, writer results, removals, joins and restores they
// answer exactly what a scan of every entry answers, results awaited or
// not.
func TestOpenIndexAgreesWithAScanOfEveryEntry(t *testing.T) {
	cfg := cfgWith(nil)
	results := 0
	for seed := range uint64(40) {
		r := rand.New(rand.NewPCG(seed, 1))
		l := New(Options{Settle: 2 * time.Second, MaxSettle: 5 * time.Second, AwaitResults: seed%2 == 1})
		versions := map[string]int64{}
		var held []Ready
		for step := range 300 {
			now := sec(step)
			id := fmt.Sprintf("c%d", r.IntN(12))
			switch op := r.IntN(10); {
			case op < 5:
				versions[id]++
				l.Change(Change{Cluster: cl(id, versions[id], rec("L"+id, step), rec("L"+id+"b", step)), At: now})
			case op == 5:
				// Removed, at times joined into another (whose next plan
				// absorbs it).
				versions[id]++
				into := ""
				if r.IntN(2) == 0 {
					into = fmt.Sprintf("c%d", r.IntN(12))
				}
				if into == id {
					into = ""
				}
				l.Change(Change{Cluster: cl(id, versions[id]), At: now, Removed: true, MergedInto: into})
			case op == 6:
				// As an owner does: held, planned, released once produced.
				for _, rd := range l.Due(now) {
					l.Hold(rd)
					held = append(held, rd)
					if r.IntN(2) == 0 {
						planAll(t, l, cfg, []Ready{rd})
					}
				}
			case op == 7 && len(held) > 0:
				l.Acked(held[0])
				held = held[1:]
			case op == 8:
				planDue(t, l, cfg, now)
				if len(l.sent) > 0 && r.IntN(2) == 0 {
					ids := make([]string, 0, len(l.sent))
					for id := range l.sent {
						ids = append(ids, id)
					}
					slices.Sort(ids)
					outcome := OutcomeApplied
					if r.IntN(2) == 0 {
						outcome = OutcomeFailed
					}
					if l.Result(Result{CommandID: ids[r.IntN(len(ids))], Outcome: outcome, Reason: "x"}, now) {
						results++
					}
				}
			default:
				l = Restore(l.opts, l.Snapshot(), nil)
			}
			now = sec(step + r.IntN(4))
			if got, want := names(l.Due(now)), names(scanReady(l, func(e *Entry) bool { return scanDue(l, e, now) })); !slices.Equal(got, want) {
				t.Fatalf("seed %d step %d: Due %v, a scan %v", seed, step, got, want)
			}
			if got, want := names(l.Flush()), names(scanReady(l, func(e *Entry) bool { return e.Pending != nil })); !slices.Equal(got, want) {
				t.Fatalf("seed %d step %d: Flush %v, a scan %v", seed, step, got, want)
			}
			next, ok := l.NextDue()
			if wnext, wok := scanNextDue(l); next != wnext || ok != wok {
				t.Fatalf("seed %d step %d: NextDue %v %v, a scan %v %v", seed, step, next, ok, wnext, wok)
			}
			// A tick on its way, at a time around now: the next due after it.
			after := now.Add(time.Duration(r.IntN(8)-4) * time.Second)
			nextAfter, okAfter := l.NextDueAfter(after)
			if wnext, wok := scanNextDueAfter(l, after); !nextAfter.Equal(wnext) || okAfter != wok {
				t.Fatalf("seed %d step %d: NextDueAfter(%v) %v %v, a scan %v %v", seed, step, after, nextAfter, okAfter, wnext, wok)
			}
			if okAfter && !nextAfter.After(after) {
				t.Fatalf("seed %d step %d: NextDueAfter(%v) = %v, not after it", seed, step, after, nextAfter)
			}
			if got, want := names(l.Held()), names(scanHeld(l)); !slices.Equal(got, want) {
				t.Fatalf("seed %d step %d: Held %v, a scan %v", seed, step, got, want)
			}
			n := 0
			for id, e := range l.entries {
				if e.Pending != nil {
					n++
				}
				// The index is exact: an entry that waits for nothing is
				// not in it, so Evict does not protect what it claims.
				if _, in := l.open[id]; in != (e.Pending != nil || len(e.Held) > 0) {
					t.Fatalf("seed %d step %d: %s in open %v, pending %v, held %d", seed, step, id, in, e.Pending != nil, len(e.Held))
				}
				if _, in := l.holding[id]; in != (len(e.Held) > 0) {
					t.Fatalf("seed %d step %d: %s in holding %v, held %d", seed, step, id, in, len(e.Held))
				}
			}
			for _, index := range []map[string]*Entry{l.open, l.holding} {
				for id, e := range index {
					if l.entries[id] != e {
						t.Fatalf("seed %d step %d: %s indexed, not the entry held", seed, step, id)
					}
				}
			}
			if l.Pending() != n {
				t.Fatalf("seed %d step %d: Pending %d, a scan %d", seed, step, l.Pending(), n)
			}
		}
	}
	// Awaited results were exercised.
	if results == 0 {
		t.Fatal("no writer result reconciled")
	}
}

func names(rs []Ready) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = fmt.Sprintf("%s@%d", r.Cluster.ID, r.Cluster.Version)
	}
	return out
}

func scanReady(l *Lifecycle, pick func(*Entry) bool) []Ready {
	var es []*Entry
	for _, e := range l.entries {
		if pick(e) {
			es = append(es, e)
		}
	}
	slices.SortFunc(es, func(a, b *Entry) int {
		return cmp.Or(a.Pending.Last.Compare(b.Pending.Last), strings.Compare(a.ClusterID, b.ClusterID))
	})
	out := make([]Ready, len(es))
	for i, e := range es {
		out[i] = Ready{Cluster: e.Seen}
	}
	return out
}

func scanDue(l *Lifecycle, e *Entry, now time.Time) bool {
	if e.Pending == nil || l.opts.AwaitResults && len(e.Outstanding) > 0 {
		return false
	}
	return !now.Before(e.Pending.Last.Add(l.opts.Settle)) || !now.Before(e.Pending.First.Add(l.opts.MaxSettle))
}

func scanNextDue(l *Lifecycle) (time.Time, bool) { return scanNextDueAfter(l, time.Time{}) }

func scanNextDueAfter(l *Lifecycle, after time.Time) (time.Time, bool) {
	var next time.Time
	found := false
	for _, e := range l.entries {
		if e.Pending == nil || l.opts.AwaitResults && len(e.Outstanding) > 0 {
			continue
		}
		t := e.Pending.Last.Add(l.opts.Settle)
		if m := e.Pending.First.Add(l.opts.MaxSettle); m.Before(t) {
			t = m
		}
		if t.After(after) && (!found || t.Before(next)) {
			next, found = t, true
		}
	}
	return next, found
}

func scanHeld(l *Lifecycle) []Ready {
	var out []Ready
	ids := make([]string, 0, len(l.entries))
	for id := range l.entries {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		for _, h := range l.entries[id].Held {
			out = append(out, Ready{Cluster: h.Cluster})
		}
	}
	return out
}
