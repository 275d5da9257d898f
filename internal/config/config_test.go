package config_test

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/record"
)

const example = "../../examples/leadconv.yaml"

func mustParse(t *testing.T, src string) *config.File {
	t.Helper()
	f, err := config.Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return f
}

func mustTenant(t *testing.T, f *config.File, name string) *config.Tenant {
	t.Helper()
	tn, err := f.Tenant(name)
	if err != nil {
		t.Fatalf("Tenant(%q): %v", name, err)
	}
	return tn
}

func TestDefault(t *testing.T) {
	f := config.Default()
	if got := f.Tenants(); len(got) != 0 {
		t.Fatalf("Tenants() = %v, want none", got)
	}
	tn := mustTenant(t, f, "anyone")
	if tn.Name != "anyone" {
		t.Errorf("Name = %q, want anyone", tn.Name)
	}
	want := engine.DefaultConfig()
	// The salesforce model's contact mappings (MailingCity <- City ...).
	want.ContactFields = engine.ContactFieldsFor(want.CRM, nil)
	if !reflect.DeepEqual(*tn.Engine, want) {
		t.Errorf("Engine = %+v, want shipped %+v", *tn.Engine, want)
	}
	if want := matcher.DefaultConfig(); !reflect.DeepEqual(tn.Matching, want) {
		t.Errorf("Matching = %+v, want shipped %+v", tn.Matching, want)
	}
	if tn.Rules == nil {
		t.Fatal("Rules is nil")
	}
	if err := tn.Engine.Validate(""); err != nil {
		t.Errorf("shipped engine config invalid: %v", err)
	}
	// Empty mappings and empty blocks are all the defaults.
	for _, src := range []string{"{}\n", "defaults: {}\ntenants: {}\n", "defaults:\n"} {
		got := mustTenant(t, mustParse(t, src), "anyone")
		if !reflect.DeepEqual(got.Engine, tn.Engine) || !reflect.DeepEqual(got.Matching, tn.Matching) ||
			!reflect.DeepEqual(got.ContactFields, tn.ContactFields) {
			t.Errorf("Parse(%q) differs from Default()", src)
		}
	}
}

func TestExample(t *testing.T) {
	f, err := config.Load(example)
	if err != nil {
		t.Fatalf("Load(%s): %v", example, err)
	}
	if got, want := f.Tenants(), []string{"acme", "globex"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Tenants() = %v, want %v", got, want)
	}
	acme := mustTenant(t, f, "acme")
	if acme.Name != "acme" || acme.Engine.CRM != "zoho" || acme.Engine.Master.Strategy != engine.MasterSpecifiedValues {
		t.Errorf("acme = %+v", acme.Engine)
	}
	// Setting master.strategy started the master block afresh but kept the
	// inherited fallback... except acme sets its own.
	if acme.Engine.Master.Fallback != engine.FallbackDoNotConvert || acme.Engine.Master.Fields != nil {
		t.Errorf("acme master = %+v, want fallback do_not_convert and no inherited fields", acme.Engine.Master)
	}
	if acme.Engine.ConvertWhen != nil {
		t.Errorf("acme convert_when = %+v, want removed by null", acme.Engine.ConvertWhen)
	}
	// contact_fields merged by key; Engine sees the same map.
	// On top of the zoho model's mappings (Title <- Designation ...).
	wantCF := engine.ContactFieldsFor("zoho", record.FieldMap{"AccountName": "Company", "MailingCity": "City", "Lead_Source__c": "LeadSource"})
	if !reflect.DeepEqual(acme.ContactFields, wantCF) || !reflect.DeepEqual(acme.Engine.ContactFields, wantCF) {
		t.Errorf("acme contact fields = %v / %v, want %v", acme.ContactFields, acme.Engine.ContactFields, wantCF)
	}
	// Unset keys inherit from defaults (overrides list) and from the
	// shipped defaults (free mail domains replaced by the defaults block).
	if len(acme.Engine.Fields.Overrides) != 17 {
		t.Errorf("acme overrides = %d, want the 17 inherited", len(acme.Engine.Fields.Overrides))
	}
	globex := mustTenant(t, f, "globex")
	if len(globex.Matching.Rules) != 1 || globex.Matching.Phone.DefaultRegion != "GB" || !globex.Matching.Email.StripTags {
		t.Errorf("globex matching = %+v", globex.Matching)
	}
	if w := globex.Engine.ConvertWhen; w == nil || w.Field != "LeadSource" || w.Equals == nil || *w.Equals != "Web" || w.In != nil {
		t.Errorf("globex convert_when = %+v, want replaced as a whole", w)
	}
	if globex.Engine.Master.Fallback != engine.FallbackOldestCreated || globex.Engine.Master.Fields != nil {
		t.Errorf("globex master = %+v", globex.Engine.Master)
	}
	// mass_conversion: roles replace the inherited list, limits inherit.
	if mc := acme.MassConversion; !reflect.DeepEqual(mc.Roles, []string{"sales_admin", "marketing_ops"}) || mc.MaxRecordsPerRequest != 1000 || mc.MaxNewRecordsPerRequest != 500 {
		t.Errorf("acme mass_conversion = %+v", mc)
	}
	if mc := globex.MassConversion; !reflect.DeepEqual(mc.Roles, []string{"sales_admin"}) || mc.MaxNewRecordsPerRequest != 500 {
		t.Errorf("globex mass_conversion = %+v, want the defaults block's", mc)
	}
	// A tenant not in the file gets the defaults block.
	other := mustTenant(t, f, "initech")
	if other.Name != "initech" || other.Engine.Fields.Default != engine.FieldTakeAnyWhenMasterBlank || other.Engine.ConvertWhen == nil {
		t.Errorf("initech = %+v", other.Engine)
	}
	if len(other.Matching.Rules) != 4 {
		t.Errorf("initech rules = %d, want the defaults block's 4", len(other.Matching.Rules))
	}
}

// TestExampleCoversEveryOption: the example shows every key of the Go
// config types somewhere.
func TestExampleCoversEveryOption(t *testing.T) {
	b, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	seen := map[reflect.Type]bool{}
	var visit func(reflect.Type, string)
	visit = func(typ reflect.Type, path string) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] {
			return
		}
		seen[typ] = true
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" || name == "contact_fields" && typ == reflect.TypeFor[engine.Config]() {
				continue
			}
			if !strings.Contains(src, name+":") {
				t.Errorf("example does not show %s.%s", path, name)
			}
			visit(f.Type, path+"."+name)
		}
	}
	visit(reflect.TypeFor[engine.Config](), "engine")
	visit(reflect.TypeFor[matcher.Config](), "matching")
	for _, s := range append(append([]string{}, engine.FieldStrategies...), engine.MasterStrategies...) {
		if !strings.Contains(src, s) {
			t.Errorf("example does not mention strategy %s", s)
		}
	}
}

func TestLayering(t *testing.T) {
	f := mustParse(t, `
defaults:
  engine:
    master: {strategy: specified_values, field: Status, values: [Hot], fallback: oldest_created}
    conversion:
      account_fields: {Website: Website}
      blank_account: {strategy: use_existing, account_id: "001"}
    convert_when: {field: Status, equals: New}
  matching:
    email: {aliases: {a.com: b.com}}
  contact_fields: {AccountName: Company}
tenants:
  t1:
    engine:
      master: {fallback: newest_created}
      conversion:
        account_fields: {Industry: Industry}
    matching:
      email: {aliases: {c.com: d.com}}
    contact_fields: {MailingCity: City}
  t2:
    engine:
      master: {strategy: most_attachments}
      conversion:
        blank_account: {strategy: do_not_create}
      convert_when: {field: Status, in: [A, B]}
    matching:
      free_mail_domains: [x.com]
  t3:
    engine:
      convert_when: null
`)
	t1 := mustTenant(t, f, "t1")
	m := t1.Engine.Master
	if m.Strategy != engine.MasterSpecifiedValues || m.Field != "Status" || !reflect.DeepEqual(m.Values, []string{"Hot"}) || m.Fallback != engine.FallbackNewestCreated {
		t.Errorf("t1 master = %+v: want the defaults' strategy with its parameters and the tenant's fallback", m)
	}
	if got, want := t1.Engine.Conversion.AccountFields, map[string]string{"Website": "Website", "Industry": "Industry"}; !reflect.DeepEqual(got, want) {
		t.Errorf("t1 account_fields = %v, want merged %v", got, want)
	}
	if got := t1.Matching.Email.Aliases; got["a.com"] != "b.com" || got["c.com"] != "d.com" || got["googlemail.com"] != "gmail.com" {
		t.Errorf("t1 aliases = %v, want shipped, defaults and tenant merged", got)
	}
	if got, want := t1.ContactFields, engine.ContactFieldsFor("salesforce", record.FieldMap{"AccountName": "Company", "MailingCity": "City"}); !reflect.DeepEqual(got, want) {
		t.Errorf("t1 contact_fields = %v, want %v", got, want)
	}
	if w := t1.Engine.ConvertWhen; w == nil || *w.Equals != "New" {
		t.Errorf("t1 convert_when = %+v, want inherited", w)
	}

	t2 := mustTenant(t, f, "t2")
	if m := t2.Engine.Master; m.Strategy != engine.MasterMostAttachments || m.Field != "" || m.Values != nil || m.Fallback != engine.FallbackOldestCreated {
		t.Errorf("t2 master = %+v: want fresh parameters, inherited fallback", m)
	}
	if ba := t2.Engine.Conversion.BlankAccount; ba.Strategy != engine.AccountDoNotCreate || ba.AccountID != "" {
		t.Errorf("t2 blank_account = %+v, want fresh", ba)
	}
	if w := t2.Engine.ConvertWhen; w == nil || w.Equals != nil || !reflect.DeepEqual(w.In, []string{"A", "B"}) {
		t.Errorf("t2 convert_when = %+v, want replaced", w)
	}
	if got := t2.Matching.FreeMailDomains; !reflect.DeepEqual(got, []string{"x.com"}) {
		t.Errorf("t2 free_mail_domains = %v, want replaced", got)
	}
	if t3 := mustTenant(t, f, "t3"); t3.Engine.ConvertWhen != nil {
		t.Errorf("t3 convert_when = %+v, want removed", t3.Engine.ConvertWhen)
	}
	// Layering never leaks between tenants or into the defaults.
	if d := mustTenant(t, f, "other"); !reflect.DeepEqual(d.ContactFields, engine.ContactFieldsFor("salesforce", record.FieldMap{"AccountName": "Company"})) || len(d.Engine.Conversion.AccountFields) != 1 || d.Matching.Email.Aliases["c.com"] != "" {
		t.Errorf("defaults were modified by a tenant overlay: %+v", d)
	}
}

func TestAliasesAndMergeKeys(t *testing.T) {
	f := mustParse(t, `
defaults:
  engine: &base
    crm: zoho
    max_cluster_size: 5
tenants:
  a:
    engine:
      <<: *base
      max_cluster_size: 7
      merge_contacts: true
`)
	a := mustTenant(t, f, "a")
	if a.Engine.CRM != "zoho" || a.Engine.MaxClusterSize != 7 || !a.Engine.MergeContacts {
		t.Errorf("a = %+v, want merged anchor with explicit keys winning", a.Engine)
	}
	_, err := config.Parse([]byte("defaults:\n  engine: &base {crm: zoho, bogus: 1}\ntenants:\n  a:\n    engine: {<<: *base}\n"))
	if err == nil || !strings.Contains(err.Error(), "tenants.a.engine.bogus: unknown key") {
		t.Errorf("unknown key through a merge key: %v", err)
	}
}

func TestBadConfigs(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string
	}{
		{"flow master", "tenants:\n  acme:\n    engine:\n      master: {strategy: flow}\n",
			[]string{`tenants.acme.engine.master.strategy: "flow" is not available for auto lead conversion (allowed: ` + strings.Join(engine.MasterStrategies, ", ") + ")"}},
		{"maximum_number master", "defaults:\n  engine:\n    master: {strategy: maximum_number}\n",
			[]string{`defaults.engine.master.strategy: "maximum_number" is not available for auto lead conversion`}},
		{"flow field strategy", "defaults:\n  engine:\n    fields:\n      overrides: [{field: X, strategy: flow}]\n",
			[]string{`defaults.engine.fields.overrides[0].strategy: "flow" is not available for auto lead conversion`}},
		{"unknown strategy", "tenants:\n  acme:\n    engine:\n      fields:\n        default: newest\n",
			[]string{`tenants.acme.engine.fields.default: unknown "newest" (allowed: ` + strings.Join(engine.DefaultStrategies, ", ") + ")"}},
		{"missing parameter", "tenants:\n  acme:\n    engine:\n      master: {strategy: newest_date}\n",
			[]string{`tenants.acme.engine.master.field: is required for newest_date`}},
		{"missing account id", "tenants:\n  acme:\n    engine:\n      conversion:\n        blank_account: {strategy: use_existing}\n",
			[]string{`tenants.acme.engine.conversion.blank_account.account_id: is required for use_existing`}},
		{"unknown key", "tenants:\n  acme:\n    engine:\n      master: {stratgy: most_complete}\n",
			[]string{`tenants.acme.engine.master.stratgy: unknown key (allowed: strategy, field, values, fields, fallback) (line 4)`}},
		{"unknown top-level key", "default:\n  engine: {}\n",
			[]string{`default: unknown key (allowed: defaults, tenants, inputs) (line 1)`}},
		{"unknown block key", "tenants:\n  acme:\n    matcher: {}\n",
			[]string{`tenants.acme.matcher: unknown key (allowed: engine, matching, contact_fields, mass_conversion)`}},
		{"mass conversion values", "defaults:\n  mass_conversion:\n    roles: [\" \"]\n    max_records_per_request: -1\n    max_new_records_per_request: -2\n",
			[]string{`defaults.mass_conversion.roles[0]: a role must not be empty`,
				`defaults.mass_conversion.max_records_per_request: must be positive (or omitted), got -1`,
				`defaults.mass_conversion.max_new_records_per_request: must be positive (or omitted), got -2`}},
		{"contact_fields inside engine", "defaults:\n  engine:\n    contact_fields: {A: B}\n",
			[]string{`defaults.engine.contact_fields: not allowed here: set contact_fields at the block level, beside engine and matching`}},
		{"wrong type", "defaults:\n  engine:\n    max_cluster_size: lots\n",
			[]string{`defaults.engine.max_cluster_size: expected an integer, got str "lots" (line 3)`}},
		{"mapping for scalar", "defaults:\n  engine:\n    crm: {name: zoho}\n",
			[]string{`defaults.engine.crm: expected a string, got a mapping`}},
		{"list expected", "defaults:\n  matching:\n    rules: {name: x}\n",
			[]string{`defaults.matching.rules: expected a list, got a mapping`}},
		{"null scalar", "defaults:\n  engine:\n    crm: ~\n",
			[]string{`defaults.engine.crm: null is not allowed; omit the key to inherit the default`}},
		{"top level not a mapping", "- a\n- b\n",
			[]string{`(top level): expected a mapping, got a list`}},
		{"bad rule", "tenants:\n  acme:\n    matching:\n      rules: [{name: r, all: [{field: Email, normalizer: mail, comparator: exact}]}]\n",
			[]string{`tenants.acme.matching.rules[0].all[0].normalizer: unknown "mail" (allowed: ` + strings.Join(matcher.Normalizers, ", ") + ")"}},
		{"no rules", "tenants:\n  acme:\n    matching:\n      rules: []\n",
			[]string{`tenants.acme.matching.rules: at least one rule is required`}},
		{"crm", "tenants:\n  acme:\n    engine: {crm: pipedrive}\n",
			[]string{`tenants.acme.engine.crm: unknown "pipedrive" (allowed: ` + strings.Join(engine.CRMs, ", ") + ")"}},
		{"contact field mapped twice", "defaults:\n  contact_fields: {AccountName: Company, Org: Company}\n",
			[]string{`defaults.contact_fields.Org: lead field "Company" is already mapped from contact field "AccountName"`}},
		{"account fields disagree", "tenants:\n  acme:\n    engine:\n      conversion: {account_field: Organization}\n",
			[]string{`tenants.acme.matching.account_field: "Company" differs from engine.conversion.account_field "Organization"`}},
		{"bad tenant name", "tenants:\n  \"a{b}\": {}\n",
			[]string{`tenants.a{b}: tenant name "a{b}" must be non-empty, without braces or whitespace`}},
		{"every tenant reported", "tenants:\n  a:\n    engine: {crm: x}\n  b:\n    engine: {crm: y}\n",
			[]string{`tenants.a.engine.crm: unknown "x"`, `tenants.b.engine.crm: unknown "y"`}},
		{"every problem reported", "tenants:\n  a:\n    engine: {crm: x, max_cluster_size: 1}\n",
			[]string{`tenants.a.engine.crm: unknown "x"`, `tenants.a.engine.max_cluster_size: must be at least 2, got 1`}},
		{"duplicate key", "tenants:\n  a: {}\n  a: {}\n", []string{`mapping key "a" already defined`}},
		{"syntax", "tenants: [\n", []string{"config: yaml:"}},
		{"convert_when both", "defaults:\n  engine:\n    convert_when: {field: S, equals: a, in: [b]}\n",
			[]string{`defaults.engine.convert_when: set either equals or in, not both`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tc.src))
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain\n%s", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "config: ") {
				t.Errorf("error %q does not start with config:", err)
			}
		})
	}
}

// A file without settings or with several documents is refused: a file
// emptied or truncated by mistake must not give every tenant the defaults,
// and a second document must not be ignored.
func TestEmptyAndMultiDocumentRefused(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"empty", "", "holds no settings"},
		{"whitespace", "\n  \n", "holds no settings"},
		{"comments only", "# tenants:\n#   acme: {}\n", "holds no settings"},
		{"null", "~\n", "holds no settings"},
		{"explicit null", "null\n", "holds no settings"},
		{"document marker only", "---\n", "holds no settings"},
		{"two documents", "defaults: {}\n---\ntenants:\n  acme: {}\n", "more than one YAML document"},
		{"empty second document", "defaults: {}\n---\n", "more than one YAML document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "config: ") {
				t.Fatalf("Parse(%q) = %v, want an error containing %q", tc.src, err, tc.want)
			}
		})
	}
}

// One parse reports every mistake of the file: unknown keys, wrong types
// and invalid values, in the defaults and in every tenant, while errors a
// tenant only inherits from the defaults are reported once.
func TestEveryErrorInOnePass(t *testing.T) {
	src := `defaults:
  engine:
    crm: pipedrive
    max_cluster_sise: 9
tenants:
  acme:
    engine:
      master: {stratgy: most_complete}
      fields: {default: newest}
  beta:
    engine:
      max_cluster_size: lots
    matching:
      rules: [{name: r, all: [{field: Email, normalizer: mail, comparator: exact}]}]
`
	_, err := config.Parse([]byte(src))
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	for _, w := range []string{
		`defaults.engine.crm: unknown "pipedrive"`,
		`defaults.engine.max_cluster_sise: unknown key`,
		`tenants.acme.engine.master.stratgy: unknown key`,
		`tenants.acme.engine.fields.default: unknown "newest"`,
		`tenants.beta.engine.max_cluster_size: expected an integer`,
		`tenants.beta.matching.rules[0].all[0].normalizer: unknown "mail"`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error\n%v\ndoes not contain\n%s", err, w)
		}
	}
	for _, dup := range []string{`tenants.acme.engine.crm`, `tenants.beta.engine.crm`} {
		if strings.Contains(err.Error(), dup) {
			t.Errorf("error repeats the inherited %s:\n%v", dup, err)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	_, err := config.Load("testdata/does-not-exist.yaml")
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want os.ErrNotExist", err)
	}
	p := t.TempDir() + "/bad.yaml"
	if err := os.WriteFile(p, []byte("defaults:\n  engine: {crm: x}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = config.Load(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+": config: defaults.engine.crm:") {
		t.Errorf("Load(bad) = %v, want the file name and the path", err)
	}
}

func TestTenantName(t *testing.T) {
	f := config.Default()
	for _, name := range []string{"", "a{b", "a b"} {
		if _, err := f.Tenant(name); err == nil {
			t.Errorf("Tenant(%q) succeeded, want an error", name)
		}
	}
	if _, err := f.Rules("ok"); err != nil {
		t.Errorf("Rules(ok) = %v", err)
	}
}

func TestConcurrentTenants(t *testing.T) {
	f, err := config.Load(example)
	if err != nil {
		t.Fatal(err)
	}
	acme := mustTenant(t, f, "acme")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 100 {
				tn, err := f.Tenant([]string{"acme", "globex", "x"}[i%3])
				if err != nil || tn.Rules == nil {
					t.Errorf("Tenant: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	// The Ruleset is compiled once per tenant.
	if again := mustTenant(t, f, "acme"); again.Rules != acme.Rules {
		t.Error("acme's rules were compiled again")
	}
}

func FuzzLoad(f *testing.F) {
	ex, err := os.ReadFile(example)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ex)
	for _, s := range []string{
		"", "defaults: {}", "tenants: {a: {engine: {crm: zoho}}}",
		"tenants:\n  a:\n    engine:\n      master: {strategy: flow}\n",
		"defaults:\n  matching:\n    rules: [{name: r, all: [{field: E, normalizer: email, comparator: exact}]}]\n",
		"a: &a [*a, *a]\n", "defaults: {engine: {<<: {crm: zoho}}}", "tenants: {a: ~}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cf, err := config.Parse(b)
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "config: ") || len(msg) <= len("config: ") {
				t.Fatalf("unclear error %q", msg)
			}
			return
		}
		for _, name := range append(cf.Tenants(), "fuzz-default") {
			tn, err := cf.Tenant(name)
			if err != nil {
				t.Fatalf("Tenant(%q) after a successful load: %v", name, err)
			}
			if tn.Rules == nil || tn.Engine == nil {
				t.Fatalf("Tenant(%q) incomplete: %+v", name, tn)
			}
			if err := tn.Engine.Validate(""); err != nil {
				t.Fatalf("Tenant(%q) loaded an invalid engine config: %v", name, err)
			}
		}
	})
}

func TestMassConversionToken(t *testing.T) {
	f, err := config.Parse([]byte("tenants:\n  acme:\n    mass_conversion:\n      token: {jwks_file: /etc/k.json}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if k := mustTenant(t, f, "acme").MassConversion.Token; k == nil || k.JWKSFile != "/etc/k.json" {
		t.Errorf("token = %+v", k)
	}
	for doc, want := range map[string]string{
		"defaults:\n  mass_conversion:\n    token: {hmac_secret_env: A, public_key_file: b.pem}\n": "defaults.mass_conversion.token: set exactly one of hmac_secret_file, hmac_secret_env, public_key_file, jwks_file (has 2)",
		"defaults:\n  mass_conversion:\n    token: {}\n":                                           "defaults.mass_conversion.token: set exactly one",
		"defaults:\n  mass_conversion:\n    token: {hmac_secret: x}\n":                             "hmac_secret",
	} {
		if _, err := config.Parse([]byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", doc, err, want)
		}
	}
}

func TestInputs(t *testing.T) {
	f := mustParse(t, `
inputs:
  - {topic: sf.leads, format: salesforce_cdc, tenant: acme, fields: {Company: Company}}
  - topic: crm.public
    format: debezium
    tenant_header: tenant
    tables:
      public.leads: {object: lead, created_at: date_entered, modified_at: date_modified, deleted: deleted}
  - {topic: people, format: native}
`)
	got := f.Inputs()
	if len(got) != 3 || got[0].Format != "salesforce_cdc" || got[0].Tenant != "acme" ||
		got[1].Tables["public.leads"].Object != record.Lead || got[1].TenantHeader != "tenant" || got[2].Topic != "people" {
		t.Fatalf("Inputs() = %+v", got)
	}
	if len(config.Default().Inputs()) != 0 {
		t.Fatal("the defaults read no further inputs")
	}
}

// Invalid inputs stop start-up naming the field and, where there is a
// list, the allowed values; errors of tenants and inputs come together.
func TestBadInputs(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"unknown format", "inputs: [{topic: t, format: hubspot, tenant: a}]", `inputs[0].format: "hubspot" is not a format (allowed: native, salesforce_cdc, debezium)`},
		{"no topic", "inputs: [{format: native}]", "inputs[0].topic: required"},
		{"no tenant", "inputs: [{topic: t, format: salesforce_cdc}]", "inputs[0].tenant: required (or tenant_header)"},
		{"both tenants", "inputs: [{topic: t, format: salesforce_cdc, tenant: a, tenant_header: h}]", "inputs[0].tenant: set tenant or tenant_header, not both"},
		{"bad tenant", "inputs: [{topic: t, format: salesforce_cdc, tenant: 'a b'}]", `inputs[0].tenant: "a b" must be`},
		{"bad object", "inputs: [{topic: t, format: salesforce_cdc, tenant: a, objects: {Lead: person}}]", `inputs[0].objects.Lead: "person" is not an object (allowed: lead, contact, account)`},
		{"tables on cdc", "inputs: [{topic: t, format: salesforce_cdc, tenant: a, tables: {x: {object: lead}}}]", "inputs[0].tables: only for format debezium"},
		{"no tables", "inputs: [{topic: t, format: debezium, tenant: a}]", "inputs[0].tables: required"},
		{"table columns", "inputs: [{topic: t, format: debezium, tenant: a, tables: {leads: {object: lead, time_unit: s}}}]", "inputs[0].tables.leads.created_at: required"},
		{"time unit", "inputs: [{topic: t, format: debezium, tenant: a, tables: {leads: {object: lead, created_at: c, modified_at: m, time_unit: s}}}]", `inputs[0].tables.leads.time_unit: "s" is not a unit (allowed: ms, us, ns)`},
		{"tenant on native", "inputs: [{topic: t, format: native, tenant: a}]", "inputs[0].tenant: not for format native"},
		{"topic twice", "inputs: [{topic: t, format: native}, {topic: t, format: salesforce_cdc, tenant: a}]", `inputs[1].topic: "t" is already read by inputs[0]`},
		{"unknown key", "inputs: [{topic: t, format: native, tennant: a}]", "inputs[0].tennant: unknown key"},
		{"with a tenant error", "tenants: {acme: {engine: {crm: pipedrive}}}\ninputs: [{topic: t, format: x}]", `inputs[0].format: "x" is not a format`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
			if tt.name == "with a tenant error" && !strings.Contains(err.Error(), "tenants.acme.engine.crm") {
				t.Fatalf("error %v, want the tenant's error too", err)
			}
		})
	}
}

// TestPhoneRegionLayers: default_region and the older default_country are
// one setting, so a layer setting either replaces the inherited value.
func TestPhoneRegionLayers(t *testing.T) {
	f := mustParse(t, `
defaults:
  matching:
    phone: {default_country: "44"}
tenants:
  it:
    matching:
      phone: {default_region: IT}
  kept: {}
`)
	if p := mustTenant(t, f, "it").Matching.Phone; p != (matcher.PhoneOptions{DefaultRegion: "IT"}) {
		t.Errorf("it: phone = %+v, want default_region IT only", p)
	}
	if p := mustTenant(t, f, "kept").Matching.Phone; p != (matcher.PhoneOptions{DefaultCountry: "44"}) {
		t.Errorf("kept: phone = %+v, want the inherited default_country 44 only", p)
	}
	_, err := config.Parse([]byte("defaults:\n  matching:\n    phone: {default_region: XX}\n"))
	if err == nil || !strings.Contains(err.Error(), "defaults.matching.phone.default_region") {
		t.Errorf("unknown region: err = %v, want one naming defaults.matching.phone.default_region", err)
	}
}
