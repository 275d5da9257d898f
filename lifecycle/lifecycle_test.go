package lifecycle

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/record"
	"github.com/leadconv/leadconv/schemas"
)

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func sec(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

// rec builds a lead ("L…") or contact ("C…") of person Ann Lee; extra
// fields make a record more complete.
func rec(id string, modified int, extra ...string) record.Record {
	obj := record.Lead
	if strings.HasPrefix(id, "C") {
		obj = record.Contact
	}
	f := record.Fields{"LastName": "Lee", "Email": "ann@acme.io", "Company": "Acme"}
	for _, kv := range extra {
		k, v, _ := strings.Cut(kv, "=")
		f[k] = v
	}
	return record.Record{Tenant: "acme", Object: obj, ID: id, CreatedAt: sec(modified), ModifiedAt: sec(modified), Fields: f}
}

func cl(id string, version int64, recs ...record.Record) engine.Cluster {
	return engine.Cluster{Tenant: "acme", ID: id, Version: version, Records: recs}
}

// planDue plans what is due at now, as an owner does, and returns the
// commands in emission order.
func planDue(t *testing.T, l *Lifecycle, cfg *engine.Config, now time.Time) []engine.Command {
	t.Helper()
	return planAll(t, l, cfg, l.Due(now))
}

// planAll plans rs and checks every command against its schema, in the
// encoder's JSON and in encoding/json's.
func planAll(t *testing.T, l *Lifecycle, cfg *engine.Config, rs []Ready) []engine.Command {
	t.Helper()
	var out []engine.Command
	for _, r := range rs {
		pp := engine.PrepareFrom(cfg, r.Cluster, r.History)
		res := pp.Plan(nil)
		st, changed := pp.State()
		l.Planned(r, res.Commands, st, changed)
		for i := range res.Commands {
			c := &res.Commands[i]
			fast, err := c.AppendJSON(nil)
			if err != nil {
				t.Fatal(err)
			}
			std, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range [][]byte{fast, std} {
				if err := schemas.ValidateJSON(c.Kind, b); err != nil {
					t.Fatalf("%s: %v\n%s", show(*c), err, b)
				}
			}
		}
		out = append(out, res.Commands...)
	}
	return out
}

// show is a command in one line: kind, subject and targets.
func show(c engine.Command) string {
	t := func(x engine.Target) string {
		switch {
		case x.Create:
			return "new"
		case x.FromLead != "":
			return "of:" + x.FromLead
		}
		return x.ID
	}
	switch d := c.Data.(type) {
	case *engine.LeadConvert:
		return fmt.Sprintf("convert %s -> contact %s account %s", d.LeadID, t(d.Contact), t(d.Account.Target))
	case *engine.RecordsMerge:
		return fmt.Sprintf("merge %v%v -> %s", d.MergedIDs, d.MergedFromLeads, t(d.Master))
	case *engine.ReviewRequested:
		return fmt.Sprintf("review %s %s %s", d.Records[0].ID, d.Reason, d.WriterReason)
	}
	return c.Kind
}

func shows(cmds []engine.Command) []string {
	out := make([]string, len(cmds))
	for i, c := range cmds {
		out[i] = show(c)
	}
	return out
}

func cfgWith(fn func(*engine.Config)) *engine.Config {
	c := engine.DefaultConfig()
	if fn != nil {
		fn(&c)
	}
	return &c
}

// A cluster growing one record at a time (lead, lead, contact, lead): each
// lead is converted once, the master never needs undoing, and with
// prefer_existing_contact the existing contact takes over as master.
func TestComposeGrowingCluster(t *testing.T) {
	c1 := rec("C1", 3, "AccountId=A1", "Phone=1")
	steps := []engine.Cluster{
		cl("k", 1, rec("L1", 1)),
		cl("k", 2, rec("L1", 1), rec("L2", 2, "Title=CTO")),
		cl("k", 3, rec("L1", 1), rec("L2", 2, "Title=CTO"), c1),
		cl("k", 4, rec("L1", 1), rec("L2", 2, "Title=CTO"), c1, rec("L3", 4)),
	}
	for _, tt := range []struct {
		name   string
		prefer bool
		want   [][]string
	}{
		{"prefer existing contact", true, [][]string{
			nil,
			{"convert L2 -> contact new account new", "convert L1 -> contact of:L2 account of:L2"},
			{"merge [][L2] -> C1"},
			{"convert L3 -> contact C1 account A1"},
		}},
		{"first master stays", false, [][]string{
			nil,
			{"convert L2 -> contact new account new", "convert L1 -> contact of:L2 account of:L2"},
			{"merge [C1][] -> of:L2"},
			{"convert L3 -> contact of:L2 account of:L2"},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := cfgWith(func(c *engine.Config) { c.PreferExistingContact = tt.prefer })
			l := New(Options{})
			converted := map[string]int{}
			for i, c := range steps {
				l.Change(Change{Cluster: c, At: sec(i)})
				cmds := planDue(t, l, cfg, sec(i))
				if got := shows(cmds); !slices.Equal(got, tt.want[i]) {
					t.Fatalf("step %d: %q, want %q", i+1, got, tt.want[i])
				}
				for _, cmd := range cmds {
					if d, ok := cmd.Data.(*engine.LeadConvert); ok {
						converted[d.LeadID]++
					}
				}
			}
			for _, id := range []string{"L1", "L2", "L3"} {
				if converted[id] != 1 {
					t.Errorf("%s converted %d times", id, converted[id])
				}
			}
			// Nothing changed: planning the same records again at a new
			// version emits nothing.
			l.Change(Change{Cluster: cl("k", 5, steps[3].Records...), At: sec(9)})
			if cmds := planDue(t, l, cfg, sec(9)); len(cmds) != 0 {
				t.Errorf("unchanged cluster planned %q", shows(cmds))
			}
		})
	}
}

// Within a batch and within the settle window only the latest state of a
// cluster is planned: three duplicate leads give one master, not two.
func TestSettleWindowPlansLatestState(t *testing.T) {
	cfg := cfgWith(nil)
	l := New(Options{Settle: 2 * time.Second, MaxSettle: 10 * time.Second})
	l.Change(Change{Cluster: cl("k", 1, rec("L1", 0)), At: sec(0)})
	l.Change(Change{Cluster: cl("k", 2, rec("L1", 0), rec("L2", 1)), At: sec(1)})
	if cmds := planDue(t, l, cfg, sec(2)); len(cmds) != 0 {
		t.Fatalf("planned inside the window: %q", shows(cmds))
	}
	l.Change(Change{Cluster: cl("k", 3, rec("L1", 0), rec("L2", 1), rec("L3", 2, "Title=CTO")), At: sec(2)})
	if next, ok := l.NextDue(); !ok || !next.Equal(sec(4)) {
		t.Errorf("next due %v %v, want %v", next, ok, sec(4))
	}
	if cmds := planDue(t, l, cfg, sec(3)); len(cmds) != 0 {
		t.Fatalf("planned inside the window: %q", shows(cmds))
	}
	cmds := planDue(t, l, cfg, sec(4))
	want := []string{"convert L3 -> contact new account new", "convert L1 -> contact of:L3 account of:L3", "convert L2 -> contact of:L3 account of:L3"}
	if got := shows(cmds); !slices.Equal(got, want) {
		t.Fatalf("%q, want %q", got, want)
	}
	for _, c := range cmds {
		if c.ClusterVersion != 3 {
			t.Errorf("%s planned at version %d, want 3", c.Subject, c.ClusterVersion)
		}
	}
}

// A cluster that never stops changing is planned max_settle after its
// first unplanned change; settle 0 plans at once.
func TestMaxSettleAndImmediate(t *testing.T) {
	cfg := cfgWith(nil)
	l := New(Options{Settle: 2 * time.Second, MaxSettle: 5 * time.Second})
	var planned []int
	recs := []record.Record{rec("L1", 0)}
	for i := 1; i <= 8; i++ {
		recs = append(recs, rec(fmt.Sprintf("L%d", i+1), i))
		l.Change(Change{Cluster: cl("k", int64(i), recs...), At: sec(i)})
		if cmds := planDue(t, l, cfg, sec(i)); len(cmds) > 0 {
			planned = append(planned, i)
		}
	}
	if !slices.Equal(planned, []int{6}) {
		t.Errorf("planned at %v, want [6] (first change at 1, max_settle 5s)", planned)
	}

	now := New(Options{})
	now.Change(Change{Cluster: cl("k", 2, rec("L1", 0), rec("L2", 1)), At: sec(1)})
	if cmds := planDue(t, now, cfg, sec(1)); len(cmds) != 2 {
		t.Errorf("settle 0: %q, want both conversions at once", shows(cmds))
	}
}

// Two clusters, each with a pending master, joined by a new lead: one
// master is chosen under the master strategy, the other (a contact still
// named by its lead) merged into it, and only the new lead converts.
func TestComposeJoinOfPendingMasters(t *testing.T) {
	cfg := cfgWith(nil)
	l := New(Options{})
	a := []record.Record{rec("L1", 1, "Title=CTO", "Phone=1"), rec("L2", 2)}
	b := []record.Record{rec("L3", 3, "Title=CTO"), rec("L4", 4)}
	l.Change(Change{Cluster: cl("A", 2, a...), At: sec(4)})
	l.Change(Change{Cluster: cl("B", 2, b...), At: sec(4)})
	first := shows(planDue(t, l, cfg, sec(4)))
	want := []string{"convert L1 -> contact new account new", "convert L2 -> contact of:L1 account of:L1",
		"convert L3 -> contact new account new", "convert L4 -> contact of:L3 account of:L3"}
	if !slices.Equal(first, want) {
		t.Fatalf("%q, want %q", first, want)
	}
	l.Change(Change{Cluster: cl("B", 3), At: sec(5), Removed: true, MergedInto: "A"})
	l.Change(Change{Cluster: cl("A", 3, append(append(slices.Clone(a), b...), rec("L5", 5))...), At: sec(5)})
	// A lifecycle restored from a snapshot taken here plans the join alike.
	restored := shows(planDue(t, restoreJSON(t, l), cfg, sec(5)))
	got := shows(planDue(t, l, cfg, sec(5)))
	if !slices.Equal(restored, got) {
		t.Errorf("restored lifecycle planned %q, the original %q", restored, got)
	}
	// L1's contact holds the most complete values (Title and Phone).
	want = []string{"convert L5 -> contact of:L1 account of:L1", "merge [][L3] -> of:L1"}
	if !slices.Equal(got, want) {
		t.Fatalf("%q, want %q", got, want)
	}
	snap := l.Snapshot()
	if len(snap) != 1 || snap[0].ClusterID != "A" || !slices.Equal(snap[0].State.Converted, []string{"L1", "L2", "L3", "L4", "L5"}) ||
		len(snap[0].State.Merged) != 1 || snap[0].State.Merged[0].FromLead != "L3" {
		t.Errorf("state after the join: %+v", snap)
	}
}

// A split after a conversion was emitted: conversions are final. The part
// keeping the cluster id keeps the master; a part split off keeps its
// converted records converted (never planned again) and plans its other
// members as a cluster of its own.
func TestComposeSplitAfterConversion(t *testing.T) {
	cfg := cfgWith(nil)
	l := New(Options{})
	all := []record.Record{rec("L1", 1, "Title=CTO"), rec("L2", 2), rec("L3", 3)}
	l.Change(Change{Cluster: cl("A", 3, all...), At: sec(3)})
	if got := shows(planDue(t, l, cfg, sec(3))); len(got) != 3 {
		t.Fatalf("first plan %q", got)
	}
	l3 := rec("L3", 10, "Email=other@x.io")
	l.Change(Change{Cluster: cl("A", 4, all[:2]...), At: sec(10)})
	l.Change(Change{Cluster: cl("B", 1, l3), At: sec(10)})
	if got := shows(planDue(t, l, cfg, sec(10))); len(got) != 0 {
		t.Fatalf("the split planned %q", got)
	}
	// New duplicates on each side.
	l.Change(Change{Cluster: cl("A", 5, append(slices.Clone(all[:2]), rec("L5", 11))...), At: sec(11)})
	l.Change(Change{Cluster: cl("B", 2, l3, rec("L6", 11, "Email=other@x.io", "Title=VP"), rec("L7", 11, "Email=other@x.io")), At: sec(11)})
	got := shows(planDue(t, l, cfg, sec(11)))
	want := []string{"convert L5 -> contact of:L1 account of:L1",
		"convert L6 -> contact new account new", "convert L7 -> contact of:L6 account of:L6"}
	if !slices.Equal(got, want) {
		t.Fatalf("%q, want %q", got, want)
	}
}

// A failed result releases the state: the root conversion's lead is held
// for review with the writer's reason, the conversions that failed with it
// are released, and the cluster is planned again with a new master.
func TestFailedResultReplans(t *testing.T) {
	cfg := cfgWith(nil)
	l := New(Options{Settle: time.Second, AwaitResults: true})
	recs := []record.Record{rec("L1", 1, "Title=CTO"), rec("L2", 2, "Title=CTO", "Phone=1"), rec("L3", 3)}
	l.Change(Change{Cluster: cl("A", 3, recs...), At: sec(3)})
	cmds := planDue(t, l, cfg, sec(4))
	if len(cmds) != 3 {
		t.Fatalf("plan %q", shows(cmds))
	}
	l.Change(Change{Cluster: cl("A", 4, append(slices.Clone(recs), rec("L4", 5))...), At: sec(5)})
	if got := planDue(t, l, cfg, sec(9)); len(got) != 0 {
		t.Fatalf("planned while results are outstanding: %q", shows(got))
	}
	if !l.Result(Result{CommandID: cmds[0].ID, Outcome: OutcomeFailed, Reason: "lead_already_converted"}, sec(10)) {
		t.Fatal("result not recognised")
	}
	for _, c := range cmds[1:] {
		l.Result(Result{CommandID: c.ID, Outcome: OutcomeFailed, Reason: "missing_contact"}, sec(10))
	}
	if l.Result(Result{CommandID: "unknown", Outcome: OutcomeApplied}, sec(10)) {
		t.Error("an unknown command's result was taken")
	}
	if s := l.Stats(); s.Failed["lead_already_converted"] != 1 || s.Failed["missing_contact"] != 2 {
		t.Errorf("stats %+v", s)
	}
	got := shows(planDue(t, l, cfg, sec(11)))
	// L2, the master, failed; L1 is now the most complete.
	want := []string{"convert L1 -> contact new account new", "convert L3 -> contact of:L1 account of:L1",
		"convert L4 -> contact of:L1 account of:L1", "review L2 writer_failed lead_already_converted"}
	if !slices.Equal(got, want) {
		t.Fatalf("%q, want %q", got, want)
	}
	for _, c := range planAll(t, l, cfg, l.Flush()) {
		t.Errorf("flush planned %s", show(c))
	}
	// The review is asked once; L2 stays out until it changes.
	l.Change(Change{Cluster: cl("A", 5, append(slices.Clone(recs), rec("L4", 5))...), At: sec(20)})
	if got := planAll(t, l, cfg, l.Flush()); len(got) != 0 {
		t.Errorf("replanned %q", shows(got))
	}
}

// An echo (the writer's report of which contact a pending master became)
// arriving before the timer fires: the next plan converts into that contact
// by id and does not merge it into itself.
func TestEchoBeforeTimerFires(t *testing.T) {
	cfg := cfgWith(nil)
	l := New(Options{Settle: 5 * time.Second})
	l.Change(Change{Cluster: cl("A", 2, rec("L1", 0), rec("L2", 1, "Title=CTO")), At: sec(1)})
	if got := shows(planDue(t, l, cfg, sec(6))); len(got) != 2 || !strings.HasPrefix(got[0], "convert L2 -> contact new") {
		t.Fatalf("first plan %q", got)
	}
	// The CRM's events: the converted leads leave the cluster, the contact
	// C9 the conversion created joins it, a new duplicate L3 arrives.
	c9 := rec("C9", 7, "Title=CTO", "AccountId=A9")
	l.Change(Change{Cluster: cl("A", 3, c9, rec("L3", 8)), At: sec(8)})
	if !l.Echo("L2", "C9", "A9") {
		t.Fatal("echo of leadconv's own conversion not recognised")
	}
	if l.Echo("L7", "C1", "") {
		t.Error("a foreign conversion was taken for leadconv's")
	}
	got := shows(planDue(t, l, cfg, sec(13)))
	if want := []string{"convert L3 -> contact C9 account A9"}; !slices.Equal(got, want) {
		t.Fatalf("%q, want %q", got, want)
	}
}

// The writer's results arriving after the timer fired: with AwaitResults the
// plan waits for them, then the echoes plan to nothing.
func TestResultsAfterTimerFires(t *testing.T) {
	cfg := cfgWith(nil)
	l := New(Options{Settle: 2 * time.Second, AwaitResults: true})
	l.Change(Change{Cluster: cl("A", 2, rec("L1", 0), rec("L2", 1, "Title=CTO")), At: sec(1)})
	cmds := planDue(t, l, cfg, sec(3))
	if len(cmds) != 2 {
		t.Fatalf("first plan %q", shows(cmds))
	}
	// The echoes reach the matcher first: the leads leave, C9 joins.
	c9 := rec("C9", 4, "Title=CTO", "AccountId=A9")
	l.Change(Change{Cluster: cl("A", 4, c9), At: sec(4)})
	if got := planDue(t, l, cfg, sec(10)); len(got) != 0 {
		t.Fatalf("planned before the results: %q", shows(got))
	}
	l.Result(Result{CommandID: cmds[0].ID, Outcome: OutcomeApplied, Records: []record.Ref{
		{Object: record.Lead, ID: "L2"}, {Object: record.Contact, ID: "C9"}, {Object: record.Account, ID: "A9"}}}, sec(11))
	l.Result(Result{CommandID: cmds[1].ID, Outcome: OutcomeApplied}, sec(11))
	if got := planDue(t, l, cfg, sec(11)); len(got) != 0 {
		t.Fatalf("the echoes planned %q", shows(got))
	}
	if s := l.Stats(); s.Reconciled != 1 {
		t.Errorf("reconciled %d", s.Reconciled)
	}
	l.Change(Change{Cluster: cl("A", 5, c9, rec("L3", 12)), At: sec(12)})
	got := shows(planDue(t, l, cfg, sec(14)))
	if want := []string{"convert L3 -> contact C9 account A9"}; !slices.Equal(got, want) {
		t.Fatalf("%q, want %q", got, want)
	}
}

// The same version again (a redelivered batch, a replay into the
// namespace) plans nothing: what it planned was emitted. An older version
// is ignored too.
func TestReplayOfAVersionPlansNothing(t *testing.T) {
	cfg := cfgWith(nil)
	l := New(Options{})
	c := cl("A", 2, rec("L1", 0), rec("L2", 1))
	l.Change(Change{Cluster: c, At: sec(1)})
	if first := planDue(t, l, cfg, sec(1)); len(first) != 2 {
		t.Fatalf("first plan %q", shows(first))
	}
	l.Change(Change{Cluster: cl("A", 1, rec("L1", 0)), At: sec(1)})
	if got := planDue(t, l, cfg, sec(1)); len(got) != 0 {
		t.Fatalf("an older version planned %q", shows(got))
	}
	l.Change(Change{Cluster: c, At: sec(5)})
	if got := planDue(t, l, cfg, sec(9)); len(got) != 0 {
		t.Fatalf("the replay planned %q", shows(got))
	}
	if _, ok := l.NextDue(); ok {
		t.Fatal("the replay started a timer")
	}
}

// The state is plain data: a snapshot through JSON restores a lifecycle
// that plans exactly as the original.
func TestSnapshotRestore(t *testing.T) {
	cfg := cfgWith(nil)
	opts := Options{Settle: time.Second, AwaitResults: true}
	l := New(opts)
	l.Change(Change{Cluster: cl("A", 2, rec("L1", 0, "Title=CTO"), rec("L2", 1)), At: sec(1)})
	cmds := planDue(t, l, cfg, sec(2))
	l.Change(Change{Cluster: cl("A", 3, rec("L1", 0, "Title=CTO"), rec("L2", 1), rec("L3", 3)), At: sec(3)})
	b, err := json.Marshal(l.Snapshot())
	if err != nil {
		t.Fatal(err)
	}
	var entries []Entry
	if err := json.Unmarshal(b, &entries); err != nil {
		t.Fatal(err)
	}
	r := Restore(opts, entries, nil)
	for _, x := range []*Lifecycle{l, r} {
		for _, c := range cmds {
			x.Result(Result{CommandID: c.ID, Outcome: OutcomeApplied}, sec(4))
		}
	}
	a, z := shows(planDue(t, l, cfg, sec(5))), shows(planDue(t, r, cfg, sec(5)))
	if !slices.Equal(a, z) || len(a) != 1 {
		t.Errorf("restored plans %q, original %q", z, a)
	}
}

// Changes that echo leadconv's own writes update a cluster's latest state
// but never start a plan, whether they arrive before the settle timer of a
// real change fires (it keeps its time) or after the plan was made. An echo
// into a cluster nothing was emitted for is an ordinary change.
func TestEchoChangesStartNoPlan(t *testing.T) {
	cfg := cfgWith(nil)
	c9 := rec("C9", 7, "Title=CTO", "AccountId=A9")
	first := Change{Cluster: cl("A", 2, rec("L1", 0), rec("L2", 1, "Title=CTO")), At: sec(1)}
	tests := []struct {
		name string
		// after the first plan (made at 6s), in order
		changes []Change
		// planned at each time, in order
		at   []int
		want [][]string
	}{
		{
			name: "echo after the plan: nothing is planned",
			changes: []Change{
				{Cluster: cl("A", 3, rec("L1", 0), c9), At: sec(7), Echo: true},
				{Cluster: cl("A", 4, c9), At: sec(8), Echo: true},
			},
			at:   []int{8, 20, 60},
			want: [][]string{nil, nil, nil},
		},
		{
			name: "echo before the timer fires: the timer keeps its time, one plan",
			changes: []Change{
				{Cluster: cl("A", 3, rec("L2", 1, "Title=CTO"), rec("L3", 8)), At: sec(8)},
				{Cluster: cl("A", 4, c9, rec("L3", 8)), At: sec(12), Echo: true},
			},
			// Due at 8s+5s, not at 12s+5s.
			at:   []int{12, 13, 17, 30},
			want: [][]string{nil, {"convert L3 -> contact C9 account A9"}, nil, nil},
		},
		{
			// leadconv's record meets others in a cluster nothing was
			// emitted for: planned like any change.
			name: "echo into a cluster nothing was planned for",
			changes: []Change{
				{Cluster: cl("B", 1, rec("C7", 7, "AccountId=A7")), At: sec(7)},
				{Cluster: cl("B", 2, rec("C7", 7, "AccountId=A7"), rec("L5", 8)), At: sec(8), Echo: true},
			},
			at:   []int{12, 13, 30},
			want: [][]string{nil, {"convert L5 -> contact C7 account A7"}, nil},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := New(Options{Settle: 5 * time.Second})
			l.Change(first)
			if got := shows(planDue(t, l, cfg, sec(6))); len(got) != 2 || !strings.HasPrefix(got[0], "convert L2 -> contact new") {
				t.Fatalf("first plan %q", got)
			}
			for _, c := range tt.changes {
				l.Change(c)
			}
			if !l.Echo("L2", "C9", "A9") {
				t.Fatal("echo of leadconv's own conversion not recognised")
			}
			for i, at := range tt.at {
				if got := planDue(t, l, cfg, sec(at)); !slices.Equal(shows(got), tt.want[i]) && len(got)+len(tt.want[i]) > 0 {
					t.Errorf("at %ds: planned %q, want %q", at, shows(got), tt.want[i])
				}
			}
			if next, ok := l.NextDue(); ok {
				t.Errorf("a plan is still due at %s", next)
			}
		})
	}
}

// A stale result (the writer dropped the command unexecuted) releases it
// like a failure, but its lead is planned again, not handed to a person.
func TestStaleResultReplansWithoutReview(t *testing.T) {
	cfg := cfgWith(nil)
	l := New(Options{AwaitResults: true})
	recs := []record.Record{rec("L1", 1, "Title=CTO"), rec("L2", 2, "Title=CTO", "Phone=1"), rec("L3", 3)}
	l.Change(Change{Cluster: cl("A", 3, recs...), At: sec(3)})
	cmds := planDue(t, l, cfg, sec(3))
	if len(cmds) != 3 {
		t.Fatalf("plan %q", shows(cmds))
	}
	l.Result(Result{CommandID: cmds[0].ID, Outcome: OutcomeStale}, sec(4))
	for _, c := range cmds[1:] {
		l.Result(Result{CommandID: c.ID, Outcome: OutcomeFailed, Reason: "missing_contact"}, sec(4))
	}
	got := shows(planDue(t, l, cfg, sec(4)))
	want := []string{"convert L2 -> contact new account new", "convert L1 -> contact of:L2 account of:L2", "convert L3 -> contact of:L2 account of:L2"}
	if !slices.Equal(got, want) {
		t.Fatalf("%q, want %q", got, want)
	}
	if s := l.Stats(); s.Failed[OutcomeStale] != 1 {
		t.Errorf("stats %+v", s)
	}
}

// What an owner keeps durable: TakeDirty returns the entries changed
// since the last call and the ids gone; Touch puts them back after a failed
// write; a lone record's cluster planned to nothing is forgotten.
func TestDirtyEntries(t *testing.T) {
	cfg := cfgWith(nil)
	l := New(Options{})
	l.Change(Change{Cluster: cl("A", 2, rec("L1", 0), rec("L2", 1)), At: sec(1)})
	l.Change(Change{Cluster: cl("B", 1, rec("L9", 1)), At: sec(1)})
	changed, removed := l.TakeDirty()
	if len(changed) != 2 || changed[0].ClusterID != "A" || changed[0].Pending == nil || len(removed) != 0 {
		t.Fatalf("dirty after two changes: %v, removed %v", changed, removed)
	}
	if l.Dirty() {
		t.Fatal("dirty right after TakeDirty")
	}
	l.Touch("A")
	if changed, _ := l.TakeDirty(); len(changed) != 1 || changed[0].ClusterID != "A" {
		t.Fatalf("touched: %v", changed)
	}
	if got := planDue(t, l, cfg, sec(1)); len(got) != 2 {
		t.Fatalf("planned %q", shows(got))
	}
	changed, removed = l.TakeDirty()
	if len(changed) != 1 || changed[0].ClusterID != "A" || changed[0].State.IsZero() || changed[0].Pending != nil {
		t.Fatalf("after the plans: changed %v", changed)
	}
	if len(removed) != 1 || removed[0] != "B" {
		t.Fatalf("the lone record's cluster not forgotten: removed %v", removed)
	}
	if l.Pending() != 0 {
		t.Fatalf("%d pending after the plans", l.Pending())
	}
}

// A held plan is kept with its entry until Acked, through a snapshot,
// and planned again from it to the same commands; a change recorded after
// the plan was made stays pending.
func TestHeldPlanPlansTheSame(t *testing.T) {
	cfg := cfgWith(nil)
	l := New(Options{})
	l.Change(Change{Cluster: cl("A", 2, rec("L1", 0, "Title=CTO"), rec("L2", 1)), At: sec(1)})
	due := l.Due(sec(1))
	if len(due) != 1 {
		t.Fatalf("%d due", len(due))
	}
	l.Hold(due[0])
	first := planAll(t, l, cfg, due)
	l.Change(Change{Cluster: cl("A", 3, rec("L1", 0, "Title=CTO"), rec("L2", 1), rec("L3", 2)), At: sec(2)})
	if l.Pending() != 1 {
		t.Fatal("the change after the plan is not pending")
	}
	r := restoreJSON(t, l)
	held := r.Held()
	if len(held) != 1 || held[0].Cluster.Version != 2 {
		t.Fatalf("held after restore: %v", held)
	}
	again := planAll(t, r, cfg, held)
	if !slices.Equal(shows(again), shows(first)) || again[0].ID != first[0].ID {
		t.Fatalf("held plan planned again as %q, first %q", shows(again), shows(first))
	}
	// Both go on to plan L3 into the same master.
	a, z := shows(planDue(t, l, cfg, sec(2))), shows(planDue(t, r, cfg, sec(2)))
	if !slices.Equal(a, z) || len(a) != 1 {
		t.Fatalf("after the held plan: restored %q, original %q", z, a)
	}
	r.Acked(held[0])
	if len(r.Held()) != 0 {
		t.Fatal("still held after Acked")
	}
}

// The converted leads' echoes emptied their cluster before the contact they
// were converted into arrived (the closed loop with settle 0): the contact
// forms a cluster of its own, which then meets an existing contact. The
// master leadconv chose carries over, so the existing contact is merged
// (with prefer_existing_contact off; with it on, leadconv's contact is
// merged into the existing one): one contact, never two.
func TestMasterCarriesOverAfterItsClusterEmptied(t *testing.T) {
	for _, prefer := range []bool{false, true} {
		t.Run(fmt.Sprintf("prefer_existing_contact=%v", prefer), func(t *testing.T) {
			cfg := cfgWith(func(c *engine.Config) { c.PreferExistingContact = prefer })
			l := New(Options{})
			l.Change(Change{Cluster: cl("A", 2, rec("L1", 1), rec("L2", 2)), At: sec(2)})
			if got := shows(planDue(t, l, cfg, sec(2))); len(got) != 2 {
				t.Fatalf("first plan %q", got)
			}
			// The leads' echoes: converted into C9, they leave the cluster.
			for _, id := range []string{"L1", "L2"} {
				if !l.Echo(id, "C9", "A9") {
					t.Fatalf("echo of %s not ours", id)
				}
			}
			l.Change(Change{Cluster: cl("A", 3), At: sec(3), Removed: true, Echo: true})
			// C9's echo: a cluster of its own, nothing to plan.
			c9 := rec("C9", 3)
			l.Change(Change{Cluster: cl("N", 1, c9), At: sec(3), Echo: true})
			if got := shows(planDue(t, l, cfg, sec(3))); len(got) != 0 {
				t.Fatalf("C9 alone planned %q", got)
			}
			// An existing contact joins it.
			l.Change(Change{Cluster: cl("N", 2), At: sec(4), Removed: true, MergedInto: "M"})
			l.Change(Change{Cluster: cl("M", 1, rec("C7", 0), c9), At: sec(4)})
			got := shows(planDue(t, l, cfg, sec(4)))
			want := []string{"merge [C7][] -> C9"}
			if prefer {
				want = []string{"merge [C9][] -> C7"}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%q, want %q", got, want)
			}
			if l.Emitted("A") {
				t.Error("A's state was not taken over by M")
			}
		})
	}
}
