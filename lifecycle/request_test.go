package lifecycle

import (
	"slices"
	"testing"
	"time"

	"github.com/leadconv/leadconv/engine"
)

// planRequest plans c for a request through l, as a request's owner does.
func planRequest(t *testing.T, l *Lifecycle, cfg *engine.Config, c engine.Cluster) []engine.Command {
	t.Helper()
	pp := engine.PrepareFrom(cfg, c, l.RequestHistory(c))
	res := pp.Plan(nil)
	st, changed := pp.State()
	l.RequestPlanned(c, res.Commands, st, changed)
	return res.Commands
}

// A request composes with the live plans: it converts only what no plan
// emitted, into the pending master; a live change pending its settle timer
// is still planned afterwards, relative to the request; the request
// planned again (or another) plans nothing.
func TestRequestComposesWithLivePlans(t *testing.T) {
	cfg := cfgWith(nil)
	l := New(Options{Settle: 10 * time.Second})
	v1 := cl("k", 1, rec("L1", 1), rec("L2", 2, "Title=CTO"))
	v2 := cl("k", 2, rec("L1", 1), rec("L2", 2, "Title=CTO"), rec("L3", 3))
	v3 := cl("k", 3, rec("L1", 1), rec("L2", 2, "Title=CTO"), rec("L3", 3), rec("L4", 12))

	l.Change(Change{Cluster: v1, At: sec(0)})
	if got := shows(planDue(t, l, cfg, sec(10))); len(got) != 2 {
		t.Fatalf("live plan %q, want two conversions", got)
	}
	l.Change(Change{Cluster: v2, At: sec(11)})
	first := planRequest(t, l, cfg, v2)
	if got, want := shows(first), []string{"convert L3 -> contact of:L2 account of:L2"}; !slices.Equal(got, want) {
		t.Fatalf("request planned %q, want %q", got, want)
	}
	if again := planRequest(t, l, cfg, v2); len(again) != 0 {
		t.Errorf("a request planned again %q", shows(again))
	}
	// The live change pending since sec(11) still falls due, and finds
	// nothing left to convert.
	if cmds := planDue(t, l, cfg, sec(21)); len(cmds) != 0 {
		t.Errorf("the live plan after the request emitted %q", shows(cmds))
	}
	l.Change(Change{Cluster: v3, At: sec(22)})
	if got, want := shows(planDue(t, l, cfg, sec(32))), []string{"convert L4 -> contact of:L2 account of:L2"}; !slices.Equal(got, want) {
		t.Errorf("live plan after the request %q, want %q", got, want)
	}
	// What the request recorded survives a snapshot.
	r := Restore(Options{Settle: 10 * time.Second}, l.Snapshot(), nil)
	if h := r.RequestHistory(v3); len(h.Own) != 1 || !slices.Equal(h.Own[0].Converted, []string{"L1", "L2", "L3", "L4"}) {
		t.Errorf("restored request history %+v", h)
	}
	if cmds := planRequest(t, r, cfg, v3); len(cmds) != 0 {
		t.Errorf("a request after the restore planned %q", shows(cmds))
	}
}

// A request on a cluster no change reached plans from nothing, and its
// conversions are awaited like a live plan's (AwaitResults): the cluster's
// next plan waits for their results.
func TestRequestOnNewClusterAwaitsResults(t *testing.T) {
	cfg := cfgWith(nil)
	l := New(Options{AwaitResults: true})
	v1 := cl("k", 1, rec("L1", 1), rec("L2", 2, "Title=CTO"))
	cmds := planRequest(t, l, cfg, v1)
	if len(cmds) != 2 {
		t.Fatalf("request planned %q", shows(cmds))
	}
	l.Change(Change{Cluster: cl("k", 2, append(v1.Records, rec("L3", 3))...), At: sec(5)})
	if due := l.Due(sec(5)); len(due) != 0 {
		t.Fatalf("planned while the request's conversions await results: %+v", due)
	}
	for _, c := range cmds {
		if !l.Result(Result{CommandID: c.ID, Outcome: OutcomeApplied}, sec(6)) {
			t.Errorf("result of %s not awaited", show(c))
		}
	}
	if got, want := shows(planDue(t, l, cfg, sec(6))), []string{"convert L3 -> contact of:L2 account of:L2"}; !slices.Equal(got, want) {
		t.Errorf("after the results %q, want %q", got, want)
	}
}
