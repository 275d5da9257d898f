package pipeline

import (
	"testing"
	"time"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/lifecycle"
	"github.com/leadconv/leadconv/record"
)

// A change is an echo of leadconv's own write when marked so or when it
// reports a conversion leadconv emitted; an echo that joins a cluster
// commands were emitted for into another is planned like any change (no
// plan accounted for those records together), as is one whose joined
// clusters had nothing emitted.
func TestEcho(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	lead := func(id string) record.Record {
		return record.Record{Tenant: "acme", Object: record.Lead, ID: id, CreatedAt: t0, ModifiedAt: t0}
	}
	// Cluster A had a conversion of L1 emitted, into the contact L1's
	// conversion creates; cluster B had nothing emitted.
	newLifecycle := func() *lifecycle.Lifecycle {
		l := lifecycle.New(lifecycle.Options{AwaitResults: true})
		l.Change(lifecycle.Change{Cluster: engine.Cluster{Tenant: "acme", ID: "A", Version: 1, Records: []record.Record{lead("L1")}}, At: t0})
		l.Change(lifecycle.Change{Cluster: engine.Cluster{Tenant: "acme", ID: "B", Version: 1, Records: []record.Record{lead("L5")}}, At: t0})
		for _, r := range l.Flush() {
			if r.Cluster.ID == "A" {
				cmd := engine.Command{ID: "cmd-L1", Kind: engine.KindLeadConvert, Tenant: "acme", ClusterID: "A",
					Data: &engine.LeadConvert{LeadID: "L1", Contact: engine.Target{Create: true}}}
				st := engine.State{Master: engine.Target{FromLead: "L1"}, Created: true, Account: engine.Target{FromLead: "L1"}, Converted: []string{"L1"}}
				l.Planned(r, []engine.Command{cmd}, st, true)
			} else {
				l.Planned(r, nil, engine.State{}, false)
			}
		}
		return l
	}
	tests := []struct {
		name       string
		marked     bool
		conv       *Conversion
		mergedFrom []string
		want       bool
	}{
		{"unmarked, no conversion", false, nil, nil, false},
		{"marked", true, nil, nil, true},
		{"the conversion leadconv emitted, unmarked", false, &Conversion{Lead: "L1", Contact: "C1", Account: "A1"}, nil, true},
		{"a conversion leadconv did not emit", false, &Conversion{Lead: "L9", Contact: "C9"}, nil, false},
		{"marked, joining a cluster with commands emitted", true, nil, []string{"A"}, false},
		{"marked, joining a cluster with nothing emitted", true, nil, []string{"B"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := echo(newLifecycle(), tt.marked, tt.conv, tt.mergedFrom); got != tt.want {
				t.Errorf("echo = %v, want %v", got, tt.want)
			}
		})
	}
}
