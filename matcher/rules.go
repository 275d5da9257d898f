package matcher

import (
	"fmt"
	"strings"

	"github.com/leadconv/leadconv/record"
)

// Ruleset is a compiled Config: immutable and safe for concurrent use.
type Ruleset struct {
	cfg      Config
	opts     *options
	slots    []slot
	rules    []crule
	contacts map[string][]string // lead field -> contact fields holding it
	fm       record.FieldMap
}

// slot is one normalised value set of a record, shared by every condition
// that reads the same fields the same way.
type slot struct {
	fields []string
	concat bool
	norm   normalizer
	kind   slotKind
}

type slotKind uint8

const (
	kindText slotKind = iota
	kindSoundex
	kindMetaphone
	kindNumber
	kindDate
)

type crule struct {
	name  string
	conds []ccond
	block []int // slots of the exact and phonetic conditions
}

type ccond struct {
	slot     int
	optional bool
	cmp      func(a, b string, t float64) bool
	t        float64
	kind     slotKind
}

// Block is one blocking key of a record: records are compared only with
// records sharing a block. Key is a hash of the normalised values of the
// rule's exact and phonetic parts, so no field value (PII) appears in it; a
// collision only costs a comparison, Match decides.
type Block struct {
	Rule string
	Key  string
}

// String renders the block as "rule:key".
func (b Block) String() string { return b.Rule + ":" + b.Key }

// Prepared is a record normalised once for blocking and matching.
type Prepared struct {
	Ref    record.Ref
	Blocks []Block
	// Active is false for records outside person matching: converted leads
	// and accounts. They have no blocks and match nothing.
	Active bool
	// Account is the normalised account key: the account name for accounts,
	// the company (Config.AccountField) for leads and contacts.
	Account string
	vals    [][]string
	nums    [][]float64
}

// maxKeysPerRule bounds the blocking keys one record derives from one rule
// (the product of its multi-valued parts).
const maxKeysPerRule = 16

// Compile validates cfg and prepares it for matching. contactFields maps
// contact field names to the lead names the rules use.
func Compile(cfg Config, contactFields record.FieldMap) (*Ruleset, error) {
	if err := cfg.Validate("matching"); err != nil {
		return nil, fmt.Errorf("matcher: compile: %w", err)
	}
	if cfg.MaxBlockSize == 0 {
		cfg.MaxBlockSize = DefaultMaxBlockSize
	}
	if cfg.AccountNameField == "" {
		cfg.AccountNameField = DefaultAccountNameField
	}
	if cfg.AccountField == "" {
		cfg.AccountField = DefaultAccountField
	}
	if cfg.ConvertedField == "" {
		cfg.ConvertedField = DefaultConvertedField
	}
	rs := &Ruleset{cfg: cfg, opts: newOptions(cfg), contacts: map[string][]string{}, fm: contactFields}
	for c, l := range contactFields {
		rs.contacts[l] = append(rs.contacts[l], c)
	}
	for l, cs := range rs.contacts {
		// Unmapped contact fields keep their name (record.FieldMap.ToLead).
		if _, mapped := contactFields[l]; !mapped {
			rs.contacts[l] = append(cs, l)
		}
	}
	slotIdx := map[string]int{}
	for _, r := range cfg.Rules {
		cr := crule{name: r.Name}
		for _, c := range r.All {
			kind := kindText
			switch c.Comparator {
			case "phonetic":
				kind = kindSoundex
				if c.Algorithm == "double_metaphone" {
					kind = kindMetaphone
				}
			case "number_within":
				kind = kindNumber
			case "date_within":
				kind = kindDate
			}
			fields := c.fields()
			concat := c.Combine == "concat"
			key := fmt.Sprintf("%s|%t|%s|%d", strings.Join(fields, ","), concat, c.Normalizer, kind)
			idx, ok := slotIdx[key]
			if !ok {
				idx = len(rs.slots)
				slotIdx[key] = idx
				rs.slots = append(rs.slots, slot{fields: fields, concat: concat, norm: normalizers[c.Normalizer], kind: kind})
			}
			cr.conds = append(cr.conds, ccond{slot: idx, optional: c.Optional, cmp: comparators[c.Comparator], t: c.Threshold, kind: kind})
			if (c.Comparator == "exact" || c.Comparator == "phonetic") && !c.Optional {
				cr.block = append(cr.block, idx)
			}
		}
		rs.rules = append(rs.rules, cr)
	}
	return rs, nil
}

var comparators = map[string]func(a, b string, t float64) bool{
	"exact":         func(a, b string, _ float64) bool { return a == b },
	"phonetic":      func(a, b string, _ float64) bool { return a == b },
	"jaro_winkler":  func(a, b string, t float64) bool { return JaroWinkler(a, b) >= t },
	"levenshtein":   func(a, b string, t float64) bool { return LevenshteinWithin(a, b, int(t)) },
	"token_set":     func(a, b string, t float64) bool { return TokenSet(a, b) >= t },
	"token_sort":    func(a, b string, t float64) bool { return TokenSort(a, b) >= t },
	"number_within": nil, // numeric slots compare in Match
	"date_within":   nil,
}

// Config returns the compiled configuration with defaults applied.
func (rs *Ruleset) Config() Config { return rs.cfg }

// MaxBlockSize is the member count above which a block yields no candidates.
func (rs *Ruleset) MaxBlockSize() int { return rs.cfg.MaxBlockSize }

// AccountKey normalises an account or company name for the account index.
func (rs *Ruleset) AccountKey(name string) string { return NormalizeCompany(name) }

// accountValue is r's company value, as resolved against the account index.
func (rs *Ruleset) accountValue(r *record.Record) string { return rs.field(r, rs.cfg.AccountField) }

// Prepare normalises r once: blocking keys and the values Match compares.
// Contacts are read through the contact field map.
func (rs *Ruleset) Prepare(r *record.Record) *Prepared {
	p := &Prepared{Ref: r.Ref()}
	switch r.Object {
	case record.Account:
		p.Account = rs.AccountKey(r.Fields.Str(rs.cfg.AccountNameField))
		return p
	case record.Lead:
		if rs.Converted(r) {
			return p
		}
	}
	p.Active = true
	p.Account = rs.AccountKey(rs.accountValue(r))
	p.vals = make([][]string, len(rs.slots))
	// One backing array for every slot's values: each slot's values are
	// appended in turn and kept as a full slice of their own range.
	backing := make([]string, 0, len(rs.slots)+4)
	for i, s := range rs.slots {
		switch s.kind {
		case kindNumber, kindDate:
			if p.nums == nil {
				p.nums = make([][]float64, len(rs.slots))
			}
			p.nums[i] = rs.numbers(r, s)
		default:
			start := len(backing)
			backing = rs.values(backing, r, s)
			if len(backing) > start {
				p.vals[i] = backing[start:len(backing):len(backing)]
			}
		}
	}
	for _, cr := range rs.rules {
		p.Blocks = rs.appendBlocks(p.Blocks, cr, p.vals)
	}
	return p
}

// field reads a lead field of r, through the contact map for contacts.
func (rs *Ruleset) field(r *record.Record, name string) string {
	if r.Object != record.Contact {
		return r.Fields.Str(name)
	}
	names, ok := rs.contacts[name]
	if !ok {
		return r.Fields.Str(name)
	}
	for _, c := range names {
		if v := r.Fields.Str(c); strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}

// values appends the slot's distinct normalised values of r to dst.
func (rs *Ruleset) values(dst []string, r *record.Record, s slot) []string {
	start := len(dst)
	appendNew := func(v string) {
		for _, x := range dst[start:] {
			if x == v {
				return
			}
		}
		dst = append(dst, v)
	}
	add := func(v string) {
		v = s.norm(rs.opts, v)
		switch s.kind {
		case kindSoundex:
			v = Soundex(v)
		case kindMetaphone:
			// Either pronunciation may meet the other record's: both codes
			// are values (and blocking keys).
			p, alt := DoubleMetaphone(v)
			if alt != p && alt != "" {
				appendNew(alt)
			}
			v = p
		}
		if v == "" {
			return
		}
		appendNew(v)
	}
	if s.concat {
		parts := make([]string, 0, len(s.fields))
		for _, f := range s.fields {
			if v := strings.TrimSpace(rs.field(r, f)); v != "" {
				parts = append(parts, v)
			}
		}
		add(strings.Join(parts, " "))
		return dst
	}
	for _, f := range s.fields {
		add(rs.field(r, f))
	}
	return dst
}

func (rs *Ruleset) numbers(r *record.Record, s slot) []float64 {
	var out []float64
	for _, f := range s.fields {
		v := rs.field(r, f)
		var (
			x  float64
			ok bool
		)
		if s.kind == kindDate {
			x, ok = parseDate(v)
		} else {
			x, ok = parseNumber(v)
		}
		if ok {
			out = append(out, x)
		}
	}
	return out
}

// appendBlocks adds the keys of one rule: one per combination of the values
// of its exact and phonetic parts. A record blank in any part has none.
func (rs *Ruleset) appendBlocks(dst []Block, cr crule, vals [][]string) []Block {
	n := 1
	for _, s := range cr.block {
		n *= len(vals[s])
		if n == 0 {
			return dst
		}
	}
	n = min(n, maxKeysPerRule)
	var idxBuf [8]int
	idx := idxBuf[:0]
	if len(cr.block) > len(idxBuf) {
		idx = make([]int, 0, len(cr.block))
	}
	idx = idx[:len(cr.block)]
	for range n {
		// FNV-1a 64 of the values, each followed by 0x1f, inlined: the
		// hash/fnv interface would allocate per key.
		h := uint64(fnvOffset64)
		for k, s := range cr.block {
			v := vals[s][idx[k]]
			for i := 0; i < len(v); i++ {
				h = (h ^ uint64(v[i])) * fnvPrime64
			}
			h = (h ^ 0x1f) * fnvPrime64
		}
		dst = append(dst, Block{Rule: cr.name, Key: hexKey(h)})
		for k := len(idx) - 1; k >= 0; k-- {
			idx[k]++
			if idx[k] < len(vals[cr.block[k]]) {
				break
			}
			idx[k] = 0
		}
	}
	return dst
}

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// hexKey renders h as 16 lower-case hex digits, big-endian.
func hexKey(h uint64) string {
	const digits = "0123456789abcdef"
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = digits[h&0xf]
		h >>= 4
	}
	return string(b[:])
}

// Match reports the first rule under which a and b are duplicates. It is
// symmetric and never matches a record with itself or an inactive record.
func (rs *Ruleset) Match(a, b *Prepared) (rule string, ok bool) {
	if a == nil || b == nil || !a.Active || !b.Active || a.Ref == b.Ref {
		return "", false
	}
	for _, cr := range rs.rules {
		if rs.matchRule(cr, a, b) {
			return cr.name, true
		}
	}
	return "", false
}

func (rs *Ruleset) matchRule(cr crule, a, b *Prepared) bool {
	for _, c := range cr.conds {
		if !condHolds(c, a, b) {
			return false
		}
	}
	return true
}

func condHolds(c ccond, a, b *Prepared) bool {
	if c.kind == kindNumber || c.kind == kindDate {
		if c.optional && (len(a.nums[c.slot]) == 0 || len(b.nums[c.slot]) == 0) {
			return true
		}
		for _, x := range a.nums[c.slot] {
			for _, y := range b.nums[c.slot] {
				if d := x - y; d <= c.t && -d <= c.t {
					return true
				}
			}
		}
		return false
	}
	if c.optional && (len(a.vals[c.slot]) == 0 || len(b.vals[c.slot]) == 0) {
		return true
	}
	for _, x := range a.vals[c.slot] {
		for _, y := range b.vals[c.slot] {
			if c.cmp(x, y, c.t) {
				return true
			}
		}
	}
	return false
}

// Converted reports whether r is a lead its CRM reports converted (the
// converted field is true): it takes no part in matching.
func (rs *Ruleset) Converted(r *record.Record) bool {
	return r.Object == record.Lead && truthy(r.Fields[rs.cfg.ConvertedField])
}

// truthy reads a CRM checkbox however the source sent it: true, "true",
// "yes", 1, "1".
func truthy(v any) bool {
	if b, ok := v.(bool); ok {
		return b
	}
	s := strings.ToLower(strings.TrimSpace(record.String(v)))
	switch s {
	case "true", "yes", "y":
		return true
	}
	n, ok := parseNumber(s)
	return ok && n != 0
}
