// Package matcher keeps duplicate clusters of CRM records current as record
// events arrive: match rules, normalisers and comparators (pure) and the Redis
// store of records, blocks, edges and clusters.
package matcher

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// Config is a tenant's matching configuration: an OR of named rules, each an
// AND of field conditions, plus the options of the normalisers.
type Config struct {
	// Rules are tried in order; the first that matches names the link.
	Rules []Rule `yaml:"rules" json:"rules"`
	// MaxBlockSize caps the members of one blocking key: a larger block
	// (everybody at gmail.com) stops producing candidates, so a hot key never
	// turns into O(n²) comparisons. 0 means DefaultMaxBlockSize.
	MaxBlockSize int `yaml:"max_block_size" json:"max_block_size"`
	// Email configures the email normaliser.
	Email EmailOptions `yaml:"email" json:"email"`
	// Phone configures the phone normaliser.
	Phone PhoneOptions `yaml:"phone" json:"phone"`
	// Nicknames maps common nicknames to their full form in the name
	// normaliser (Bob, Rob, Bobby -> robert).
	Nicknames bool `yaml:"nicknames" json:"nicknames"`
	// FreeMailDomains are ignored by the domain normaliser: sharing gmail.com
	// says nothing about sharing a company. Empty means DefaultFreeMailDomains.
	FreeMailDomains []string `yaml:"free_mail_domains" json:"free_mail_domains"`
	// AccountNameField is the field of account records that holds the name
	// (default "Name").
	AccountNameField string `yaml:"account_name_field" json:"account_name_field"`
	// AccountField is the lead field holding the company (default "Company"),
	// resolved against the account index.
	AccountField string `yaml:"account_field" json:"account_field"`
	// ConvertedField is the lead field that, when true, takes the lead out of
	// matching (default "IsConverted").
	ConvertedField string `yaml:"converted_field" json:"converted_field"`
}

// Rule is a named AND of conditions.
type Rule struct {
	Name string      `yaml:"name" json:"name"`
	All  []Condition `yaml:"all" json:"all"`
}

// Condition compares one field (or a set of fields) of two records after
// normalisation.
type Condition struct {
	// Field names a lead field; Fields names several, combined per Combine.
	// Contacts are read through the contact field map.
	Field  string   `yaml:"field,omitempty" json:"field,omitempty"`
	Fields []string `yaml:"fields,omitempty" json:"fields,omitempty"`
	// Combine is how several Fields are read: "any" (default: each field is
	// a candidate value, e.g. Phone or MobilePhone) or "concat" (joined with a
	// space into one value, e.g. first and last name as one name).
	Combine string `yaml:"combine,omitempty" json:"combine,omitempty"`
	// Normalizer is one of Normalizers.
	Normalizer string `yaml:"normalizer" json:"normalizer"`
	// Comparator is one of Comparators.
	Comparator string `yaml:"comparator" json:"comparator"`
	// Threshold is the comparator's parameter: minimum similarity in (0,1]
	// for jaro_winkler, token_set and token_sort, maximum edits for levenshtein, maximum
	// absolute difference for number_within, maximum days for date_within.
	Threshold float64 `yaml:"threshold,omitempty" json:"threshold,omitempty"`
	// Algorithm selects the phonetic code: "soundex" (the default) or
	// "double_metaphone" (which also hears Catherine ~ Kathryn, Smith ~
	// Schmidt).
	Algorithm string `yaml:"algorithm,omitempty" json:"algorithm,omitempty"`
	// Optional makes the condition hold when either record has no value for
	// it, so a missing field does not veto the rule; a value that is there
	// must still compare. Optional conditions derive no blocking keys.
	Optional bool `yaml:"optional,omitempty" json:"optional,omitempty"`
}

// EmailOptions configures the email normaliser.
type EmailOptions struct {
	// StripTags removes a "+tag" from the local part ("bob+crm@x.com").
	StripTags bool `yaml:"strip_tags" json:"strip_tags"`
	// StripDots removes dots from the local part for DotProviders, which
	// deliver "b.ob@" and "bob@" to the same mailbox.
	StripDots bool `yaml:"strip_dots" json:"strip_dots"`
	// DotProviders are the domains whose local part ignores dots.
	DotProviders []string `yaml:"dot_providers" json:"dot_providers"`
	// Aliases maps a domain to its canonical form (googlemail.com -> gmail.com).
	Aliases map[string]string `yaml:"aliases" json:"aliases"`
	// IgnoreRoles blanks role addresses (info@, sales@, office@ …; see
	// RoleAddresses): a team shares them, so they say nothing about which
	// person wrote in.
	IgnoreRoles bool `yaml:"ignore_roles" json:"ignore_roles"`
}

// RoleAddresses are the local parts IgnoreRoles blanks.
var RoleAddresses = []string{
	"info", "sales", "office", "contact", "hello", "admin", "support", "team", "marketing", "hr",
	"billing", "accounts", "enquiries", "inquiries", "help", "mail", "noreply", "no-reply", "webmaster", "service",
}

// PhoneOptions configures the phone normaliser.
type PhoneOptions struct {
	// DefaultRegion is the ISO 3166 country code ("US", "IT", "GB") whose
	// national numbering applies to numbers written without a calling code.
	DefaultRegion string `yaml:"default_region" json:"default_region"`
	// DefaultCountry is the older spelling: a calling code (digits, "1",
	// "44"), read as the main region of that code. Set one of the two.
	DefaultCountry string `yaml:"default_country" json:"default_country"`
}

// region is the ISO code the normaliser assumes; "" when none is set.
func (o PhoneOptions) region() string {
	if o.DefaultRegion != "" {
		return strings.ToUpper(o.DefaultRegion)
	}
	if n, err := strconv.Atoi(o.DefaultCountry); err == nil {
		if r := phonenumbers.GetRegionCodeForCountryCode(n); r != "ZZ" {
			return r
		}
	}
	return ""
}

// Defaults applied by Compile to zero-valued options.
const (
	DefaultMaxBlockSize     = 1000
	DefaultAccountNameField = "Name"
	DefaultAccountField     = "Company"
	DefaultConvertedField   = "IsConverted"
)

// Normalizers lists the normaliser names a condition may use.
var Normalizers = []string{"email", "phone", "name", "company", "domain", "address", "house_number", "text", "none"}

// Comparators lists the comparator names a condition may use.
var Comparators = []string{"exact", "jaro_winkler", "levenshtein", "token_set", "token_sort", "phonetic", "number_within", "date_within"}

// PhoneticAlgorithms lists the codes the phonetic comparator supports.
var PhoneticAlgorithms = []string{"soundex", "double_metaphone"}

// DefaultFreeMailDomains are the consumer mail providers the domain
// normaliser ignores.
var DefaultFreeMailDomains = []string{
	"gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "ymail.com", "hotmail.com", "hotmail.co.uk",
	"outlook.com", "live.com", "msn.com", "aol.com", "icloud.com", "me.com", "mac.com", "proton.me",
	"protonmail.com", "gmx.com", "gmx.de", "gmx.net", "web.de", "mail.com", "yandex.ru", "mail.ru",
	"zoho.com", "fastmail.com", "qq.com", "163.com", "orange.fr", "free.fr", "comcast.net",
}

// DefaultConfig returns the shipped CRM rules: same normalised e-mail; same
// normalised phone and a similar last name; similar first and last name at
// the same normalised company. They favour precision: a wrong merge destroys
// data, a missed one only delays.
func DefaultConfig() Config {
	return Config{
		Rules: []Rule{
			{Name: "email", All: []Condition{
				{Field: "Email", Normalizer: "email", Comparator: "exact"},
			}},
			{Name: "phone_last_name", All: []Condition{
				{Fields: []string{"Phone", "MobilePhone"}, Normalizer: "phone", Comparator: "exact"},
				{Field: "LastName", Normalizer: "name", Comparator: "jaro_winkler", Threshold: 0.85},
				// Colleagues behind one switchboard and spouses on one home
				// line share a number and often a last name; a first name
				// that is there must agree.
				{Field: "FirstName", Normalizer: "name", Comparator: "jaro_winkler", Threshold: 0.8, Optional: true},
			}},
			{Name: "name_company", All: []Condition{
				{Field: "LastName", Normalizer: "name", Comparator: "phonetic"},
				{Field: "Company", Normalizer: "company", Comparator: "exact"},
				{Field: "LastName", Normalizer: "name", Comparator: "jaro_winkler", Threshold: 0.92},
				{Field: "FirstName", Normalizer: "name", Comparator: "jaro_winkler", Threshold: 0.9},
			}},
		},
		MaxBlockSize: DefaultMaxBlockSize,
		Email: EmailOptions{
			StripTags:    true,
			StripDots:    true,
			DotProviders: []string{"gmail.com", "googlemail.com"},
			Aliases:      map[string]string{"googlemail.com": "gmail.com"},
			IgnoreRoles:  true,
		},
		Phone:            PhoneOptions{DefaultRegion: "US"},
		Nicknames:        true,
		AccountNameField: DefaultAccountNameField,
		AccountField:     DefaultAccountField,
		ConvertedField:   DefaultConvertedField,
	}
}

// Validate checks c; path names the config location in error messages
// ("tenants.acme.matching"). All problems are reported, joined.
func (c Config) Validate(path string) error {
	p := func(s string) string {
		if path == "" {
			return s
		}
		return path + "." + s
	}
	var errs []error
	add := func(at, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", p(at), fmt.Sprintf(format, a...)))
	}
	if len(c.Rules) == 0 {
		add("rules", "at least one rule is required")
	}
	if c.MaxBlockSize < 0 {
		add("max_block_size", "must be positive (0 means %d), got %d", DefaultMaxBlockSize, c.MaxBlockSize)
	}
	switch ph := c.Phone; {
	case ph.DefaultRegion != "" && ph.DefaultCountry != "":
		add("phone", "set default_region or default_country, not both")
	case ph.DefaultRegion != "" && !phonenumbers.GetSupportedRegions()[strings.ToUpper(ph.DefaultRegion)]:
		add("phone.default_region", "must be an ISO 3166 country code libphonenumber knows (US, GB, IT, ...), got %q", ph.DefaultRegion)
	case ph.DefaultCountry != "" && (!allDigits(ph.DefaultCountry) || len(ph.DefaultCountry) > 3 || ph.region() == ""):
		add("phone.default_country", "must be a calling code of 1-3 digits (or use default_region: an ISO 3166 code), got %q", ph.DefaultCountry)
	}
	names := map[string]bool{}
	for i, r := range c.Rules {
		at := fmt.Sprintf("rules[%d]", i)
		switch {
		case r.Name == "":
			add(at+".name", "is required")
		case names[r.Name]:
			add(at+".name", "duplicate rule name %q", r.Name)
		case strings.ContainsAny(r.Name, "{}: \t\n"):
			add(at+".name", "must not contain spaces, braces or colons, got %q", r.Name)
		}
		names[r.Name] = true
		if len(r.All) == 0 {
			add(at+".all", "at least one condition is required")
		}
		blocking := false
		for j, cond := range r.All {
			cat := fmt.Sprintf("%s.all[%d]", at, j)
			for _, e := range cond.validate() {
				add(cat+e.at, "%s", e.msg)
			}
			if (cond.Comparator == "exact" || cond.Comparator == "phonetic") && !cond.Optional {
				blocking = true
			}
		}
		if len(r.All) > 0 && !blocking {
			add(at+".all", "needs a non-optional exact or phonetic condition to derive blocking keys from")
		}
	}
	return errors.Join(errs...)
}

type fieldErr struct{ at, msg string }

func (cond Condition) validate() []fieldErr {
	var errs []fieldErr
	switch {
	case cond.Field == "" && len(cond.Fields) == 0:
		errs = append(errs, fieldErr{".field", "field or fields is required"})
	case cond.Field != "" && len(cond.Fields) > 0:
		errs = append(errs, fieldErr{".fields", "set either field or fields, not both"})
	}
	for k, f := range cond.Fields {
		if f == "" {
			errs = append(errs, fieldErr{fmt.Sprintf(".fields[%d]", k), "must not be empty"})
		}
	}
	switch cond.Combine {
	case "", "any", "concat":
	default:
		errs = append(errs, fieldErr{".combine", fmt.Sprintf("unknown %q (allowed: any, concat)", cond.Combine)})
	}
	if !contains(Normalizers, cond.Normalizer) {
		errs = append(errs, fieldErr{".normalizer", fmt.Sprintf("unknown %q (allowed: %s)", cond.Normalizer, strings.Join(Normalizers, ", "))})
	}
	t := cond.Threshold
	switch cond.Comparator {
	case "exact":
	case "phonetic":
		if cond.Algorithm != "" && !contains(PhoneticAlgorithms, cond.Algorithm) {
			errs = append(errs, fieldErr{".algorithm", fmt.Sprintf("unknown %q (allowed: %s)", cond.Algorithm, strings.Join(PhoneticAlgorithms, ", "))})
		}
	case "jaro_winkler", "token_set", "token_sort":
		if t <= 0 || t > 1 {
			errs = append(errs, fieldErr{".threshold", fmt.Sprintf("must be in (0, 1] for %s, got %g", cond.Comparator, t)})
		}
	case "levenshtein":
		if t < 0 || t != float64(int(t)) || t > 8 {
			errs = append(errs, fieldErr{".threshold", fmt.Sprintf("must be a whole number of edits in [0, 8] for levenshtein, got %g", t)})
		}
	case "number_within", "date_within":
		if t < 0 {
			errs = append(errs, fieldErr{".threshold", fmt.Sprintf("must not be negative for %s, got %g", cond.Comparator, t)})
		}
	default:
		errs = append(errs, fieldErr{".comparator", fmt.Sprintf("unknown %q (allowed: %s)", cond.Comparator, strings.Join(Comparators, ", "))})
	}
	if cond.Algorithm != "" && cond.Comparator != "phonetic" {
		errs = append(errs, fieldErr{".algorithm", "only applies to the phonetic comparator"})
	}
	return errs
}

// fields returns the condition's field names.
func (cond Condition) fields() []string {
	if cond.Field != "" {
		return []string{cond.Field}
	}
	return cond.Fields
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
