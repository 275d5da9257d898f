package engine

import (
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/leadconv/leadconv/record"
)

// member is one lead or contact of the cluster. Members are kept in recency
// order (most recently modified first, then smallest id), so "the first
// member found" settles every tie the field rules leave open.
type member struct {
	rec     *record.Record
	contact bool
	// st is the state of a carried-over master (PrepareFrom).
	st *State
}

func (m member) ref() record.Ref { return record.Ref{Object: m.rec.Object, ID: m.rec.ID} }

// byRecency orders members most recently modified first, then by id and
// object in byte order.
func byRecency(a, b member) int {
	if c := b.rec.ModifiedAt.Compare(a.rec.ModifiedAt); c != 0 {
		return c
	}
	return byRef(a, b)
}

func byRef(a, b member) int {
	if c := strings.Compare(a.rec.ID, b.rec.ID); c != 0 {
		return c
	}
	return strings.Compare(string(a.rec.Object), string(b.rec.Object))
}

// value returns a member's value of a lead field: contacts are read under
// their mapped names.
func (p *planner) value(m member, lead string) any {
	if m.contact && p.cc.toContact != nil {
		c, ok := p.cc.toContact[lead]
		if ok {
			if c == "" {
				return nil
			}
			return m.rec.Fields[c]
		}
	}
	return m.rec.Fields[lead]
}

// leadName returns the lead name of a member's field, false when the field
// takes no part in merging (shadowed or the contact's account link).
func (p *planner) leadName(m member, k string) (string, bool) {
	if p.cc.toContact != nil {
		if m.contact {
			if l, ok := p.cc.toLead[k]; ok {
				k = l
			}
		} else if c, ok := p.cc.toContact[k]; ok && c == "" {
			return "", false
		}
	}
	return k, k != p.cc.excluded
}

// collectNames gathers the lead names of every field in the cluster, sorted,
// and counts each member's non-blank fields for most_complete in the same
// pass over the maps. A sorted slice with binary search beats a set here:
// members mostly share their field names, so inserts are rare and nothing
// is hashed.
func (p *planner) collectNames() {
	most := 0
	for _, m := range p.members {
		most = max(most, len(m.rec.Fields))
	}
	names := make([]string, 0, most+most/2+4)
	mc := &p.cc.cfg.Master
	count := mc.Strategy == MasterMostComplete && len(mc.Fields) == 0
	if count {
		p.filled = make([]int, len(p.members))
	}
	for i, m := range p.members {
		n := 0
		for k, v := range m.rec.Fields {
			l, ok := p.leadName(m, k)
			if !ok {
				continue
			}
			if count && !record.IsBlank(v) {
				n++
			}
			if j, found := slices.BinarySearch(names, l); !found {
				names = slices.Insert(names, j, l)
			}
		}
		if count {
			p.filled[i] = n
		}
	}
	p.names = names
}

// outcome is the result of one field strategy: the value, the members it
// came from (indexes into p.members, appended to p.from) and whether the
// master's own value stayed for want of a usable one.
type outcome struct {
	value      any
	masterKept bool
}

// resolveFields computes every field of the master contact.
func (p *planner) resolveFields() {
	p.values = make([]any, len(p.names))
	p.ex.Fields = make([]FieldExplain, len(p.names))
	p.refs = make([]record.Ref, 0, len(p.names)+4)
	starts := p.scratchInts(len(p.names) + 1)
	for i, name := range p.names {
		r := p.cc.rule(name)
		starts[i] = len(p.refs)
		o := p.resolve(name, r)
		if o.masterKept {
			o.value = p.value(p.members[p.master], name)
			p.refs = append(p.refs, p.members[p.master].ref())
		}
		p.values[i] = o.value
		p.ex.Fields[i] = FieldExplain{Field: p.cc.contactName(name), Strategy: r.name, MasterKept: o.masterKept}
	}
	starts[len(p.names)] = len(p.refs)
	// Slice From only now: appends above may have moved the pool.
	for i := range p.ex.Fields {
		p.ex.Fields[i].From = p.refs[starts[i]:starts[i+1]:starts[i+1]]
	}
}

// scratchInts returns a reusable int slice of length n.
func (p *planner) scratchInts(n int) []int {
	if cap(p.ints) < n {
		p.ints = make([]int, n)
	}
	return p.ints[:n]
}

func (p *planner) from(i int) { p.refs = append(p.refs, p.members[i].ref()) }

// resolve applies one field strategy. It appends the source members to
// p.refs unless the master's value is kept.
func (p *planner) resolve(name string, r rule) outcome {
	ms := p.members
	switch r.kind {
	case fkTakeFromMaster:
		p.from(p.master)
		return outcome{value: p.value(ms[p.master], name)}

	case fkTakeAny:
		if v := p.value(ms[p.master], name); !record.IsBlank(v) {
			p.from(p.master)
			return outcome{value: v}
		}
		for i, m := range ms {
			if v := p.value(m, name); !record.IsBlank(v) {
				p.from(i)
				return outcome{value: v}
			}
		}

	case fkNewestModified, fkOldestModified, fkNewestCreated, fkOldestCreated:
		best := -1
		var bt time.Time
		for i, m := range ms {
			v := p.value(m, name)
			if !r.considerBlanks && record.IsBlank(v) {
				continue
			}
			t := m.rec.ModifiedAt
			if r.kind == fkNewestCreated || r.kind == fkOldestCreated {
				t = m.rec.CreatedAt
			}
			newer := r.kind == fkNewestModified || r.kind == fkNewestCreated
			if best < 0 || (newer && t.After(bt)) || (!newer && t.Before(bt)) {
				best, bt = i, t
			}
		}
		if best >= 0 {
			p.from(best)
			return outcome{value: p.value(ms[best], name)}
		}

	case fkMostCommon:
		return p.mostCommon(name, r.considerBlanks)

	case fkMaxNumber, fkMinNumber:
		best := -1
		var bn float64
		for i, m := range ms {
			n, ok := parseNumber(p.value(m, name))
			if ok && (best < 0 || (r.kind == fkMaxNumber && n > bn) || (r.kind == fkMinNumber && n < bn)) {
				best, bn = i, n
			}
		}
		if best >= 0 {
			p.from(best)
			return outcome{value: p.value(ms[best], name)}
		}

	case fkLongestText, fkShortestText:
		best, bl, bs := -1, 0, ""
		for i, m := range ms {
			s := text(p.value(m, name))
			if s == "" {
				continue
			}
			l := utf8.RuneCountInString(s)
			if best < 0 || (r.kind == fkLongestText && l > bl) || (r.kind == fkShortestText && l < bl) {
				best, bl, bs = i, l, s
			}
		}
		if best >= 0 {
			// The value is measured trimmed, and written as measured.
			p.from(best)
			return outcome{value: bs}
		}

	case fkCombine:
		return p.combine(name)

	case fkTrueOverFalse, fkFalseOverTrue:
		want := r.kind == fkTrueOverFalse
		best := -1
		for i, m := range ms {
			b, ok := parseBool(p.value(m, name))
			if !ok {
				continue
			}
			if b == want {
				best = i
				break
			}
			if best < 0 {
				best = i
			}
		}
		if best >= 0 {
			// A checkbox: the result is a boolean whatever spelling won.
			p.from(best)
			b, _ := parseBool(p.value(ms[best], name))
			return outcome{value: b}
		}

	case fkNewestDate, fkOldestDate:
		best := -1
		var bt time.Time
		for i, m := range ms {
			t, ok := parseDate(p.value(m, name))
			if ok && (best < 0 || (r.kind == fkNewestDate && t.After(bt)) || (r.kind == fkOldestDate && t.Before(bt))) {
				best, bt = i, t
			}
		}
		if best >= 0 {
			p.from(best)
			return outcome{value: p.value(ms[best], name)}
		}
	}
	return outcome{masterKept: true}
}

// mostCommon counts trimmed, case-folded values. Distinct values are kept
// in order of first appearance in recency order, so on equal counts the
// value held by the most recently modified record wins, in that record's
// spelling.
func (p *planner) mostCommon(name string, considerBlanks bool) outcome {
	type seen struct {
		text  string
		first int
		count int
	}
	var buf [16]seen
	distinct := buf[:0]
	for i, m := range p.members {
		v := p.value(m, name)
		if !considerBlanks && record.IsBlank(v) {
			continue
		}
		t := text(v)
		j := slices.IndexFunc(distinct, func(s seen) bool { return strings.EqualFold(s.text, t) })
		if j < 0 {
			distinct = append(distinct, seen{text: t, first: i, count: 1})
		} else {
			distinct[j].count++
		}
	}
	best := -1
	for j, s := range distinct {
		if best < 0 || s.count > distinct[best].count {
			best = j
		}
	}
	if best < 0 {
		return outcome{masterKept: true}
	}
	i := distinct[best].first
	p.from(i)
	return outcome{value: p.value(p.members[i], name)}
}

// combine joins the ";"-separated parts of every value, de-duplicated
// case-insensitively (first spelling kept): the master's first, then the
// others' in recency order.
func (p *planner) combine(name string) outcome {
	var buf [16]string
	kept := buf[:0]
	var sb strings.Builder
	add := func(i int) {
		s := record.String(p.value(p.members[i], name))
		contributed := false
		for part := range strings.SplitSeq(s, ";") {
			part = strings.TrimSpace(part)
			if part == "" || slices.ContainsFunc(kept, func(k string) bool { return strings.EqualFold(k, part) }) {
				continue
			}
			kept = append(kept, part)
			if sb.Len() > 0 {
				sb.WriteByte(';')
			}
			sb.WriteString(part)
			contributed = true
		}
		if contributed {
			p.from(i)
		}
	}
	add(p.master)
	for i := range p.members {
		if i != p.master {
			add(i)
		}
	}
	if len(kept) == 0 {
		return outcome{masterKept: true}
	}
	return outcome{value: sb.String()}
}
