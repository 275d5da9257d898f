package record

import "testing"

func TestIsBlank(t *testing.T) {
	tests := []struct {
		v    any
		want bool
	}{
		{nil, true}, {"", true}, {"  \t", true}, {"x", false}, {0.0, false}, {false, false},
	}
	for _, tt := range tests {
		if got := IsBlank(tt.v); got != tt.want {
			t.Errorf("IsBlank(%#v) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

func TestFieldMap(t *testing.T) {
	m := FieldMap{"AccountName": "Company"}
	f := Fields{"AccountName": "Acme", "Email": "a@b.c"}
	got := m.ToLead(Contact, f)
	if got["Company"] != "Acme" || got["Email"] != "a@b.c" || len(got) != 2 {
		t.Fatalf("ToLead(contact) = %v", got)
	}
	if _, ok := f["Company"]; ok {
		t.Fatal("ToLead modified its input")
	}
	if got := m.ToLead(Lead, f); got["AccountName"] != "Acme" {
		t.Fatalf("ToLead(lead) renamed fields: %v", got)
	}
	if m.ContactName("Company") != "AccountName" || m.ContactName("Email") != "Email" {
		t.Fatal("ContactName")
	}
}
