package engine

import (
	"reflect"
	"testing"

	"github.com/leadconv/leadconv/record"
)

func TestTooLargeReview(t *testing.T) {
	ex := &Explain{Master: MasterExplain{Strategy: "newest_date"}}
	cmd := func(kind, subject string, data any) Command {
		return Command{Kind: kind, ID: "x", Tenant: "acme", ClusterID: "c1", ClusterVersion: 7, Subject: subject, Data: data, Explain: ex}
	}
	lead, contact := func(id string) record.Ref { return record.Ref{Object: record.Lead, ID: id} }, func(id string) record.Ref { return record.Ref{Object: record.Contact, ID: id} }
	for _, tc := range []struct {
		name string
		cmds []Command
		want []record.Ref
	}{
		{"converts into a new contact", []Command{
			cmd(KindLeadConvert, "L2", &LeadConvert{LeadID: "L2", Contact: Target{Create: true}}),
			cmd(KindLeadConvert, "L1", &LeadConvert{LeadID: "L1", Contact: Target{FromLead: "L2"}}),
		}, []record.Ref{lead("L1"), lead("L2")}},
		{"converts and merges into an existing contact", []Command{
			cmd(KindLeadConvert, "L1", &LeadConvert{LeadID: "L1", Contact: Target{ID: "C1"}}),
			cmd(KindRecordsMerge, "C2", &RecordsMerge{Object: record.Contact, Master: Target{ID: "C1"}, MergedIDs: []string{"C2"}}),
		}, []record.Ref{contact("C1"), contact("C2"), lead("L1")}},
		{"merges into a contact from a lead", []Command{
			cmd(KindRecordsMerge, "C2", &RecordsMerge{Object: record.Contact, Master: Target{FromLead: "L1"}, MergedIDs: []string{"C2"}, MergedFromLeads: []string{"L3"}}),
		}, []record.Ref{contact("C2"), lead("L3")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := TooLargeReview(tc.cmds, 1_200_000, 999_000)
			want := Command{Kind: KindReviewRequested, Tenant: "acme", ClusterID: "c1", ClusterVersion: 7, Subject: "c1", Explain: ex,
				Data: &ReviewRequested{Reason: ReasonCommandTooLarge, Records: tc.want, Size: 1_200_000, Limit: 999_000}}
			if len(got.ID) != idLen {
				t.Fatalf("id %q", got.ID)
			}
			p := planner{c: &Cluster{Tenant: "acme", ID: "c1", Version: 7}, cmds: []Command{want}}
			p.assignIDs()
			want.ID = p.cmds[0].ID
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got %+v %+v\nwant %+v %+v", got, got.Data, want, want.Data)
			}
		})
	}
}
