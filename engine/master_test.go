package engine

import (
	"slices"
	"testing"

	"github.com/leadconv/leadconv/record"
)

func TestMasterStrategies(t *testing.T) {
	type r = rb
	L, C := record.Lead, record.Contact
	f := func(kv ...any) record.Fields {
		out := record.Fields{"Company": "Acme"}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	tests := []struct {
		name     string
		master   MasterConfig
		recs     []rb
		want     string // master id; "" when a review is planned
		review   string
		fallback string // fallback reason
		tieBreak string
		top      []string
	}{
		{name: "newest_date", master: MasterConfig{Strategy: MasterNewestDate, Field: "D", Fallback: FallbackOldestModified},
			recs: []rb{{obj: L, id: "a", fields: f("D", "2024-01-01")}, {obj: L, id: "b", fields: f("D", "2024-06-01T00:00:00Z")}, {obj: C, id: "c", fields: f("D", "garbage")}},
			want: "b", top: []string{"b"}},
		{name: "oldest_date ignores unparseable", master: MasterConfig{Strategy: MasterOldestDate, Field: "D", Fallback: FallbackNewestModified},
			recs: []rb{{obj: L, id: "a", fields: f("D", "2024-01-01")}, {obj: L, id: "b", fields: f("D", "2024-06-01")}, {obj: C, id: "c", fields: f("D", "1999")}},
			want: "a", top: []string{"a"}},
		{name: "newest_date all blank falls back", master: MasterConfig{Strategy: MasterNewestDate, Field: "D", Fallback: FallbackOldestModified},
			recs: []rb{{obj: L, id: "a", modified: 2}, {obj: L, id: "b", modified: 1, fields: f("D", "")}},
			want: "b", fallback: fallbackNoCandidate},
		{name: "newest_date tie falls back among tied", master: MasterConfig{Strategy: MasterNewestDate, Field: "D", Fallback: FallbackOldestCreated},
			recs: []rb{{obj: L, id: "a", created: 1, fields: f("D", "2024-01-01")}, {obj: L, id: "b", created: 5, fields: f("D", "2024-01-01T00:00:00Z")}, {obj: L, id: "c", created: 0, fields: f("D", "2023-01-01")}},
			want: "a", fallback: fallbackTie, top: []string{"a", "b"}},
		{name: "specified_values priority, trimmed and case-insensitive", master: MasterConfig{Strategy: MasterSpecifiedValues, Field: "S", Values: []string{"Active", "Pending"}, Fallback: FallbackNewestModified},
			recs: []rb{{obj: L, id: "a", modified: 9, fields: f("S", "pending")}, {obj: C, id: "b", fields: f("S", " ACTIVE ")}, {obj: L, id: "c", fields: f("S", "Closed")}},
			want: "b", top: []string{"b"}},
		{name: "specified_values blank entry", master: MasterConfig{Strategy: MasterSpecifiedValues, Field: "S", Values: []string{"", "Active"}, Fallback: FallbackNewestModified},
			recs: []rb{{obj: L, id: "a", fields: f("S", "Active")}, {obj: L, id: "b", fields: f("S", "  ")}},
			want: "b", top: []string{"b"}},
		{name: "specified_values none listed falls back", master: MasterConfig{Strategy: MasterSpecifiedValues, Field: "S", Values: []string{"Active"}, Fallback: FallbackNewestCreated},
			recs: []rb{{obj: L, id: "a", created: 3, fields: f("S", "x")}, {obj: L, id: "b", created: 4}},
			want: "b", fallback: fallbackNoCandidate},
		{name: "specified_values tie falls back", master: MasterConfig{Strategy: MasterSpecifiedValues, Field: "S", Values: []string{"Active"}, Fallback: FallbackNewestModified},
			recs: []rb{{obj: L, id: "a", modified: 3, fields: f("S", "active")}, {obj: L, id: "b", modified: 4, fields: f("S", "Active")}, {obj: L, id: "c", modified: 9}},
			want: "b", fallback: fallbackTie, top: []string{"b", "a"}},
		{name: "most_complete", master: MasterConfig{Strategy: MasterMostComplete, Fallback: FallbackNewestModified},
			recs: []rb{{obj: L, id: "a", modified: 9, fields: f("X", "1")}, {obj: C, id: "b", fields: f("X", "1", "Y", "2", "Z", " ")}},
			want: "b", top: []string{"b"}},
		{name: "most_complete listed fields", master: MasterConfig{Strategy: MasterMostComplete, Fields: []string{"X", "Z"}, Fallback: FallbackNewestModified},
			recs: []rb{{obj: L, id: "a", fields: f("X", "1", "Z", "3")}, {obj: C, id: "b", modified: 1, fields: f("X", "1", "Y", "2", "W", "4")}},
			want: "a", top: []string{"a"}},
		{name: "most_complete tie goes to newest modified", master: MasterConfig{Strategy: MasterMostComplete, Fallback: FallbackOldestModified},
			recs: []rb{{obj: L, id: "a", modified: 1, fields: f("X", "1")}, {obj: L, id: "b", modified: 2, fields: f("Y", "1")}},
			want: "b", tieBreak: tieNewestModified, top: []string{"b", "a"}},
		{name: "most_complete still tied goes to fallback", master: MasterConfig{Strategy: MasterMostComplete, Fallback: FallbackOldestCreated},
			recs: []rb{{obj: L, id: "a", created: 2, modified: 5, fields: f("X", "1")}, {obj: L, id: "b", created: 1, modified: 5, fields: f("Y", "1")}, {obj: L, id: "c", created: 0, modified: 1, fields: f("Y", "1")}},
			want: "b", fallback: fallbackTie, top: []string{"a", "b", "c"}},
		{name: "most_attachments", master: MasterConfig{Strategy: MasterMostAttachments, Fallback: FallbackNewestModified},
			recs: []rb{{obj: L, id: "a", modified: 9, related: 1}, {obj: C, id: "b", related: 4}},
			want: "b", top: []string{"b"}},
		{name: "most_attachments tie goes to newest modified", master: MasterConfig{Strategy: MasterMostAttachments, Fallback: FallbackOldestModified},
			recs: []rb{{obj: L, id: "a", modified: 1, related: 2}, {obj: C, id: "b", modified: 3, related: 2}, {obj: L, id: "c", modified: 4, related: 1}},
			want: "b", tieBreak: tieNewestModified, top: []string{"b", "a"}},
		// Seed, Most Attachments: "The record with the highest amount of
		// related notes, attachments, Google Docs, or files wins. If multiple
		// records have the same amount of populated fields, the last modified
		// record wins." No attachments anywhere is such a tie.
		{name: "most_attachments all zero: last modified wins, not the fallback", master: MasterConfig{Strategy: MasterMostAttachments, Fallback: FallbackOldestCreated},
			recs: []rb{{obj: L, id: "a", created: 2, modified: 5}, {obj: C, id: "b", created: 1, modified: 3}},
			want: "a", tieBreak: tieNewestModified, top: []string{"a", "b"}},
		{name: "most_attachments zero loses to one", master: MasterConfig{Strategy: MasterMostAttachments, Fallback: FallbackOldestCreated},
			recs: []rb{{obj: L, id: "a", modified: 5}, {obj: C, id: "b", modified: 3, related: 1}},
			want: "b", top: []string{"b"}},
		{name: "most_attachments all zero and equally new goes to fallback", master: MasterConfig{Strategy: MasterMostAttachments, Fallback: FallbackOldestCreated},
			recs: []rb{{obj: L, id: "a", created: 2, modified: 5}, {obj: C, id: "b", created: 1, modified: 5}},
			want: "b", fallback: fallbackTie, top: []string{"a", "b"}},
		{name: "fallback newest_modified", master: MasterConfig{Strategy: MasterNewestDate, Field: "D", Fallback: FallbackNewestModified},
			recs: []rb{{obj: L, id: "a", modified: 2}, {obj: C, id: "b", modified: 3}}, want: "b", fallback: fallbackNoCandidate},
		{name: "fallback oldest_modified", master: MasterConfig{Strategy: MasterNewestDate, Field: "D", Fallback: FallbackOldestModified},
			recs: []rb{{obj: L, id: "a", modified: 2}, {obj: C, id: "b", modified: 3}}, want: "a", fallback: fallbackNoCandidate},
		{name: "fallback newest_created", master: MasterConfig{Strategy: MasterNewestDate, Field: "D", Fallback: FallbackNewestCreated},
			recs: []rb{{obj: L, id: "a", created: 2}, {obj: C, id: "b", created: 1}}, want: "a", fallback: fallbackNoCandidate},
		{name: "fallback oldest_created", master: MasterConfig{Strategy: MasterNewestDate, Field: "D", Fallback: FallbackOldestCreated},
			recs: []rb{{obj: L, id: "a", created: 2}, {obj: C, id: "b", created: 1}}, want: "b", fallback: fallbackNoCandidate},
		{name: "fallback tie goes to smallest id", master: MasterConfig{Strategy: MasterNewestDate, Field: "D", Fallback: FallbackNewestCreated},
			recs: []rb{{obj: L, id: "b2", created: 2, modified: 1}, {obj: C, id: "b10", created: 2, modified: 0}, {obj: L, id: "c", created: 1}},
			want: "b10", fallback: fallbackNoCandidate, tieBreak: tieSmallestID},
		{name: "do_not_convert on tie", master: MasterConfig{Strategy: MasterSpecifiedValues, Field: "S", Values: []string{"x"}, Fallback: FallbackDoNotConvert},
			recs:   []rb{{obj: L, id: "a", fields: f("S", "x")}, {obj: L, id: "b", fields: f("S", "X")}},
			review: ReasonMasterTie, fallback: fallbackTie, top: []string{"a", "b"}},
		{name: "do_not_convert on no candidate", master: MasterConfig{Strategy: MasterNewestDate, Field: "D", Fallback: FallbackDoNotConvert},
			recs:   []rb{{obj: L, id: "a"}, {obj: C, id: "b", fields: f("D", "n/a")}},
			review: ReasonMasterNoCandidate, fallback: fallbackNoCandidate},
		{name: "do_not_convert unused when primary decides", master: MasterConfig{Strategy: MasterNewestDate, Field: "D", Fallback: FallbackDoNotConvert},
			recs: []rb{{obj: L, id: "a", fields: f("D", "2020-01-01")}, {obj: C, id: "b"}},
			want: "a", top: []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := cfgWith(func(c *Config) { c.Master, c.PreferExistingContact = tt.master, false })
			if err := cfg.Validate(""); err != nil {
				t.Fatal(err)
			}
			recs := make([]record.Record, len(tt.recs))
			for i, b := range tt.recs {
				if b.fields == nil {
					b.fields = f()
				}
				recs[i] = r(b).rec()
			}
			res := Plan(cfg, cluster(recs...))
			if len(res.Commands) == 0 {
				t.Fatalf("no commands: %s", res.Reason)
			}
			ex := res.Commands[0].Explain.Master
			if tt.review != "" {
				rr, ok := res.Commands[0].Data.(*ReviewRequested)
				if !ok || rr.Reason != tt.review || res.Reason != tt.review || len(res.Commands) != 1 {
					t.Fatalf("plan = %s %+v, want one review %s", res.Commands[0].Kind, res.Commands[0].Data, tt.review)
				}
				if len(rr.Records) != len(recs) {
					t.Errorf("review names %d records, want %d", len(rr.Records), len(recs))
				}
			} else if res.Master.ID != tt.want || ex.Winner.ID != tt.want {
				t.Fatalf("master = %s (explain %s), want %s; explain %+v", res.Master.ID, ex.Winner.ID, tt.want, ex)
			}
			if ex.FallbackReason != tt.fallback || (tt.fallback != "") != (ex.Fallback == tt.master.Fallback) {
				t.Errorf("fallback = %q/%q, want reason %q", ex.Fallback, ex.FallbackReason, tt.fallback)
			}
			if ex.TieBreak != tt.tieBreak {
				t.Errorf("tie break = %q, want %q", ex.TieBreak, tt.tieBreak)
			}
			var top []string
			for _, c := range ex.Candidates {
				if c.Top {
					top = append(top, c.ID)
				}
			}
			if !slices.Equal(top, tt.top) {
				t.Errorf("top candidates = %v, want %v", top, tt.top)
			}
			if len(ex.Candidates) != len(recs) || ex.Strategy != tt.master.Strategy {
				t.Errorf("explain lists %d candidates of strategy %q", len(ex.Candidates), ex.Strategy)
			}
		})
	}
}

// TestMasterExplainValues checks the compared values a user reads.
func TestMasterExplainValues(t *testing.T) {
	cfg := cfgWith(func(c *Config) {
		c.ContactFields = record.FieldMap{"Last_Activity__c": "LastActivity"}
		c.Master = MasterConfig{Strategy: MasterNewestDate, Field: "LastActivity", Fallback: FallbackNewestModified}
	})
	res := Plan(cfg, cluster(
		lead("q", 0, 0, record.Fields{"LastActivity": "2024-01-01", "Company": "A"}),
		contact("c", 0, 0, record.Fields{"Last_Activity__c": "2024-02-01"}),
	))
	ex := res.Commands[0].Explain.Master
	if ex.Field != "LastActivity" {
		t.Errorf("explain field = %q", ex.Field)
	}
	got := map[string]string{}
	for _, c := range ex.Candidates {
		got[c.ID] = c.Value
	}
	if got["q"] != "2024-01-01" || got["c"] != "2024-02-01" || res.Master.ID != "c" {
		t.Errorf("candidates = %v, master %s; want the contact's mapped field compared", got, res.Master.ID)
	}
}
