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

func TestParseRef(t *testing.T) {
	tests := []struct {
		s    string
		want Ref
		ok   bool
	}{
		{"lead/L1", Ref{Lead, "L1"}, true},
		{"contact/a/b", Ref{Contact, "a/b"}, true},
		{"account/1", Ref{Account, "1"}, true},
		{"lead/", Ref{}, false},
		{"task/1", Ref{}, false},
		{"L1", Ref{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseRef(tt.s)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseRef(%q) = %v, %v; want %v, %v", tt.s, got, ok, tt.want, tt.ok)
		}
		if ok && got.String() != tt.s {
			t.Errorf("ParseRef(%q).String() = %q", tt.s, got.String())
		}
	}
}
