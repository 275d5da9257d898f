package engine

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strings"

	"github.com/leadconv/leadconv/record"
)

// ReasonInvalidConfig is the review reason of a plan made with a config that
// fails Validate: nothing irreversible happens on a broken config.
const ReasonInvalidConfig = "invalid_config"

// planner holds one planning run.
type planner struct {
	cc       *compiled
	c        *Cluster
	members  []member // recency order
	leads    int
	contacts int
	master   int // index into members
	ex       *Explain
	names    []string // lead names of the result's fields, sorted
	filled   []int    // non-blank fields per member (most_complete)
	values   []any    // final values, parallel to names
	refs     []record.Ref
	ints     []int
	cmds     []Command

	// Composition (PrepareFrom): hist is nil for a plan from nothing.
	acctFrom int // the lead naming the account of a contact master without one, -1 none
	hist     *History
	kept     int    // carried-over masters among the members
	total    int    // the cluster's leads and contacts, done ones included
	heldOut  []Held // held records left out
	reviewed []record.Ref
	next     State
	changed  bool
}

// Plan decides one cluster version: it picks the master, computes the
// master contact's fields, applies the conversion options and returns the
// commands a CRM writer executes in order. It is pure and deterministic: the
// same config and cluster (in any record order) give the same plan and
// command ids.
//
// cfg should have passed Validate; a config that does not plans a
// review.requested (invalid_config) only. Plan prepares cfg once and caches
// that per *Config, so a Config must not be modified after it was planned
// with. Commands of one plan share their Explain and field maps: treat them
// as read-only.
func Plan(cfg *Config, c Cluster) Result {
	p := planner{cc: compile(cfg), c: &c}
	return p.run()
}

// AccountValues returns the account field values a caller must resolve to
// account ids (Cluster.Accounts) before planning records as one cluster: the
// master contact's final account value when the plan would convert leads
// into an account chosen by name. It returns nil when no lookup is needed
// (nothing to convert, a review instead, the master is a contact already
// linked to an account, a blank value). Values are as they appear on the records, untrimmed, so
// they can key Cluster.Accounts directly.
func AccountValues(cfg *Config, recs []record.Record) []string {
	p := planner{cc: compile(cfg), c: &Cluster{Records: recs}, ex: &Explain{}}
	if p.cc.err != nil || !p.gather() || p.leads == 0 || p.gate() != "" || p.total > p.cc.cfg.MaxClusterSize {
		return nil
	}
	p.collectNames()
	if p.selectMaster() != "" {
		return nil
	}
	if p.knownAccount() {
		return nil
	}
	v := p.accountValue()
	if record.IsBlank(v) {
		return nil
	}
	return []string{record.String(v)}
}

func (p *planner) run() Result {
	if r, ok := p.prepare(); !ok {
		return r
	}
	return p.plan()
}

// prepare picks the master and resolves every field, everything but the
// account lookup. false returns the whole plan, decided before that.
func (p *planner) prepare() (Result, bool) {
	p.ex = &Explain{}
	if p.cc.err != nil {
		p.gather()
		return p.review(ReasonInvalidConfig, 0, 0), false
	}
	if !p.gather() {
		return Result{Reason: NothingNoRecords}, false
	}
	if why := p.gate(); why != "" {
		return Result{Reason: why}, false
	}
	if n := p.total; n > p.cc.cfg.MaxClusterSize {
		return p.review(ReasonClusterTooLarge, n, p.cc.cfg.MaxClusterSize), false
	}
	p.collectNames()
	if why := p.selectMaster(); why != "" {
		return p.review(why, 0, 0), false
	}
	p.resolveFields()
	return Result{}, true
}

// plan plans the commands of a prepared cluster.
func (p *planner) plan() Result {
	m := p.members[p.master]
	master := m.ref()
	fields := p.contactFields()
	// into is the master contact the others convert or merge into.
	into := Target{ID: master.ID}
	switch {
	case m.st != nil:
		into = m.st.Master
	case !m.contact:
		into = Target{FromLead: master.ID}
	}
	var acctState Target
	if m.st != nil {
		acctState = m.st.Account
	}
	if p.leads == 0 {
		p.cmds = make([]Command, 0, p.mergeCount()+len(p.heldOut))
		merged := p.planMerges(into, fields)
		p.planHeldReviews()
		if len(merged) > 0 || p.kept > 0 {
			p.nextState(into, acctState, nil, merged, p.sentFields(fields, len(merged) > 0))
		}
		return p.finish(master, p.nothing())
	}
	acct, account, ok := p.account()
	if !ok {
		p.cmds = make([]Command, 0, 1)
		p.add(KindConversionFailed, p.c.ID, &ConversionFailed{Reason: ReasonBlankAccount, Master: master, Records: p.refsByID()})
		return p.finish(master, ReasonBlankAccount)
	}
	p.cmds = make([]Command, 0, p.leads+p.mergeCount()+len(p.heldOut))
	converted := p.planConverts(into, acct, account, fields)
	merged := p.planMerges(into, fields)
	p.planHeldReviews()
	switch {
	case acct.Create:
		acctState = Target{FromLead: converted[0]}
	case acct.ID != "":
		acctState = Target{ID: acct.ID}
	case acct.FromLead != "":
		acctState = Target{FromLead: acct.FromLead}
	}
	p.nextState(into, acctState, converted, merged, fields)
	return p.finish(master, "")
}

// sentFields are the master's values after a plan: fields when a command
// carried them, else the values sent before.
func (p *planner) sentFields(fields record.Fields, sent bool) record.Fields {
	if sent {
		return fields
	}
	if m := p.members[p.master]; m.st != nil {
		return m.st.Fields
	}
	return nil
}

// nothing is the reason of a composed plan without commands.
func (p *planner) nothing() string {
	if len(p.cmds) == 0 {
		return NothingEmitted
	}
	return ""
}

// Prepared is a cluster planned up to the account lookup: the master and
// every field are decided. A caller that resolves accounts before planning
// (AccountValues, then Plan with Cluster.Accounts) picks the master and
// reads every record's fields twice; Prepare, then AccountValues and Plan
// on the result, does it once, with the same outcome.
type Prepared struct {
	c    Cluster
	p    planner
	done *Result // the plan, when it was decided before the account
}

// Prepare prepares cfg's plan of c (as Plan does, see there); c.Accounts is
// ignored: Prepared.Plan takes the accounts.
func Prepare(cfg *Config, c Cluster) *Prepared {
	pp := &Prepared{c: c}
	pp.p = planner{cc: compile(cfg), c: &pp.c}
	if r, ok := pp.p.prepare(); !ok {
		pp.done = &r
	}
	return pp
}

// AccountValues returns the values to resolve to account ids before Plan,
// as the function AccountValues does for the same records.
func (pp *Prepared) AccountValues() []string {
	p := &pp.p
	if pp.done != nil || p.leads == 0 || p.knownAccount() {
		return nil
	}
	v := p.accountValue()
	if record.IsBlank(v) {
		return nil
	}
	return []string{record.String(v)}
}

// Plan returns the plan, the same as Plan(cfg, c) with c.Accounts set to
// accounts. Call it once.
func (pp *Prepared) Plan(accounts map[string]string) Result {
	if pp.done != nil {
		return *pp.done
	}
	pp.c.Accounts = accounts
	return pp.p.plan()
}

// gather keeps the cluster's leads and contacts in recency order; accounts
// never join person clusters.
func (p *planner) gather() bool {
	if p.hist != nil {
		return p.gatherFrom()
	}
	p.members = make([]member, 0, len(p.c.Records))
	for i := range p.c.Records {
		r := &p.c.Records[i]
		switch r.Object {
		case record.Lead:
			p.leads++
		case record.Contact:
			p.contacts++
		default:
			continue
		}
		p.members = append(p.members, member{rec: r, contact: r.Object == record.Contact})
	}
	p.total = len(p.members)
	slices.SortFunc(p.members, byRecency)
	return len(p.members) > 0
}

// gate says why a cluster plans nothing ("" when it plans).
func (p *planner) gate() string {
	cfg := &p.cc.cfg
	if p.kept > 0 {
		// Leadconv converted leads into this cluster's master before: later
		// members join it whatever merge_contacts says.
		if !cfg.AutoConvert {
			return NothingAutoConvert
		}
		return ""
	}
	switch {
	case p.leads == 0:
		if !cfg.MergeContacts {
			return NothingNoLead
		}
		if p.contacts < 2 {
			return NothingNoDuplicates
		}
	case len(p.members) == 1:
		if cfg.ConvertWhen == nil {
			return NothingNoDuplicates
		}
		if !p.convertWhen(p.members[0]) {
			return NothingNoConvertWhen
		}
	case !cfg.AutoConvert:
		return NothingAutoConvert
	}
	return ""
}

// convertWhen evaluates the single-lead filter.
func (p *planner) convertWhen(m member) bool {
	w := p.cc.cfg.ConvertWhen
	v := p.value(m, w.Field)
	match := func(want string) bool {
		if record.IsBlank(want) {
			return record.IsBlank(v)
		}
		return !record.IsBlank(v) && equalValue(record.String(v), want)
	}
	if w.Equals != nil {
		return match(*w.Equals)
	}
	return slices.ContainsFunc(w.In, match)
}

// contactFields returns the final values under contact names. A field that
// ends nil and was absent (or null) on the master is left out: there is
// nothing to clear.
func (p *planner) contactFields() record.Fields {
	out := make(record.Fields, len(p.names))
	m := p.members[p.master]
	for i, l := range p.names {
		v := p.values[i]
		if v == nil && p.value(m, l) == nil {
			continue
		}
		c := p.cc.contactName(l)
		if p.cc.onContact != nil && !p.cc.onContact[c] {
			continue // not a field of the CRM's contacts (Company, Status)
		}
		out[c] = v
	}
	return out
}

// mappedFields renames the final values for an account or opportunity:
// mapped lead fields take the mapped name, "-" drops a field, unmapped fields
// are dropped (unmapped_fields: drop, the default with a CRM model) or carry
// over under their lead name.
func (p *planner) mappedFields(mapping map[string]string) record.Fields {
	out := make(record.Fields, len(p.names))
	m := p.members[p.master]
	for i, l := range p.names {
		v := p.values[i]
		if v == nil && p.value(m, l) == nil {
			continue
		}
		if to, ok := mapping[l]; ok {
			if to == "-" {
				continue
			}
			l = to
		} else if p.cc.drop {
			continue
		}
		out[l] = v
	}
	return out
}

func (p *planner) finish(master record.Ref, reason string) Result {
	p.assignIDs()
	return Result{Commands: p.cmds, Master: master, Reason: reason}
}

// review plans a single review.requested naming every record.
func (p *planner) review(reason string, size, limit int) Result {
	// Empty lists, not null: the explain block has one shape for every plan.
	if p.ex.Master.Candidates == nil {
		// An invalid config's strategy may be no strategy at all ("flow"):
		// the explain block names only real ones.
		if contains(MasterStrategies, p.cc.cfg.Master.Strategy) {
			p.ex.Master.Strategy = p.cc.cfg.Master.Strategy
		}
		p.ex.Master.Candidates = []Candidate{}
	}
	p.ex.Fields = []FieldExplain{}
	p.cmds = make([]Command, 0, 1)
	p.add(KindReviewRequested, p.c.ID, &ReviewRequested{Reason: reason, Records: p.refsByID(), Size: size, Limit: limit})
	p.assignIDs()
	return Result{Commands: p.cmds, Reason: reason}
}

// refsByID lists the members sorted by id.
func (p *planner) refsByID() []record.Ref {
	refs := make([]record.Ref, len(p.members))
	for i, m := range p.members {
		refs[i] = m.ref()
	}
	slices.SortFunc(refs, func(a, b record.Ref) int {
		if c := strings.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		return strings.Compare(string(a.Object), string(b.Object))
	})
	return refs
}

// others returns the indexes of members of one object, master excluded,
// sorted by id: commands come out in a stable, readable order.
func (p *planner) others(obj record.Object) []int {
	idx := make([]int, 0, len(p.members))
	for i, m := range p.members {
		if i != p.master && m.contact == (obj == record.Contact) {
			idx = append(idx, i)
		}
	}
	slices.SortFunc(idx, func(a, b int) int { return strings.Compare(p.members[a].rec.ID, p.members[b].rec.ID) })
	return idx
}

func (p *planner) mergeCount() int {
	n := p.contacts
	if p.members[p.master].contact {
		n--
	}
	if n <= 0 {
		return 0
	}
	per := p.cc.limits.MergeRecords - 1
	return (n + per - 1) / per
}

// planMerges merges the non-master contacts into the master in batches the
// CRM allows, each batch chained on the same master, and returns what it
// merged. A carried-over master that lost a join is merged like any contact;
// one still pending (the contact of a lead conversion) is named by its lead.
func (p *planner) planMerges(master Target, fields record.Fields) []Target {
	idx := p.others(record.Contact)
	per := p.cc.limits.MergeRecords - 1
	var all []Target
	for b := 0; len(idx) > 0; b++ {
		n := min(per, len(idx))
		d := &RecordsMerge{Object: record.Contact, Master: master, Batch: b, Fields: fields}
		names := make([]string, 0, n)
		for _, j := range idx[:n] {
			m := p.members[j]
			t := Target{ID: m.rec.ID}
			if m.st != nil {
				t = m.st.Master
			}
			if t.FromLead != "" {
				d.MergedFromLeads = append(d.MergedFromLeads, t.FromLead)
				names = append(names, t.FromLead)
			} else {
				d.MergedIDs = append(d.MergedIDs, t.ID)
				names = append(names, t.ID)
			}
			all = append(all, t)
		}
		if d.MergedIDs == nil {
			d.MergedIDs = []string{}
		}
		idx = idx[n:]
		p.add(KindRecordsMerge, strings.Join(names, ","), d)
	}
	return all
}

// planHeldReviews asks a person to look at records a writer failed on,
// once per record.
func (p *planner) planHeldReviews() {
	for _, h := range p.heldOut {
		if h.Reviewed {
			continue
		}
		p.add(KindReviewRequested, h.Ref.ID, &ReviewRequested{Reason: ReasonWriterFailed, Records: []record.Ref{h.Ref}, WriterReason: h.Reason})
		p.reviewed = append(p.reviewed, h.Ref)
	}
}

func (p *planner) add(kind, subject string, data any) {
	p.cmds = append(p.cmds, Command{
		Kind: kind, Tenant: p.c.Tenant, ClusterID: p.c.ID, ClusterVersion: p.c.Version,
		Seq: len(p.cmds), Subject: subject, Data: data, Explain: p.ex,
	})
}

// idLen is the length of a command id: 128 bits of SHA-256 in hex.
const idLen = 32

// assignIDs sets every command's deterministic id: SHA-256 over the
// length-prefixed tenant, cluster id, version, kind and subject. All ids are
// written into one string and sliced, one allocation per plan.
func (p *planner) assignIDs() {
	var sb strings.Builder
	sb.Grow(idLen * len(p.cmds))
	var hx [idLen]byte
	for i := range p.cmds {
		commandID(&hx, &p.cmds[i])
		sb.Write(hx[:])
	}
	ids := sb.String()
	for i := range p.cmds {
		p.cmds[i].ID = ids[i*idLen : (i+1)*idLen]
	}
}

// commandID writes c's id into hx.
func commandID(hx *[idLen]byte, c *Command) {
	var in [256]byte
	b := in[:0]
	for _, s := range [...]string{c.Tenant, c.ClusterID, c.Kind, c.Subject} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(c.ClusterVersion))
	sum := sha256.Sum256(b)
	hex.Encode(hx[:], sum[:idLen/2])
}
