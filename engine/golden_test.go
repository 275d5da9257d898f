package engine

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/leadconv/leadconv/record"
)

var update = flag.Bool("update", false, "rewrite engine/testdata/*.golden.json")

// goldenPlans are whole plans whose JSON is pinned under testdata/.
func goldenPlans() []struct {
	name string
	cfg  *Config
	c    Cluster
} {
	leads := cluster(
		lead("00Q1", 0, 10, record.Fields{"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.com", "Company": "Analytical Engines", "Phone": nil}),
		lead("00Q2", 1, 12, record.Fields{"FirstName": "Ada", "LastName": "Lovelace", "Email": "ADA@example.com", "Company": "Analytical Engines Ltd", "Phone": "+44 20 7946 0000", "Tags": "math;poetry"}),
		lead("00Q3", 2, 11, record.Fields{"FirstName": "A.", "LastName": "Lovelace", "Email": "ada@example.com", "Tags": "Poetry;engines"}),
	)
	mixed := cluster(
		lead("00Q1", 0, 30, record.Fields{"FirstName": "Grace", "LastName": "Hopper", "Email": "grace@navy.mil", "Company": "US Navy", "Title": "Rear Admiral"}),
		contact("0031", 0, 20, record.Fields{"FirstName": "Grace", "LastName": "Hopper", "Email": "grace@navy.mil", "AccountName": "US Navy", "AccountId": "001N", "Phone": "555-0100", "Title": ""}),
		contact("0032", 0, 21, record.Fields{"FirstName": "Grace", "LastName": "Hopper", "Email": "ghopper@navy.mil", "AccountName": "Navy"}),
		contact("0033", 0, 22, record.Fields{"FirstName": "G.", "LastName": "Hopper", "AccountName": "Navy"}),
		contact("0034", 0, 23, record.Fields{"LastName": "Hopper", "Email": "grace@navy.mil"}),
	)
	mixedCfg := func(fn func(*Config)) *Config {
		return cfgWith(func(c *Config) {
			c.ContactFields = record.FieldMap{"AccountName": "Company"}
			c.Master = MasterConfig{Strategy: MasterSpecifiedValues, Field: "Email", Values: []string{"grace@navy.mil"}, Fallback: FallbackOldestCreated}
			c.Fields.Default = FieldTakeAnyWhenMasterBlank
			if fn != nil {
				fn(c)
			}
		})
	}
	many := make([]record.Record, 0, 60)
	for i := range 60 {
		many = append(many, lead(fmt.Sprintf("00Q%03d", i), i, i, record.Fields{"LastName": "Lamarr", "Company": "MGM"}))
	}
	manyC := cluster(many...)
	manyC.Accounts = map[string]string{"MGM": "001M"}

	return []struct {
		name string
		cfg  *Config
		c    Cluster
	}{
		{"leads_create_account", cfgWith(func(c *Config) {
			c.Fields.Overrides = []FieldOverride{{Field: "Tags", Strategy: FieldCombineValues}, {Field: "Email", Strategy: FieldMostCommon}}
		}), leads},
		{"leads_opportunity_mappings", cfgWith(func(c *Config) {
			c.Master = MasterConfig{Strategy: MasterOldestDate, Field: "CreatedDate", Fallback: FallbackOldestCreated}
			c.Fields.Default = FieldTakeAnyWhenMasterBlank
			c.Conversion.Opportunity = OpportunityConfig{Strategy: OpportunityCreate, NameFrom: "Title"}
			c.Conversion.AccountFields = map[string]string{"Phone": "AccountPhone", "FirstName": "-", "LastName": "-", "Email": "-", "Tags": "-"}
			c.Conversion.OpportunityFields = map[string]string{"Tags": "Interests", "Phone": "-"}
			c.Conversion.ConvertedStatus = "Qualified"
		}), leads},
		{"mixed_contact_master", mixedCfg(nil), mixed},
		{"mixed_hubspot_batches", mixedCfg(func(c *Config) {
			c.CRM = "hubspot"
			c.Master = MasterConfig{Strategy: MasterNewestDate, Field: "LastActivity", Fallback: FallbackNewestModified}
		}), mixed},
		{"merge_contacts_only", cfgWith(func(c *Config) {
			c.MergeContacts = true
			c.ContactFields = record.FieldMap{"AccountName": "Company"}
		}), cluster(mixed.Records[1:]...)},
		{"do_not_convert_tie", cfgWith(func(c *Config) {
			c.Master = MasterConfig{Strategy: MasterMostAttachments, Fallback: FallbackDoNotConvert}
			c.PreferExistingContact = false // the tie is between the two leads
		}), cluster(
			rb{obj: record.Lead, id: "00Q1", modified: 5, related: 3, fields: record.Fields{"LastName": "Curie"}}.rec(),
			rb{obj: record.Lead, id: "00Q2", modified: 5, related: 3, fields: record.Fields{"LastName": "Curie"}}.rec(),
			rb{obj: record.Contact, id: "0031", modified: 9, related: 1, fields: record.Fields{"LastName": "Curie"}}.rec(),
		)},
		{"blank_account", cfgWith(nil), cluster(
			lead("00Q1", 0, 1, record.Fields{"LastName": "Curie", "Company": " "}),
			lead("00Q2", 0, 2, record.Fields{"LastName": "Curie"}),
		)},
		{"cluster_too_large", cfgWith(nil), manyC},
		{"generic_batches", cfgWith(func(c *Config) { c.CRM = "generic"; c.PreferExistingContact = false }), cluster(append(leads.Records, mixed.Records[1:4]...)...)},
		// The most complete record is lead 00Q2, but the cluster holds an
		// existing contact: it stays the master (the shipped default).
		{"prefer_existing_contact", cfgWith(nil), cluster(append(leads.Records,
			contact("0035", 0, 5, record.Fields{"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.com", "AccountId": "001A"}))...)},
		// An existing contact without account link or company converts
		// its leads into the account their company names.
		{"contact_master_without_account", cfgWith(nil), cluster(append(leads.Records,
			contact("0035", 0, 5, record.Fields{"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.com"}))...)},
		{"single_lead_convert_when", cfgWith(func(c *Config) {
			c.ConvertWhen = &Condition{Field: "LeadSource", In: []string{"Web", "Partner"}}
			c.Conversion.BlankAccount = BlankAccountConfig{Strategy: AccountUseExisting, AccountID: "001DEFAULT"}
		}), cluster(lead("00Q9", 0, 0, record.Fields{"LastName": "Noether", "LeadSource": " web "}))},
	}
}

func TestGoldenPlans(t *testing.T) {
	for _, g := range goldenPlans() {
		t.Run(g.name, func(t *testing.T) {
			if err := g.cfg.Validate(""); err != nil {
				t.Fatalf("config: %v", err)
			}
			got := marshalPlan(t, Plan(g.cfg, g.c))
			path := filepath.Join("testdata", g.name+".golden.json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./engine -run TestGoldenPlans -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("plan differs from %s (rerun with -update after checking the diff):\n%s", path, got)
			}
		})
	}
}

func marshalPlan(t testing.TB, r Result) []byte {
	t.Helper()
	b, err := json.MarshalIndent(struct {
		Reason   string     `json:"reason,omitempty"`
		Master   record.Ref `json:"master"`
		Commands []Command  `json:"commands"`
	}{r.Reason, r.Master, r.Commands}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// TestCommandJSON: commands decode back into the data type their kind names
// and re-encode byte for byte; unknown kinds and malformed data are errors.
func TestCommandJSON(t *testing.T) {
	for _, g := range goldenPlans() {
		for _, c := range Plan(g.cfg, g.c).Commands {
			b, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			var back Command
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("%s: %v", g.name, err)
			}
			b2, _ := json.Marshal(back)
			if !bytes.Equal(b, b2) || back.Type() != "io.leadconv."+c.Kind+".v1" {
				t.Errorf("%s: %s does not round-trip:\n%s\n%s", g.name, c.Kind, b, b2)
			}
		}
	}
	for _, tt := range []struct{ in, want string }{
		{`{"kind":"lead.delete","data":{}}`, `unknown command kind "lead.delete"`},
		{`{"kind":"records.merge","data":{"merged_ids":"x"}}`, `engine: records.merge data:`},
		{`{"kind":1}`, `cannot unmarshal`},
	} {
		var c Command
		if err := json.Unmarshal([]byte(tt.in), &c); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Unmarshal(%s) = %v, want %q", tt.in, err, tt.want)
		}
	}
}
