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
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/ingest"
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
	// rejected (role_not_allowed). Replaces the inherited list.
	Roles []string `yaml:"roles"`
	// MaxRecordsPerRequest bounds the leads one request selects.
	MaxRecordsPerRequest int `yaml:"max_records_per_request"`
	// MaxNewRecordsPerRequest bounds the contacts, accounts and
	// opportunities one request would create: the storage guard.
	MaxNewRecordsPerRequest int `yaml:"max_new_records_per_request"`
	// Token names the key that verifies the tenant's request tokens;
	// without one every request is rejected (bad_signature).
	Token *TokenKey `yaml:"token"`
}

// TokenKey is where a tenant's request-token key comes from: exactly one
// source. The key is loaded at start-up by the service, not by
// validate-config, which never needs the secrets.
type TokenKey struct {
	HMACSecretFile string `yaml:"hmac_secret_file"` // HS256/384/512 secret, at least 32 bytes
	HMACSecretEnv  string `yaml:"hmac_secret_env"`  // variable holding the HMAC secret
	PublicKeyFile  string `yaml:"public_key_file"`  // PEM Ed25519 or ECDSA public key
	JWKSFile       string `yaml:"jwks_file"`        // JSON Web Key Set (Ed25519, EC keys with kid)
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
	if k := m.Token; k != nil {
		n := 0
		for _, v := range []string{k.HMACSecretFile, k.HMACSecretEnv, k.PublicKeyFile, k.JWKSFile} {
			if v != "" {
				n++
			}
		}
		if n != 1 {
			errs = append(errs, fmt.Errorf("%s.token: set exactly one of hmac_secret_file, hmac_secret_env, public_key_file, jwks_file (has %d)", path, n))
		}
	}
	return errors.Join(errs...)
}

// File is a loaded configuration file: every tenant resolved, validated and
// compiled at load, so lookups never fail on configuration.
type File struct {
	defaults *Tenant
	tenants  map[string]*Tenant
	inputs   []ingest.Config
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
	// Inputs are the input topics beyond the records topic, each in its
	// format (ingest.Config).
	Inputs []ingest.Config `yaml:"inputs"`
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

// Default returns the shipped defaults for every tenant: what running
// without a file gives, and what a file of `{}` gives.
func Default() *File {
	f, err := build(nil, nil, false)
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
// file (a top-level defaults:, tenants: or inputs: key) rather than a bare matching
// rules file; Parse decides whether it is a valid one. An empty file counts
// as one, so that it is refused as such.
func IsServiceConfig(b []byte) bool {
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil {
		return false
	}
	if doc.Kind == 0 || len(doc.Content) == 1 && doc.Content[0].Tag == "!!null" {
		// Empty, comments only or null: Parse says why that is refused.
		return true
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return false
	}
	return lookup(doc.Content[0], "defaults") != nil || lookup(doc.Content[0], "tenants") != nil || lookup(doc.Content[0], "inputs") != nil
}

// errEmpty and errMultiDoc refuse files whose content would silently mean
// something else: a truncated or emptied file would give every tenant the
// shipped defaults, and a second document would be ignored.
var (
	errEmpty    = errors.New("config: the file holds no settings (empty, only comments, or null); write `defaults: {}` for the shipped defaults, or start without --config")
	errMultiDoc = errors.New("config: the file holds more than one YAML document (a `---` separator); put the defaults and every tenant in one document")
)

// Parse parses a configuration file's content: exactly one YAML document
// whose top level is a mapping (`{}` gives the shipped defaults). Every error
// of the file is reported at once, each under its YAML path.
func Parse(b []byte) (*File, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errEmpty
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		return nil, errMultiDoc
	}
	var root *yaml.Node
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		root = doc.Content[0]
	}
	if root == nil || root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, errEmpty
	}
	// Path-named errors first; the strict decode below is the backstop for
	// what the walk does not model (duplicate keys, excessive aliasing).
	w := walker{budget: maxNodes}
	w.walk(root, typeOfFileShape, "")
	var strict fileShape
	if len(w.errs) == 0 {
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&strict); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	if root.Kind != yaml.MappingNode || w.budget < 0 {
		return nil, fmt.Errorf("config: %w", errors.Join(w.errs...))
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
	// The walk's errors, the inputs' and the semantic ones are reported
	// together, so that one run of validate-config lists every mistake. The
	// walk already named each type mismatch, so the decoder's own errors are
	// dropped then.
	f, err := build(defaults, tenants, len(w.errs) > 0)
	errs := w.errs
	if ierr := ingest.ValidateAll("inputs", strict.Inputs); ierr != nil {
		errs = append(errs, ierr)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("config: %w", errors.Join(append(errs, err)...))
	}
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	f.inputs = strict.Inputs
	return f, nil
}

// build resolves, validates and compiles the defaults and every tenant,
// returning every error found. With lenient set, decode errors (already
// reported by the walk) are ignored and validation goes on with what
// decoded.
func build(defaults *yaml.Node, tenants map[string]*yaml.Node, lenient bool) (*File, error) {
	dt, err := resolve("", "defaults", []*yaml.Node{defaults}, lenient)
	errs := leafErrors(err)
	// A broken defaults block would repeat its errors under every tenant
	// that inherits them: those are dropped, the tenants' own are kept.
	inherited := map[string]bool{}
	for _, e := range errs {
		inherited[e.Error()] = true
	}
	f := &File{defaults: dt, tenants: make(map[string]*Tenant, len(tenants))}
	for _, name := range sortedKeys(tenants) {
		path := "tenants." + name
		if err := checkTenantName(name); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
			continue
		}
		t, err := resolve(name, path, []*yaml.Node{defaults, tenants[name]}, lenient)
		for _, e := range leafErrors(err) {
			if !inherited[strings.Replace(e.Error(), path, "defaults", 1)] {
				errs = append(errs, e)
			}
		}
		f.tenants[name] = t
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return f, nil
}

// leafErrors flattens joined errors into their leaves.
func leafErrors(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leafErrors(e)...)
		}
		return out
	}
	return []error{err}
}

// resolve overlays layers on the shipped defaults and validates the result;
// path names the last layer in errors.
func resolve(name, path string, layers []*yaml.Node, lenient bool) (*Tenant, error) {
	b := shippedFor(layerCRM(layers))
	for _, n := range layers {
		if n == nil {
			continue
		}
		resetReplaced(&b.Engine, lookup(n, "engine"))
		resetPhone(&b.Matching.Phone, lookup(n, "matching"))
		if err := n.Decode(&b); err != nil && !lenient {
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

// Inputs lists the configured input topics and their formats.
func (f *File) Inputs() []ingest.Config { return f.inputs }

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
