// Package config loads leadconv's service configuration file: one
// `defaults:` block and per-tenant overrides, each block holding the engine
// settings (engine.Config), the matching settings (matcher.Config) and the
// contact field map.
//
// Layering: a tenant's configuration is the shipped defaults
// (engine.DefaultConfig, matcher.DefaultConfig), overlaid by the file's
// `defaults:` block, overlaid by the tenant's block. An overlay merges
// mappings key by key at any depth (so `engine: {crm: zoho}` keeps every
// other engine setting, and `contact_fields` adds to the inherited map);
// scalars and lists replace what they overlay (`matching.rules` replaces the
// whole rule list). A strategy's parameters belong to it: an overlay that sets
// `master.strategy` (or `blank_account.strategy`, `opportunity.strategy`)
// starts that block afresh, keeping only the inherited `master.fallback`; an
// overlay's `convert_when` replaces the inherited one, and
// `convert_when: null` removes it. Null empties a list or map (`null` on a
// block overlays nothing); on a scalar it is rejected (omit the key to
// inherit).
//
// Loading is strict: unknown keys, wrong types, unknown strategy names and
// missing parameters stop start-up with errors naming the YAML path
// (`tenants.acme.engine.master.strategy: ...`), for every tenant at once.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/record"
)

// Tenant is one tenant's resolved configuration. It is shared between
// callers: treat it as read-only.
type Tenant struct {
	Name string
	// Engine has ContactFields set from the block's contact_fields.
	Engine   *engine.Config
	Matching matcher.Config
	// Rules is Matching compiled with ContactFields; a Ruleset is safe for
	// concurrent use.
	Rules          *matcher.Ruleset
	ContactFields  record.FieldMap
	MassConversion MassConversion
}

// MassConversion is a tenant's policy for mass-conversion requests. Zero
// values leave the decision to the service's flags (--mass-convert-roles,
// --max-records-per-request, --max-new-records-per-request).
type MassConversion struct {
	// Roles may mass convert; a request whose requester holds none is
	// rejected (permission_denied). Replaces the inherited list.
	Roles []string `yaml:"roles"`
	// MaxRecordsPerRequest bounds the leads one request selects.
	MaxRecordsPerRequest int `yaml:"max_records_per_request"`
	// MaxNewRecordsPerRequest bounds the contacts, accounts and
	// opportunities one request would create: the storage guard.
	MaxNewRecordsPerRequest int `yaml:"max_new_records_per_request"`
}

func (m MassConversion) validate(path string) error {
	var errs []error
	for i, r := range m.Roles {
		if strings.TrimSpace(r) == "" {
			errs = append(errs, fmt.Errorf("%s.roles[%d]: a role must not be empty", path, i))
		}
	}
	if m.MaxRecordsPerRequest < 0 {
		errs = append(errs, fmt.Errorf("%s.max_records_per_request: must be positive (or omitted), got %d", path, m.MaxRecordsPerRequest))
	}
	if m.MaxNewRecordsPerRequest < 0 {
		errs = append(errs, fmt.Errorf("%s.max_new_records_per_request: must be positive (or omitted), got %d", path, m.MaxNewRecordsPerRequest))
	}
	return errors.Join(errs...)
}

// File is a loaded configuration file: every tenant resolved, validated and
// compiled at load, so lookups never fail on configuration.
type File struct {
	defaults *Tenant
	tenants  map[string]*Tenant
}

// block is the shape of `defaults:` and of each tenant's block.
type block struct {
	Engine         engine.Config   `yaml:"engine"`
	Matching       matcher.Config  `yaml:"matching"`
	ContactFields  record.FieldMap `yaml:"contact_fields"`
	MassConversion MassConversion  `yaml:"mass_conversion"`
}

// fileShape is the whole file, used for the strict typed decode.
type fileShape struct {
	Defaults block            `yaml:"defaults"`
	Tenants  map[string]block `yaml:"tenants"`
}

func shipped() block {
	return block{Engine: engine.DefaultConfig(), Matching: matcher.DefaultConfig(), ContactFields: record.FieldMap{}}
}

// shippedFor is the shipped defaults of a CRM profile: the engine's and the
// default match rules under the CRM's own field names (emailaddress1,
// companyname for dynamics), so `engine: {crm: dynamics}` alone gives a
// working tenant. Unknown and generic profiles get shipped().
func shippedFor(crm string) block {
	b := shipped()
	m, ok := engine.Model(crm)
	if !ok {
		return b
	}
	b.Engine = engine.DefaultConfigFor(crm)
	b.Matching = CRMMatching(m)
	return b
}

// CRMMatching is matcher.DefaultConfig with the rules' fields and the
// account and converted fields renamed to model's CRM.
func CRMMatching(m engine.FieldModel) matcher.Config {
	mc := matcher.DefaultConfig()
	rename := func(f string) string {
		if n := m.Canonical[f]; n != "" {
			return n
		}
		return f
	}
	for i := range mc.Rules {
		conds := slices.Clone(mc.Rules[i].All)
		for j := range conds {
			c := &conds[j]
			if c.Field != "" {
				c.Field = rename(c.Field)
			}
			c.Fields = slices.Clone(c.Fields)
			for k := range c.Fields {
				c.Fields[k] = rename(c.Fields[k])
			}
		}
		mc.Rules[i].All = conds
	}
	mc.AccountField = m.AccountField
	mc.AccountNameField = m.AccountName
	if m.Converted != "" {
		mc.ConvertedField = m.Converted
	}
	return mc
}

// layerCRM is the engine.crm the layers set last ("" when none does).
func layerCRM(layers []*yaml.Node) string {
	crm := engine.DefaultCRM
	for _, n := range layers {
		if n == nil {
			continue
		}
		if v := lookup(lookup(n, "engine"), "crm"); v != nil && v.Kind == yaml.ScalarNode {
			crm = v.Value
		}
	}
	return crm
}

// Default returns the configuration of an empty file: the shipped defaults
// for every tenant.
func Default() *File {
	f, err := build(nil, nil)
	if err != nil {
		// The shipped defaults are validated by TestDefault.
		panic("config: shipped defaults are invalid: " + err.Error())
	}
	return f
}

// Load reads and parses the configuration file at path.
func Load(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	f, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// IsServiceConfig reports whether b looks like a service configuration
// file (a top-level defaults: or tenants: key) rather than a bare matching
// rules file; Parse decides whether it is a valid one.
func IsServiceConfig(b []byte) bool {
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil || doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return false
	}
	return lookup(doc.Content[0], "defaults") != nil || lookup(doc.Content[0], "tenants") != nil
}

// Parse parses a configuration file's content. An empty document gives the
// shipped defaults.
func Parse(b []byte) (*File, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var root *yaml.Node
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		root = doc.Content[0]
	}
	if root == nil || root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return Default(), nil
	}
	// Path-named errors first; the strict decode below is the backstop for
	// what the walk does not model (duplicate keys, excessive aliasing).
	w := walker{budget: maxNodes}
	w.walk(root, typeOfFileShape, "")
	if len(w.errs) > 0 {
		return nil, fmt.Errorf("config: %w", errors.Join(w.errs...))
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var strict fileShape
	if err := dec.Decode(&strict); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var defaults *yaml.Node
	tenants := map[string]*yaml.Node{}
	for k, v := range mappingPairs(root) {
		switch k.Value {
		case "defaults":
			defaults = v
		case "tenants":
			for tk, tv := range mappingPairs(v) {
				tenants[tk.Value] = tv
			}
		}
	}
	return build(defaults, tenants)
}

// build resolves, validates and compiles the defaults and every tenant.
func build(defaults *yaml.Node, tenants map[string]*yaml.Node) (*File, error) {
	var errs []error
	layers := []*yaml.Node{defaults}
	dt, err := resolve("", "defaults", layers)
	if err != nil {
		// A broken defaults block would repeat its errors for every tenant.
		return nil, fmt.Errorf("config: %w", err)
	}
	f := &File{defaults: dt, tenants: make(map[string]*Tenant, len(tenants))}
	for _, name := range sortedKeys(tenants) {
		path := "tenants." + name
		if err := checkTenantName(name); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
			continue
		}
		t, err := resolve(name, path, []*yaml.Node{defaults, tenants[name]})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f.tenants[name] = t
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return f, nil
}

// resolve overlays layers on the shipped defaults and validates the result;
// path names the last layer in errors.
func resolve(name, path string, layers []*yaml.Node) (*Tenant, error) {
	b := shippedFor(layerCRM(layers))
	for _, n := range layers {
		if n == nil {
			continue
		}
		resetReplaced(&b.Engine, lookup(n, "engine"))
		resetPhone(&b.Matching.Phone, lookup(n, "matching"))
		if err := n.Decode(&b); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	var errs []error
	// The engine validates its copy of the contact map under its own path;
	// the file sets it at the block level, so it is checked here.
	b.Engine.ContactFields = nil
	if err := b.Engine.Validate(path + ".engine"); err != nil {
		errs = append(errs, err)
	}
	if err := validateContactFields(path+".contact_fields", b.ContactFields); err != nil {
		errs = append(errs, err)
	}
	if err := b.Matching.Validate(path + ".matching"); err != nil {
		errs = append(errs, err)
	}
	if err := b.MassConversion.validate(path + ".mass_conversion"); err != nil {
		errs = append(errs, err)
	}
	if ma, ea := b.Matching.AccountField, b.Engine.Conversion.AccountField; ma != "" && ea != "" && ma != ea {
		errs = append(errs, fmt.Errorf("%s.matching.account_field: %q differs from engine.conversion.account_field %q: both name the lead's company field, set them to the same field", path, ma, ea))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// The CRM model's contact mappings, under the configured ones: the
	// matcher reads contacts through the same map the engine writes with.
	cf := engine.ContactFieldsFor(b.Engine.CRM, b.ContactFields)
	rs, err := matcher.Compile(b.Matching, cf)
	if err != nil {
		return nil, fmt.Errorf("%s.matching: %w", path, err)
	}
	eng := b.Engine
	eng.ContactFields = cf
	return &Tenant{Name: name, Engine: &eng, Matching: b.Matching, Rules: rs, ContactFields: cf, MassConversion: b.MassConversion}, nil
}

// resetReplaced clears what an engine overlay replaces as a whole rather
// than merges: a strategy's parameters belong to that strategy, so setting
// `strategy` starts them afresh (master.fallback still inherits), and
// convert_when's equals and in are alternatives that must not combine.
func resetReplaced(c *engine.Config, n *yaml.Node) {
	if n == nil {
		return
	}
	if m := lookup(n, "master"); m != nil && lookup(m, "strategy") != nil {
		c.Master = engine.MasterConfig{Fallback: c.Master.Fallback}
	}
	if cv := lookup(n, "conversion"); cv != nil {
		if ba := lookup(cv, "blank_account"); ba != nil && lookup(ba, "strategy") != nil {
			c.Conversion.BlankAccount = engine.BlankAccountConfig{}
		}
		if op := lookup(cv, "opportunity"); op != nil && lookup(op, "strategy") != nil {
			c.Conversion.Opportunity = engine.OpportunityConfig{}
		}
	}
	if lookup(n, "convert_when") != nil {
		c.ConvertWhen = nil
	}
}

// resetPhone lets a layer's phone.default_region or default_country
// replace the inherited one of either spelling: they are one setting.
func resetPhone(p *matcher.PhoneOptions, n *yaml.Node) {
	if n == nil {
		return
	}
	if ph := lookup(n, "phone"); ph != nil && (lookup(ph, "default_region") != nil || lookup(ph, "default_country") != nil) {
		*p = matcher.PhoneOptions{}
	}
}

// validateContactFields applies the engine's contact map rules at the
// block-level path: names are non-empty and no lead field is mapped twice.
func validateContactFields(path string, m record.FieldMap) error {
	var errs []error
	leads := make(map[string]string, len(m))
	for _, cf := range sortedKeys(m) {
		lf := m[cf]
		switch {
		case strings.TrimSpace(cf) == "" || strings.TrimSpace(lf) == "":
			errs = append(errs, fmt.Errorf("%s: field names must not be empty", path))
		case leads[lf] != "":
			errs = append(errs, fmt.Errorf("%s.%s: lead field %q is already mapped from contact field %q", path, cf, lf, leads[lf]))
		default:
			leads[lf] = cf
		}
	}
	return errors.Join(errs...)
}

// checkTenantName applies the matcher's rule for tenant ids (they become
// Redis hash tags).
func checkTenantName(name string) error {
	if name == "" || strings.ContainsAny(name, "{}") || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' }) {
		return fmt.Errorf("tenant name %q must be non-empty, without braces or whitespace", name)
	}
	return nil
}

// Tenant returns the configuration of the named tenant; tenants the file
// does not name get the defaults. The error reports an invalid name.
func (f *File) Tenant(name string) (*Tenant, error) {
	if t, ok := f.tenants[name]; ok {
		return t, nil
	}
	if err := checkTenantName(name); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	t := *f.defaults
	t.Name = name
	return &t, nil
}

// Tenants lists the tenants the file configures, sorted.
func (f *File) Tenants() []string { return sortedKeys(f.tenants) }

// Rules returns the tenant's compiled rules; it fits matcher.RulesFunc.
func (f *File) Rules(tenant string) (*matcher.Ruleset, error) {
	t, err := f.Tenant(tenant)
	if err != nil {
		return nil, err
	}
	return t.Rules, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
