package schemas_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/ingest"
	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/schemas"
)

func TestExampleConfigValidates(t *testing.T) {
	for _, ex := range []string{"leadconv", "salesforce", "zoho", "hubspot", "dynamics"} {
		b, err := os.ReadFile("../examples/" + ex + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		if err := schemas.ValidateYAML(schemas.Config, b); err != nil {
			t.Errorf("examples/%s.yaml: %v", ex, err)
		}
		if _, err := config.Parse(b); err != nil {
			t.Errorf("the loader rejects examples/%s.yaml: %v", ex, err)
		}
	}
}

// TestConfigSchemaAgreesWithLoader: the schema and the strict loader accept
// and reject the same documents, so an editor's verdict is the service's.
func TestConfigSchemaAgreesWithLoader(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		ok    bool
		where string // a JSON pointer the schema reports
	}{
		{"empty", ``, false, "/"},
		{"null", "~\n", false, "/"},
		{"empty mapping", "{}\n", true, ""},
		{"empty blocks", "defaults:\ntenants:\n  acme:\n", true, ""},
		{"every master strategy", "tenants:\n" +
			"  a: {engine: {master: {strategy: newest_date, field: D}}}\n" +
			"  b: {engine: {master: {strategy: oldest_date, field: D, fallback: oldest_created}}}\n" +
			"  c: {engine: {master: {strategy: specified_values, field: S, values: [Hot, '', 1, true], fallback: do_not_convert}}}\n" +
			"  d: {engine: {master: {strategy: most_complete, fields: [A, B]}}}\n" +
			"  e: {engine: {master: {strategy: most_attachments, fallback: newest_created}}}\n" +
			"  f: {engine: {master: {fallback: oldest_modified}}}\n", true, ""},
		{"conversion options", "defaults:\n  engine:\n    crm: dynamics\n    max_cluster_size: 5\n    merge_contacts: true\n    auto_convert: false\n" +
			"    convert_when: {field: Status, equals: Hot}\n    conversion:\n      account_field: Org\n      contact_account_field: AcctId\n" +
			"      blank_account: {strategy: use_existing, account_id: '001'}\n      opportunity: {strategy: create, name_from: Title}\n" +
			"      converted_status: Won\n      account_fields: {Phone: '-', Web: Website}\n      opportunity_fields: null\n" +
			"    fields: {default: take_any_when_master_blank, consider_blanks: true, overrides: [{field: X, strategy: combine_values, consider_blanks: false}]}\n" +
			"  contact_fields: {AccountName: Org}\n  matching: {account_field: Org}\n", true, ""},
		{"convert_when removed", "tenants:\n  a:\n    engine:\n      convert_when: null\n", true, ""},
		{"unknown top key", "default: {}\n", false, "/"},
		{"unknown engine key", "defaults:\n  engine:\n    strategy: most_complete\n", false, "/defaults/engine"},
		{"flow master", "tenants:\n  acme:\n    engine:\n      master: {strategy: Flow}\n", false, "/tenants/acme/engine/master/strategy"},
		{"maximum number master", "defaults:\n  engine:\n    master: {strategy: maximum_number}\n", false, "/defaults/engine/master/strategy"},
		{"flow field strategy", "defaults:\n  engine:\n    fields: {overrides: [{field: X, strategy: flow}]}\n", false, "/defaults/engine/fields/overrides/0/strategy"},
		{"date strategy without field", "defaults:\n  engine:\n    master: {strategy: newest_date}\n", false, "/defaults/engine/master"},
		{"specified_values without values", "defaults:\n  engine:\n    master: {strategy: specified_values, field: S}\n", false, "/defaults/engine/master"},
		{"use_existing without account", "defaults:\n  engine:\n    conversion: {blank_account: {strategy: use_existing}}\n", false, "/defaults/engine/conversion/blank_account"},
		{"create without name_from", "defaults:\n  engine:\n    conversion: {opportunity: {strategy: create}}\n", false, "/defaults/engine/conversion/opportunity"},
		{"unknown crm", "defaults:\n  engine:\n    crm: pipedrive\n", false, "/defaults/engine/crm"},
		{"cluster size too small", "defaults:\n  engine:\n    max_cluster_size: 1\n", false, "/defaults/engine/max_cluster_size"},
		{"convert_when both", "defaults:\n  engine:\n    convert_when: {field: S, equals: a, in: [b]}\n", false, "/defaults/engine/convert_when"},
		{"convert_when neither", "defaults:\n  engine:\n    convert_when: {field: S}\n", false, "/defaults/engine/convert_when"},
		{"wrong type", "defaults:\n  engine:\n    merge_contacts: sometimes\n", false, "/defaults/engine/merge_contacts"},
		{"settle window", "defaults:\n  engine:\n    settle: 500ms\n    max_settle: 1m30s\n    prefer_existing_contact: false\n", true, ""},
		{"settle off", "defaults:\n  engine:\n    settle: 0\n    max_settle: 0s\n", true, ""},
		{"settle not a duration", "defaults:\n  engine:\n    settle: soon\n", false, "/defaults/engine/settle"},
		{"negative settle", "defaults:\n  engine:\n    settle: -1s\n", false, "/defaults/engine/settle"},
		{"null scalar", "defaults:\n  engine:\n    crm: null\n", false, "/defaults/engine/crm"},
		{"override without strategy", "defaults:\n  engine:\n    fields: {overrides: [{field: X}]}\n", false, "/defaults/engine/fields/overrides/0"},
		{"bad tenant name", "tenants:\n  'a b': {}\n", false, "/tenants"},
		{"unknown matching key", "defaults:\n  matching:\n    rule: []\n", false, "/defaults/matching"},
		{"inputs", "inputs:\n  - {topic: people, format: native}\n  - {topic: sf, format: salesforce_cdc, tenant: acme, objects: {Lead: lead}, fields: {Company: Company}, resync_topic: r, echo_client: lc}\n" +
			"  - topic: db\n    format: debezium\n    tenant_header: tenant\n    tables:\n      public.leads: {object: lead, id: id, created_at: c, modified_at: m, deleted: deleted, time_unit: us, fields: {x: '-'}}\n", true, ""},
		{"input format", "inputs: [{topic: t, format: hubspot, tenant: a}]", false, "/inputs/0/format"},
		{"input without tenant", "inputs: [{topic: t, format: salesforce_cdc}]", false, "/inputs/0"},
		{"input with two tenants", "inputs: [{topic: t, format: debezium, tenant: a, tenant_header: h, tables: {l: {object: lead, created_at: c, modified_at: m}}}]", false, "/inputs/0"},
		{"native input with a tenant", "inputs: [{topic: t, format: native, tenant: a}]", false, "/inputs/0/tenant"},
		{"debezium without tables", "inputs: [{topic: t, format: debezium, tenant: a}]", false, "/inputs/0"},
		{"table without columns", "inputs: [{topic: t, format: debezium, tenant: a, tables: {l: {object: lead}}}]", false, "/inputs/0/tables/l"},
		{"tables on cdc", "inputs: [{topic: t, format: salesforce_cdc, tenant: a, tables: {l: {object: lead, created_at: c, modified_at: m}}}]", false, "/inputs/0/tables"},
		{"unknown object", "inputs: [{topic: t, format: salesforce_cdc, tenant: a, objects: {Lead: person}}]", false, "/inputs/0/objects/Lead"},
		{"unmapped fields carried over", "defaults:\n  engine:\n    conversion: {unmapped_fields: carry_over}\n", true, ""},
		{"unknown unmapped policy", "defaults:\n  engine:\n    conversion: {unmapped_fields: keep}\n", false, "/defaults/engine/conversion/unmapped_fields"},
		{"phone region", "defaults:\n  matching:\n    phone: {default_region: IT}\n", true, ""},
		{"phone region not ISO", "defaults:\n  matching:\n    phone: {default_region: ITA}\n", false, "/defaults/matching/phone/default_region"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			serr := schemas.ValidateYAML(schemas.Config, []byte(tt.yaml))
			_, lerr := config.Parse([]byte(tt.yaml))
			if (serr == nil) != tt.ok || (lerr == nil) != tt.ok {
				t.Fatalf("schema: %v\nloader: %v\nwant ok=%v", serr, lerr, tt.ok)
			}
			if tt.ok {
				return
			}
			var se *schemas.Error
			if !errors.As(serr, &se) || !slices.Contains(se.Locations(), tt.where) {
				t.Errorf("schema error %v, want location %s", serr, tt.where)
			}
		})
	}
}

// TestConfigSchemaCoversGoTypes: every YAML key of the Go config types is a
// property at the same place in the schema, and the schema's strategy
// enums are the engine's lists.
func TestConfigSchemaCoversGoTypes(t *testing.T) {
	b, err := os.ReadFile("config.v1.json")
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(b, &root); err != nil {
		t.Fatal(err)
	}
	defs := root["$defs"].(map[string]any)
	deref := func(s map[string]any) map[string]any {
		for {
			ref, ok := s["$ref"].(string)
			if !ok {
				return s
			}
			s = defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
		}
	}
	// node returns the schema of an object's property, of a list's items
	// or of a map's values.
	var check func(typ reflect.Type, s map[string]any, path string)
	check = func(typ reflect.Type, s map[string]any, path string) {
		s = deref(s)
		for typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		switch typ.Kind() {
		case reflect.Slice:
			items, ok := s["items"].(map[string]any)
			if !ok {
				t.Errorf("%s: schema has no items", path)
				return
			}
			check(typ.Elem(), items, path+"[]")
		case reflect.Map:
			vals, ok := s["additionalProperties"].(map[string]any)
			if !ok {
				t.Errorf("%s: schema has no additionalProperties schema for map values", path)
				return
			}
			check(typ.Elem(), vals, path+".*")
		case reflect.Struct:
			props, _ := s["properties"].(map[string]any)
			if s["additionalProperties"] != false {
				t.Errorf("%s: schema allows unknown keys; the loader does not", path)
			}
			var keys []string
			for i := range typ.NumField() {
				name, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ",")
				if name == "" || name == "-" || name == "contact_fields" && typ == reflect.TypeFor[engine.Config]() {
					continue
				}
				keys = append(keys, name)
				p, ok := props[name].(map[string]any)
				if !ok {
					t.Errorf("%s.%s: not in the schema", path, name)
					continue
				}
				check(typ.Field(i).Type, p, path+"."+name)
			}
			for name := range props {
				if !slices.Contains(keys, name) {
					t.Errorf("%s.%s: in the schema, not in the Go type", path, name)
				}
			}
		}
	}
	block := defs["block"].(map[string]any)["properties"].(map[string]any)
	check(reflect.TypeFor[engine.Config](), block["engine"].(map[string]any), "engine")
	check(reflect.TypeFor[matcher.Config](), block["matching"].(map[string]any), "matching")
	check(reflect.TypeFor[[]ingest.Config](), root["properties"].(map[string]any)["inputs"].(map[string]any), "inputs")

	enum := func(path ...string) []string {
		s := defs[path[0]].(map[string]any)
		for _, p := range path[1:] {
			s = deref(s)
			if p == "[]" {
				s = s["items"].(map[string]any)
			} else {
				s = s["properties"].(map[string]any)[p].(map[string]any)
			}
		}
		var out []string
		for _, v := range s["enum"].([]any) {
			out = append(out, v.(string))
		}
		return out
	}
	for _, tt := range []struct {
		got, want []string
		what      string
	}{
		{enum("master", "strategy"), engine.MasterStrategies, "master strategies"},
		{enum("master", "fallback"), engine.FallbackStrategies, "fallback strategies"},
		{enum("fields", "default"), engine.DefaultStrategies, "default field strategies"},
		{enum("fields", "overrides", "[]", "strategy"), engine.FieldStrategies, "field strategies"},
		{enum("conversion", "blank_account", "strategy"), engine.BlankAccountStrategies, "blank account strategies"},
		{enum("conversion", "opportunity", "strategy"), engine.OpportunityStrategies, "opportunity strategies"},
		{enum("engine", "crm"), engine.CRMs, "crm profiles"},
	} {
		if !slices.Equal(tt.got, tt.want) {
			t.Errorf("%s: schema %v, engine %v", tt.what, tt.got, tt.want)
		}
	}
}

// The input examples README.md's "Connect your CRM" points to are valid to
// both the schema and the loader.
func TestConnectExamplesValidate(t *testing.T) {
	files, err := filepath.Glob("../examples/connect/*.yaml")
	if err != nil || len(files) < 2 {
		t.Fatalf("examples/connect: %v %v", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := schemas.ValidateYAML(schemas.Config, b); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		c, err := config.Parse(b)
		if err != nil {
			t.Errorf("the loader rejects %s: %v", f, err)
			continue
		}
		if len(c.Inputs()) == 0 {
			t.Errorf("%s configures no input", f)
		}
	}
}
