package engine

import (
	"fmt"
	"slices"
	"testing"

	"github.com/leadconv/leadconv/record"
)

// kinds lists a plan's command kinds in order.
func kinds(r Result) []string {
	out := make([]string, len(r.Commands))
	for i, c := range r.Commands {
		out[i] = c.Kind
	}
	return out
}

func converts(r Result) []*LeadConvert {
	var out []*LeadConvert
	for _, c := range r.Commands {
		if d, ok := c.Data.(*LeadConvert); ok {
			out = append(out, d)
		}
	}
	return out
}

func merges(r Result) []*RecordsMerge {
	var out []*RecordsMerge
	for _, c := range r.Commands {
		if d, ok := c.Data.(*RecordsMerge); ok {
			out = append(out, d)
		}
	}
	return out
}

func TestAccountOptions(t *testing.T) {
	master := MasterConfig{Strategy: MasterMostAttachments, Fallback: FallbackNewestModified}
	twoLeads := func(company any, accounts map[string]string) Cluster {
		c := cluster(
			rb{obj: record.Lead, id: "m", related: 5, fields: record.Fields{"LastName": "Curie", "Org": company, "Company": "Ignored Inc", "Phone": "1", "Web": "w"}}.rec(),
			rb{obj: record.Lead, id: "o", modified: 9, fields: record.Fields{"LastName": "Curie", "Org": "Other"}}.rec(),
		)
		c.Accounts = accounts
		return c
	}
	tests := []struct {
		name    string
		cfg     func(*Config)
		c       Cluster
		fail    bool // conversion.failed blank_account
		account AccountTarget
		source  string
	}{
		{name: "account_field names the company field; existing account by value", cfg: nil,
			c: twoLeads(" Radium Institute ", map[string]string{" Radium Institute ": "001R"}), account: AccountTarget{Target: Target{ID: "001R"}}, source: accountExisting},
		{name: "no existing account: create with mapped fields", cfg: func(c *Config) {
			c.Conversion.AccountFields = map[string]string{"Phone": "AccountPhone", "LastName": "-", "Org": "-", "Company": "-"}
		}, c: twoLeads("Radium Institute", nil),
			account: AccountTarget{Target: Target{Create: true}, Name: "Radium Institute", Fields: record.Fields{"AccountPhone": "1", "Web": "w"}}, source: accountCreate},
		{name: "blank do_not_create fails", cfg: nil, c: twoLeads("  ", nil), fail: true, source: accountBlank},
		{name: "absent do_not_create fails", cfg: nil, c: twoLeads(nil, nil), fail: true, source: accountBlank},
		{name: "blank use_existing", cfg: func(c *Config) {
			c.Conversion.BlankAccount = BlankAccountConfig{Strategy: AccountUseExisting, AccountID: "001DEF"}
		}, c: twoLeads("", nil), account: AccountTarget{Target: Target{ID: "001DEF"}}, source: accountUseExisting},
		{name: "blank master value filled by take_any before the account is chosen", cfg: func(c *Config) {
			c.Fields.Default = FieldTakeAnyWhenMasterBlank
		}, c: twoLeads("", map[string]string{"Other": "001O"}), account: AccountTarget{Target: Target{ID: "001O"}}, source: accountExisting},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := cfgWith(func(c *Config) {
				c.Master = master
				c.Conversion.AccountField = "Org"
				if tt.cfg != nil {
					tt.cfg(c)
				}
			})
			if err := cfg.Validate(""); err != nil {
				t.Fatal(err)
			}
			res := Plan(cfg, tt.c)
			ex := res.Commands[0].Explain
			if ex.Account == nil || ex.Account.Source != tt.source {
				t.Errorf("account explain = %+v, want source %s", ex.Account, tt.source)
			}
			if tt.fail {
				f, ok := res.Commands[0].Data.(*ConversionFailed)
				if len(res.Commands) != 1 || !ok || f.Reason != ReasonBlankAccount || res.Reason != ReasonBlankAccount || f.Master.ID != "m" || len(f.Records) != 2 {
					t.Fatalf("plan %v %+v, want one conversion.failed blank_account", kinds(res), res.Commands[0].Data)
				}
				return
			}
			lc := converts(res)
			if len(lc) != 2 {
				t.Fatalf("plan %v, want two conversions", kinds(res))
			}
			if fmt.Sprint(lc[0].Account) != fmt.Sprint(tt.account) {
				t.Errorf("account = %+v, want %+v", lc[0].Account, tt.account)
			}
			// The second conversion joins the same account: by id, or the
			// one the first conversion creates.
			want := Target{ID: tt.account.ID}
			if tt.account.Create {
				want = Target{FromLead: "m"}
			}
			if lc[1].Account.Target != want || lc[1].Account.Name != "" || lc[1].Account.Fields != nil {
				t.Errorf("second account = %+v, want %+v", lc[1].Account, want)
			}
		})
	}
}

func TestAccountValues(t *testing.T) {
	recs := []record.Record{
		lead("a", 0, 2, record.Fields{"Company": " Acme "}),
		lead("b", 0, 1, record.Fields{"Company": "Acme Ltd"}),
		contact("c", 0, 0, record.Fields{"LastName": "X"}),
	}
	cfg := cfgWith(func(c *Config) {
		c.Master = MasterConfig{Strategy: MasterMostComplete, Fallback: FallbackNewestModified}
		c.PreferExistingContact = false
	})
	if got := AccountValues(cfg, recs); !slices.Equal(got, []string{" Acme "}) {
		t.Errorf("AccountValues = %q, want the master's untrimmed value", got)
	}
	// The value keys Cluster.Accounts as returned.
	c := cluster(recs...)
	c.Accounts = map[string]string{" Acme ": "001"}
	if lc := converts(Plan(cfg, c)); len(lc) != 2 || lc[0].Account.ID != "001" {
		t.Errorf("account not resolved through AccountValues' key: %+v", lc)
	}
	for name, tt := range map[string]struct {
		cfg  *Config
		recs []record.Record
	}{
		"contact master with an account": {cfg, []record.Record{lead("a", 0, 0, record.Fields{"Company": "A"}), contact("c", 0, 5, record.Fields{"AccountId": "001", "Company": "A", "X": "1"})}},
		"blank":                          {cfg, []record.Record{lead("a", 0, 0, nil), lead("b", 0, 1, record.Fields{"Company": ""})}},
		"no lead":                        {cfg, []record.Record{contact("a", 0, 0, record.Fields{"Company": "A"}), contact("b", 0, 0, nil)}},
		"too large":                      {cfgWith(func(c *Config) { c.MaxClusterSize = 2 }), append(slices.Clone(recs), lead("d", 0, 0, nil))},
		"invalid config":                 {cfgWith(func(c *Config) { c.CRM = "nope" }), recs},
		"do_not_convert": {cfgWith(func(c *Config) {
			c.Master = MasterConfig{Strategy: MasterNewestDate, Field: "D", Fallback: FallbackDoNotConvert}
		}), recs},
	} {
		if got := AccountValues(tt.cfg, tt.recs); got != nil {
			t.Errorf("%s: AccountValues = %q, want nil", name, got)
		}
	}
}

func TestOpportunityAndStatus(t *testing.T) {
	tests := []struct {
		name     string
		opp      OpportunityConfig
		company  any
		accounts map[string]string
		title    any
		want     *Opportunity
	}{
		{name: "do_not_create", opp: OpportunityConfig{Strategy: OpportunityDoNotCreate}, company: "Acme", want: nil},
		{name: "named from field", opp: OpportunityConfig{Strategy: OpportunityCreate, NameFrom: "Title"}, company: "Acme", title: " Big deal ",
			want: &Opportunity{Name: "Big deal", NameSource: opportunityField}},
		{name: "blank field: named after the account", opp: OpportunityConfig{Strategy: OpportunityCreate, NameFrom: "Title"}, company: "Acme", title: "",
			want: &Opportunity{Name: "Acme", NameSource: opportunityAccount}},
		{name: "existing account keeps its name", opp: OpportunityConfig{Strategy: OpportunityCreate, NameFrom: "Title"}, company: "Acme", accounts: map[string]string{"Acme": "001"},
			want: &Opportunity{Name: "Acme", NameSource: opportunityAccount}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := cfgWith(func(c *Config) {
				c.Master = MasterConfig{Strategy: MasterMostAttachments, Fallback: FallbackNewestModified}
				c.Conversion.Opportunity = tt.opp
				c.Conversion.ConvertedStatus = "Qualified - Won"
				c.Conversion.OpportunityFields = map[string]string{"Title": "-", "LastName": "-", "Company": "-", "Source": "OppSource"}
			})
			c := cluster(
				rb{obj: record.Lead, id: "m", related: 2, fields: record.Fields{"LastName": "K", "Company": tt.company, "Title": tt.title, "Source": "Web"}}.rec(),
				rb{obj: record.Lead, id: "n", fields: record.Fields{"LastName": "K", "Title": "Other"}}.rec(),
			)
			c.Accounts = tt.accounts
			lc := converts(Plan(cfg, c))
			if len(lc) != 2 {
				t.Fatalf("want two conversions, got %d", len(lc))
			}
			for _, d := range lc {
				if d.ConvertedStatus != "Qualified - Won" {
					t.Errorf("%s: converted status %q", d.LeadID, d.ConvertedStatus)
				}
			}
			if lc[1].Opportunity != nil {
				t.Errorf("second conversion creates an opportunity too: %+v", lc[1].Opportunity)
			}
			got := lc[0].Opportunity
			if tt.want == nil {
				if got != nil {
					t.Errorf("opportunity = %+v, want none", got)
				}
				return
			}
			if got == nil || got.Name != tt.want.Name || got.NameSource != tt.want.NameSource {
				t.Fatalf("opportunity = %+v, want %+v", got, tt.want)
			}
			if fmt.Sprint(got.Fields) != fmt.Sprint(record.Fields{"OppSource": "Web"}) {
				t.Errorf("opportunity fields = %v, want mapped and carried over", got.Fields)
			}
		})
	}
}

// TestContactMaster: a lead converted into an existing contact joins that
// contact's account; contact fields are read and written under contact
// names, unmapped fields keep their names.
func TestContactMaster(t *testing.T) {
	cfg := cfgWith(func(c *Config) {
		c.ContactFields = record.FieldMap{"AccountName": "Company", "Mobile": "MobilePhone"}
		c.Master = MasterConfig{Strategy: MasterSpecifiedValues, Field: "Company", Values: []string{"Navy"}, Fallback: FallbackNewestModified}
		c.Fields.Default = FieldTakeAnyWhenMasterBlank
	})
	c := cluster(
		lead("q1", 0, 9, record.Fields{"Company": "US Navy", "MobilePhone": "555", "Lead_Only__c": "x", "Title": "Admiral"}),
		contact("c1", 0, 1, record.Fields{"AccountName": "navy", "AccountId": "001N", "Title": " ", "Contact_Only__c": "y"}),
		contact("c2", 0, 2, record.Fields{"AccountName": "Other", "AccountId": "001O", "Mobile": "777"}),
	)
	c.Accounts = map[string]string{"navy": "001X"}
	res := Plan(cfg, c)
	if res.Master != (record.Ref{Object: record.Contact, ID: "c1"}) {
		t.Fatalf("master = %v", res.Master)
	}
	if got := kinds(res); !slices.Equal(got, []string{KindLeadConvert, KindRecordsMerge}) {
		t.Fatalf("plan = %v", got)
	}
	lc := converts(res)[0]
	if lc.Contact != (Target{ID: "c1"}) || lc.Account.Target != (Target{ID: "001N"}) || lc.Account.Name != "" {
		t.Errorf("convert into %+v / %+v, want contact c1 and its account 001N", lc.Contact, lc.Account)
	}
	want := record.Fields{"AccountName": "navy", "Mobile": "555", "Lead_Only__c": "x", "Title": "Admiral", "Contact_Only__c": "y"}
	if fmt.Sprint(lc.Fields) != fmt.Sprint(want) {
		t.Errorf("fields = %v, want %v (contact names, account link excluded)", lc.Fields, want)
	}
	if ex := res.Commands[0].Explain.Account; ex == nil || ex.Source != accountFromContact || ex.ID != "001N" {
		t.Errorf("account explain = %+v", ex)
	}
	m := merges(res)[0]
	if m.Master != (Target{ID: "c1"}) || !slices.Equal(m.MergedIDs, []string{"c2"}) || m.Object != record.Contact {
		t.Errorf("merge = %+v", m)
	}
	// Explain names each written field under its contact name with its source.
	from := map[string]string{}
	for _, f := range res.Commands[0].Explain.Fields {
		if len(f.From) > 0 {
			from[f.Field] = f.From[0].ID
		}
	}
	if from["Mobile"] != "q1" || from["Title"] != "q1" || from["AccountName"] != "c1" {
		t.Errorf("explain sources = %v", from)
	}
}

// TestCRMLimits: merges come in batches of the profile's merge limit, all
// chained on the master; conversions in batches of its convert limit.
func TestCRMLimits(t *testing.T) {
	for _, crm := range CRMs {
		for _, n := range []int{1, 2, 3, 4, 5, 7} {
			t.Run(fmt.Sprintf("%s/%d contacts", crm, n), func(t *testing.T) {
				lim, _ := Profile(crm)
				cfg := cfgWith(func(c *Config) {
					c.CRM = crm
					c.Master = MasterConfig{Strategy: MasterMostAttachments, Fallback: FallbackNewestModified}
					c.PreferExistingContact = false // the lead with attachments is the master
					c.Conversion.BlankAccount = BlankAccountConfig{Strategy: AccountUseExisting, AccountID: "001"}
				})
				recs := []record.Record{rb{obj: record.Lead, id: "L", related: 9, fields: record.Fields{"X": "1"}}.rec()}
				for i := range n {
					recs = append(recs, contact(fmt.Sprintf("c%d", i), 0, i, record.Fields{"X": "2"}))
				}
				res := Plan(cfg, cluster(recs...))
				ms := merges(res)
				if want := (n + lim.MergeRecords - 2) / (lim.MergeRecords - 1); len(ms) != want {
					t.Fatalf("%d merges, want %d", len(ms), want)
				}
				var merged []string
				for b, m := range ms {
					if len(m.MergedIDs) > lim.MergeRecords-1 || m.Batch != b || m.Master != (Target{FromLead: "L"}) {
						t.Errorf("merge %d = %+v", b, m)
					}
					merged = append(merged, m.MergedIDs...)
				}
				if len(merged) != n || len(slices.Compact(slices.Sorted(slices.Values(merged)))) != n {
					t.Errorf("merged %v, want each of %d contacts once", merged, n)
				}
			})
		}
	}

	for _, tt := range []struct {
		crm   string
		leads int
		want  []int // conversions per batch
	}{
		{"salesforce", 150, []int{1, 100, 49}},
		{"zoho", 120, []int{1, 50, 50, 19}},
		{"generic", 3, []int{1, 1, 1}},
		{"dynamics", 5, []int{1, 4}},
	} {
		t.Run(fmt.Sprintf("%s/%d leads", tt.crm, tt.leads), func(t *testing.T) {
			cfg := cfgWith(func(c *Config) { c.CRM = tt.crm; c.MaxClusterSize = 1000 })
			recs := make([]record.Record, tt.leads)
			for i := range recs {
				recs[i] = lead(fmt.Sprintf("L%03d", i), 0, i, record.Fields{"Company": "Acme"})
			}
			c := cluster(recs...)
			c.Accounts = map[string]string{"Acme": "001"}
			var sizes []int
			for _, d := range converts(Plan(cfg, c)) {
				for len(sizes) <= d.Batch {
					sizes = append(sizes, 0)
				}
				sizes[d.Batch]++
			}
			if !slices.Equal(sizes, tt.want) {
				t.Errorf("batch sizes %v, want %v", sizes, tt.want)
			}
		})
	}
}

// TestGates covers when a cluster plans nothing or a review.
func TestGates(t *testing.T) {
	web, blank := "Web", ""
	l := func(id string, src any) record.Record {
		return lead(id, 0, 0, record.Fields{"Company": "Acme", "LeadSource": src})
	}
	acct := rb{obj: record.Account, id: "001", fields: record.Fields{"Name": "Acme"}}.rec()
	tests := []struct {
		name   string
		cfg    func(*Config)
		recs   []record.Record
		reason string
		kinds  []string
	}{
		{name: "empty", recs: nil, reason: NothingNoRecords},
		{name: "only accounts", recs: []record.Record{acct}, reason: NothingNoRecords},
		{name: "accounts never join", recs: []record.Record{l("a", "x"), l("b", "x"), acct}, kinds: []string{KindLeadConvert, KindLeadConvert}},
		{name: "contacts only, merge_contacts off", recs: []record.Record{contact("a", 0, 0, nil), contact("b", 0, 0, nil)}, reason: NothingNoLead},
		{name: "contacts only, merge_contacts on", cfg: func(c *Config) { c.MergeContacts = true },
			recs: []record.Record{contact("a", 0, 0, nil), contact("b", 0, 0, nil)}, kinds: []string{KindRecordsMerge}},
		{name: "single contact, merge_contacts on", cfg: func(c *Config) { c.MergeContacts = true },
			recs: []record.Record{contact("a", 0, 0, nil)}, reason: NothingNoDuplicates},
		{name: "single lead without convert_when", recs: []record.Record{l("a", "Web")}, reason: NothingNoDuplicates},
		{name: "convert_when equals, trimmed and case-insensitive", cfg: func(c *Config) { c.ConvertWhen = &Condition{Field: "LeadSource", Equals: &web} },
			recs: []record.Record{l("a", " web ")}, kinds: []string{KindLeadConvert}},
		{name: "convert_when equals not matched", cfg: func(c *Config) { c.ConvertWhen = &Condition{Field: "LeadSource", Equals: &web} },
			recs: []record.Record{l("a", "Webinar")}, reason: NothingNoConvertWhen},
		{name: "convert_when equals blank", cfg: func(c *Config) { c.ConvertWhen = &Condition{Field: "LeadSource", Equals: &blank} },
			recs: []record.Record{l("a", nil)}, kinds: []string{KindLeadConvert}},
		{name: "convert_when blank does not match a value", cfg: func(c *Config) { c.ConvertWhen = &Condition{Field: "LeadSource", Equals: &blank} },
			recs: []record.Record{l("a", "Web")}, reason: NothingNoConvertWhen},
		{name: "convert_when in", cfg: func(c *Config) { c.ConvertWhen = &Condition{Field: "LeadSource", In: []string{"Partner", "web"}} },
			recs: []record.Record{l("a", "WEB")}, kinds: []string{KindLeadConvert}},
		{name: "convert_when in, number", cfg: func(c *Config) { c.ConvertWhen = &Condition{Field: "LeadSource", In: []string{"7"}} },
			recs: []record.Record{l("a", 7.0)}, kinds: []string{KindLeadConvert}},
		{name: "convert_when in not matched", cfg: func(c *Config) { c.ConvertWhen = &Condition{Field: "LeadSource", In: []string{"Partner"}} },
			recs: []record.Record{l("a", "Web")}, reason: NothingNoConvertWhen},
		{name: "convert_when with auto_convert off still converts single leads", cfg: func(c *Config) {
			c.AutoConvert = false
			c.ConvertWhen = &Condition{Field: "LeadSource", Equals: &web}
		}, recs: []record.Record{l("a", "Web")}, kinds: []string{KindLeadConvert}},
		{name: "auto_convert off", cfg: func(c *Config) { c.AutoConvert = false }, recs: []record.Record{l("a", "x"), l("b", "x")}, reason: NothingAutoConvert},
		{name: "at max_cluster_size", cfg: func(c *Config) { c.MaxClusterSize, c.PreferExistingContact = 3, false },
			recs: []record.Record{l("a", "x"), l("b", "x"), contact("c", 0, 0, nil), acct}, kinds: []string{KindLeadConvert, KindLeadConvert, KindRecordsMerge}},
		{name: "over max_cluster_size", cfg: func(c *Config) { c.MaxClusterSize = 2 },
			recs: []record.Record{l("a", "x"), l("b", "x"), contact("c", 0, 0, nil)}, reason: ReasonClusterTooLarge, kinds: []string{KindReviewRequested}},
		{name: "invalid config plans a review", cfg: func(c *Config) { c.Master.Strategy = "flow" },
			recs: []record.Record{l("a", "x"), l("b", "x")}, reason: ReasonInvalidConfig, kinds: []string{KindReviewRequested}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Plan(cfgWith(tt.cfg), cluster(tt.recs...))
			if res.Reason != tt.reason || !slices.Equal(kinds(res), tt.kinds) {
				t.Fatalf("plan %v reason %q, want %v %q", kinds(res), res.Reason, tt.kinds, tt.reason)
			}
			if rr, ok := firstData(res).(*ReviewRequested); ok {
				if rr.Reason != tt.reason || len(rr.Records) != len(tt.recs)-countAccounts(tt.recs) {
					t.Errorf("review = %+v", rr)
				}
				if tt.reason == ReasonClusterTooLarge && (rr.Size != 3 || rr.Limit != 2) {
					t.Errorf("review size/limit = %d/%d, want 3/2", rr.Size, rr.Limit)
				}
				if s := res.Commands[0].Explain.Master.Strategy; tt.reason == ReasonInvalidConfig && s != "" {
					t.Errorf("explain names strategy %q of an invalid config", s)
				}
			}
		})
	}
}

func firstData(r Result) any {
	if len(r.Commands) == 0 {
		return nil
	}
	return r.Commands[0].Data
}

func countAccounts(recs []record.Record) int {
	n := 0
	for _, r := range recs {
		if r.Object == record.Account {
			n++
		}
	}
	return n
}

func TestProfile(t *testing.T) {
	for _, tt := range []struct {
		crm            string
		merge, convert int
	}{{"salesforce", 3, 100}, {"zoho", 3, 50}, {"hubspot", 2, 100}, {"dynamics", 2, 1000}, {"generic", 2, 1}} {
		if l, ok := Profile(tt.crm); !ok || l.MergeRecords != tt.merge || l.ConvertBatch != tt.convert {
			t.Errorf("Profile(%s) = %+v %v", tt.crm, l, ok)
		}
	}
	if _, ok := Profile("pipedrive"); ok {
		t.Error("unknown profile accepted")
	}
}
