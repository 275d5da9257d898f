package engine

import (
	"maps"
	"slices"
	"sort"
	"testing"

	"github.com/leadconv/leadconv/record"
)

// keys returns the sorted field names of f.
func keys(f record.Fields) []string {
	out := slices.Collect(maps.Keys(f))
	sort.Strings(out)
	return out
}

// TestFieldModels: with a CRM profile, a created account gets account
// fields only and a contact only contact fields, under the CRM's names;
// unmapped_fields: carry_over keeps the old carry-over; the config's
// mappings go on top of the model's.
func TestFieldModels(t *testing.T) {
	tests := []struct {
		name           string
		crm            string
		fn             func(*Config)
		lead           record.Fields
		contact        []string // fields of the created contact
		account        []string // fields of the created account
		accountName    string
		opportunity    []string
		contactAccount string
	}{
		{name: "salesforce: person fields stay off the account, Company and Status off the contact", crm: "salesforce",
			lead: record.Fields{"FirstName": "Ann", "LastName": "Lee", "Email": "ann@acme.com", "Title": "CTO", "Status": "Open",
				"Company": "Acme", "City": "Rome", "PostalCode": "00100", "Website": "acme.com", "Phone": "+390669821234",
				"AnnualRevenue": 5e6, "LeadSource": "Web", "Lead_Only__c": "x", "CreatedDate": "2026-01-01T00:00:00Z"},
			contact:     []string{"Email", "FirstName", "LastName", "LeadSource", "MailingCity", "MailingPostalCode", "Phone", "Title"},
			account:     []string{"AnnualRevenue", "BillingCity", "BillingPostalCode", "Phone", "Website"},
			accountName: "Acme", opportunity: []string{"LeadSource"}, contactAccount: "AccountId"},
		{name: "salesforce carry_over: today's behaviour", crm: "salesforce",
			fn:      func(c *Config) { c.Conversion.UnmappedFields = UnmappedCarryOver },
			lead:    record.Fields{"FirstName": "Ann", "LastName": "Lee", "Company": "Acme", "City": "Rome", "Status": "Open"},
			contact: []string{"Company", "FirstName", "LastName", "MailingCity", "Status"},
			account: []string{"BillingCity", "Company", "FirstName", "LastName", "Status"}, accountName: "Acme", contactAccount: "AccountId"},
		{name: "salesforce: configured mappings on top of the model", crm: "salesforce",
			fn: func(c *Config) {
				c.Conversion.AccountFields = map[string]string{"Phone": "-", "Lead_Only__c": "Account_Only__c"}
				c.ContactFields = record.FieldMap{"Other_City__c": "City", "Lead_Only__c": "Lead_Only__c"}
			},
			lead:    record.Fields{"LastName": "Lee", "Company": "Acme", "City": "Rome", "Phone": "1", "Lead_Only__c": "x"},
			contact: []string{"LastName", "Lead_Only__c", "Other_City__c", "Phone"},
			account: []string{"Account_Only__c", "BillingCity"}, accountName: "Acme", contactAccount: "AccountId"},
		{name: "zoho: Company names the account, Designation is the contact's Title", crm: "zoho",
			lead: record.Fields{"First_Name": "Ann", "Last_Name": "Lee", "Designation": "CTO", "Company": "Acme", "Email": "a@acme.com",
				"Zip_Code": "00100", "Lead_Status": "Contacted", "Website": "acme.com"},
			contact: []string{"Email", "First_Name", "Last_Name", "Mailing_Zip", "Title"},
			account: []string{"Billing_Code", "Website"}, accountName: "Acme", contactAccount: "Account_Name"},
		{name: "dynamics: companyname, emailaddress1, parentcustomerid", crm: "dynamics",
			lead: record.Fields{"firstname": "Ann", "lastname": "Lee", "companyname": "Acme", "emailaddress1": "a@acme.com",
				"jobtitle": "CTO", "websiteurl": "acme.com", "address1_city": "Rome", "subject": "Big deal", "createdon": "2026-01-01T00:00:00Z"},
			contact: []string{"address1_city", "emailaddress1", "firstname", "jobtitle", "lastname"},
			account: []string{"address1_city", "websiteurl"}, accountName: "Acme", contactAccount: "parentcustomerid"},
		{name: "hubspot: contacts keep their company property", crm: "hubspot",
			lead: record.Fields{"firstname": "Ann", "lastname": "Lee", "company": "Acme", "email": "a@acme.com", "jobtitle": "CTO",
				"website": "acme.com", "city": "Rome", "numemployees": 50.0},
			contact: []string{"city", "company", "email", "firstname", "jobtitle", "lastname", "website"},
			account: []string{"city", "numberofemployees", "website"}, accountName: "Acme", contactAccount: "associatedcompanyid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfigFor(tt.crm)
			c.Conversion.Opportunity = OpportunityConfig{Strategy: OpportunityCreate, NameFrom: "Description"}
			if tt.fn != nil {
				tt.fn(&c)
			}
			if err := c.Validate(""); err != nil {
				t.Fatal(err)
			}
			if c.Conversion.ContactAccountField != tt.contactAccount {
				t.Errorf("contact account field = %q, want %q", c.Conversion.ContactAccountField, tt.contactAccount)
			}
			dup := maps.Clone(tt.lead)
			res := Plan(&c, cluster(lead("q1", 0, 2, tt.lead), lead("q2", 0, 1, dup)))
			lc := converts(res)
			if len(lc) != 2 {
				t.Fatalf("plan %v (%s), want two conversions", kinds(res), res.Reason)
			}
			if got := keys(lc[0].Fields); !slices.Equal(got, tt.contact) {
				t.Errorf("contact fields = %v, want %v", got, tt.contact)
			}
			if got := keys(lc[0].Account.Fields); !slices.Equal(got, tt.account) || lc[0].Account.Name != tt.accountName {
				t.Errorf("account %q fields = %v, want %q %v", lc[0].Account.Name, got, tt.accountName, tt.account)
			}
			if tt.opportunity != nil {
				if o := lc[0].Opportunity; o == nil || !slices.Equal(keys(o.Fields), tt.opportunity) {
					t.Errorf("opportunity = %+v, want fields %v", o, tt.opportunity)
				}
			}
		})
	}
}

// TestModels checks every model against itself: mapped fields exist on
// both objects, the conversion's own fields are named, and the canonical
// names cover the fields the shipped match rules and `leadconv gen` use.
func TestModels(t *testing.T) {
	for _, crm := range CRMs {
		m, ok := Model(crm)
		if crm == "generic" {
			if ok {
				t.Errorf("generic has a model")
			}
			continue
		}
		if !ok {
			t.Fatalf("%s: no model", crm)
		}
		for c, l := range m.ContactFields {
			if !slices.Contains(m.Contact, c) || !slices.Contains(m.Lead, l) {
				t.Errorf("%s: contact map %s <- %s names a field outside the model", crm, c, l)
			}
		}
		for l, a := range m.AccountFields {
			if !slices.Contains(m.Lead, l) || !slices.Contains(m.Account, a) {
				t.Errorf("%s: account map %s -> %s names a field outside the model", crm, l, a)
			}
		}
		for l, o := range m.OpportunityFields {
			if !slices.Contains(m.Lead, l) || !slices.Contains(m.Opportunity, o) {
				t.Errorf("%s: opportunity map %s -> %s names a field outside the model", crm, l, o)
			}
		}
		for _, f := range []string{m.AccountField, m.AccountName, m.ContactAccount, m.Created, m.Modified} {
			if f == "" {
				t.Errorf("%s: a conversion field is unnamed: %+v", crm, m)
			}
		}
		if !slices.Contains(m.Account, m.AccountName) || !slices.Contains(m.Lead, m.AccountField) || !slices.Contains(m.Contact, m.ContactAccount) {
			t.Errorf("%s: account field %s, name %s or link %s missing from the objects", crm, m.AccountField, m.AccountName, m.ContactAccount)
		}
		for _, f := range []string{"FirstName", "LastName", "Email", "Phone", "MobilePhone", "Company", "Title", "City", "State", "PostalCode", "Country", "Street", "Website"} {
			if m.Canonical[f] == "" {
				t.Errorf("%s: no lead field for canonical %s", crm, f)
			}
		}
		cf := ContactFieldsFor(crm, record.FieldMap{"X": "City"})
		if again := ContactFieldsFor(crm, cf); !maps.Equal(again, cf) {
			t.Errorf("%s: ContactFieldsFor not idempotent: %v -> %v", crm, cf, again)
		}
		for c, l := range cf {
			if l == m.Canonical["City"] && c != "X" {
				t.Errorf("%s: City mapped twice (%s and X)", crm, c)
			}
		}
	}
}
