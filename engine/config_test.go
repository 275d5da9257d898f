package engine

import (
	"strings"
	"testing"

	"github.com/leadconv/leadconv/record"
)

func TestValidate(t *testing.T) {
	web := "Web"
	masters := strings.Join(MasterStrategies, ", ")
	tests := []struct {
		name string
		edit func(*Config)
		want []string // substrings of the error; none = valid
	}{
		{name: "default", edit: nil},
		{name: "Flow master", edit: func(c *Config) { c.Master.Strategy = "Flow" },
			want: []string{`acme.master.strategy: "Flow" is not available for auto lead conversion (allowed: ` + masters + ")"}},
		{name: "Maximum Number master", edit: func(c *Config) { c.Master.Strategy = "Maximum Number" },
			want: []string{`acme.master.strategy: "Maximum Number" is not available for auto lead conversion`}},
		{name: "max_number master", edit: func(c *Config) { c.Master.Strategy = "max_number" },
			want: []string{`"max_number" is not available for auto lead conversion`}},
		{name: "flow default field strategy", edit: func(c *Config) { c.Fields.Default = "flow" },
			want: []string{`acme.fields.default: "flow" is not available for auto lead conversion (allowed: take_from_master, take_any_when_master_blank)`}},
		{name: "Flow field override", edit: func(c *Config) { c.Fields.Overrides = []FieldOverride{{Field: "X", Strategy: "Flow"}} },
			want: []string{`acme.fields.overrides[0].strategy: "Flow" is not available for auto lead conversion (allowed: ` + strings.Join(FieldStrategies, ", ") + ")"}},
		{name: "max_number is a field strategy", edit: func(c *Config) { c.Fields.Overrides = []FieldOverride{{Field: "X", Strategy: FieldMaxNumber}} }},
		{name: "unknown master", edit: func(c *Config) { c.Master.Strategy = "newest" },
			want: []string{`acme.master.strategy: unknown "newest" (allowed: ` + masters + ")"}},
		{name: "unknown fallback", edit: func(c *Config) { c.Master.Fallback = "" },
			want: []string{`acme.master.fallback: unknown "" (allowed: ` + strings.Join(FallbackStrategies, ", ") + ")"}},
		{name: "date without field", edit: func(c *Config) { c.Master = MasterConfig{Strategy: MasterOldestDate, Fallback: FallbackNewestModified} },
			want: []string{`acme.master.field: is required for oldest_date`}},
		{name: "specified_values without field and values", edit: func(c *Config) {
			c.Master = MasterConfig{Strategy: MasterSpecifiedValues, Fallback: FallbackNewestModified}
		}, want: []string{`acme.master.field: is required for specified_values`, `acme.master.values: at least one value is required`}},
		{name: "specified_values blank only", edit: func(c *Config) {
			c.Master = MasterConfig{Strategy: MasterSpecifiedValues, Field: "S", Values: []string{""}, Fallback: FallbackDoNotConvert}
		}},
		{name: "most_complete empty field name", edit: func(c *Config) { c.Master.Fields = []string{"A", " "} },
			want: []string{`acme.master.fields[1]: must not be empty`}},
		{name: "override without field", edit: func(c *Config) { c.Fields.Overrides = []FieldOverride{{Strategy: FieldMostCommon}} },
			want: []string{`acme.fields.overrides[0].field: is required`}},
		{name: "override twice", edit: func(c *Config) {
			c.Fields.Overrides = []FieldOverride{{Field: "X", Strategy: FieldMostCommon}, {Field: "X", Strategy: FieldMaxNumber}}
		}, want: []string{`acme.fields.overrides[1].field: "X" is already overridden at fields.overrides[0]`}},
		{name: "account field empty", edit: func(c *Config) { c.Conversion.AccountField = "" },
			want: []string{`acme.conversion.account_field: is required (default Company)`}},
		{name: "contact account field empty", edit: func(c *Config) { c.Conversion.ContactAccountField = " " },
			want: []string{`acme.conversion.contact_account_field: is required (default AccountId)`}},
		{name: "blank account strategy", edit: func(c *Config) { c.Conversion.BlankAccount.Strategy = "create" },
			want: []string{`acme.conversion.blank_account.strategy: unknown "create" (allowed: do_not_create, use_existing)`}},
		{name: "use_existing without id", edit: func(c *Config) { c.Conversion.BlankAccount.Strategy = AccountUseExisting },
			want: []string{`acme.conversion.blank_account.account_id: is required for use_existing`}},
		{name: "opportunity strategy", edit: func(c *Config) { c.Conversion.Opportunity.Strategy = "always" },
			want: []string{`acme.conversion.opportunity.strategy: unknown "always" (allowed: do_not_create, create)`}},
		{name: "create without name_from", edit: func(c *Config) { c.Conversion.Opportunity.Strategy = OpportunityCreate },
			want: []string{`acme.conversion.opportunity.name_from: is required for create`}},
		{name: "converted status", edit: func(c *Config) { c.Conversion.ConvertedStatus = "" },
			want: []string{`acme.conversion.converted_status: is required (default "Closed - Converted")`}},
		{name: "empty mapping", edit: func(c *Config) { c.Conversion.AccountFields = map[string]string{"A": ""} },
			want: []string{`acme.conversion.account_fields: field names must not be empty`}},
		{name: "crm", edit: func(c *Config) { c.CRM = "Salesforce" },
			want: []string{`acme.crm: unknown "Salesforce" (allowed: ` + strings.Join(CRMs, ", ") + ")"}},
		{name: "max cluster size", edit: func(c *Config) { c.MaxClusterSize = 1 },
			want: []string{`acme.max_cluster_size: must be at least 2, got 1`}},
		{name: "convert_when without field or value", edit: func(c *Config) { c.ConvertWhen = &Condition{} },
			want: []string{`acme.convert_when.field: is required`, `acme.convert_when: needs equals or in`}},
		{name: "convert_when both", edit: func(c *Config) { c.ConvertWhen = &Condition{Field: "S", Equals: &web, In: []string{"x"}} },
			want: []string{`acme.convert_when: set either equals or in, not both`}},
		{name: "contact field mapped twice", edit: func(c *Config) { c.ContactFields = record.FieldMap{"A": "Company", "B": "Company"} },
			want: []string{`acme.contact_fields.B: lead field "Company" is already mapped from contact field "A"`}},
		{name: "every problem at once", edit: func(c *Config) { c.CRM = "x"; c.MaxClusterSize = 0; c.Master.Strategy = "flow" },
			want: []string{`acme.crm:`, `acme.max_cluster_size:`, `acme.master.strategy:`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := cfgWith(tt.edit).Validate("acme")
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate = nil, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain\n%s", err, w)
				}
			}
		})
	}
	if err := cfgWith(func(c *Config) { c.CRM = "x" }).Validate(""); err == nil || !strings.HasPrefix(err.Error(), "crm: ") {
		t.Errorf("Validate without a path = %v, want the bare key", err)
	}
}

// TestDefaultConfig pins the shipped defaults the README documents.
func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(""); err != nil {
		t.Fatal(err)
	}
	if c.Master.Strategy != MasterMostComplete || c.Master.Fallback != FallbackNewestModified || c.Fields.Default != FieldTakeFromMaster ||
		c.Fields.ConsiderBlanks || c.Conversion.AccountField != "Company" || c.Conversion.BlankAccount.Strategy != AccountDoNotCreate ||
		c.Conversion.Opportunity.Strategy != OpportunityDoNotCreate || c.CRM != "salesforce" || c.MaxClusterSize != 20 ||
		c.MergeContacts || !c.AutoConvert || c.ConvertWhen != nil {
		t.Errorf("defaults changed: %+v", c)
	}
	// Fresh maps each call: a caller's edit never leaks into the next.
	c.ContactFields["X"] = "Y"
	if len(DefaultConfig().ContactFields) != 0 {
		t.Error("DefaultConfig shares its maps")
	}
}
