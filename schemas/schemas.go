// Package schemas embeds leadconv's JSON Schemas (draft 2020-12): the record
// event read from the input topic, the configuration file, the cluster
// delta and the data of every command kind. The Go types they describe are
// record.Event, the YAML of internal/config and engine.Command; the tests
// validate generated values of those types against the schemas.
//
// Each schema lives at URL(name), which is also its $id and the CloudEvents
// dataschema of the events it describes; references between schemas resolve
// from the embedded files, never from the network.
package schemas

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"go.yaml.in/yaml/v3"
)

//go:embed *.json
var files embed.FS

// BaseURL is where the schemas are published; URL(name) = BaseURL+name+".v1.json".
const BaseURL = "https://leadconv.io/schemas/"

// Schema names besides the command kinds (engine.Kinds), which name their
// own schemas ("lead.convert").
const (
	RecordEvent    = "record-event"
	Config         = "config"
	ClusterChanged = "cluster.changed"
	Common         = "common"
	// ResyncRequested is the data of resync requests (gap events).
	ResyncRequested = "resync.requested"
	// SalesforceCDC and Debezium are the contracts of those input formats.
	SalesforceCDC = "salesforce-cdc"
	Debezium      = "debezium"
)

// URL returns the $id of the named schema.
func URL(name string) string { return BaseURL + name + ".v1.json" }

// Type returns the CloudEvents type of a command kind or event name:
// io.leadconv.<name>.v1.
func Type(name string) string { return "io.leadconv." + name + ".v1" }

// Names lists the embedded schemas, sorted.
func Names() []string {
	entries, _ := fs.ReadDir(files, ".")
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".v1.json"); ok {
			names = append(names, n)
		}
	}
	return names
}

// compiled holds every schema compiled once; the embedded files are fixed,
// so a compile error is a bug the tests catch.
var compiled = sync.OnceValues(func() (map[string]*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	names := Names()
	for _, n := range names {
		b, err := files.ReadFile(n + ".v1.json")
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("schemas: %s: %w", n, err)
		}
		if err := c.AddResource(URL(n), doc); err != nil {
			return nil, fmt.Errorf("schemas: %s: %w", n, err)
		}
	}
	out := make(map[string]*jsonschema.Schema, len(names))
	for _, n := range names {
		s, err := c.Compile(URL(n))
		if err != nil {
			return nil, fmt.Errorf("schemas: compile %s: %w", n, err)
		}
		out[n] = s
	}
	return out, nil
})

func schema(name string) (*jsonschema.Schema, error) {
	all, err := compiled()
	if err != nil {
		return nil, err
	}
	s, ok := all[name]
	if !ok {
		return nil, fmt.Errorf("schemas: unknown schema %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	return s, nil
}

// ValidateJSON validates a JSON document against the named schema. A
// violation is a *Error.
func ValidateJSON(name string, b []byte) error {
	s, err := schema(name)
	if err != nil {
		return err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return &Error{Code: CodeNotJSON, Detail: "value is not a single JSON document"}
	}
	return validate(s, doc)
}

// ValidateValue validates v's JSON encoding against the named schema.
func ValidateValue(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("schemas: encode: %w", err)
	}
	return ValidateJSON(name, b)
}

// ValidateYAML validates a YAML document (the configuration file) against
// the named schema. YAML timestamps are compared as the text they were
// written as.
func ValidateYAML(name string, b []byte) error {
	s, err := schema(name)
	if err != nil {
		return err
	}
	var doc any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("schemas: %w", err)
	}
	// Through JSON, so the instance holds only the types JSON Schema knows
	// (json.Number, not int; strings for timestamps).
	j, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("schemas: yaml is not representable as JSON: %w", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		return fmt.Errorf("schemas: %w", err)
	}
	return validate(s, inst)
}

func validate(s *jsonschema.Schema, doc any) error {
	err := s.Validate(doc)
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		return &Error{Code: CodeSchemaViolation, Detail: describe(ve), cause: ve}
	}
	return err
}

// Error codes of Error.
const (
	CodeOversize        = "oversize"
	CodeNotJSON         = "not_json"
	CodeSchemaViolation = "schema_violation"
)

// Error is a document that does not satisfy its schema. Its message names
// JSON pointers and the failed keywords, never a value of the document, so
// it is safe to log and to write to a dead-letter header.
type Error struct {
	Code   string
	Detail string
	cause  *jsonschema.ValidationError
	at     string // the location when there is no cause
}

func (e *Error) Error() string { return "schemas: " + e.Code + ": " + e.Detail }

// ErrorCode returns Code; with Transient and ErrorReason it classifies the
// error (consumer.Coded): a document never becomes valid on retry.
func (e *Error) ErrorCode() string { return e.Code }

// Transient is false.
func (e *Error) Transient() bool { return false }

// ErrorReason returns Detail: JSON pointers and rules, never a value.
func (e *Error) ErrorReason() string { return e.Detail }

// Locations returns the JSON pointers of the failing values, sorted.
func (e *Error) Locations() []string {
	if e.cause == nil {
		if e.at == "" {
			return nil
		}
		return []string{e.at}
	}
	var locs []string
	for _, l := range leaves(e.cause) {
		locs = append(locs, pointer(l.loc))
	}
	slices.Sort(locs)
	return slices.Compact(locs)
}

// describe lists the innermost failures as "pointer: keyword", de-duplicated
// and sorted; the library's own messages quote values and are not used.
func describe(ve *jsonschema.ValidationError) string {
	var parts []string
	for _, l := range leaves(ve) {
		kw := "invalid"
		if p := l.kind.KeywordPath(); len(p) > 0 {
			kw = p[len(p)-1]
		}
		switch k := l.kind.(type) {
		case *kind.Required:
			// Names the schema's own properties, not the document's.
			kw += " " + strings.Join(k.Missing, ",")
		case *kind.Type:
			kw += " " + strings.Join(k.Want, "|")
		case *kind.Format:
			kw += " " + k.Want // the format's name, never the value
		}
		parts = append(parts, pointer(l.loc)+": "+kw)
	}
	slices.Sort(parts)
	parts = slices.Compact(parts)
	const most = 8
	if len(parts) > most {
		parts = append(parts[:most], fmt.Sprintf("and %d more", len(parts)-most))
	}
	return strings.Join(parts, "; ")
}

// leaf is one innermost failure. The schemas avoid propertyNames:
// jsonschema v6.0.3 gives its failures a location slice that later
// validation overwrites.
type leaf struct {
	loc  []string
	kind jsonschema.ErrorKind
}

func leaves(ve *jsonschema.ValidationError) []leaf {
	if ve == nil {
		return nil
	}
	if len(ve.Causes) == 0 {
		return []leaf{{ve.InstanceLocation, ve.ErrorKind}}
	}
	var out []leaf
	for _, c := range ve.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}

// pointer renders an instance location as a JSON pointer (RFC 6901). Object
// keys in it are field names, not values.
func pointer(loc []string) string {
	if len(loc) == 0 {
		return "/"
	}
	r := strings.NewReplacer("~", "~0", "/", "~1")
	var sb strings.Builder
	for _, s := range loc {
		sb.WriteByte('/')
		sb.WriteString(r.Replace(s))
	}
	return sb.String()
}
