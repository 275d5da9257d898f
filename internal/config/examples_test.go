package config_test

import (
	"path/filepath"
	"testing"

	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/matcher/eval"
	"github.com/leadconv/leadconv/matcher/gen"
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

// TestCRMExamplesPrecision holds each CRM's example config to pairwise
// precision ≥ 0.99 on `leadconv gen` data written with that CRM's field
// names (and its CreatedDate-like system fields): a wrong merge destroys
// data. Recall is reported; it must stay useful.
func TestCRMExamplesPrecision(t *testing.T) {
	for _, ex := range []struct{ file, crm string }{
		{"salesforce", "salesforce"}, {"zoho", "zoho"}, {"hubspot", "hubspot"}, {"dynamics", "dynamics"},
		// The every-option example's defaults are a Salesforce tenant.
		{"leadconv", "salesforce"},
	} {
		crm := ex.crm
		t.Run(ex.file, func(t *testing.T) {
			t.Parallel()
			f, err := config.Load("../../examples/" + ex.file + ".yaml")
			if err != nil {
				t.Fatal(err)
			}
			tn := mustTenant(t, f, "anyone") // the defaults block
			if tn.Engine.CRM != crm {
				t.Fatalf("crm = %q, want %q", tn.Engine.CRM, crm)
			}
			set := gen.New(gen.Options{Seed: 3, Records: 4000, ContactShare: 0.2, Updates: 0.1, Deletes: 0.05, CRM: crm})
			ds := &eval.Dataset{Records: set.Records(), Truth: map[string]string{}}
			for ref, e := range set.Truth() {
				ds.Truth[ref.ID] = e
			}
			sc, _, err := eval.Run(t.Context(), eval.Oracle{Rules: tn.Rules}, ds)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %v", crm, sc)
			if sc.Precision < 0.99 || sc.Recall < 0.8 {
				t.Errorf("precision %.4f (want ≥ 0.99), recall %.4f (want ≥ 0.8)", sc.Precision, sc.Recall)
			}
		})
	}
}

// TestExampleRulesNeedPersonEvidence: every rule of every shipped example
// has a non-optional condition on the person (e-mail, phone or name):
// company evidence alone links colleagues.
func TestExampleRulesNeedPersonEvidence(t *testing.T) {
	paths, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(paths) < 5 {
		t.Fatalf("examples: %v %v", paths, err)
	}
	for _, p := range paths {
		f, err := config.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range append(f.Tenants(), "anyone") {
			for _, r := range mustTenant(t, f, name).Matching.Rules {
				person := false
				for _, c := range r.All {
					switch c.Normalizer {
					case "email", "phone", "name":
						person = person || !c.Optional
					}
				}
				if !person {
					t.Errorf("%s: tenant %s: rule %s has no person condition", p, name, r.Name)
				}
			}
		}
	}
}
