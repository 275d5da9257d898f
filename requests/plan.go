package requests

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/record"
)

// Lead outcomes (Summary counts and Failure.Outcome).
const (
	OutcomeConverted = "converted" // into a contact the request creates
	OutcomeMerged    = "merged"    // into an existing contact
	OutcomeSkipped   = "skipped"
	OutcomeFailed    = "failed"
)

// Reasons of skipped and failed leads and of rejected requests.
const (
	ReasonDuplicateExists  = "duplicate_exists"
	ReasonAlreadyConverted = "already_converted"
	// ReasonConversionPending: leadconv emitted the lead's conversion (the
	// live pipeline or an earlier request) and the CRM does not show it
	// converted yet; it is never converted twice.
	ReasonConversionPending = "conversion_pending"
	ReasonNotFound          = "not_found"
	ReasonInvalidRequest    = "invalid_request"
	ReasonInvalidOptions    = "invalid_options"
	ReasonUnknownTenant     = "unknown_tenant"
	ReasonMaxRecords        = "max_records_exceeded"
	ReasonMaxNewRecords     = "max_new_records_exceeded"
)

// Summary is the data of request.completed.
type Summary struct {
	Tenant    string `json:"tenant"`
	RequestID string `json:"request_id"`
	DryRun    bool   `json:"dry_run"`
	// Selected counts the leads the selection named or matched.
	Selected int `json:"selected"`
	// Clusters counts the clusters planned.
	Clusters int    `json:"clusters"`
	Counts   Counts `json:"counts"`
	// ContactsMerged counts existing duplicate contacts merged away.
	ContactsMerged int        `json:"contacts_merged"`
	NewRecords     NewRecords `json:"new_records"`
	// Commands counts the commands emitted (planned, on a dry run).
	Commands int `json:"commands"`
	// Failures lists every failed and skipped lead with its reason.
	Failures []Failure `json:"failures"`
}

// Counts are the leads per outcome: the selected leads and the duplicate
// leads converted with them.
type Counts struct {
	Converted int `json:"converted"`
	Merged    int `json:"merged"`
	Skipped   int `json:"skipped"`
	Failed    int `json:"failed"`
}

// NewRecords counts what the request creates.
type NewRecords struct {
	Contacts      int `json:"contacts"`
	Accounts      int `json:"accounts"`
	Opportunities int `json:"opportunities"`
}

// Total is the number of records created.
func (n NewRecords) Total() int { return n.Contacts + n.Accounts + n.Opportunities }

// Failure is one lead that was not converted.
type Failure struct {
	LeadID  string `json:"lead_id"`
	Outcome string `json:"outcome"`
	Reason  string `json:"reason"`
}

// Rejection is the data of request.rejected: nothing was emitted.
type Rejection struct {
	Tenant    string `json:"tenant"`
	RequestID string `json:"request_id"`
	Reason    string `json:"reason"`
	// Detail explains the reason (limit counts, invalid options); it names
	// fields and counts, never values.
	Detail string `json:"detail,omitempty"`
	// Count and Limit are set for the limit reasons.
	Count int `json:"count,omitempty"`
	Limit int `json:"limit,omitempty"`
}

// plan is a request's planned conversion.
type plan struct {
	summary  Summary
	commands []engine.Command
	// selection is the selected lead ids, kept so a redelivered request
	// re-plans the same leads.
	selection []string
	// emitted are the clusters' plans to record in the lifecycle once the
	// request goes ahead.
	emitted []emission
}

// emission is one cluster's plan, as Lifecycle.Emitted records it.
type emission struct {
	cluster engine.Cluster
	cmds    []engine.Command
	state   engine.State
	changed bool
}

// planner plans one request.
type planner struct {
	store    Store
	lc       Lifecycle // nil: plan from nothing
	req      *Request
	cfg      *engine.Config
	policy   Policy
	progress func(done, total int)
	p        plan
	outcome  map[string]bool // leads with an outcome
}

func (pl *planner) record(id, outcome, reason string) {
	if pl.outcome[id] {
		return
	}
	pl.outcome[id] = true
	c := &pl.p.summary.Counts
	switch outcome {
	case OutcomeConverted:
		c.Converted++
	case OutcomeMerged:
		c.Merged++
	case OutcomeSkipped:
		c.Skipped++
	case OutcomeFailed:
		c.Failed++
	}
	if outcome == OutcomeSkipped || outcome == OutcomeFailed {
		pl.p.summary.Failures = append(pl.p.summary.Failures, Failure{LeadID: id, Outcome: outcome, Reason: reason})
	}
}

// run selects and plans; a non-nil Rejection means the request must stop.
// frozen, when set, replaces the selection (a redelivered request).
func (pl *planner) run(ctx context.Context, frozen []string) (*plan, *Rejection, error) {
	pl.outcome = map[string]bool{}
	pl.p.summary = Summary{Tenant: pl.req.Tenant, RequestID: pl.req.RequestID, DryRun: pl.req.DryRun, Failures: []Failure{}}
	leads, err := pl.selectLeads(ctx, frozen)
	if err != nil {
		return nil, nil, err
	}
	pl.p.summary.Selected = len(leads) + len(pl.p.summary.Failures)
	maxRecords, maxNew := pl.policy.limits()
	if n := pl.p.summary.Selected; n > maxRecords {
		return nil, pl.reject(ReasonMaxRecords, fmt.Sprintf("%d leads selected, the limit is %d", n, maxRecords), n, maxRecords), nil
	}
	for i, lead := range leads {
		if !pl.outcome[lead.ID] {
			if err := pl.planCluster(ctx, lead); err != nil {
				return nil, nil, err
			}
		}
		if pl.progress != nil {
			pl.progress(i+1, len(leads))
		}
	}
	if n := pl.p.summary.NewRecords.Total(); n > maxNew {
		nr := pl.p.summary.NewRecords
		return nil, pl.reject(ReasonMaxNewRecords, fmt.Sprintf("%d new records (%d contacts, %d accounts, %d opportunities), the limit is %d",
			n, nr.Contacts, nr.Accounts, nr.Opportunities, maxNew), n, maxNew), nil
	}
	pl.p.summary.Commands = len(pl.p.commands)
	slices.SortFunc(pl.p.summary.Failures, func(a, b Failure) int { return strings.Compare(a.LeadID, b.LeadID) })
	return &pl.p, nil, nil
}

func (pl *planner) reject(reason, detail string, n, limit int) *Rejection {
	return &Rejection{Tenant: pl.req.Tenant, RequestID: pl.req.RequestID, Reason: reason, Detail: detail, Count: n, Limit: limit}
}

// selectLeads returns the selected live leads by id; leads named by id
// that are missing or converted get their outcome at once.
func (pl *planner) selectLeads(ctx context.Context, frozen []string) ([]record.Record, error) {
	tenant := pl.req.Tenant
	var leads []record.Record
	ids := frozen
	if ids == nil {
		ids = pl.req.Select.IDs
	}
	if ids != nil {
		ids = slices.Clone(ids)
		slices.Sort(ids)
		for _, id := range slices.Compact(ids) {
			r, ok, err := pl.store.Lead(ctx, tenant, id)
			if err != nil {
				return nil, fmt.Errorf("requests: lead %s: %w", id, err)
			}
			switch {
			case !ok:
				pl.record(id, OutcomeFailed, ReasonNotFound)
			case converted(r):
				pl.record(id, OutcomeSkipped, ReasonAlreadyConverted)
			default:
				leads = append(leads, r)
			}
		}
	} else {
		err := pl.store.Leads(ctx, tenant, func(r record.Record) error {
			if !converted(r) && pl.req.Select.matches(r) {
				leads = append(leads, r)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("requests: select: %w", err)
		}
		slices.SortFunc(leads, func(a, b record.Record) int { return strings.Compare(a.ID, b.ID) })
	}
	pl.p.selection = make([]string, 0, len(leads))
	for _, l := range leads {
		pl.p.selection = append(pl.p.selection, l.ID)
	}
	for _, f := range pl.p.summary.Failures {
		pl.p.selection = append(pl.p.selection, f.LeadID)
	}
	slices.Sort(pl.p.selection)
	return leads, nil
}

// planCluster plans the cluster of a selected lead with all its members.
func (pl *planner) planCluster(ctx context.Context, lead record.Record) error {
	tenant := pl.req.Tenant
	c, err := pl.store.Cluster(ctx, tenant, lead.Ref())
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(c.Records, func(r record.Record) bool { return r.Ref() == lead.Ref() }) {
		// The matcher's view lags the record source: plan the lead alone
		// rather than not at all.
		c.Records = append(c.Records, lead)
	}
	pl.p.summary.Clusters++
	var hist engine.History
	if pl.lc != nil {
		if hist, err = pl.lc.History(ctx, tenant, c); err != nil {
			return fmt.Errorf("requests: lifecycle of %s: %w", c.ID, err)
		}
	}
	// Leads whose conversion was emitted are left out by the plan: their
	// outcome is known first.
	emitted, held, hasContact := historyMarks(&hist)
	var leadIDs []string
	for _, r := range c.Records {
		switch r.Object {
		case record.Lead:
			leadIDs = append(leadIDs, r.ID)
			if emitted[r.ID] {
				pl.record(r.ID, OutcomeSkipped, ReasonConversionPending)
			} else if h, ok := held[r.ID]; ok && !r.ModifiedAt.After(h.ModifiedAt) {
				pl.record(r.ID, OutcomeFailed, h.Reason)
			}
		case record.Contact:
			hasContact = true
		}
	}
	if hasContact && pl.req.duplicateHandling() == DuplicateSkip {
		for _, id := range leadIDs {
			pl.record(id, OutcomeSkipped, ReasonDuplicateExists)
		}
		return nil
	}
	pp := engine.PrepareFrom(pl.cfg, c, hist)
	var accounts map[string]string
	if vs := pp.AccountValues(); len(vs) > 0 {
		if accounts, err = pl.store.ResolveAccounts(ctx, tenant, vs); err != nil {
			return fmt.Errorf("requests: resolve accounts: %w", err)
		}
	}
	res := pp.Plan(accounts)
	if hasContact && pl.req.duplicateHandling() == DuplicateOverwrite {
		overwrite(pl.cfg, c.Records, res.Commands)
	}
	s := &pl.p.summary
	converting := map[string]bool{}
	for i := range res.Commands {
		// The writer's command.result carries it back to the request.
		res.Commands[i].RequestID = pl.req.RequestID
		if d, ok := res.Commands[i].Data.(*engine.LeadConvert); ok {
			converting[d.LeadID] = true
		}
	}
	for _, cmd := range res.Commands {
		switch d := cmd.Data.(type) {
		case *engine.LeadConvert:
			// Into a contact this plan creates, or one that exists or an
			// earlier plan creates.
			outcome := OutcomeConverted
			if d.Contact.ID != "" || d.Contact.FromLead != "" && !converting[d.Contact.FromLead] {
				outcome = OutcomeMerged
			}
			pl.record(d.LeadID, outcome, "")
			if d.Contact.Create {
				s.NewRecords.Contacts++
			}
			if d.Account.Create {
				s.NewRecords.Accounts++
			}
			if d.Opportunity != nil {
				s.NewRecords.Opportunities++
			}
		case *engine.RecordsMerge:
			s.ContactsMerged += len(d.MergedIDs)
		case *engine.ConversionFailed:
			for _, id := range leadIDs {
				pl.record(id, OutcomeFailed, d.Reason)
			}
		case *engine.ReviewRequested:
			for _, id := range leadIDs {
				pl.record(id, OutcomeFailed, d.Reason)
			}
		}
	}
	if len(res.Commands) == 0 {
		for _, id := range leadIDs {
			pl.record(id, OutcomeSkipped, res.Reason)
		}
	}
	pl.p.commands = append(pl.p.commands, res.Commands...)
	st, changed := pp.State()
	pl.p.emitted = append(pl.p.emitted, emission{cluster: c, cmds: res.Commands, state: st, changed: changed})
	return nil
}

// historyMarks returns what a History says of a cluster's leads: those
// whose conversion was emitted, those a writer failed (held until they
// change), and whether a master contact exists or is pending.
func historyMarks(h *engine.History) (emitted map[string]bool, held map[string]engine.Held, master bool) {
	emitted, held = map[string]bool{}, map[string]engine.Held{}
	for _, states := range [][]engine.State{h.Own, h.Split} {
		for i := range states {
			for _, id := range states[i].Converted {
				emitted[id] = true
			}
			for _, hd := range states[i].Held {
				if hd.Ref.Object == record.Lead {
					held[hd.Ref.ID] = hd
				}
			}
		}
	}
	for i := range h.Own {
		master = master || h.Own[i].HasMaster()
	}
	return emitted, held, master
}

// StrategyOverwrite names, in a command's explain block, a field whose value
// a request's duplicate_handling overwrite took from a lead.
const StrategyOverwrite = "overwrite"

// overwrite applies duplicate_handling overwrite to a plan: the fields the
// plan writes on the contact take the leads' non-blank values, the most
// recently modified lead last (it wins). The explain block names those
// fields' strategy "overwrite" and the lead each value came from.
func overwrite(cfg *engine.Config, recs []record.Record, cmds []engine.Command) {
	var leads []record.Record
	for _, r := range recs {
		if r.Object == record.Lead {
			leads = append(leads, r)
		}
	}
	slices.SortStableFunc(leads, func(a, b record.Record) int { return a.ModifiedAt.Compare(b.ModifiedAt) })
	var fields record.Fields
	var ex *engine.Explain
	for i := range cmds {
		var f *record.Fields
		switch d := cmds[i].Data.(type) {
		case *engine.LeadConvert:
			f = &d.Fields
		case *engine.RecordsMerge:
			f = &d.Fields
		default:
			continue
		}
		if fields == nil {
			// The commands of a plan share one field map and explain block:
			// build the new ones once.
			fields = make(record.Fields, len(*f))
			from := map[string]record.Ref{}
			for k, v := range *f {
				fields[k] = v
				if k == cfg.Conversion.ContactAccountField {
					continue
				}
				lf := k
				if m, ok := cfg.ContactFields[k]; ok {
					lf = m
				}
				for _, l := range leads {
					if lv := l.Fields[lf]; !record.IsBlank(lv) {
						fields[k] = lv
						from[k] = l.Ref()
					}
				}
			}
			ex = overwriteExplain(cmds[i].Explain, from)
		}
		*f = fields
		cmds[i].Explain = ex
	}
}

// overwriteExplain returns a copy of ex whose field entries name the leads
// that overwrote them.
func overwriteExplain(ex *engine.Explain, from map[string]record.Ref) *engine.Explain {
	if ex == nil {
		return nil
	}
	out := *ex
	out.Fields = slices.Clone(ex.Fields)
	for i, fe := range out.Fields {
		if ref, ok := from[fe.Field]; ok {
			out.Fields[i] = engine.FieldExplain{Field: fe.Field, Strategy: StrategyOverwrite, From: []record.Ref{ref}}
		}
	}
	return &out
}
