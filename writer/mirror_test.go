package writer

import (
	"context"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/internal/testutil/pgtest"
	"github.com/leadconv/leadconv/record"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const tenant = "acme"

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// newMirror returns a migrated mirror on a fresh database holding the
// fixture: leads L1 (Acme) and L2, contact C1 of account A1 (Globex), a
// converted lead L9, and notes on L1 and C2.
func newMirror(t *testing.T) *Mirror {
	m, _ := newMirrorDB(t)
	return m
}

// newMirrorDB is newMirror that also returns the database URL.
func newMirrorDB(t *testing.T) (*Mirror, string) {
	t.Helper()
	ctx := context.Background()
	db := pgtest.New(t)
	pool := db.Pool()
	if err := Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, pool); err != nil {
		t.Fatalf("second migration: %v", err)
	}
	m := NewMirror(pool)
	clock := t0.Add(time.Hour)
	m.now = func() time.Time { clock = clock.Add(time.Second); return clock }
	rec := func(obj record.Object, id string, f record.Fields) record.Record {
		return record.Record{Tenant: tenant, Object: obj, ID: id, CreatedAt: t0, ModifiedAt: t0, Fields: f}
	}
	err := m.Put(ctx,
		rec(record.Lead, "L1", record.Fields{"LastName": "Smith", "Email": "s@x.io", "Company": "Acme", "Status": "Open"}),
		rec(record.Lead, "L2", record.Fields{"LastName": "Smith", "Email": "s@x.io", "Phone": "1"}),
		rec(record.Lead, "L9", record.Fields{"LastName": "Old", "IsConverted": true, "ConvertedContactId": "C2"}),
		rec(record.Contact, "C1", record.Fields{"LastName": "Smith", "Email": "s@x.io", "AccountId": "A1", "Title": "CTO"}),
		rec(record.Contact, "C2", record.Fields{"LastName": "Smith", "Email": "smith@x.io"}),
		rec(record.Contact, "C3", record.Fields{"LastName": "Smyth", "Email": "s@x.io"}),
		rec(record.Account, "A1", record.Fields{"Name": "Globex"}),
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		id     string
		parent record.Ref
	}{{"N1", record.Ref{Object: record.Lead, ID: "L1"}}, {"N2", record.Ref{Object: record.Contact, ID: "C2"}}, {"N3", record.Ref{Object: record.Contact, ID: "C3"}}} {
		if err := m.AddRelated(ctx, tenant, r.id, "note", r.parent); err != nil {
			t.Fatal(err)
		}
	}
	return m, db.URL
}

func command(kind, id string, version int64, data any) *engine.Command {
	return &engine.Command{Kind: kind, ID: id, Tenant: tenant, ClusterID: "K1", ClusterVersion: version, Subject: id, Data: data}
}

func convertL1() *engine.Command {
	return command(engine.KindLeadConvert, "cmd-convert-L1", 3, &engine.LeadConvert{
		LeadID:          "L1",
		Contact:         engine.Target{Create: true, FromLead: "L1"},
		Account:         engine.AccountTarget{Target: engine.Target{Create: true}, Name: "Acme", Fields: record.Fields{"Industry": "Retail"}},
		Opportunity:     &engine.Opportunity{NameSource: "field", Name: "Acme deal"},
		ConvertedStatus: "Closed - Converted",
		Fields:          record.Fields{"LastName": "Smith", "Email": "s@x.io", "Phone": "1", "Fax": nil},
	})
}

func apply(t *testing.T, m *Mirror, cmd *engine.Command) (Result, []record.Event) {
	t.Helper()
	res, events, err := m.Apply(context.Background(), cmd)
	if err != nil {
		t.Fatal(err)
	}
	return res, events
}

func get(t *testing.T, m *Mirror, obj record.Object, id string) (record.Record, bool) {
	t.Helper()
	r, ok, err := m.Get(context.Background(), tenant, record.Ref{Object: obj, ID: id})
	if err != nil {
		t.Fatal(err)
	}
	return r, ok
}

func mustGet(t *testing.T, m *Mirror, obj record.Object, id string) record.Record {
	t.Helper()
	r, ok := get(t, m, obj, id)
	if !ok {
		t.Fatalf("%s/%s missing", obj, id)
	}
	return r
}

func refsOf(events []record.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = string(e.Op) + " " + e.Ref().String()
	}
	return out
}

func TestLeadConvertCreatesContactAccountOpportunity(t *testing.T) {
	t.Parallel()
	m := newMirror(t)
	res, events := apply(t, m, convertL1())
	if res.Outcome != OutcomeApplied {
		t.Fatalf("outcome %s (%s)", res.Outcome, res.Reason)
	}
	lead := mustGet(t, m, record.Lead, "L1")
	contactID := lead.Fields.Str(FieldConvertedContactID)
	accountID := lead.Fields.Str(FieldConvertedAccountID)
	if lead.Fields[FieldIsConverted] != true || lead.Fields.Str(FieldStatus) != "Closed - Converted" || contactID == "" || accountID == "" {
		t.Fatalf("lead not marked converted: %v", lead.Fields)
	}
	if lead.Fields.Str(FieldConvertedOpportunityID) == "" {
		t.Errorf("lead does not name its opportunity: %v", lead.Fields)
	}
	if !lead.ModifiedAt.After(t0) {
		t.Errorf("lead modified_at %v not after %v", lead.ModifiedAt, t0)
	}
	c := mustGet(t, m, record.Contact, contactID)
	want := record.Fields{"LastName": "Smith", "Email": "s@x.io", "Phone": "1", "AccountId": accountID}
	if !reflect.DeepEqual(c.Fields, want) {
		t.Errorf("contact fields %v, want %v", c.Fields, want)
	}
	if c.RelatedCount != 1 {
		t.Errorf("lead's note did not move to the contact: related %d", c.RelatedCount)
	}
	a := mustGet(t, m, record.Account, accountID)
	if a.Fields.Str("Name") != "Acme" || a.Fields.Str("Industry") != "Retail" {
		t.Errorf("account fields %v", a.Fields)
	}
	var opp string
	if err := m.pool.QueryRow(context.Background(), "SELECT name FROM opportunities WHERE tenant = $1 AND contact_id = $2 AND account_id = $3",
		tenant, contactID, accountID).Scan(&opp); err != nil || opp != "Acme deal" {
		t.Errorf("opportunity %q, %v", opp, err)
	}
	got := refsOf(events)
	wantEv := []string{"upsert lead/L1", "upsert contact/" + contactID, "upsert account/" + accountID}
	if !reflect.DeepEqual(got, wantEv) {
		t.Errorf("events %v, want %v", got, wantEv)
	}
	if events[0].Fields[FieldIsConverted] != true || events[1].RelatedCount != 1 {
		t.Errorf("events do not carry the new state: %+v", events[:2])
	}
}

func TestLeadConvertChain(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		setup       []*engine.Command
		cmd         *engine.Command
		outcome     string
		reason      string
		contactWant string // contact the lead ends on ("" = don't check)
	}{
		{
			name:  "second lead into the contact created from the first",
			setup: []*engine.Command{convertL1()},
			cmd: command(engine.KindLeadConvert, "cmd-convert-L2", 3, &engine.LeadConvert{LeadID: "L2", Batch: 1,
				Contact: engine.Target{FromLead: "L1"}, Account: engine.AccountTarget{Target: engine.Target{FromLead: "L1"}},
				ConvertedStatus: "Closed - Converted", Fields: record.Fields{"LastName": "Smith"}}),
			outcome: OutcomeApplied,
		},
		{
			name: "into an existing contact and its account",
			cmd: command(engine.KindLeadConvert, "cmd-convert-L2-C1", 3, &engine.LeadConvert{LeadID: "L2",
				Contact: engine.Target{ID: "C1"}, Account: engine.AccountTarget{Target: engine.Target{ID: "A1"}},
				ConvertedStatus: "Converted", Fields: record.Fields{"Phone": "1", "Title": nil}}),
			outcome: OutcomeApplied, contactWant: "C1",
		},
		{
			name: "missing account fails and changes nothing",
			cmd: command(engine.KindLeadConvert, "cmd-convert-L2-A7", 3, &engine.LeadConvert{LeadID: "L2",
				Contact: engine.Target{Create: true}, Account: engine.AccountTarget{Target: engine.Target{ID: "A7"}}}),
			outcome: OutcomeFailed, reason: ReasonMissingAccount,
		},
		{
			name: "missing contact",
			cmd: command(engine.KindLeadConvert, "cmd-convert-L2-C7", 3, &engine.LeadConvert{LeadID: "L2",
				Contact: engine.Target{ID: "C7"}, Account: engine.AccountTarget{Target: engine.Target{ID: "A1"}}}),
			outcome: OutcomeFailed, reason: ReasonMissingContact,
		},
		{
			name: "contact from a lead not converted",
			cmd: command(engine.KindLeadConvert, "cmd-convert-L2-from-L1", 3, &engine.LeadConvert{LeadID: "L2",
				Contact: engine.Target{FromLead: "L1"}, Account: engine.AccountTarget{Target: engine.Target{ID: "A1"}}}),
			outcome: OutcomeFailed, reason: ReasonMissingContact,
		},
		{
			name: "missing lead",
			cmd: command(engine.KindLeadConvert, "cmd-convert-L7", 3, &engine.LeadConvert{LeadID: "L7",
				Contact: engine.Target{Create: true}}),
			outcome: OutcomeFailed, reason: ReasonMissingLead,
		},
		{
			name: "lead already converted",
			cmd: command(engine.KindLeadConvert, "cmd-convert-L9", 3, &engine.LeadConvert{LeadID: "L9",
				Contact: engine.Target{ID: "C1"}}),
			outcome: OutcomeFailed, reason: ReasonLeadConverted,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := newMirror(t)
			for _, c := range tc.setup {
				if res, _ := apply(t, m, c); res.Outcome != OutcomeApplied {
					t.Fatalf("setup %s: %s %s", c.ID, res.Outcome, res.Reason)
				}
			}
			before := snapshot(t, m)
			res, events := apply(t, m, tc.cmd)
			if res.Outcome != tc.outcome || res.Reason != tc.reason {
				t.Fatalf("outcome %s/%s, want %s/%s", res.Outcome, res.Reason, tc.outcome, tc.reason)
			}
			if tc.outcome == OutcomeFailed {
				if len(events) != 0 {
					t.Errorf("failed command emitted %v", refsOf(events))
				}
				if after := snapshot(t, m); !reflect.DeepEqual(before, after) {
					t.Errorf("failed command changed the mirror:\n%v\n%v", before, after)
				}
				return
			}
			lead := mustGet(t, m, record.Lead, "L2")
			cid := lead.Fields.Str(FieldConvertedContactID)
			if tc.contactWant != "" && cid != tc.contactWant {
				t.Errorf("L2 converted into %q, want %q", cid, tc.contactWant)
			}
			if tc.contactWant == "" && cid != mustGet(t, m, record.Lead, "L1").Fields.Str(FieldConvertedContactID) {
				t.Errorf("L2 converted into %q, not L1's contact", cid)
			}
			c := mustGet(t, m, record.Contact, cid)
			if lead.Fields.Str(FieldConvertedAccountID) != c.Fields.Str(FieldAccountID) {
				t.Errorf("lead account %q, contact account %q", lead.Fields.Str(FieldConvertedAccountID), c.Fields.Str(FieldAccountID))
			}
			if tc.contactWant == "C1" {
				want := record.Fields{"LastName": "Smith", "Email": "s@x.io", "AccountId": "A1", "Phone": "1"}
				if !reflect.DeepEqual(c.Fields, want) {
					t.Errorf("C1 fields %v, want %v (Title cleared, Phone set)", c.Fields, want)
				}
			}
			if len(events) < 2 || events[0].Ref() != (record.Ref{Object: record.Lead, ID: "L2"}) {
				t.Errorf("events %v", refsOf(events))
			}
		})
	}
}

// An account is reused when the matcher would resolve the name to it: the
// same company once case, punctuation and legal suffixes are folded.
func TestAccountReusedByName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		reuse bool
	}{
		{" GLOBEX ", true},
		{"Globex, Inc.", true},
		{"The Globex Corporation", true},
		{"Globex Industries", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := newMirror(t)
			cmd := command(engine.KindLeadConvert, "cmd-L2-globex", 1, &engine.LeadConvert{LeadID: "L2",
				Contact: engine.Target{Create: true}, Account: engine.AccountTarget{Target: engine.Target{Create: true}, Name: tc.name}})
			if res, _ := apply(t, m, cmd); res.Outcome != OutcomeApplied {
				t.Fatalf("outcome %s %s", res.Outcome, res.Reason)
			}
			got := mustGet(t, m, record.Lead, "L2").Fields.Str(FieldConvertedAccountID)
			if tc.reuse != (got == "A1") {
				t.Errorf("account %q: reuse of A1 (Globex) %v, want %v", got, got == "A1", tc.reuse)
			}
		})
	}
}

// Accounts stored before names had keys are still found by their trimmed,
// case-folded name.
func TestAccountWithoutKeyReusedByName(t *testing.T) {
	t.Parallel()
	m := newMirror(t)
	if _, err := m.pool.Exec(context.Background(), `UPDATE accounts SET name_key = NULL WHERE id = 'A1'`); err != nil {
		t.Fatal(err)
	}
	cmd := command(engine.KindLeadConvert, "cmd-L2-globex", 1, &engine.LeadConvert{LeadID: "L2",
		Contact: engine.Target{Create: true}, Account: engine.AccountTarget{Target: engine.Target{Create: true}, Name: " GLOBEX "}})
	if res, _ := apply(t, m, cmd); res.Outcome != OutcomeApplied {
		t.Fatalf("outcome %s %s", res.Outcome, res.Reason)
	}
	if got := mustGet(t, m, record.Lead, "L2").Fields.Str(FieldConvertedAccountID); got != "A1" {
		t.Errorf("account %q, want the existing A1 (same name)", got)
	}
}

func TestRecordsMerge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := newMirror(t)
	cmd := command(engine.KindRecordsMerge, "cmd-merge", 2, &engine.RecordsMerge{Object: record.Contact,
		Master: engine.Target{ID: "C1"}, MergedIDs: []string{"C3", "C2"}, Fields: record.Fields{"Email": "smith@x.io", "Title": nil}})
	res, events := apply(t, m, cmd)
	if res.Outcome != OutcomeApplied {
		t.Fatalf("outcome %s %s", res.Outcome, res.Reason)
	}
	c1 := mustGet(t, m, record.Contact, "C1")
	want := record.Fields{"LastName": "Smith", "Email": "smith@x.io", "AccountId": "A1"}
	if !reflect.DeepEqual(c1.Fields, want) {
		t.Errorf("master fields %v, want %v", c1.Fields, want)
	}
	if c1.RelatedCount != 2 {
		t.Errorf("master has %d related, want the 2 notes of the merged contacts", c1.RelatedCount)
	}
	for _, id := range []string{"C2", "C3"} {
		if _, ok := get(t, m, record.Contact, id); ok {
			t.Errorf("merged %s still exists", id)
		}
	}
	if got := mustGet(t, m, record.Lead, "L9").Fields.Str(FieldConvertedContactID); got != "C1" {
		t.Errorf("lead converted into merged C2 now points at %q, want C1", got)
	}
	got := refsOf(events)
	wantEv := []string{"upsert contact/C1", "upsert lead/L9", "delete contact/C2", "delete contact/C3"}
	if !reflect.DeepEqual(got, wantEv) {
		t.Errorf("events %v, want %v", got, wantEv)
	}
	for _, e := range events[2:] {
		if !e.ModifiedAt.After(t0) {
			t.Errorf("delete of %s stamped %v, not after the record's last change", e.ID, e.ModifiedAt)
		}
	}
	var into string
	if err := m.pool.QueryRow(ctx, "SELECT merged_into FROM deleted_records WHERE tenant = $1 AND id = 'C2'", tenant).Scan(&into); err != nil || into != "C1" {
		t.Errorf("deleted_records: %q %v", into, err)
	}

	leads := command(engine.KindRecordsMerge, "cmd-merge-leads", 2, &engine.RecordsMerge{Object: record.Lead,
		Master: engine.Target{ID: "L1"}, MergedIDs: []string{"L2"}, Fields: record.Fields{"Phone": "1"}})
	if res, _ := apply(t, m, leads); res.Outcome != OutcomeApplied {
		t.Fatalf("lead merge: %s %s", res.Outcome, res.Reason)
	}
	if l1 := mustGet(t, m, record.Lead, "L1"); l1.Fields.Str("Phone") != "1" {
		t.Errorf("master lead fields %v", l1.Fields)
	}
	if _, ok := get(t, m, record.Lead, "L2"); ok {
		t.Error("merged lead L2 still exists")
	}

	missing := command(engine.KindRecordsMerge, "cmd-merge-missing", 2, &engine.RecordsMerge{Object: record.Contact,
		Master: engine.Target{ID: "C1"}, MergedIDs: []string{"C2"}})
	if res, _ := apply(t, m, missing); res.Outcome != OutcomeFailed || res.Reason != ReasonMissingRecord {
		t.Errorf("merging a deleted record: %s %s", res.Outcome, res.Reason)
	}
}

func TestMergeIntoContactCreatedFromLead(t *testing.T) {
	t.Parallel()
	m := newMirror(t)
	apply(t, m, convertL1())
	cmd := command(engine.KindRecordsMerge, "cmd-merge-from-lead", 3, &engine.RecordsMerge{Object: record.Contact,
		Master: engine.Target{FromLead: "L1"}, MergedIDs: []string{"C3"}, Fields: record.Fields{"Title": "CEO"}})
	if res, _ := apply(t, m, cmd); res.Outcome != OutcomeApplied {
		t.Fatalf("outcome %s %s", res.Outcome, res.Reason)
	}
	c := mustGet(t, m, record.Contact, mustGet(t, m, record.Lead, "L1").Fields.Str(FieldConvertedContactID))
	if c.Fields.Str("Title") != "CEO" || c.RelatedCount != 2 {
		t.Errorf("master contact %v related %d", c.Fields, c.RelatedCount)
	}
}

func TestReviewsRecorded(t *testing.T) {
	t.Parallel()
	m := newMirror(t)
	refs := []record.Ref{{Object: record.Lead, ID: "L1"}, {Object: record.Lead, ID: "L2"}}
	for _, cmd := range []*engine.Command{
		command(engine.KindConversionFailed, "cmd-failed", 1, &engine.ConversionFailed{Reason: engine.ReasonBlankAccount, Master: refs[0], Records: refs}),
		command(engine.KindReviewRequested, "cmd-review", 1, &engine.ReviewRequested{Reason: engine.ReasonClusterTooLarge, Records: refs, Size: 25, Limit: 20}),
	} {
		res, events := apply(t, m, cmd)
		if res.Outcome != OutcomeApplied || len(events) != 0 {
			t.Fatalf("%s: %s, events %v", cmd.Kind, res.Outcome, refsOf(events))
		}
	}
	var reasons []string
	rows, _ := m.pool.Query(context.Background(), "SELECT kind || ':' || reason FROM cluster_reviews ORDER BY kind")
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		reasons = append(reasons, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"conversion.failed:blank_account", "review.requested:cluster_too_large"}
	if !reflect.DeepEqual(reasons, want) {
		t.Errorf("reviews %v, want %v", reasons, want)
	}
}

func TestIdempotentByCommandID(t *testing.T) {
	t.Parallel()
	m := newMirror(t)
	first, ev1 := apply(t, m, convertL1())
	before := snapshot(t, m)
	again, ev2 := apply(t, m, convertL1())
	if again.Outcome != OutcomeSkippedDuplicate || again.Previous != OutcomeApplied {
		t.Fatalf("second delivery: %s (previous %s)", again.Outcome, again.Previous)
	}
	if after := snapshot(t, m); !reflect.DeepEqual(before, after) {
		t.Errorf("second delivery changed the mirror")
	}
	if !reflect.DeepEqual(ev1, ev2) || !reflect.DeepEqual(first.Records, again.Records) {
		t.Errorf("redelivery must re-emit the same current state:\n%v\n%v", refsOf(ev1), refsOf(ev2))
	}
	// A failed command is not retried either.
	bad := command(engine.KindLeadConvert, "cmd-bad", 3, &engine.LeadConvert{LeadID: "L7", Contact: engine.Target{Create: true}})
	apply(t, m, bad)
	if res, _ := apply(t, m, bad); res.Outcome != OutcomeSkippedDuplicate || res.Previous != OutcomeFailed || res.Reason != ReasonMissingLead {
		t.Errorf("failed command redelivered: %+v", res)
	}
}

func TestStaleVersionDropped(t *testing.T) {
	t.Parallel()
	m := newMirror(t)
	review := command(engine.KindReviewRequested, "cmd-v5", 5, &engine.ReviewRequested{Reason: engine.ReasonMasterTie})
	if res, _ := apply(t, m, review); res.Outcome != OutcomeApplied {
		t.Fatal(res.Outcome)
	}
	before := snapshot(t, m)
	old := convertL1() // version 3 of the same cluster
	res, events := apply(t, m, old)
	if res.Outcome != OutcomeStale || res.NewestVersion != 5 || len(events) != 0 {
		t.Fatalf("old plan: %+v, events %v", res, refsOf(events))
	}
	if after := snapshot(t, m); !reflect.DeepEqual(before, after) {
		t.Error("stale command changed the mirror")
	}
	// The same version as the newest still applies: a plan has many commands.
	same := command(engine.KindConversionFailed, "cmd-v5-b", 5, &engine.ConversionFailed{Reason: engine.ReasonBlankAccount})
	if res, _ := apply(t, m, same); res.Outcome != OutcomeApplied {
		t.Errorf("command of the newest version: %s", res.Outcome)
	}
	newer := convertL1()
	newer.ID, newer.ClusterVersion = "cmd-v6", 6
	if res, _ := apply(t, m, newer); res.Outcome != OutcomeApplied {
		t.Errorf("newer plan: %s %s", res.Outcome, res.Reason)
	}
}

func TestInvalidCommand(t *testing.T) {
	t.Parallel()
	m := newMirror(t)
	res, events := apply(t, m, &engine.Command{Kind: engine.KindLeadConvert, ID: "x"})
	if res.Outcome != OutcomeFailed || res.Reason != ReasonInvalidCommand || len(events) != 0 {
		t.Errorf("%+v", res)
	}
}

// snapshot renders the mirror's CRM tables (not the bookkeeping) for
// comparison.
func snapshot(t *testing.T, m *Mirror) map[string][]string {
	t.Helper()
	ctx := context.Background()
	out := map[string][]string{}
	for name, sql := range map[string]string{
		"leads":         "SELECT id || ' ' || fields::text || ' ' || modified_at::text FROM leads ORDER BY id",
		"contacts":      "SELECT id || ' ' || coalesce(account_id, '-') || ' ' || fields::text || ' ' || modified_at::text FROM contacts ORDER BY id",
		"accounts":      "SELECT id || ' ' || fields::text FROM accounts ORDER BY id",
		"opportunities": "SELECT id || ' ' || name || ' ' || coalesce(contact_id, '-') FROM opportunities ORDER BY id",
		"related":       "SELECT id || ' ' || parent_object || '/' || parent_id FROM related ORDER BY id",
		"deleted":       "SELECT object || '/' || id || ' ' || coalesce(merged_into, '-') FROM deleted_records ORDER BY object, id",
	} {
		rows, err := m.pool.Query(ctx, sql)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out[name] = append(out[name], s)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}
