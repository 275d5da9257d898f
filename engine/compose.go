package engine

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/leadconv/leadconv/record"
)

// State is what leadconv already emitted for one cluster: the irreversible
// part of its plans. Planning takes it as input (PrepareFrom) and returns
// it updated (Prepared.State), so a cluster's plans compose: a lead whose
// conversion was emitted is never converted again, and once the cluster has
// a master contact, later members convert into it or are merged into it.
// It is plain data (JSON), kept by the caller between plans.
type State struct {
	// Master is the master contact: an existing contact (ID) or the one
	// created by converting a lead (FromLead). Zero until a plan chose it.
	Master Target `json:"master,omitzero"`
	// Created: the master is a contact leadconv created by converting a
	// lead. With prefer_existing_contact an existing contact that joins
	// later becomes the master and this one is merged into it.
	Created bool `json:"created,omitempty"`
	// Account is the account leads convert into (ID, or FromLead: the
	// account created with that lead's conversion). Zero when none was
	// chosen yet (a plan that only merged contacts).
	Account Target `json:"account,omitzero"`
	// Converted are the leads whose conversion was emitted, by id.
	Converted []string `json:"converted,omitempty"`
	// Merged are the contacts merged into the master: existing ids, or
	// the master of a joined cluster that was pending (FromLead).
	Merged []Target `json:"merged,omitempty"`
	// Fields are the values last sent to the master, under contact names.
	Fields record.Fields `json:"fields,omitempty"`
	// ModifiedAt and CreatedAt are the master's recency as the field
	// strategies see it: the newest modification and the oldest creation
	// among the records folded into it.
	ModifiedAt time.Time `json:"modified_at,omitzero"`
	CreatedAt  time.Time `json:"created_at,omitzero"`
	// Held are records a writer failed to convert or merge: planned no more
	// until they change, handed to a person (review.requested,
	// writer_failed) once.
	Held []Held `json:"held,omitempty"`
}

// Held is a record a writer reported failed.
type Held struct {
	Ref record.Ref `json:"ref"`
	// Reason is the writer's (command.result reason).
	Reason string `json:"reason"`
	// ModifiedAt is the record's modification time when it failed: a later
	// change releases it.
	ModifiedAt time.Time `json:"modified_at"`
	// Reviewed is set once the review was requested.
	Reviewed bool `json:"reviewed,omitempty"`
}

// HasMaster reports whether a master contact was chosen.
func (s *State) HasMaster() bool { return s.Master != (Target{}) }

// IsZero reports whether nothing was emitted.
func (s *State) IsZero() bool {
	return !s.HasMaster() && len(s.Converted) == 0 && len(s.Merged) == 0 && len(s.Held) == 0
}

// Claims lists the records the state speaks for, sorted: converted leads,
// merged contacts, the master record and held records. A caller finds the
// states of a cluster's members by these.
func (s *State) Claims() []record.Ref {
	refs := make([]record.Ref, 0, len(s.Converted)+len(s.Merged)+len(s.Held)+1)
	for _, id := range s.Converted {
		refs = append(refs, record.Ref{Object: record.Lead, ID: id})
	}
	for _, t := range append(slices.Clip(s.Merged), s.Master) {
		switch {
		case t.ID != "":
			refs = append(refs, record.Ref{Object: record.Contact, ID: t.ID})
		case t.FromLead != "":
			refs = append(refs, record.Ref{Object: record.Lead, ID: t.FromLead})
		}
	}
	for _, h := range s.Held {
		refs = append(refs, h.Ref)
	}
	slices.SortFunc(refs, cmpRef)
	return slices.Compact(refs)
}

// Reconcile replaces a pending target (FromLead) by the id the writer
// reported for it: the contact and account lead was converted into. It
// reports whether anything changed.
func (s *State) Reconcile(lead, contactID, accountID string) bool {
	changed := false
	if contactID != "" {
		if s.Master.FromLead == lead {
			s.Master, changed = Target{ID: contactID}, true
		}
		for i, t := range s.Merged {
			if t.FromLead == lead {
				s.Merged[i], changed = Target{ID: contactID}, true
			}
		}
	}
	if accountID != "" && s.Account.FromLead == lead {
		s.Account, changed = Target{ID: accountID}, true
	}
	return changed
}

// Release takes back an emitted conversion or merge a writer reported
// failed with reason. The record it failed on is held (see Held; modified
// gives the records' modification times). When the failed conversion was
// the one creating the master, the master (and an account it created) is
// released too, and the conversions into it, which fail with it, are
// released without being held.
func (s *State) Release(cmd *Command, reason string, modified map[record.Ref]time.Time) {
	switch d := cmd.Data.(type) {
	case *LeadConvert:
		if !slices.Contains(s.Converted, d.LeadID) {
			return
		}
		s.Converted = slices.DeleteFunc(s.Converted, func(id string) bool { return id == d.LeadID })
		ref := record.Ref{Object: record.Lead, ID: d.LeadID}
		switch {
		case s.Master.FromLead == d.LeadID:
			// The root: the master contact was never created.
			s.Master = Target{}
			if s.Account.FromLead == d.LeadID {
				s.Account = Target{}
			}
			s.hold(ref, reason, modified[ref])
		case d.Contact.FromLead != "" && d.Contact.FromLead != s.Master.FromLead,
			d.Account.FromLead != "" && d.Account.FromLead != s.Account.FromLead:
			// Failed because what it converts into was released.
		default:
			s.hold(ref, reason, modified[ref])
		}
	case *RecordsMerge:
		for _, id := range d.MergedIDs {
			s.Merged = slices.DeleteFunc(s.Merged, func(t Target) bool { return t.ID == id })
			ref := record.Ref{Object: record.Contact, ID: id}
			s.hold(ref, reason, modified[ref])
		}
		for _, l := range d.MergedFromLeads {
			s.Merged = slices.DeleteFunc(s.Merged, func(t Target) bool { return t.FromLead == l })
		}
	}
}

func (s *State) hold(ref record.Ref, reason string, at time.Time) {
	if slices.ContainsFunc(s.Held, func(h Held) bool { return h.Ref == ref }) {
		return
	}
	s.Held = append(s.Held, Held{Ref: ref, Reason: reason, ModifiedAt: at})
	slices.SortFunc(s.Held, func(a, b Held) int { return cmpRef(a.Ref, b.Ref) })
}

func cmpRef(a, b record.Ref) int {
	return cmp.Or(strings.Compare(a.ID, b.ID), strings.Compare(string(a.Object), string(b.Object)))
}

func cmpTarget(a, b Target) int {
	return cmp.Or(strings.Compare(a.ID, b.ID), strings.Compare(a.FromLead, b.FromLead))
}

// History is what was emitted for the records of a cluster about to be
// planned.
type History struct {
	// Own are the states of the cluster itself and of the clusters joined
	// into it: their masters carry over (two or more masters are a join:
	// one is chosen under the master strategy, the others merged into it).
	Own []State `json:"Own,omitempty"`
	// Split are the states of clusters this one was split off from: their
	// emitted conversions and merges stay final (those records are never
	// planned again), their masters do not carry over.
	Split []State `json:"Split,omitempty"`
}

func (h *History) empty() bool { return len(h.Own) == 0 && len(h.Split) == 0 }

// PrepareFrom prepares the plan of c relative to what was emitted for its
// records (see State). With an empty History it is Prepare.
func PrepareFrom(cfg *Config, c Cluster, h History) *Prepared {
	pp := &Prepared{c: c}
	pp.p = planner{cc: compile(cfg), c: &pp.c}
	if !h.empty() {
		pp.p.hist = &h
	}
	if r, ok := pp.p.prepare(); !ok {
		pp.done = &r
	}
	return pp
}

// State returns the cluster's state after the plan Plan returned: the
// History folded together with what the plan emitted. changed is false when
// the plan emitted nothing irreversible (nothing, a review or a failure):
// the History's states stand as they were.
func (pp *Prepared) State() (s State, changed bool) {
	return pp.p.next, pp.p.changed
}

// marks are the records a History says are done.
type marks struct {
	converted map[string]bool
	merged    map[string]bool
	held      map[record.Ref]Held
}

func (p *planner) historyMarks() marks {
	m := marks{converted: map[string]bool{}, merged: map[string]bool{}, held: map[record.Ref]Held{}}
	for _, states := range [][]State{p.hist.Own, p.hist.Split} {
		for i := range states {
			s := &states[i]
			for _, id := range s.Converted {
				m.converted[id] = true
			}
			for _, t := range s.Merged {
				if t.ID != "" {
					m.merged[t.ID] = true
				}
			}
			for _, h := range s.Held {
				m.held[h.Ref] = h
			}
		}
	}
	return m
}

// gatherFrom is gather for a cluster with a History: records already
// converted or merged are left out, each carried-over master becomes one
// member (its record, or a contact made of the values last sent to it, with
// those values on top: what leadconv wrote is what the contact holds), and
// held records stay out until they change.
func (p *planner) gatherFrom() bool {
	mk := p.historyMarks()
	masters := make([]*State, 0, len(p.hist.Own))
	for i := range p.hist.Own {
		s := &p.hist.Own[i]
		if s.HasMaster() && !slices.ContainsFunc(masters, func(o *State) bool { return o.Master == s.Master }) {
			masters = append(masters, s)
		}
	}
	slices.SortFunc(masters, func(a, b *State) int { return cmpTarget(a.Master, b.Master) })
	present := make([]bool, len(masters))
	p.members = make([]member, 0, len(p.c.Records)+len(masters))
	p.heldOut = p.heldOut[:0]
	for i := range p.c.Records {
		r := &p.c.Records[i]
		if r.Object != record.Lead && r.Object != record.Contact {
			continue
		}
		p.total++
		if r.Object == record.Lead && mk.converted[r.ID] || r.Object == record.Contact && mk.merged[r.ID] {
			continue
		}
		if h, ok := mk.held[r.Ref()]; ok {
			if !r.ModifiedAt.After(h.ModifiedAt) {
				p.heldOut = append(p.heldOut, h)
				continue
			}
		}
		if r.Object == record.Contact {
			if k := slices.IndexFunc(masters, func(s *State) bool { return s.Master.ID == r.ID }); k >= 0 {
				present[k] = true
				p.members = append(p.members, p.masterMember(masters[k], r))
				p.contacts++
				continue
			}
			p.contacts++
		} else {
			p.leads++
		}
		p.members = append(p.members, member{rec: r, contact: r.Object == record.Contact})
	}
	for k, s := range masters {
		if !present[k] {
			p.members = append(p.members, p.masterMember(s, nil))
			p.contacts++
		}
	}
	p.kept = len(masters)
	slices.SortFunc(p.members, byRecency)
	return len(p.members) > 0
}

// masterMember is the member standing for a carried-over master: its
// record when the cluster holds it, else a contact of the values last sent.
func (p *planner) masterMember(s *State, r *record.Record) member {
	rec := &record.Record{Tenant: p.c.Tenant, Object: record.Contact, ID: s.Master.ID,
		CreatedAt: s.CreatedAt, ModifiedAt: s.ModifiedAt}
	if s.Master.FromLead != "" {
		// Named by the lead it is converted from until the writer says
		// which id the contact got.
		rec.Object, rec.ID = record.Lead, s.Master.FromLead
	}
	if r != nil {
		*rec = *r
		rec.Fields = nil
		if r.ModifiedAt.Before(s.ModifiedAt) {
			rec.ModifiedAt = s.ModifiedAt
		}
		if !s.CreatedAt.IsZero() && s.CreatedAt.Before(r.CreatedAt) {
			rec.CreatedAt = s.CreatedAt
		}
	}
	f := make(record.Fields, len(s.Fields)+4)
	if r != nil {
		for k, v := range r.Fields {
			f[k] = v
		}
	}
	for k, v := range s.Fields {
		f[k] = v
	}
	rec.Fields = f
	return member{rec: rec, contact: true, st: s}
}

// nextState folds the History and what the plan emitted into the
// cluster's new state. into is the master contact, acct the account the
// conversions used, converted and merged what the plan emitted.
func (p *planner) nextState(into Target, acct Target, converted []string, merged []Target, fields record.Fields) {
	m := p.members[p.master]
	created := !m.contact || m.st != nil && m.st.Created
	var n State
	if p.hist != nil {
		for _, states := range [][]State{p.hist.Own, p.hist.Split} {
			for i := range states {
				n.Converted = append(n.Converted, states[i].Converted...)
				n.Merged = append(n.Merged, states[i].Merged...)
				n.Held = append(n.Held, states[i].Held...)
			}
		}
	}
	n.Master, n.Created, n.Account, n.Fields = into, created, acct, fields
	n.Converted = append(n.Converted, converted...)
	n.Merged = append(n.Merged, merged...)
	slices.Sort(n.Converted)
	n.Converted = slices.Compact(n.Converted)
	slices.SortFunc(n.Merged, cmpTarget)
	n.Merged = slices.Compact(n.Merged)
	// Held records that came back (changed since) are planned again.
	n.Held = slices.DeleteFunc(n.Held, func(h Held) bool {
		return !slices.ContainsFunc(p.heldOut, func(o Held) bool { return o.Ref == h.Ref }) && p.inCluster(h.Ref)
	})
	for i := range n.Held {
		if slices.ContainsFunc(p.reviewed, func(r record.Ref) bool { return r == n.Held[i].Ref }) {
			n.Held[i].Reviewed = true
		}
	}
	slices.SortFunc(n.Held, func(a, b Held) int { return cmpRef(a.Ref, b.Ref) })
	n.Held = slices.CompactFunc(n.Held, func(a, b Held) bool { return a.Ref == b.Ref })
	for _, m := range p.members {
		if n.ModifiedAt.Before(m.rec.ModifiedAt) {
			n.ModifiedAt = m.rec.ModifiedAt
		}
		if n.CreatedAt.IsZero() || m.rec.CreatedAt.Before(n.CreatedAt) {
			n.CreatedAt = m.rec.CreatedAt
		}
	}
	p.next, p.changed = n, true
}

func (p *planner) inCluster(ref record.Ref) bool {
	return slices.ContainsFunc(p.c.Records, func(r record.Record) bool { return r.Ref() == ref })
}
