package engine

import (
	"runtime"
	"strings"
	"sync"
	"weak"
)

// fieldKind is a field strategy resolved once per config, so the hot path
// switches on a small integer instead of comparing names.
type fieldKind uint8

const (
	fkTakeFromMaster fieldKind = iota
	fkTakeAny
	fkMostCommon
	fkNewestModified
	fkOldestModified
	fkNewestCreated
	fkOldestCreated
	fkMaxNumber
	fkMinNumber
	fkLongestText
	fkShortestText
	fkCombine
	fkTrueOverFalse
	fkFalseOverTrue
	fkNewestDate
	fkOldestDate
)

var fieldKinds = map[string]fieldKind{
	FieldTakeFromMaster: fkTakeFromMaster, FieldTakeAnyWhenMasterBlank: fkTakeAny, FieldMostCommon: fkMostCommon,
	FieldNewestModified: fkNewestModified, FieldOldestModified: fkOldestModified, FieldNewestCreated: fkNewestCreated,
	FieldOldestCreated: fkOldestCreated, FieldMaxNumber: fkMaxNumber, FieldMinNumber: fkMinNumber,
	FieldLongestText: fkLongestText, FieldShortestText: fkShortestText, FieldCombineValues: fkCombine,
	FieldTrueOverFalse: fkTrueOverFalse, FieldFalseOverTrue: fkFalseOverTrue, FieldNewestDate: fkNewestDate,
	FieldOldestDate: fkOldestDate,
}

// rule is the strategy of one field.
type rule struct {
	name           string
	kind           fieldKind
	considerBlanks bool
}

// compiled is a Config prepared for planning. It holds a copy of the Config
// value, never the *Config itself, so the cache entry does not keep the
// Config alive.
type compiled struct {
	cfg    Config
	err    error // Validate's verdict: an invalid config plans a review only
	limits Limits
	def    rule
	rules  map[string]rule // lead field -> override
	// toContact maps a lead field to the contact field holding it; "" marks
	// a lead name that is also a mapped contact field name ("shadowed"): it
	// is not read from contacts and never written, since writing it would
	// collide with the mapped field.
	toContact map[string]string
	toLead    map[string]string // contact field -> lead field (mapped only)
	// excluded is the lead name of the contact's account id field: it is
	// the account link, set by conversion, never a merged value.
	excluded string
	// onContact holds the contact fields a created or merged contact may
	// be written (the model's and the mapped ones); nil writes every field.
	onContact map[string]bool
	// drop leaves out of created accounts and opportunities the fields
	// their mapping does not name.
	drop bool
}

var compiledCache sync.Map // weak.Pointer[Config] -> *compiled

// compile returns cfg prepared for planning, cached per *Config: Plan and
// AccountValues pay for validation and map building once per config. The
// cache holds cfg weakly and forgets it when cfg is collected; a Config must
// therefore not be modified once it has been planned with (copy it instead).
func compile(cfg *Config) *compiled {
	key := weak.Make(cfg)
	if v, ok := compiledCache.Load(key); ok {
		return v.(*compiled)
	}
	cc := newCompiled(*cfg)
	if v, loaded := compiledCache.LoadOrStore(key, cc); loaded {
		return v.(*compiled)
	}
	runtime.AddCleanup(cfg, func(k weak.Pointer[Config]) { compiledCache.Delete(k) }, key)
	return cc
}

func newCompiled(cfg Config) *compiled {
	cc := &compiled{cfg: cfg, err: cfg.Validate("")}
	if m, ok := Model(cfg.CRM); ok {
		// The CRM's own mappings, under the configured ones. cfg is a copy.
		cfg.ContactFields = ContactFieldsFor(cfg.CRM, cfg.ContactFields)
		cfg.Conversion.AccountFields = mappingFor(m.AccountFields, cfg.Conversion.AccountFields)
		cfg.Conversion.OpportunityFields = mappingFor(m.OpportunityFields, cfg.Conversion.OpportunityFields)
		if cfg.Conversion.UnmappedFields != UnmappedCarryOver {
			cc.drop = true
			cc.onContact = make(map[string]bool, len(m.Contact)+len(cfg.ContactFields))
			for _, f := range m.Contact {
				cc.onContact[f] = true
			}
			for c := range cfg.ContactFields {
				cc.onContact[c] = true
			}
		}
		cc.cfg = cfg
	}
	cc.limits, _ = Profile(cfg.CRM)
	cc.def = rule{name: cfg.Fields.Default, kind: fieldKinds[cfg.Fields.Default], considerBlanks: cfg.Fields.ConsiderBlanks}
	if len(cfg.Fields.Overrides) > 0 {
		cc.rules = make(map[string]rule, len(cfg.Fields.Overrides))
		for _, o := range cfg.Fields.Overrides {
			r := rule{name: o.Strategy, kind: fieldKinds[o.Strategy], considerBlanks: cfg.Fields.ConsiderBlanks}
			if o.ConsiderBlanks != nil {
				r.considerBlanks = *o.ConsiderBlanks
			}
			cc.rules[o.Field] = r
		}
	}
	if len(cfg.ContactFields) > 0 {
		cc.toContact = make(map[string]string, 2*len(cfg.ContactFields))
		cc.toLead = make(map[string]string, len(cfg.ContactFields))
		for c, l := range cfg.ContactFields {
			if c != l {
				cc.toLead[c] = l
			}
		}
		for c, l := range cfg.ContactFields {
			if c == l {
				continue
			}
			if _, ok := cc.toContact[c]; !ok {
				cc.toContact[c] = "" // shadowed, unless also mapped below
			}
		}
		for c, l := range cfg.ContactFields {
			if c != l {
				cc.toContact[l] = c
			}
		}
	}
	cc.excluded = cfg.Conversion.ContactAccountField
	if l, ok := cc.toLead[cc.excluded]; ok {
		cc.excluded = l
	}
	return cc
}

// rule returns the strategy of a lead field.
func (cc *compiled) rule(field string) rule {
	if r, ok := cc.rules[field]; ok {
		return r
	}
	return cc.def
}

// contactName returns the contact field written for a lead field, "" when
// the name is shadowed.
func (cc *compiled) contactName(lead string) string {
	if c, ok := cc.toContact[lead]; ok {
		return c
	}
	return lead
}

// equalValue compares trimmed and case-insensitively.
func equalValue(a, b string) bool {
	return strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b))
}
