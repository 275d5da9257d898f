package requests

import (
	"context"
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/events"
	"github.com/leadconv/leadconv/internal/testutil/pgtest"
	"github.com/leadconv/leadconv/internal/testutil/redistest"
	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/record"
	"github.com/leadconv/leadconv/schemas"
	"github.com/leadconv/leadconv/writer"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

const tenant = "acme"

var (
	t0           = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	contactNames = record.FieldMap{"AccountName": "Company"}
)

func day(n int) time.Time { return t0.Add(time.Duration(n) * 24 * time.Hour) }

// env is a tenant's data in a real PostgreSQL mirror (the CRM's records) and
// a real matcher store on Redis (the clusters), read through Source.
type env struct {
	mirror   *writer.Mirror
	store    *matcher.Store
	src      *Source
	ledger   *RedisLedger
	policy   Policy
	engine   *engine.Config
	verifier *Verifier
}

func lead(id string, created int, f record.Fields) record.Record {
	return record.Record{Tenant: tenant, Object: record.Lead, ID: id, CreatedAt: day(created), ModifiedAt: day(created), Fields: f}
}

// fixture: C1 (account A1 Globex) with leads L1, L2 as duplicates; L3 and
// L4 duplicates without a contact; L5 alone without a company; L6 already
// converted; L8 alone, of the existing account Globex. LeadSource Web: L1,
// L2, L3, L6.
func fixture() []record.Record {
	return []record.Record{
		{Tenant: tenant, Object: record.Account, ID: "A1", CreatedAt: t0, ModifiedAt: t0, Fields: record.Fields{"Name": "Globex"}},
		{Tenant: tenant, Object: record.Contact, ID: "C1", CreatedAt: t0, ModifiedAt: t0, Fields: record.Fields{
			"FirstName": "Ann", "LastName": "Lee", "Email": "ann@x.com", "AccountId": "A1", "AccountName": "Globex",
			"Title": "CTO", "Phone": "+1 555 0100", "Department": "IT", "MailingCity": "Oslo"}},
		lead("L1", 1, record.Fields{"FirstName": "Ann", "LastName": "Lee", "Email": "ann@x.com", "Company": "Globex", "LeadSource": "Web", "Title": "VP"}),
		lead("L2", 2, record.Fields{"FirstName": "Anne", "LastName": "Lee", "Email": "ANN@x.com", "LeadSource": "web "}),
		lead("L3", 3, record.Fields{"FirstName": "Bob", "LastName": "Ray", "Email": "bob@y.com", "Company": "Initech", "LeadSource": "Web"}),
		lead("L4", 4, record.Fields{"FirstName": "Bob", "LastName": "Ray", "Email": "bob@y.com", "Company": "Initech", "LeadSource": "Fair"}),
		lead("L5", 5, record.Fields{"FirstName": "Cat", "LastName": "Doe", "Email": "cat@z.com", "LeadSource": "Fair"}),
		lead("L6", 6, record.Fields{"FirstName": "Old", "LastName": "Timer", "Email": "old@q.com", "LeadSource": "Web", "IsConverted": true}),
		lead("L8", 8, record.Fields{"FirstName": "Zed", "LastName": "Zee", "Email": "zed@q.com", "Company": "GLOBEX ", "LeadSource": "Fair"}),
	}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	db := pgtest.New(t)
	if err := writer.Migrate(ctx, db.Pool()); err != nil {
		t.Fatal(err)
	}
	rs, err := matcher.Compile(matcher.DefaultConfig(), contactNames)
	if err != nil {
		t.Fatal(err)
	}
	srv := redistest.New(t)
	ns := redistest.Namespace(t)
	e := &env{
		mirror: writer.NewMirror(db.Pool()),
		store:  matcher.NewStore(srv.Client(), matcher.StoreOptions{Namespace: ns, Rules: func(string) (*matcher.Ruleset, error) { return rs, nil }}),
		ledger: NewRedisLedger(srv.Client(), ns),
		policy: Policy{Roles: []string{"sales_admin"}},
	}
	e.verifier = testVerifier(t)
	e.src = &Source{Graph: e.store, Records: e.mirror}
	cfg := engine.DefaultConfig()
	cfg.AutoConvert = false // conversion on request only
	cfg.ContactFields = contactNames
	e.engine = &cfg
	e.put(t, fixture()...)
	return e
}

// put stores records in the mirror and feeds them to the matcher, as the
// CRM's change stream would.
func (e *env) put(t *testing.T, recs ...record.Record) {
	t.Helper()
	ctx := context.Background()
	if err := e.mirror.Put(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	e.feed(t, recs...)
}

func (e *env) feed(t *testing.T, recs ...record.Record) {
	t.Helper()
	evs := make([]record.Event, len(recs))
	for i, r := range recs {
		evs[i] = record.Event{Op: record.OpUpsert, Record: r}
	}
	if _, err := e.store.Apply(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
}

func (e *env) handler(progress func(*kgo.Record)) *Handler {
	return e.handlerWith(HandlerConfig{CommandsTopic: "cmds", EventsTopic: "evs", ProgressEvery: 1, Progress: progress, Logger: zerolog.Nop()})
}

func (e *env) handlerWith(cfg HandlerConfig) *Handler {
	return NewHandler(cfg, e.src, func(string) (Tenant, error) {
		return Tenant{Engine: e.engine, Policy: e.policy, Verifier: e.verifier}, nil
	}, e.ledger)
}

// output splits a request's output into commands and request events.
type output struct {
	commands []engine.Command
	events   []*kgo.Record
}

func (o output) types() []string {
	var out []string
	for _, r := range o.events {
		out = append(out, header(r, "ce_type"))
	}
	return out
}

func header(r *kgo.Record, k string) string {
	for _, h := range r.Headers {
		if h.Key == k {
			return string(h.Value)
		}
	}
	return ""
}

func split(t *testing.T, recs []*kgo.Record) output {
	t.Helper()
	var o output
	for _, r := range recs {
		switch r.Topic {
		case "cmds":
			var c engine.Command
			if err := json.Unmarshal(r.Value, &c); err != nil {
				t.Fatal(err)
			}
			checkSchema(t, c.Kind, r.Value)
			if string(r.Key) != tenant+"/"+c.ClusterID {
				t.Errorf("command key %q", r.Key)
			}
			o.commands = append(o.commands, c)
		case "evs":
			checkSchema(t, typeName(header(r, "ce_type")), r.Value)
			o.events = append(o.events, r)
		default:
			t.Fatalf("record on topic %q", r.Topic)
		}
	}
	return o
}

func process(t *testing.T, h *Handler, req *Request) output {
	t.Helper()
	if err := req.Validate(); err != nil {
		t.Fatal(err)
	}
	recs, err := h.Process(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return split(t, recs)
}

func completed(t *testing.T, o output) Summary {
	t.Helper()
	if n := len(o.events); n == 0 || header(o.events[n-1], "ce_type") != TypeCompleted {
		t.Fatalf("request did not complete: %v", o.types())
	}
	var s Summary
	if err := json.Unmarshal(o.events[len(o.events)-1].Value, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func rejected(t *testing.T, o output) Rejection {
	t.Helper()
	if len(o.events) != 1 || header(o.events[0], "ce_type") != TypeRejected || len(o.commands) != 0 {
		t.Fatalf("want one rejection and nothing else, got %v and %d commands", o.types(), len(o.commands))
	}
	var r Rejection
	if err := json.Unmarshal(o.events[0].Value, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func webRequest(id string) *Request {
	return &Request{Tenant: tenant, RequestID: id, RequestedBy: Requester{User: "u1", Roles: []string{"sales_admin"}},
		Select: Selection{Where: map[string]Values{"LeadSource": {"web"}}}}
}

// converts returns "lead->contact target" per lead.convert, and the merged ids.
func converts(cmds []engine.Command) (conv []string, merged []string) {
	for _, c := range cmds {
		switch d := c.Data.(type) {
		case *engine.LeadConvert:
			to := d.Contact.ID
			if d.Contact.Create {
				to = "new"
			} else if d.Contact.FromLead != "" {
				to = "from " + d.Contact.FromLead
			}
			conv = append(conv, d.LeadID+"->"+to)
		case *engine.RecordsMerge:
			merged = append(merged, d.MergedIDs...)
		}
	}
	slices.Sort(conv)
	return conv, merged
}

func TestRequestOutcomes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name   string
		mod    func(*Request)
		conv   []string
		counts Counts
		new    NewRecords
		fails  []Failure
	}{
		{
			name: "filter, merge into the existing contact",
			conv: []string{"L1->C1", "L2->C1", "L3->from L4", "L4->new"},
			// L4 is not selected: it converts as L3's duplicate (and, as
			// the most recently modified of two equally complete leads,
			// its master).
			counts: Counts{Converted: 2, Merged: 2},
			new:    NewRecords{Contacts: 1, Accounts: 1},
			fails:  []Failure{},
		},
		{
			name:   "skip clusters with a contact",
			mod:    func(r *Request) { r.Options.DuplicateHandling = DuplicateSkip },
			conv:   []string{"L3->from L4", "L4->new"},
			counts: Counts{Converted: 2, Skipped: 2},
			new:    NewRecords{Contacts: 1, Accounts: 1},
			fails:  []Failure{{"L1", OutcomeSkipped, ReasonDuplicateExists}, {"L2", OutcomeSkipped, ReasonDuplicateExists}},
		},
		{
			name: "ids: missing, converted, blank account",
			mod: func(r *Request) {
				r.Select = Selection{IDs: []string{"L6", "L9", "L5", "L1"}}
				r.Options.Opportunity = &engine.OpportunityConfig{Strategy: engine.OpportunityCreate, NameFrom: "Company"}
			},
			conv:   []string{"L1->C1", "L2->C1"},
			counts: Counts{Merged: 2, Skipped: 1, Failed: 2},
			new:    NewRecords{Opportunities: 1},
			fails: []Failure{{"L5", OutcomeFailed, engine.ReasonBlankAccount}, {"L6", OutcomeSkipped, ReasonAlreadyConverted},
				{"L9", OutcomeFailed, ReasonNotFound}},
		},
		{
			name:   "a lone lead joins the existing account of its company",
			mod:    func(r *Request) { r.Select = Selection{IDs: []string{"L8"}} },
			conv:   []string{"L8->new"},
			counts: Counts{Converted: 1},
			new:    NewRecords{Contacts: 1},
			fails:  []Failure{},
		},
		{
			name:   "created_after bounds the filter",
			mod:    func(r *Request) { after := day(2).Add(time.Hour); r.Select.CreatedAfter = &after },
			conv:   []string{"L3->from L4", "L4->new"},
			counts: Counts{Converted: 2},
			new:    NewRecords{Contacts: 1, Accounts: 1},
			fails:  []Failure{},
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := webRequest("r" + string(rune('a'+i)))
			req.DryRun = true // the same data serves every case
			if tc.mod != nil {
				tc.mod(req)
			}
			o := process(t, e.handler(nil), req)
			s := completed(t, o)
			if len(o.commands) != 0 {
				t.Errorf("a dry run emitted %d commands", len(o.commands))
			}
			// The same request for real: the plan the dry run reported.
			req.DryRun = false
			o = process(t, e.handler(nil), req)
			real := completed(t, o)
			if s.DryRun != true || real.DryRun != false {
				t.Error("dry_run not reported")
			}
			s.DryRun = false
			if !reflect.DeepEqual(s, real) {
				t.Errorf("dry run %+v\nreal    %+v", s, real)
			}
			conv, _ := converts(o.commands)
			if !slices.Equal(conv, tc.conv) {
				t.Errorf("conversions %v, want %v", conv, tc.conv)
			}
			if real.Counts != tc.counts || real.NewRecords != tc.new || !reflect.DeepEqual(real.Failures, tc.fails) {
				t.Errorf("summary counts %+v new %+v failures %v\nwant %+v new %+v failures %v",
					real.Counts, real.NewRecords, real.Failures, tc.counts, tc.new, tc.fails)
			}
			if real.Commands != len(o.commands) {
				t.Errorf("summary says %d commands, %d emitted", real.Commands, len(o.commands))
			}
			for _, c := range o.commands {
				if c.RequestID != req.RequestID {
					t.Errorf("%s %s: request_id %q, want %q", c.Kind, c.ID, c.RequestID, req.RequestID)
				}
			}
		})
	}
}

func TestRejections(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name          string
		policy        Policy
		mod           func(*Request)
		reason        string
		count, limit  int
		detailContain string
	}{
		{"no role", Policy{Roles: []string{"admin"}}, nil, ReasonRoleNotAllowed, 0, 0, ""},
		{"no roles configured", Policy{}, nil, ReasonRoleNotAllowed, 0, 0, ""},
		{"too many records", Policy{Roles: []string{"sales_admin"}, MaxRecords: 2}, nil, ReasonMaxRecords, 3, 2, "3 leads selected, the limit is 2"},
		{"too many new records", Policy{Roles: []string{"sales_admin"}, MaxNewRecords: 1}, nil, ReasonMaxNewRecords, 2, 1, "1 contacts, 1 accounts"},
		{"new records counted with the request's options", Policy{Roles: []string{"sales_admin"}, MaxNewRecords: 3},
			func(r *Request) {
				r.Options.Opportunity = &engine.OpportunityConfig{Strategy: engine.OpportunityCreate, NameFrom: "Company"}
			}, ReasonMaxNewRecords, 4, 3, "2 opportunities"},
		{"invalid options", Policy{Roles: []string{"sales_admin"}},
			func(r *Request) {
				r.Options.BlankAccount = &engine.BlankAccountConfig{Strategy: engine.AccountUseExisting}
			},
			ReasonInvalidOptions, 0, 0, "options.conversion.blank_account.account_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := *e
			e.policy = tc.policy
			req := webRequest("rej-" + tc.name)
			if tc.mod != nil {
				tc.mod(req)
			}
			r := rejected(t, process(t, e.handler(nil), req))
			if r.Reason != tc.reason || r.Count != tc.count || r.Limit != tc.limit || !strings.Contains(r.Detail, tc.detailContain) {
				t.Errorf("rejection %+v, want %s %d/%d %q", r, tc.reason, tc.count, tc.limit, tc.detailContain)
			}
			if got, err := e.ledger.Get(context.Background(), tenant, req.RequestID); err != nil || got != nil {
				t.Errorf("a rejected request is in the ledger: %v %v", got, err)
			}
		})
	}
}

func TestOverwrite(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	merge := process(t, e.handler(nil), webRequest("m"))
	req := webRequest("o")
	req.Options.DuplicateHandling = DuplicateOverwrite
	over := process(t, e.handler(nil), req)
	title := func(o output, id string) any {
		for _, c := range o.commands {
			if d, ok := c.Data.(*engine.LeadConvert); ok && d.LeadID == id {
				return d.Fields["Title"]
			}
		}
		t.Fatalf("no conversion of %s", id)
		return nil
	}
	if v := title(merge, "L1"); v != "CTO" {
		t.Errorf("merge: Title %v, want the contact's CTO", v)
	}
	if v := title(over, "L1"); v != "VP" {
		t.Errorf("overwrite: Title %v, want the lead's VP", v)
	}
	if v := title(over, "L2"); v != "VP" {
		t.Errorf("every command of the plan carries the same values: L2 has Title %v", v)
	}
	// The explain block says where the overwritten value came from; a
	// merge keeps the field strategy's explanation.
	titleExplain := func(o output) engine.FieldExplain {
		for _, c := range o.commands {
			if _, ok := c.Data.(*engine.LeadConvert); ok {
				for _, fe := range c.Explain.Fields {
					if fe.Field == "Title" {
						return fe
					}
				}
			}
		}
		t.Fatal("no explain of Title")
		return engine.FieldExplain{}
	}
	if fe := titleExplain(over); fe.Strategy != StrategyOverwrite || len(fe.From) != 1 || fe.From[0].Object != record.Lead {
		t.Errorf("overwrite: Title explained as %+v, want overwrite from a lead", fe)
	}
	if fe := titleExplain(merge); fe.Strategy == StrategyOverwrite {
		t.Errorf("merge: Title explained as %+v", fe)
	}
	for _, c := range over.commands {
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := schemas.ValidateJSON(c.Kind, b); err != nil {
			t.Errorf("%s of an overwrite does not validate: %v", c.Kind, err)
		}
	}
	// A merge of the same plan carries the overwritten values too (it runs
	// after the conversions and would undo them otherwise); contact fields
	// map to lead fields (AccountName <- Company).
	contact := func(id, title string) record.Record {
		return record.Record{Tenant: tenant, Object: record.Contact, ID: id, CreatedAt: t0, ModifiedAt: t0, Fields: record.Fields{
			"FirstName": "Bob", "LastName": "Ray", "Email": "bob@y.com", "AccountName": "Initrode", "Title": title}}
	}
	e.put(t, contact("C4", "Intern"), contact("C5", "Boss"))
	req = webRequest("o2")
	req.Select = Selection{IDs: []string{"L3"}}
	req.Options.DuplicateHandling = DuplicateOverwrite
	merged := 0
	for _, c := range process(t, e.handler(nil), req).commands {
		var f record.Fields
		switch d := c.Data.(type) {
		case *engine.LeadConvert:
			f = d.Fields
		case *engine.RecordsMerge:
			f, merged = d.Fields, merged+1
		}
		if f["AccountName"] != "Initech" {
			t.Errorf("%s: AccountName %v, want the leads' Initech", c.Kind, f["AccountName"])
		}
	}
	if merged == 0 {
		t.Error("no merge planned for the cluster's two contacts")
	}
	// The most recently modified lead wins; fields the leads leave blank
	// keep the contact's value.
	for _, c := range over.commands {
		if d, ok := c.Data.(*engine.LeadConvert); ok && d.Contact.ID == "C1" {
			if d.Fields["FirstName"] != "Anne" || d.Fields["Department"] != "IT" || d.Fields["MailingCity"] != "Oslo" {
				t.Errorf("fields %v", d.Fields)
			}
		}
	}
}

// TestIdempotentRequestID: a repeated request_id reports the first summary
// and never selects new leads; once the writer applied the commands, a
// repetition converts nothing.
func TestIdempotentRequestID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	var progress []*kgo.Record
	h := e.handler(func(r *kgo.Record) { progress = append(progress, r) })
	first := process(t, h, webRequest("same"))
	if len(progress) == 0 {
		t.Error("no progress events")
	}
	for _, r := range progress {
		checkSchema(t, "request.progress", r.Value)
	}
	s1 := completed(t, first)
	again := process(t, h, webRequest("same"))
	if !reflect.DeepEqual(ids(first.commands), ids(again.commands)) {
		t.Errorf("redelivery re-plans other commands: %v vs %v", ids(first.commands), ids(again.commands))
	}
	last := func(o output) *kgo.Record { return o.events[len(o.events)-1] }
	if header(last(first), "ce_id") != header(last(again), "ce_id") || string(last(first).Value) != string(last(again).Value) {
		t.Error("redelivery reports another completion")
	}
	// A new lead matching the filter arrives; the writer applies the
	// first commands, the CRM's changes flow back to the matcher and the
	// results but the last one's to the request.
	e.put(t, lead("L7", 7, record.Fields{"FirstName": "Dan", "LastName": "Fox", "Email": "dan@f.com", "Company": "Hooli", "LeadSource": "Web"}))
	unanswered := first.commands[len(first.commands)-1]
	for _, c := range first.commands {
		res, evs, err := e.mirror.Apply(ctx, &c)
		if err != nil || res.Outcome != writer.OutcomeApplied || res.RequestID != "same" {
			t.Fatalf("writer: %+v %v", res, err)
		}
		for _, ev := range evs {
			if ev.Op == record.OpUpsert {
				e.feed(t, ev.Record)
			}
		}
		if c.ID == unanswered.ID {
			continue
		}
		if _, err := h.Outcome(ctx, events.CommandResult{Tenant: tenant, RequestID: res.RequestID, CommandID: res.CommandID, Outcome: res.Outcome}); err != nil {
			t.Fatal(err)
		}
	}
	// The re-submission emits again only the command the writer has not
	// answered, never one for L7.
	third := process(t, h, webRequest("same"))
	if got := ids(third.commands); !slices.Equal(got, []string{unanswered.ID}) {
		t.Errorf("re-submission emitted %v, want the unanswered %s alone", got, unanswered.ID)
	}
	if s3 := completed(t, third); !reflect.DeepEqual(s1, s3) {
		t.Errorf("re-submission summary %+v, want the first %+v", s3, s1)
	}
	// A new request id selects what is left: L7 only.
	fresh := process(t, h, webRequest("next"))
	if conv, _ := converts(fresh.commands); !slices.Equal(conv, []string{"L7->new"}) {
		t.Errorf("next request converts %v", conv)
	}
}

func ids(cmds []engine.Command) []string {
	out := make([]string, len(cmds))
	for i, c := range cmds {
		out[i] = c.ID
	}
	return out
}

func TestHandleInvalidRecords(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	good, err := json.Marshal(webRequest("h1"))
	if err != nil {
		t.Fatal(err)
	}
	recs := []*kgo.Record{
		{Value: []byte("not json")},
		{Value: []byte(`{"tenant":"acme","request_id":"bad","select":{}}`)},
		signed(t, "", good, "sales_admin"),
	}
	res, err := e.handler(nil).Handle(context.Background(), "requests", 0, recs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Poison) != 1 || res.Poison[0].Record != recs[0] || res.Poison[0].Code != CodeInvalidRequest {
		t.Errorf("poison %+v", res.Poison)
	}
	o := split(t, res.Out)
	if got := o.types(); !slices.Equal(got, []string{TypeRejected, TypeCompleted}) {
		t.Fatalf("events %v", got)
	}
	var r Rejection
	if err := json.Unmarshal(o.events[0].Value, &r); err != nil || r.Reason != ReasonInvalidRequest || r.RequestID != "bad" {
		t.Errorf("rejection %+v %v", r, err)
	}
}

func TestStructuredMode(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := e.handlerWith(HandlerConfig{CommandsTopic: "cmds", EventsTopic: "evs", Structured: true, Logger: zerolog.Nop()})
	recs, err := h.Process(context.Background(), webRequest("s1"))
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, r := range recs {
		if ct := header(r, "content-type"); ct != "application/cloudevents+json" {
			t.Fatalf("content-type %q", ct)
		}
		var ev struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(r.Value, &ev); err != nil {
			t.Fatal(err)
		}
		types = append(types, ev.Type)
		data, err := events.Payload(r)
		if err != nil {
			t.Fatal(err)
		}
		name := typeName(ev.Type)
		if name == "" {
			var c engine.Command
			if err := json.Unmarshal(data, &c); err != nil {
				t.Fatal(err)
			}
			name = c.Kind
		}
		checkSchema(t, name, data)
	}
	if len(types) < 2 || types[len(types)-1] != TypeCompleted || types[0] != "io.leadconv.lead.convert.v1" {
		t.Errorf("event types %v", types)
	}
}
