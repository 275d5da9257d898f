package pipeline

import (
	"testing"
	"time"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/lifecycle"
	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/record"
)

// TestEcho: which echoed changes start no plan. Cluster "a" had leads L1
// and L2 converted into a new contact, whose echo (C9) is the trigger.
func TestEcho(t *testing.T) {
	lead := func(id string) record.Record { return record.Record{Tenant: "acme", Object: record.Lead, ID: id} }
	contact := func(id string) record.Record { return record.Record{Tenant: "acme", Object: record.Contact, ID: id} }
	refs := func(rs ...record.Record) []record.Ref {
		var out []record.Ref
		for _, r := range rs {
			out = append(out, r.Ref())
		}
		return out
	}
	l1, l2, l5, c9, c7 := lead("L1"), lead("L2"), lead("L5"), contact("C9"), contact("C7")
	newLifecycle := func() *lifecycle.Lifecycle {
		lc := lifecycle.New(lifecycle.Options{})
		lc.Change(lifecycle.Change{Cluster: engine.Cluster{Tenant: "acme", ID: "a", Version: 1, Records: []record.Record{l1, l2}}, At: time.Unix(0, 0)})
		for _, r := range lc.Flush() {
			lc.Planned(r, []engine.Command{{Kind: engine.KindLeadConvert, ID: "cmd-1", Tenant: "acme", ClusterID: "a", ClusterVersion: 1}},
				engine.State{Master: engine.Target{FromLead: "L1"}, Created: true, Converted: []string{"L1", "L2"}}, true)
		}
		return lc
	}
	converted := &Conversion{Lead: "L1", Contact: "C9", Account: "A9"}
	for _, tc := range []struct {
		name   string
		marked bool
		conv   *Conversion
		ch     matcher.Change
		want   bool
	}{
		{"not marked, no conversion", false, nil, matcher.Change{ClusterID: "a", Members: []record.Record{l1, l2, c9}, Before: refs(l1, l2), Trigger: c9.Ref()}, false},
		// A CRM that marks nothing: the converted lead's event reports the
		// conversion leadconv emitted.
		{"not marked, the conversion leadconv emitted", false, converted, matcher.Change{ClusterID: "a", Members: []record.Record{l2}, Before: refs(l1, l2), Trigger: l1.Ref()}, true},
		{"not marked, a conversion leadconv did not emit", false, &Conversion{Lead: "L5", Contact: "C5"}, matcher.Change{ClusterID: "e", Members: []record.Record{l5}, Trigger: l5.Ref()}, false},
		{"leadconv's contact joins its cluster", true, nil, matcher.Change{ClusterID: "a", Members: []record.Record{l1, l2, c9}, Before: refs(l1, l2), Trigger: c9.Ref()}, true},
		{"its own new cluster joined at once", true, nil, matcher.Change{ClusterID: "a", Members: []record.Record{l1, l2, c9}, Before: refs(l1, l2), Trigger: c9.Ref(), MergedFrom: []string{"n"}}, true},
		// The defect the closed loop found: C7, alone in its cluster (nothing
		// emitted), matched leadconv's new contact; the join was taken for an
		// echo and never planned, leaving two contacts.
		{"a cluster with an existing contact joined in", true, nil, matcher.Change{ClusterID: "a", Members: []record.Record{l1, l2, c9, c7}, Before: refs(l1, l2), Trigger: c9.Ref(), MergedFrom: []string{"b"}}, false},
		{"joined into a cluster with nothing emitted", true, nil, matcher.Change{ClusterID: "b", Members: []record.Record{c7, l1, l2, c9}, Before: refs(c7), Trigger: c9.Ref(), MergedFrom: []string{"a"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := echo(newLifecycle(), tc.marked, tc.conv, tc.ch); got != tc.want {
				t.Errorf("echo = %v, want %v", got, tc.want)
			}
		})
	}
}
