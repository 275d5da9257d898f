package engine

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/leadconv/leadconv/record"
)

// With nothing emitted before, PrepareFrom plans exactly what Plan does,
// and its State records what the plan emitted.
func TestPrepareFromEmptyHistoryIsPlan(t *testing.T) {
	for _, g := range goldenPlans() {
		t.Run(g.name, func(t *testing.T) {
			want := Plan(g.cfg, g.c)
			pp := PrepareFrom(g.cfg, g.c, History{})
			got := pp.Plan(g.c.Accounts)
			a, _ := json.Marshal(want)
			b, _ := json.Marshal(got)
			if string(a) != string(b) {
				t.Fatalf("PrepareFrom differs from Plan:\n%s\n%s", b, a)
			}
			st, changed := pp.State()
			var converted []string
			for _, c := range got.Commands {
				if d, ok := c.Data.(*LeadConvert); ok {
					converted = append(converted, d.LeadID)
				}
			}
			slices.Sort(converted)
			if changed != (len(converted) > 0 || hasKind(got, KindRecordsMerge)) || !slices.Equal(st.Converted, converted) {
				t.Errorf("state %+v (changed %v) after %d conversions", st, changed, len(converted))
			}
		})
	}
}

func hasKind(r Result, kind string) bool {
	return slices.ContainsFunc(r.Commands, func(c Command) bool { return c.Kind == kind })
}

// A State survives JSON, lists what it speaks for, and reconciles a pending
// master and account to the ids the writer reported.
func TestStateClaimsAndReconcile(t *testing.T) {
	st := State{Master: Target{FromLead: "L1"}, Created: true, Account: Target{FromLead: "L1"},
		Converted: []string{"L1", "L2"}, Merged: []Target{{ID: "C3"}, {FromLead: "L7"}},
		Held: []Held{{Ref: record.Ref{Object: record.Lead, ID: "L5"}, Reason: "missing_lead"}}}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var back State
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, st) {
		t.Fatalf("round trip: %+v (%v)\n%s", back, err, b)
	}
	want := []record.Ref{{Object: record.Contact, ID: "C3"}, {Object: record.Lead, ID: "L1"}, {Object: record.Lead, ID: "L2"},
		{Object: record.Lead, ID: "L5"}, {Object: record.Lead, ID: "L7"}} // by id
	if got := st.Claims(); !slices.Equal(got, want) {
		t.Errorf("claims %v, want %v", got, want)
	}
	if st.Reconcile("L2", "C9", "A9") {
		t.Error("a lead that created nothing reconciled")
	}
	if !st.Reconcile("L1", "C9", "A9") || st.Master != (Target{ID: "C9"}) || st.Account != (Target{ID: "A9"}) || !st.Created {
		t.Errorf("after reconcile: %+v", st)
	}
	if !st.Reconcile("L7", "C8", "") || !slices.Contains(st.Merged, Target{ID: "C8"}) {
		t.Errorf("merged pending master not reconciled: %+v", st.Merged)
	}
}
