package matcher

import (
	"testing"

	"github.com/leadconv/leadconv/record"
)

func lead(id string, f record.Fields) record.Record {
	return record.Record{Tenant: "t", Object: record.Lead, ID: id, Fields: f}
}

func mustCompile(t testing.TB, cfg Config, fm record.FieldMap) *Ruleset {
	t.Helper()
	rs, err := Compile(cfg, fm)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestDefaultRulesMatch(t *testing.T) {
	fm := record.FieldMap{"AccountName": "Company"}
	rs := mustCompile(t, DefaultConfig(), fm)
	base := record.Fields{"FirstName": "Robert", "LastName": "Smith", "Email": "rob.smith@gmail.com",
		"Phone": "(312) 555-0100", "Company": "Acme, Inc."}
	tests := []struct {
		name  string
		a, b  record.Record
		rule  string
		match bool
	}{
		{"email dots and tag", lead("1", base), lead("2", record.Fields{"Email": "RobSmith+crm@googlemail.com"}), "email", true},
		{"phone and last name", lead("1", base), lead("2", record.Fields{"MobilePhone": "+1 312 555 0100 ext. 12", "LastName": "Smyth"}), "phone_last_name", true},
		{"phone, other last name", lead("1", base), lead("2", record.Fields{"Phone": "3125550100", "LastName": "Jones"}), "", false},
		{"nickname at same company", lead("1", base), lead("2", record.Fields{"FirstName": "Bob", "LastName": "Smith", "Company": "ACME Corporation"}), "name_company", true},
		{"same name, other company", lead("1", base), lead("2", record.Fields{"FirstName": "Robert", "LastName": "Smith", "Company": "Globex"}), "", false},
		{"contact through field map", lead("1", base), record.Record{Object: record.Contact, ID: "c", Fields: record.Fields{"FirstName": "Rob", "LastName": "Smith", "AccountName": "acme llc"}}, "name_company", true},
		{"converted lead", lead("1", base), lead("2", record.Fields{"Email": "rob.smith@gmail.com", "IsConverted": true}), "", false},
		{"itself", lead("1", base), lead("1", base), "", false},
		{"blank email", lead("1", record.Fields{"Email": ""}), lead("2", record.Fields{"Email": " "}), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := rs.Prepare(&tt.a), rs.Prepare(&tt.b)
			for _, pair := range [][2]*Prepared{{a, b}, {b, a}} {
				rule, ok := rs.Match(pair[0], pair[1])
				if ok != tt.match || rule != tt.rule {
					t.Fatalf("Match = %q, %v; want %q, %v", rule, ok, tt.rule, tt.match)
				}
			}
			if tt.match && !shareBlock(a, b, tt.rule) {
				t.Fatalf("matching records share no %s block: %v %v", tt.rule, a.Blocks, b.Blocks)
			}
		})
	}
}

func shareBlock(a, b *Prepared, rule string) bool {
	for _, x := range a.Blocks {
		for _, y := range b.Blocks {
			if x == y && x.Rule == rule {
				return true
			}
		}
	}
	return false
}
