package engine

import (
	"slices"

	"github.com/leadconv/leadconv/record"
)

// Account sources (AccountExplain.Source).
const (
	accountEmitted     = "emitted"
	accountFromContact = "contact"
	accountExisting    = "existing"
	accountCreate      = "create"
	accountUseExisting = "use_existing"
	accountBlank       = "blank"
	opportunityField   = "field"
	opportunityAccount = "account"
)

// contactAccount returns the account id of a master that is an existing
// contact: leads converted into it join that account.
func (p *planner) contactAccount() string {
	m := p.members[p.master]
	if !m.contact {
		return ""
	}
	return text(m.rec.Fields[p.cc.cfg.Conversion.ContactAccountField])
}

// knownAccount reports whether the account is known without a lookup: an
// earlier plan's, or the existing master contact's.
func (p *planner) knownAccount() bool {
	if st := p.members[p.master].st; st != nil && st.Account != (Target{}) {
		return true
	}
	return p.contactAccount() != ""
}

// accountValue returns the master contact's final account field value.
// An existing contact without account link and without a value of its own
// (kept as the master by prefer_existing_contact) takes the value of the
// most recently modified lead that has one: its leads' company is the
// account they convert into; p.acctFrom names that lead.
func (p *planner) accountValue() any {
	v := p.finalAccountValue()
	p.acctFrom = -1
	if !record.IsBlank(v) || !p.members[p.master].contact {
		return v
	}
	name := p.cc.cfg.Conversion.AccountField
	for i, m := range p.members {
		if lv := p.value(m, name); !m.contact && !record.IsBlank(lv) {
			p.acctFrom = i
			return lv
		}
	}
	return v
}

func (p *planner) finalAccountValue() any {
	name := p.cc.cfg.Conversion.AccountField
	if p.values != nil {
		if i, ok := slices.BinarySearch(p.names, name); ok {
			return p.values[i]
		}
		return nil
	}
	o := p.resolve(name, p.cc.rule(name))
	if o.masterKept {
		return p.value(p.members[p.master], name)
	}
	return o.value
}

// account chooses the account of the conversion: the existing master
// contact's account, else the final account value resolved through
// Cluster.Accounts or created, else the blank account strategy. false means
// the conversion fails (blank account, do_not_create).
func (p *planner) account() (acct AccountTarget, name string, ok bool) {
	if st := p.members[p.master].st; st != nil && st.Account != (Target{}) {
		p.ex.Account = &AccountExplain{Source: accountEmitted, ID: st.Account.ID}
		return AccountTarget{Target: st.Account}, "", true
	}
	if id := p.contactAccount(); id != "" {
		p.ex.Account = &AccountExplain{Source: accountFromContact, ID: id}
		return AccountTarget{Target: Target{ID: id}}, "", true
	}
	v := p.accountValue()
	if record.IsBlank(v) {
		ba := p.cc.cfg.Conversion.BlankAccount
		if ba.Strategy == AccountUseExisting {
			p.ex.Account = &AccountExplain{Source: accountUseExisting, ID: ba.AccountID}
			return AccountTarget{Target: Target{ID: ba.AccountID}}, "", true
		}
		p.ex.Account = &AccountExplain{Source: accountBlank}
		return AccountTarget{}, "", false
	}
	name = text(v)
	var from *record.Ref
	if p.acctFrom >= 0 {
		r := p.members[p.acctFrom].ref()
		from = &r
	}
	if id := p.c.Accounts[record.String(v)]; id != "" {
		p.ex.Account = &AccountExplain{Source: accountExisting, ID: id, From: from}
		return AccountTarget{Target: Target{ID: id}}, name, true
	}
	p.ex.Account = &AccountExplain{Source: accountCreate, From: from}
	return AccountTarget{Target: Target{Create: true}, Name: name, Fields: p.mappedFields(p.cc.cfg.Conversion.AccountFields)}, name, true
}

// opportunity returns the opportunity the first conversion creates, nil
// when none is configured. Its name comes from name_from on the master
// contact's final values, else from the account's name; when only the CRM
// knows that name (an account chosen by id), Name is empty and NameSource
// says "account".
func (p *planner) opportunity(account string) *Opportunity {
	oc := p.cc.cfg.Conversion.Opportunity
	if oc.Strategy != OpportunityCreate {
		return nil
	}
	o := &Opportunity{NameSource: opportunityField, Fields: p.mappedFields(p.cc.cfg.Conversion.OpportunityFields)}
	if i, ok := slices.BinarySearch(p.names, oc.NameFrom); ok {
		o.Name = text(p.values[i])
	}
	if o.Name == "" {
		o.NameSource = opportunityAccount
		o.Name = account
	}
	return o
}

// planConverts plans one lead.convert per lead and returns the converted
// lead ids in plan order: the master lead first (it creates the contact),
// then the others by id into into. A conversion that creates the contact or
// the account is alone in batch 0, since the others refer to what it
// creates; the rest fill batches of the CRM's convert limit. Only a
// cluster's first conversion creates an opportunity.
func (p *planner) planConverts(into Target, acct AccountTarget, account string, fields record.Fields) []string {
	leads := p.others(record.Lead)
	masterLead := !p.members[p.master].contact
	if masterLead {
		leads = slices.Insert(leads, 0, p.master)
	}
	status := p.cc.cfg.Conversion.ConvertedStatus
	per := max(p.cc.limits.ConvertBatch, 1)
	data := make([]LeadConvert, len(leads))
	ids := make([]string, len(leads))
	first := p.members[leads[0]].rec.ID
	alone := masterLead || acct.Create
	for k, i := range leads {
		id := p.members[i].rec.ID
		ids[k] = id
		d := &data[k]
		*d = LeadConvert{LeadID: id, ConvertedStatus: status, Fields: fields}
		switch {
		case masterLead && k == 0:
			d.Contact = Target{Create: true}
		case masterLead:
			d.Contact = Target{FromLead: first}
		default:
			d.Contact = into
		}
		if k == 0 {
			d.Account = acct
			if p.firstConversion() {
				d.Opportunity = p.opportunity(account)
			}
		} else if acct.Create {
			d.Account = AccountTarget{Target: Target{FromLead: first}}
		} else {
			d.Account = AccountTarget{Target: acct.Target}
		}
		switch {
		case alone && k == 0:
			d.Batch = 0
		case alone:
			d.Batch = 1 + (k-1)/per
		default:
			d.Batch = k / per
		}
		p.add(KindLeadConvert, id, d)
	}
	return ids
}

// firstConversion reports whether no conversion of the cluster was emitted
// before this plan.
func (p *planner) firstConversion() bool {
	if p.hist == nil {
		return true
	}
	for _, s := range p.hist.Own {
		if len(s.Converted) > 0 {
			return false
		}
	}
	return true
}
