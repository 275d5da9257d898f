package engine

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/leadconv/leadconv/record"
)

// Master strategies (primary).
const (
	MasterNewestDate      = "newest_date"
	MasterOldestDate      = "oldest_date"
	MasterSpecifiedValues = "specified_values"
	MasterMostComplete    = "most_complete"
	MasterMostAttachments = "most_attachments"
)

// Fallback strategies, applied when the primary strategy cannot decide.
const (
	FallbackNewestModified = "newest_modified"
	FallbackOldestModified = "oldest_modified"
	FallbackNewestCreated  = "newest_created"
	FallbackOldestCreated  = "oldest_created"
	FallbackDoNotConvert   = "do_not_convert"
)

// Field value strategies.
const (
	FieldTakeFromMaster         = "take_from_master"
	FieldTakeAnyWhenMasterBlank = "take_any_when_master_blank"
	FieldMostCommon             = "most_common"
	FieldNewestModified         = "newest_modified"
	FieldOldestModified         = "oldest_modified"
	FieldNewestCreated          = "newest_created"
	FieldOldestCreated          = "oldest_created"
	FieldMaxNumber              = "max_number"
	FieldMinNumber              = "min_number"
	FieldLongestText            = "longest_text"
	FieldShortestText           = "shortest_text"
	FieldCombineValues          = "combine_values"
	FieldTrueOverFalse          = "true_over_false"
	FieldFalseOverTrue          = "false_over_true"
	FieldNewestDate             = "newest_date"
	FieldOldestDate             = "oldest_date"
)

// Blank account and opportunity strategies.
const (
	AccountDoNotCreate     = "do_not_create"
	AccountUseExisting     = "use_existing"
	OpportunityDoNotCreate = "do_not_create"
	OpportunityCreate      = "create"
)

// Allowed values, in documentation order; error messages list them.
var (
	MasterStrategies   = []string{MasterNewestDate, MasterOldestDate, MasterSpecifiedValues, MasterMostComplete, MasterMostAttachments}
	FallbackStrategies = []string{FallbackNewestModified, FallbackOldestModified, FallbackNewestCreated, FallbackOldestCreated, FallbackDoNotConvert}
	DefaultStrategies  = []string{FieldTakeFromMaster, FieldTakeAnyWhenMasterBlank}
	FieldStrategies    = []string{
		FieldTakeFromMaster, FieldTakeAnyWhenMasterBlank, FieldMostCommon, FieldNewestModified, FieldOldestModified,
		FieldNewestCreated, FieldOldestCreated, FieldMaxNumber, FieldMinNumber, FieldLongestText, FieldShortestText,
		FieldCombineValues, FieldTrueOverFalse, FieldFalseOverTrue, FieldNewestDate, FieldOldestDate,
	}
	BlankAccountStrategies = []string{AccountDoNotCreate, AccountUseExisting}
	OpportunityStrategies  = []string{OpportunityDoNotCreate, OpportunityCreate}
	UnmappedPolicies       = []string{UnmappedDrop, UnmappedCarryOver}
	CRMs                   = []string{"salesforce", "zoho", "hubspot", "dynamics", "generic"}
)

// Config is one tenant's conversion configuration. Field names in it are lead
// field names; ContactFields maps contact names onto them.
type Config struct {
	Master     MasterConfig     `yaml:"master" json:"master"`
	Fields     FieldsConfig     `yaml:"fields" json:"fields"`
	Conversion ConversionConfig `yaml:"conversion" json:"conversion"`
	// CRM selects the limits profile: salesforce, zoho, hubspot, dynamics or
	// generic (see Profile).
	CRM string `yaml:"crm" json:"crm"`
	// MaxClusterSize is the safety rail: merges cannot be undone, so a larger
	// cluster (usually a runaway chain of fuzzy links) goes to review instead.
	MaxClusterSize int `yaml:"max_cluster_size" json:"max_cluster_size"`
	// MergeContacts plans merges for clusters without any lead.
	MergeContacts bool `yaml:"merge_contacts" json:"merge_contacts"`
	// PreferExistingContact limits the master candidates to the cluster's
	// existing contacts when it has any: converting leads must not replace a
	// contact (its id, activity, account links) because a lead won a tie.
	PreferExistingContact bool `yaml:"prefer_existing_contact" json:"prefer_existing_contact"`
	// Settle is how long a changed cluster must stay unchanged before it is
	// planned (the lifecycle package); 0 plans at once.
	Settle Duration `yaml:"settle" json:"settle"`
	// MaxSettle bounds the wait of a cluster that keeps changing; 0 means
	// no bound.
	MaxSettle Duration `yaml:"max_settle" json:"max_settle"`
	// AutoConvert lets clusters of duplicates convert on their own.
	AutoConvert bool `yaml:"auto_convert" json:"auto_convert"`
	// ConvertWhen, when set, converts a lead without duplicates whose field
	// matches (real-time conversion on creation or update).
	ConvertWhen *Condition `yaml:"convert_when,omitempty" json:"convert_when,omitempty"`
	// ContactFields maps contact field names to lead field names (contact
	// AccountName -> lead Company), on top of the CRM model's mapping
	// (ContactFieldsFor). It is also the lead -> contact mapping of
	// conversion: a lead field maps to the contact field naming it; an
	// unmapped field keeps its name when it is one of the model's contact
	// fields (or unmapped_fields is carry_over), else it is left out.
	ContactFields record.FieldMap `yaml:"contact_fields" json:"contact_fields"`
}

// MasterConfig picks the surviving record.
type MasterConfig struct {
	Strategy string `yaml:"strategy" json:"strategy"`
	// Field is the date field of newest_date/oldest_date and the value field
	// of specified_values.
	Field string `yaml:"field,omitempty" json:"field,omitempty"`
	// Values is specified_values' priority list, highest first; "" stands
	// for blank.
	Values []string `yaml:"values,omitempty" json:"values,omitempty"`
	// Fields limits most_complete's count to these fields (default: all).
	Fields []string `yaml:"fields,omitempty" json:"fields,omitempty"`
	// Fallback decides when the primary strategy cannot.
	Fallback string `yaml:"fallback" json:"fallback"`
}

// FieldsConfig sets how the master contact's field values are computed.
type FieldsConfig struct {
	// Default is take_from_master or take_any_when_master_blank.
	Default string `yaml:"default" json:"default"`
	// ConsiderBlanks lets a blank value win in most_common and the
	// newest/oldest modified/created strategies.
	ConsiderBlanks bool            `yaml:"consider_blanks" json:"consider_blanks"`
	Overrides      []FieldOverride `yaml:"overrides" json:"overrides"`
}

// FieldOverride sets the strategy of one (lead) field.
type FieldOverride struct {
	Field    string `yaml:"field" json:"field"`
	Strategy string `yaml:"strategy" json:"strategy"`
	// ConsiderBlanks overrides FieldsConfig.ConsiderBlanks for this field.
	ConsiderBlanks *bool `yaml:"consider_blanks,omitempty" json:"consider_blanks,omitempty"`
}

// ConversionConfig holds the options specific to lead conversion.
type ConversionConfig struct {
	// AccountField is the lead field naming the company (default Company).
	AccountField string `yaml:"account_field" json:"account_field"`
	// ContactAccountField is the contact field holding its account id
	// (default AccountId): a lead converted into an existing contact joins
	// that contact's account.
	ContactAccountField string             `yaml:"contact_account_field" json:"contact_account_field"`
	BlankAccount        BlankAccountConfig `yaml:"blank_account" json:"blank_account"`
	Opportunity         OpportunityConfig  `yaml:"opportunity" json:"opportunity"`
	// ConvertedStatus is the lead status written on every converted lead.
	ConvertedStatus string `yaml:"converted_status" json:"converted_status"`
	// AccountFields maps lead fields to the fields of a created account; the
	// account's name always comes from AccountField.
	AccountFields map[string]string `yaml:"account_fields" json:"account_fields"`
	// OpportunityFields maps lead fields to the fields of a created
	// opportunity.
	OpportunityFields map[string]string `yaml:"opportunity_fields" json:"opportunity_fields"`
	// UnmappedFields is what happens to a lead field that neither the CRM's
	// field model (Model) nor the config maps onto a created or merged
	// record: drop (default: the record gets its object's fields only) or
	// carry_over (written under the lead's name, as before field models).
	// The generic profile has no model: everything carries over.
	UnmappedFields string `yaml:"unmapped_fields" json:"unmapped_fields"`
}

// Unmapped field policies.
const (
	UnmappedDrop      = "drop"
	UnmappedCarryOver = "carry_over"
)

// BlankAccountConfig applies when the master's account value is blank.
type BlankAccountConfig struct {
	Strategy  string `yaml:"strategy" json:"strategy"`
	AccountID string `yaml:"account_id,omitempty" json:"account_id,omitempty"`
}

// OpportunityConfig controls opportunity creation.
type OpportunityConfig struct {
	Strategy string `yaml:"strategy" json:"strategy"`
	// NameFrom is the lead field naming the opportunity; when blank on the
	// master, the opportunity is named after the account.
	NameFrom string `yaml:"name_from,omitempty" json:"name_from,omitempty"`
}

// Condition is a field filter: the field's value equals Equals or is one of
// In, compared trimmed and case-insensitively; "" stands for blank.
type Condition struct {
	Field  string   `yaml:"field" json:"field"`
	Equals *string  `yaml:"equals,omitempty" json:"equals,omitempty"`
	In     []string `yaml:"in,omitempty" json:"in,omitempty"`
}

// Duration is a time.Duration written as Go writes one ("2s", "1m30s") or
// as 0.
type Duration time.Duration

// UnmarshalText reads "0" or a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	if string(b) == "0" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (300ms, 2s, 1m30s, or 0)", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the Go form.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func (d Duration) String() string { return time.Duration(d).String() }

// Limits are a CRM's API limits the plan respects.
type Limits struct {
	// MergeRecords is the most records (master included) one merge call takes.
	MergeRecords int `json:"merge_records"`
	// ConvertBatch is the most leads one convert call should take.
	ConvertBatch int `json:"convert_batch"`
}

// Profile returns the limits of a CRM profile. Salesforce merges up to 3
// records and recommends at most 100 leads per convertLead call; Zoho merges
// up to 3 and mass-converts at most 50; HubSpot and Dynamics merge 2 at a
// time; generic assumes the least: pairwise merges, one lead per call.
func Profile(crm string) (Limits, bool) {
	switch crm {
	case "salesforce":
		return Limits{MergeRecords: 3, ConvertBatch: 100}, true
	case "zoho":
		return Limits{MergeRecords: 3, ConvertBatch: 50}, true
	case "hubspot":
		return Limits{MergeRecords: 2, ConvertBatch: 100}, true
	case "dynamics":
		return Limits{MergeRecords: 2, ConvertBatch: 1000}, true
	case "generic":
		return Limits{MergeRecords: 2, ConvertBatch: 1}, true
	}
	return Limits{}, false
}

// Defaults of DefaultConfig.
const (
	DefaultAccountField        = "Company"
	DefaultContactAccountField = "AccountId"
	DefaultConvertedStatus     = "Closed - Converted"
	DefaultMaxClusterSize      = 20
	DefaultCRM                 = "salesforce"
	// DefaultSettle lets a burst (a list import, a form submitted twice)
	// and the writer's echoes of a conversion arrive before a cluster is
	// planned, while a new lead is still converted within seconds.
	DefaultSettle = Duration(2 * time.Second)
	// DefaultMaxSettle plans a cluster that never stops changing (a long
	// import touching it) within half a minute.
	DefaultMaxSettle = Duration(30 * time.Second)
)

// DefaultConfig returns the shipped configuration: the most complete record
// wins (ties: the most recently modified), its values are kept, leads convert
// into accounts named by Company, no opportunities. Every call returns fresh maps and slices.
func DefaultConfig() Config {
	return Config{
		Master: MasterConfig{Strategy: MasterMostComplete, Fallback: FallbackNewestModified},
		Fields: FieldsConfig{Default: FieldTakeFromMaster},
		Conversion: ConversionConfig{
			AccountField:        DefaultAccountField,
			ContactAccountField: DefaultContactAccountField,
			BlankAccount:        BlankAccountConfig{Strategy: AccountDoNotCreate},
			Opportunity:         OpportunityConfig{Strategy: OpportunityDoNotCreate},
			ConvertedStatus:     DefaultConvertedStatus,
			UnmappedFields:      UnmappedDrop,
		},
		CRM:                   DefaultCRM,
		MaxClusterSize:        DefaultMaxClusterSize,
		PreferExistingContact: true,
		Settle:                DefaultSettle,
		MaxSettle:             DefaultMaxSettle,
		AutoConvert:           true,
		ContactFields:         record.FieldMap{},
	}
}

// DefaultConfigFor is DefaultConfig for a CRM profile: the lead's company
// field and the contact's account link take that CRM's names (companyname
// and parentcustomerid for dynamics). Unknown and generic profiles keep
// DefaultConfig's names.
func DefaultConfigFor(crm string) Config {
	c := DefaultConfig()
	c.CRM = crm
	if m, ok := Model(crm); ok {
		c.Conversion.AccountField = m.AccountField
		c.Conversion.ContactAccountField = m.ContactAccount
	}
	return c
}

// Rejected strategy names: the seed app offers them for Auto Merge only.
const notForConversion = "not available for auto lead conversion"

// Validate checks c; path prefixes every error's location
// ("tenants.acme" gives "tenants.acme.master.strategy"). All problems are
// reported, joined.
func (c *Config) Validate(path string) error {
	var errs []error
	add := func(at, format string, a ...any) {
		if path != "" {
			at = path + "." + at
		}
		errs = append(errs, fmt.Errorf("%s: %s", at, fmt.Sprintf(format, a...)))
	}
	oneOf := func(at, v string, allowed []string) {
		if !contains(allowed, v) {
			add(at, "unknown %q (allowed: %s)", v, strings.Join(allowed, ", "))
		}
	}

	m := c.Master
	switch {
	case autoMergeOnly(m.Strategy, "flow", "maximum_number", "max_number"):
		add("master.strategy", "%q is %s (allowed: %s)", m.Strategy, notForConversion, strings.Join(MasterStrategies, ", "))
	case m.Strategy == MasterNewestDate || m.Strategy == MasterOldestDate:
		if strings.TrimSpace(m.Field) == "" {
			add("master.field", "is required for %s", m.Strategy)
		}
	case m.Strategy == MasterSpecifiedValues:
		if strings.TrimSpace(m.Field) == "" {
			add("master.field", "is required for %s", m.Strategy)
		}
		if len(m.Values) == 0 {
			add("master.values", "at least one value is required for %s (\"\" stands for blank)", m.Strategy)
		}
	case m.Strategy == MasterMostComplete || m.Strategy == MasterMostAttachments:
	default:
		oneOf("master.strategy", m.Strategy, MasterStrategies)
	}
	for i, f := range m.Fields {
		if strings.TrimSpace(f) == "" {
			add(fmt.Sprintf("master.fields[%d]", i), "must not be empty")
		}
	}
	oneOf("master.fallback", m.Fallback, FallbackStrategies)

	if autoMergeOnly(c.Fields.Default, "flow") {
		add("fields.default", "%q is %s (allowed: %s)", c.Fields.Default, notForConversion, strings.Join(DefaultStrategies, ", "))
	} else {
		oneOf("fields.default", c.Fields.Default, DefaultStrategies)
	}
	seen := make(map[string]int, len(c.Fields.Overrides))
	for i, o := range c.Fields.Overrides {
		at := fmt.Sprintf("fields.overrides[%d]", i)
		if strings.TrimSpace(o.Field) == "" {
			add(at+".field", "is required")
		} else if j, dup := seen[o.Field]; dup {
			add(at+".field", "%q is already overridden at fields.overrides[%d]", o.Field, j)
		} else {
			seen[o.Field] = i
		}
		if autoMergeOnly(o.Strategy, "flow") {
			add(at+".strategy", "%q is %s (allowed: %s)", o.Strategy, notForConversion, strings.Join(FieldStrategies, ", "))
		} else {
			oneOf(at+".strategy", o.Strategy, FieldStrategies)
		}
	}

	cv := c.Conversion
	if strings.TrimSpace(cv.AccountField) == "" {
		add("conversion.account_field", "is required (default %s)", DefaultAccountField)
	}
	if strings.TrimSpace(cv.ContactAccountField) == "" {
		add("conversion.contact_account_field", "is required (default %s)", DefaultContactAccountField)
	}
	oneOf("conversion.blank_account.strategy", cv.BlankAccount.Strategy, BlankAccountStrategies)
	if cv.BlankAccount.Strategy == AccountUseExisting && strings.TrimSpace(cv.BlankAccount.AccountID) == "" {
		add("conversion.blank_account.account_id", "is required for %s", AccountUseExisting)
	}
	oneOf("conversion.opportunity.strategy", cv.Opportunity.Strategy, OpportunityStrategies)
	if cv.Opportunity.Strategy == OpportunityCreate && strings.TrimSpace(cv.Opportunity.NameFrom) == "" {
		add("conversion.opportunity.name_from", "is required for %s", OpportunityCreate)
	}
	oneOf("conversion.unmapped_fields", cv.UnmappedFields, UnmappedPolicies)
	if strings.TrimSpace(cv.ConvertedStatus) == "" {
		add("conversion.converted_status", "is required (default %q)", DefaultConvertedStatus)
	}
	for _, mp := range []struct {
		at string
		m  map[string]string
	}{{"conversion.account_fields", cv.AccountFields}, {"conversion.opportunity_fields", cv.OpportunityFields}} {
		for k, v := range mp.m {
			if strings.TrimSpace(k) == "" || strings.TrimSpace(v) == "" {
				add(mp.at, "field names must not be empty")
				break
			}
		}
	}

	if _, ok := Profile(c.CRM); !ok {
		oneOf("crm", c.CRM, CRMs)
	}
	if c.Settle < 0 {
		add("settle", "must not be negative, got %s", c.Settle)
	}
	if c.MaxSettle < 0 {
		add("max_settle", "must not be negative, got %s", c.MaxSettle)
	} else if c.MaxSettle > 0 && c.MaxSettle < c.Settle {
		add("max_settle", "%s is shorter than settle %s (0 means no bound)", c.MaxSettle, c.Settle)
	}
	if c.MaxClusterSize < 2 {
		add("max_cluster_size", "must be at least 2, got %d", c.MaxClusterSize)
	}
	if w := c.ConvertWhen; w != nil {
		if strings.TrimSpace(w.Field) == "" {
			add("convert_when.field", "is required")
		}
		switch {
		case w.Equals == nil && len(w.In) == 0:
			add("convert_when", "needs equals or in")
		case w.Equals != nil && len(w.In) > 0:
			add("convert_when", "set either equals or in, not both")
		}
	}
	leads := make(map[string]string, len(c.ContactFields))
	for _, cf := range sortedKeys(c.ContactFields) {
		lf := c.ContactFields[cf]
		switch {
		case strings.TrimSpace(cf) == "" || strings.TrimSpace(lf) == "":
			add("contact_fields", "field names must not be empty")
		case leads[lf] != "":
			add("contact_fields."+cf, "lead field %q is already mapped from contact field %q", lf, leads[lf])
		default:
			leads[lf] = cf
		}
	}
	return errors.Join(errs...)
}

// autoMergeOnly reports whether s names one of the seed app's Auto Merge
// strategies, however it is spelled ("Maximum Number", "maximum-number").
func autoMergeOnly(s string, names ...string) bool {
	n := strings.NewReplacer(" ", "_", "-", "_").Replace(strings.ToLower(strings.TrimSpace(s)))
	return slices.Contains(names, n)
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }

// sortedKeys returns m's keys in byte order, so errors come out in a stable order.
func sortedKeys[M ~map[string]V, V any](m M) []string {
	return slices.Sorted(maps.Keys(m))
}
