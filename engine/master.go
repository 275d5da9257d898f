package engine

import (
	"slices"
	"strconv"
	"time"

	"github.com/leadconv/leadconv/record"
)

// score is what the master strategy compared for one member.
type score struct {
	qualified bool
	n         int // priority (specified_values), count (most_complete, most_attachments)
	t         time.Time
}

// Fallback reasons (MasterExplain.FallbackReason).
const (
	fallbackNoCandidate = "no_candidate"
	fallbackTie         = "tie"
)

// How an earlier plan's master carried over (MasterExplain.Kept).
const (
	keptEmitted = "emitted"
	keptJoined  = "joined"
	keptMoved   = "moved"
)

// Tie-break rules (MasterExplain.TieBreak).
const (
	tieNewestModified = "newest_modified"
	tieSmallestID     = "smallest_id"
)

// selectMaster picks the master into p.master and fills p.ex.Master. It
// returns a review reason when the fallback is do_not_convert and the
// primary strategy could not decide.
func (p *planner) selectMaster() (review string) {
	cfg := &p.cc.cfg.Master
	me := &p.ex.Master
	me.Strategy = cfg.Strategy
	if cfg.Strategy == MasterNewestDate || cfg.Strategy == MasterOldestDate || cfg.Strategy == MasterSpecifiedValues {
		me.Field = cfg.Field
	}
	ms := p.members
	prefer := p.cc.cfg.PreferExistingContact
	existing := func(m member) bool { return m.contact && m.st == nil }
	if p.kept == 1 && prefer && slices.ContainsFunc(ms, existing) && ms[slices.IndexFunc(ms, func(m member) bool { return m.st != nil })].st.Created {
		// The master is a contact leadconv created and an existing contact
		// joined: the existing one becomes the master, leadconv's is merged
		// into it (nothing emitted needs undoing: the merge moves the
		// converted leads' links).
		me.PreferExistingContact, me.Kept = true, keptMoved
		return p.pickMaster(ms, existing)
	}
	if p.kept == 1 {
		// An earlier plan chose the master: it stays, whatever the strategy
		// would say now, so nothing emitted needs undoing.
		i := slices.IndexFunc(ms, func(m member) bool { return m.st != nil })
		s, shown := p.score(i)
		m := ms[i]
		me.Candidates = []Candidate{{Object: m.rec.Object, ID: m.rec.ID, Value: shown, Qualified: s.qualified, Top: true,
			ModifiedAt: m.rec.ModifiedAt, CreatedAt: m.rec.CreatedAt}}
		me.Kept, me.Winner, p.master = keptEmitted, m.ref(), i
		return ""
	}
	// eligible limits the candidates: to the masters of joined clusters
	// (with prefer_existing_contact, those that are not leadconv's own when
	// there are any), or to existing contacts.
	var eligible func(m member) bool
	switch {
	case p.kept > 1:
		me.Kept = keptJoined
		eligible = func(m member) bool { return m.st != nil }
		if prefer && slices.ContainsFunc(ms, func(m member) bool { return m.st != nil && !m.st.Created }) {
			me.PreferExistingContact = true
			eligible = func(m member) bool { return m.st != nil && !m.st.Created }
		}
	case prefer && p.contacts > 0 && p.leads > 0:
		me.PreferExistingContact = true
		eligible = func(m member) bool { return m.contact }
	default:
		eligible = func(member) bool { return true }
	}
	return p.pickMaster(ms, eligible)
}

// pickMaster runs the master strategy and its fallback among the eligible
// members.
func (p *planner) pickMaster(ms []member, eligible func(member) bool) (review string) {
	cfg := &p.cc.cfg.Master
	me := &p.ex.Master
	me.Candidates = make([]Candidate, len(ms))
	scores := make([]score, len(ms))
	best := -1
	for i, m := range ms {
		s, shown := p.score(i)
		s.qualified = s.qualified && eligible(m)
		scores[i] = s
		me.Candidates[i] = Candidate{
			Object: m.rec.Object, ID: m.rec.ID, Value: shown, Qualified: s.qualified,
			ModifiedAt: m.rec.ModifiedAt, CreatedAt: m.rec.CreatedAt,
		}
		if s.qualified && (best < 0 || p.better(s, scores[best])) {
			best = i
		}
	}
	if len(ms) == 1 {
		// A lone lead (convert_when) is its own master whatever it holds.
		me.Candidates[0].Top = true
		me.Winner = ms[0].ref()
		p.master = 0
		return ""
	}

	// tied marks the members the fallback chooses among.
	tied := p.scratchInts(len(ms))
	nt := 0
	reason := fallbackNoCandidate
	if best >= 0 {
		reason = fallbackTie
		for i := range ms {
			if scores[i].qualified && !p.better(scores[best], scores[i]) {
				me.Candidates[i].Top = true
				tied[nt] = i
				nt++
			}
		}
		if nt > 1 && (cfg.Strategy == MasterMostComplete || cfg.Strategy == MasterMostAttachments) {
			// The strategy's own tie rule: the most recently modified of the
			// tied records. Members are in recency order, so the first tied
			// member is the newest; others equally new stay tied.
			newest := ms[tied[0]].rec.ModifiedAt
			k := 1
			for k < nt && ms[tied[k]].rec.ModifiedAt.Equal(newest) {
				k++
			}
			if k == 1 {
				me.TieBreak = tieNewestModified
			}
			nt = k
		}
		if nt == 1 {
			p.master = tied[0]
			me.Winner = ms[p.master].ref()
			return ""
		}
	} else {
		nt = 0
		for i := range ms {
			if eligible(ms[i]) {
				tied[nt] = i
				nt++
			}
		}
	}

	me.Fallback = cfg.Fallback
	me.FallbackReason = reason
	if cfg.Fallback == FallbackDoNotConvert {
		if reason == fallbackTie {
			return ReasonMasterTie
		}
		return ReasonMasterNoCandidate
	}
	win, ties := tied[0], 0
	for _, i := range tied[1:nt] {
		switch c := p.fallbackCompare(ms[i], ms[win]); {
		case c > 0:
			win, ties = i, 0
		case c == 0:
			ties++
			if byRef(ms[i], ms[win]) < 0 {
				win = i
			}
		}
	}
	if ties > 0 {
		me.TieBreak = tieSmallestID
	}
	p.master = win
	me.Winner = ms[win].ref()
	return ""
}

// fallbackCompare is > 0 when a beats b under the fallback strategy.
func (p *planner) fallbackCompare(a, b member) int {
	switch p.cc.cfg.Master.Fallback {
	case FallbackOldestModified:
		return b.rec.ModifiedAt.Compare(a.rec.ModifiedAt)
	case FallbackNewestCreated:
		return a.rec.CreatedAt.Compare(b.rec.CreatedAt)
	case FallbackOldestCreated:
		return b.rec.CreatedAt.Compare(a.rec.CreatedAt)
	}
	return a.rec.ModifiedAt.Compare(b.rec.ModifiedAt)
}

// better reports whether a beats b under the primary strategy; both are
// qualified.
func (p *planner) better(a, b score) bool {
	switch p.cc.cfg.Master.Strategy {
	case MasterNewestDate:
		return a.t.After(b.t)
	case MasterOldestDate:
		return a.t.Before(b.t)
	case MasterSpecifiedValues:
		return a.n < b.n
	}
	return a.n > b.n
}

// score evaluates member i under the primary strategy and returns the
// compared value as text for the explain block.
func (p *planner) score(i int) (score, string) {
	m := p.members[i]
	cfg := &p.cc.cfg.Master
	switch cfg.Strategy {
	case MasterNewestDate, MasterOldestDate:
		v := p.value(m, cfg.Field)
		t, ok := parseDate(v)
		return score{qualified: ok, t: t}, record.String(v)
	case MasterSpecifiedValues:
		v := p.value(m, cfg.Field)
		s := record.String(v)
		blank := record.IsBlank(v)
		for i, want := range cfg.Values {
			if (blank && isBlankText(want)) || (!blank && equalValue(s, want)) {
				return score{qualified: true, n: i}, s
			}
		}
		return score{}, s
	case MasterMostComplete:
		n := 0
		if len(cfg.Fields) > 0 {
			for _, f := range cfg.Fields {
				if !record.IsBlank(p.value(m, f)) {
					n++
				}
			}
		} else {
			n = p.filled[i]
		}
		return score{qualified: n > 0, n: n}, strconv.Itoa(n)
	case MasterMostAttachments:
		// Every record has an amount of attachments, 0 included: records
		// that all have none tie, and the strategy's own tie rule (last
		// modified wins) decides before the fallback.
		n := m.rec.RelatedCount
		return score{qualified: true, n: n}, strconv.Itoa(n)
	}
	return score{}, ""
}

func isBlankText(s string) bool { return record.IsBlank(s) }
