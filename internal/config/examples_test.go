package config_test

import (
	"testing"

	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/record"
)

// TestExampleWebsiteRevenueNeedsPersonEvidence reproduces the shipped
// example's wrong merge: its website_revenue rule linked two different
// people at one company (Ann and Bob: other first and last names, same
// website, similar revenue) once the records carried Salesforce's standard
// CreatedDate field. A person rule must require evidence of the person.
func TestExampleWebsiteRevenueNeedsPersonEvidence(t *testing.T) {
	f, err := config.Load(example)
	if err != nil {
		t.Fatal(err)
	}
	tn := mustTenant(t, f, "anyone")
	lead := func(id string, fields record.Fields) *record.Record {
		return &record.Record{Tenant: "anyone", Object: record.Lead, ID: id, Fields: fields}
	}
	ann := lead("00Q1", record.Fields{"FirstName": "Ann", "LastName": "Smith", "Company": "Acme Corp", "Website": "www.acme.com",
		"AnnualRevenue": 5000000.0, "CreatedDate": "2026-03-02T09:00:00.000+0000", "Email": "ann.smith@acme.com"})
	bob := lead("00Q2", record.Fields{"FirstName": "Bob", "LastName": "Jones", "Company": "Acme", "Website": "https://acme.com/",
		"AnnualRevenue": 5000500.0, "CreatedDate": "2026-03-09T15:30:00.000+0000", "Email": "bob.jones@acme.com"})
	if rule, ok := tn.Rules.Match(tn.Rules.Prepare(ann), tn.Rules.Prepare(bob)); ok {
		t.Errorf("Ann Smith and Bob Jones at acme.com match under rule %q: two people merged into one contact", rule)
	}
	// The same person entered twice still matches on the company evidence.
	ann2 := lead("00Q3", record.Fields{"FirstName": "Anne", "LastName": "Smith", "Website": "acme.com",
		"AnnualRevenue": 5000200.0, "CreatedDate": "2026-03-20T10:00:00Z"})
	if rule, ok := tn.Rules.Match(tn.Rules.Prepare(ann), tn.Rules.Prepare(ann2)); !ok || rule != "website_revenue" {
		t.Errorf("Ann and Anne Smith at acme.com: match %q %v, want website_revenue", rule, ok)
	}
}
