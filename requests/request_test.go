package requests

import (
	"strings"
	"testing"
	"time"

	"github.com/leadconv/leadconv/record"
	"github.com/leadconv/leadconv/schemas"
)

// TestDecode checks Decode and schemas/request.v1.json agree on every case.
func TestDecode(t *testing.T) {
	t.Parallel()
	const by = `"requested_by":{"user":"u1","roles":["sales_admin"]}`
	tests := []struct {
		name string
		json string
		err  string // "" when valid
	}{
		{"ids", `{"tenant":"acme","request_id":"r1",` + by + `,"select":{"ids":["L1","L2"]}}`, ""},
		{"filter", `{"tenant":"acme","request_id":"r1",` + by + `,"select":{"where":{"LeadSource":["Web",""],"Rating":5,"Hot":true}},"dry_run":true}`, ""},
		{"dates only", `{"tenant":"acme","request_id":"r1",` + by + `,"select":{"created_after":"2026-01-01T00:00:00Z","created_before":"2026-02-01T00:00:00Z"}}`, ""},
		{"options", `{"tenant":"acme","request_id":"r1",` + by + `,"select":{"ids":["L1"]},"options":{"converted_status":"Qualified",
			"opportunity":{"strategy":"create","name_from":"Company"},"blank_account":{"strategy":"use_existing","account_id":"A1"},
			"account_fields":{"Industry":"Industry"},"opportunity_fields":{"Amount":"Amount"},"duplicate_handling":"overwrite"}}`, ""},
		{"ids and filter", `{"tenant":"acme","request_id":"r1",` + by + `,"select":{"ids":["L1"],"where":{"A":"b"}}}`, "either ids or a filter"},
		{"empty select", `{"tenant":"acme","request_id":"r1",` + by + `,"select":{}}`, "needs ids or a filter"},
		{"empty ids", `{"tenant":"acme","request_id":"r1",` + by + `,"select":{"ids":[]}}`, "needs ids or a filter"},
		{"no tenant", `{"request_id":"r1",` + by + `,"select":{"ids":["L1"]}}`, "tenant"},
		{"tenant with braces", `{"tenant":"a{b}","request_id":"r1",` + by + `,"select":{"ids":["L1"]}}`, "tenant"},
		{"no request id", `{"tenant":"acme",` + by + `,"select":{"ids":["L1"]}}`, "request_id"},
		{"no requester (the token names it)", `{"tenant":"acme","request_id":"r1","select":{"ids":["L1"]}}`, ""},
		{"unknown option", `{"tenant":"acme","request_id":"r1",` + by + `,"select":{"ids":["L1"]},"options":{"dup":"skip"}}`, "unknown field"},
		{"bad handling", `{"tenant":"acme","request_id":"r1",` + by + `,"select":{"ids":["L1"]},"options":{"duplicate_handling":"replace"}}`, "duplicate_handling"},
		{"empty where list", `{"tenant":"acme","request_id":"r1",` + by + `,"select":{"where":{"A":[]}}}`, "at least one value"},
		{"object filter value", `{"tenant":"acme","request_id":"r1",` + by + `,"select":{"where":{"A":{"b":1}}}}`, "filter value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.json))
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("Decode: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("Decode error %v, want %q", err, tc.err)
			}
			if serr := schemas.ValidateJSON("request", []byte(tc.json)); (serr == nil) != (tc.err == "") {
				t.Errorf("schema disagrees with Decode: %v", serr)
			}
		})
	}
}

func TestSelectionMatches(t *testing.T) {
	t.Parallel()
	at := func(d int) *time.Time { v := t0.Add(time.Duration(d) * time.Hour); return &v }
	l := lead("L1", 0, record.Fields{"LeadSource": " Web ", "Rating": 5.0, "Hot": true, "Empty": "  "})
	l.CreatedAt = t0.Add(10 * time.Hour)
	tests := []struct {
		name string
		sel  Selection
		want bool
	}{
		{"trimmed, case-insensitive", Selection{Where: map[string]Values{"LeadSource": {"web"}}}, true},
		{"one of the values", Selection{Where: map[string]Values{"LeadSource": {"Fair", "WEB"}}}, true},
		{"no value matches", Selection{Where: map[string]Values{"LeadSource": {"Fair"}}}, false},
		{"number", Selection{Where: map[string]Values{"Rating": {"5"}}}, true},
		{"boolean", Selection{Where: map[string]Values{"Hot": {"true"}}}, true},
		{"blank matches blank", Selection{Where: map[string]Values{"Empty": {""}, "Missing": {""}}}, true},
		{"blank does not match a value", Selection{Where: map[string]Values{"LeadSource": {""}}}, false},
		{"every field must match", Selection{Where: map[string]Values{"LeadSource": {"web"}, "Hot": {"false"}}}, false},
		{"created after", Selection{CreatedAfter: at(9)}, true},
		{"created after is exclusive", Selection{CreatedAfter: at(10)}, false},
		{"created before", Selection{CreatedBefore: at(11)}, true},
		{"created before is exclusive", Selection{CreatedBefore: at(10)}, false},
		{"window and filter", Selection{CreatedAfter: at(9), CreatedBefore: at(11), Where: map[string]Values{"LeadSource": {"web"}}}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.sel.matches(l); got != tc.want {
				t.Errorf("matches = %v, want %v", got, tc.want)
			}
		})
	}
}
