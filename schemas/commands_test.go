package schemas_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/record"
	"github.com/leadconv/leadconv/schemas"
)

func TestEverySchemaCompiles(t *testing.T) {
	names := schemas.Names()
	want := append([]string{schemas.RecordEvent, schemas.Config, schemas.ClusterChanged, schemas.Common,
		schemas.ResyncRequested, schemas.SalesforceCDC, schemas.Debezium}, engine.Kinds...)
	for _, n := range want {
		if !slices.Contains(names, n) {
			t.Errorf("no schema %s (have %v)", n, names)
		}
	}
	for _, n := range names {
		b, err := os.ReadFile(n + ".v1.json")
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			ID     string `json:"$id"`
			Schema string `json:"$schema"`
			Title  string `json:"title"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if doc.ID != schemas.URL(n) || doc.Schema != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $id %q, $schema %q; want %q and draft 2020-12", n, doc.ID, doc.Schema, schemas.URL(n))
		}
		if slices.Contains(engine.Kinds, n) && doc.Title != schemas.Type(n) {
			t.Errorf("%s: title %q, want the CloudEvents type %q", n, doc.Title, schemas.Type(n))
		}
		// Compiles (and is not vacuous): the empty object fails every schema
		// but common's, which only holds definitions.
		err = schemas.ValidateJSON(n, []byte(`{}`))
		if n == schemas.Common || n == schemas.Config {
			if err != nil {
				t.Errorf("%s rejects {}: %v", n, err)
			}
		} else if !isViolation(err) {
			t.Errorf("%s accepts {} (err %v)", n, err)
		}
	}
	if err := schemas.ValidateJSON("nope", []byte(`{}`)); err == nil || !strings.Contains(err.Error(), "lead.convert") {
		t.Errorf("unknown schema: %v, want the known names listed", err)
	}
	if got := (engine.Command{Kind: engine.KindLeadConvert}).Type(); got != schemas.Type(engine.KindLeadConvert) || got != "io.leadconv.lead.convert.v1" {
		t.Errorf("command type %q", got)
	}
}

func isViolation(err error) bool {
	var se *schemas.Error
	return errors.As(err, &se) && se.Code == schemas.CodeSchemaViolation
}

var t0 = time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)

func rec(obj record.Object, id string, h int, f record.Fields) record.Record {
	return record.Record{Tenant: "acme", Object: obj, ID: id, CreatedAt: t0.Add(time.Duration(h) * time.Hour),
		ModifiedAt: t0.Add(time.Duration(2*h) * time.Hour), RelatedCount: h % 3, Fields: f}
}

// generatedPlans plans clusters that between them produce every command
// kind, every reason code and every account and opportunity shape.
func generatedPlans(t *testing.T) map[string]engine.Result {
	t.Helper()
	cfg := func(fn func(*engine.Config)) *engine.Config {
		c := engine.DefaultConfig()
		c.ContactFields = record.FieldMap{"AccountName": "Company"}
		if fn != nil {
			fn(&c)
		}
		if err := c.Validate(""); err != nil && fn != nil && c.CRM != "invalid" {
			t.Fatalf("config: %v", err)
		}
		return &c
	}
	leads := []record.Record{
		rec(record.Lead, "00Q1", 1, record.Fields{"LastName": "Meitner", "Email": "lise@example.org", "Company": "KWI", "Rating": json.Number("4"), "Vip": true, "Score": 7.5, "Gone": nil}),
		rec(record.Lead, "00Q2", 2, record.Fields{"LastName": "Meitner", "Email": "LISE@example.org", "Company": "KWI", "Tags": "physics;fission"}),
		rec(record.Lead, "00Q3", 3, record.Fields{"LastName": "Meitner", "Company": ""}),
	}
	contacts := []record.Record{
		rec(record.Contact, "0031", 4, record.Fields{"LastName": "Meitner", "AccountName": "KWI", "AccountId": "001K"}),
		rec(record.Contact, "0032", 5, record.Fields{"LastName": "Meitner", "Email": "lise@example.org"}),
		rec(record.Contact, "0033", 6, record.Fields{"LastName": "Meitner"}),
	}
	cl := func(recs ...record.Record) engine.Cluster {
		return engine.Cluster{Tenant: "acme", ID: "cl-1", Version: 7, Records: recs, Accounts: map[string]string{"KWI": "001K"}}
	}
	mixed := append(slices.Clone(leads), contacts...)
	blank := []record.Record{
		rec(record.Lead, "00Q8", 1, record.Fields{"LastName": "Franklin"}),
		rec(record.Lead, "00Q9", 2, record.Fields{"LastName": "Franklin", "Company": " "}),
	}
	plans := map[string]engine.Result{
		"leads create account": engine.Plan(cfg(func(c *engine.Config) {
			c.Fields.Overrides = []engine.FieldOverride{{Field: "Tags", Strategy: engine.FieldCombineValues}, {Field: "Email", Strategy: engine.FieldMostCommon}}
			c.Conversion.Opportunity = engine.OpportunityConfig{Strategy: engine.OpportunityCreate, NameFrom: "Title"}
		}), engine.Cluster{Tenant: "acme", ID: "cl-2", Version: 1, Records: leads}),
		"leads existing account": engine.Plan(cfg(func(c *engine.Config) {
			c.Conversion.Opportunity = engine.OpportunityConfig{Strategy: engine.OpportunityCreate, NameFrom: "Email"}
		}), cl(leads...)),
		"mixed contact master hubspot": engine.Plan(cfg(func(c *engine.Config) {
			c.CRM = "hubspot"
			c.Master = engine.MasterConfig{Strategy: engine.MasterSpecifiedValues, Field: "AccountId", Values: []string{"001K"}, Fallback: engine.FallbackNewestModified}
		}), cl(mixed...)),
		"mixed lead master generic": engine.Plan(cfg(func(c *engine.Config) { c.CRM = "generic" }), cl(mixed...)),
		"contacts only":             engine.Plan(cfg(func(c *engine.Config) { c.MergeContacts = true }), cl(contacts...)),
		"blank account":             engine.Plan(cfg(nil), cl(blank...)),
		"blank account use_existing": engine.Plan(cfg(func(c *engine.Config) {
			c.Conversion.BlankAccount = engine.BlankAccountConfig{Strategy: engine.AccountUseExisting, AccountID: "001D"}
			c.Conversion.Opportunity = engine.OpportunityConfig{Strategy: engine.OpportunityCreate, NameFrom: "Title"}
		}), cl(blank...)),
		"too large": engine.Plan(cfg(func(c *engine.Config) { c.MaxClusterSize = 3 }), cl(mixed...)),
		"do_not_convert": engine.Plan(cfg(func(c *engine.Config) {
			c.Master = engine.MasterConfig{Strategy: engine.MasterNewestDate, Field: "Nope", Fallback: engine.FallbackDoNotConvert}
		}), cl(leads...)),
		"invalid config": engine.Plan(cfg(func(c *engine.Config) { c.CRM = "invalid" }), cl(leads...)),
		"invalid master": engine.Plan(cfg(func(c *engine.Config) { c.CRM = "invalid"; c.Master.Strategy = "Flow" }), cl(leads...)),
		"single lead": engine.Plan(cfg(func(c *engine.Config) {
			c.ConvertWhen = &engine.Condition{Field: "LastName", In: []string{"meitner"}}
		}), cl(leads[0])),
	}
	return plans
}

// TestGeneratedCommandsValidate checks that every command the engine plans
// satisfies its kind's schema and decodes back to the same JSON.
func TestGeneratedCommandsValidate(t *testing.T) {
	kinds := map[string]bool{}
	reasons := map[string]bool{}
	for name, res := range generatedPlans(t) {
		if len(res.Commands) == 0 {
			t.Errorf("%s: empty plan (%s)", name, res.Reason)
		}
		for _, c := range res.Commands {
			kinds[c.Kind] = true
			b, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			if err := schemas.ValidateJSON(c.Kind, b); err != nil {
				t.Errorf("%s: %s #%d: %v\n%s", name, c.Kind, c.Seq, err, b)
			}
			// As a mass-conversion request emits it.
			rc := c
			rc.RequestID = "2026-11-23-web-leads"
			if err := schemas.ValidateValue(c.Kind, rc); err != nil {
				t.Errorf("%s: %s #%d with request_id: %v", name, c.Kind, c.Seq, err)
			}
			var back engine.Command
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatalf("%s: decode: %v", name, err)
			}
			b2, _ := json.Marshal(back)
			if !bytes.Equal(b, b2) {
				t.Errorf("%s: command does not round-trip:\n%s\n%s", name, b, b2)
			}
			switch d := c.Data.(type) {
			case *engine.ReviewRequested:
				reasons[d.Reason] = true
			case *engine.ConversionFailed:
				reasons[d.Reason] = true
			}
		}
	}
	for _, k := range engine.Kinds {
		if !kinds[k] {
			t.Errorf("no generated %s command", k)
		}
	}
	for _, r := range []string{engine.ReasonBlankAccount, engine.ReasonClusterTooLarge, engine.ReasonMasterNoCandidate, engine.ReasonInvalidConfig} {
		if !reasons[r] {
			t.Errorf("no generated command with reason %s", r)
		}
	}
}

// TestGoldenCommandsValidate validates the engine's pinned plans.
func TestGoldenCommandsValidate(t *testing.T) {
	paths, err := filepath.Glob("../engine/testdata/*.golden.json")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no golden plans: %v", err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var plan struct {
			Commands []json.RawMessage `json:"commands"`
		}
		if err := json.Unmarshal(b, &plan); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for i, raw := range plan.Commands {
			var c struct {
				Kind string `json:"kind"`
			}
			_ = json.Unmarshal(raw, &c)
			if err := schemas.ValidateJSON(c.Kind, raw); err != nil {
				t.Errorf("%s: command %d: %v", filepath.Base(p), i, err)
			}
		}
	}
}

// TestCommandViolations: the schemas reject what a writer must never see.
func TestCommandViolations(t *testing.T) {
	var convert, merge, review []byte
	for _, res := range generatedPlans(t) {
		for _, c := range res.Commands {
			b, _ := json.Marshal(c)
			switch {
			case c.Kind == engine.KindLeadConvert && convert == nil:
				convert = b
			case c.Kind == engine.KindRecordsMerge && merge == nil:
				merge = b
			case c.Kind == engine.KindReviewRequested && review == nil:
				review = b
			}
		}
	}
	tests := []struct {
		name   string
		kind   string
		doc    []byte
		edit   func(m map[string]any)
		where  string
		substr string
	}{
		{"command id not hex", engine.KindLeadConvert, convert, func(m map[string]any) { m["command_id"] = "XYZ" }, "/command_id", "pattern"},
		{"kind of another schema", engine.KindLeadConvert, merge, nil, "/kind", "const"},
		{"missing explain", engine.KindLeadConvert, convert, func(m map[string]any) { delete(m, "explain") }, "/", "required"},
		{"unknown envelope key", engine.KindRecordsMerge, merge, func(m map[string]any) { m["extra"] = 1 }, "/", "additionalProperties"},
		{"negative version", engine.KindRecordsMerge, merge, func(m map[string]any) { m["cluster_version"] = -1 }, "/cluster_version", "minimum"},
		{"empty merge", engine.KindRecordsMerge, merge, func(m map[string]any) { data(m)["merged_ids"] = []any{} }, "/data/merged_ids", "minItems"},
		{"nested field value", engine.KindLeadConvert, convert, func(m map[string]any) { data(m)["fields"] = map[string]any{"Email": []any{"x"}} }, "/data/fields/Email", ""},
		{"two contact targets", engine.KindLeadConvert, convert, func(m map[string]any) {
			data(m)["contact"] = map[string]any{"id": "003", "from_lead": "00Q"}
		}, "/data/contact", "oneOf"},
		{"empty request id", engine.KindLeadConvert, convert, func(m map[string]any) { m["request_id"] = "" }, "/request_id", "minLength"},
		{"unknown review reason", engine.KindReviewRequested, review, func(m map[string]any) { data(m)["reason"] = "because" }, "/data/reason", "enum"},
		{"unknown field strategy in explain", engine.KindLeadConvert, convert, func(m map[string]any) {
			m["explain"].(map[string]any)["fields"].([]any)[0].(map[string]any)["strategy"] = "flow"
		}, "/explain/fields/0/strategy", "enum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(tt.doc, &m); err != nil {
				t.Fatal(err)
			}
			if tt.edit != nil {
				tt.edit(m)
			}
			b, _ := json.Marshal(m)
			err := schemas.ValidateJSON(tt.kind, b)
			var se *schemas.Error
			if !errors.As(err, &se) || se.Code != schemas.CodeSchemaViolation {
				t.Fatalf("err = %v, want a schema violation", err)
			}
			if !slices.Contains(se.Locations(), tt.where) || !strings.Contains(se.Detail, tt.substr) {
				t.Errorf("err = %v (locations %v), want %s: %s", err, se.Locations(), tt.where, tt.substr)
			}
		})
	}
}

func data(m map[string]any) map[string]any { return m["data"].(map[string]any) }

// TestCommandResult: what a writer sends back, with and without the
// request_id of a mass-conversion request's command.
func TestCommandResult(t *testing.T) {
	base := `"command_id":"c1","kind":"lead.convert","tenant":"acme","cluster_id":"k","cluster_version":3,"seq":0`
	tests := []struct {
		name, doc, where string
	}{
		{"applied", `{` + base + `,"outcome":"applied","records":[{"object":"contact","id":"C1"}]}`, ""},
		{"applied for a request", `{` + base + `,"request_id":"r1","outcome":"applied"}`, ""},
		{"failed with reason", `{` + base + `,"request_id":"r1","outcome":"failed","reason":"lead_already_converted"}`, ""},
		{"failed without reason", `{` + base + `,"outcome":"failed"}`, "/"},
		{"empty request id", `{` + base + `,"request_id":"","outcome":"applied"}`, "/request_id"},
		{"unknown outcome", `{` + base + `,"outcome":"done"}`, "/outcome"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := schemas.ValidateJSON("command.result", []byte(tt.doc))
			var se *schemas.Error
			switch {
			case tt.where == "" && err != nil:
				t.Fatalf("err = %v, want valid", err)
			case tt.where != "" && (!errors.As(err, &se) || !slices.Contains(se.Locations(), tt.where)):
				t.Fatalf("err = %v, want a violation at %s", err, tt.where)
			}
		})
	}
}

func ExampleValidateValue() {
	c := engine.DefaultConfig()
	res := engine.Plan(&c, engine.Cluster{Tenant: "acme", ID: "c1", Version: 1, Records: []record.Record{
		rec(record.Lead, "00Q1", 1, record.Fields{"LastName": "Noether", "Company": "Erlangen"}),
		rec(record.Lead, "00Q2", 2, record.Fields{"LastName": "Noether"}),
	}})
	for _, cmd := range res.Commands {
		fmt.Println(cmd.Type(), schemas.URL(cmd.Kind), schemas.ValidateValue(cmd.Kind, cmd))
	}
	// Output:
	// io.leadconv.lead.convert.v1 https://leadconv.io/schemas/lead.convert.v1.json <nil>
	// io.leadconv.lead.convert.v1 https://leadconv.io/schemas/lead.convert.v1.json <nil>
}
