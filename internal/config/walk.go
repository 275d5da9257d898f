package config

import (
	"fmt"
	"iter"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/leadconv/leadconv/engine"
)

// maxNodes bounds the walk: aliases can make a small document expand
// exponentially ("billion laughs").
const maxNodes = 100_000

var typeOfFileShape = reflect.TypeFor[fileShape]()

// rejected are keys the Go types accept but the file must not use, by the
// type holding them, with the reason.
var rejected = map[reflect.Type]map[string]string{
	reflect.TypeFor[engine.Config](): {"contact_fields": "set contact_fields at the block level, beside engine and matching"},
}

// walker checks a YAML tree against the Go type it decodes into, reporting
// unknown keys and type mismatches under their YAML path. yaml.v3's own
// errors only give line numbers.
type walker struct {
	errs   []error
	budget int
}

func (w *walker) fail(n *yaml.Node, path, format string, a ...any) {
	if path == "" {
		path = "(top level)"
	}
	w.errs = append(w.errs, fmt.Errorf("%s: %s (line %d)", path, fmt.Sprintf(format, a...), n.Line))
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	if w.budget--; w.budget < 0 {
		if w.budget == -1 {
			w.fail(n, path, "document too large or too much aliasing")
		}
		return
	}
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		// Null empties a pointer, map or list; an empty block (`defaults:`)
		// overlays nothing. On a scalar yaml.v3 would silently keep the
		// inherited value, so it is refused.
		switch t.Kind() {
		case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Struct:
		default:
			w.fail(n, path, "null is not allowed; omit the key to inherit the default")
		}
		return
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			w.fail(n, path, "expected a mapping, got %s", describe(n))
			return
		}
		fields := yamlFields(t)
		for k, v := range mappingPairs(n) {
			at := join(path, k.Value)
			ft, ok := fields[k.Value]
			if !ok {
				w.fail(k, at, "unknown key (allowed: %s)", strings.Join(fieldNames(t), ", "))
				continue
			}
			if why, bad := rejected[t][k.Value]; bad {
				w.fail(k, at, "not allowed here: %s", why)
				continue
			}
			w.walk(v, ft, at)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.fail(n, path, "expected a mapping, got %s", describe(n))
			return
		}
		for k, v := range mappingPairs(n) {
			at := join(path, k.Value)
			if k.Kind != yaml.ScalarNode || k.Tag != "!!str" && k.Tag != "!!int" && k.Tag != "!!float" && k.Tag != "!!bool" {
				w.fail(k, at, "keys must be strings")
				continue
			}
			w.walk(v, t.Elem(), at)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.fail(n, path, "expected a list, got %s", describe(n))
			return
		}
		for i, v := range n.Content {
			w.walk(v, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	default:
		if n.Kind != yaml.ScalarNode {
			w.fail(n, path, "expected %s, got %s", kindName(t), describe(n))
			return
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			w.fail(n, path, "expected %s, got %s", kindName(t), describe(n))
		}
	}
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		return fmt.Sprintf("%s %q", strings.TrimPrefix(n.ShortTag(), "!!"), v)
	}
	return "an alias"
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	}
	return t.String()
}

// yamlFields maps a struct's YAML keys to field types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if name := yamlName(f); name != "" {
			m[name] = f.Type
		}
	}
	return m
}

// fieldNames lists a struct's YAML keys in declaration order, as error
// messages show them; rejected keys are left out.
func fieldNames(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		name := yamlName(t.Field(i))
		if name == "" {
			continue
		}
		if _, bad := rejected[t][name]; bad {
			continue
		}
		names = append(names, name)
	}
	return names
}

func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	switch name {
	case "-":
		return ""
	case "":
		return strings.ToLower(f.Name)
	}
	return name
}

// mappingPairs yields a mapping's key/value pairs, expanding YAML merge
// keys (`<<: *anchor`) before the explicit keys, as yaml.v3 applies them.
func mappingPairs(n *yaml.Node) iter.Seq2[*yaml.Node, *yaml.Node] {
	return func(yield func(*yaml.Node, *yaml.Node) bool) {
		pairs(n, 0, yield)
	}
}

func pairs(n *yaml.Node, depth int, yield func(*yaml.Node, *yaml.Node) bool) bool {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode || depth > 8 {
		return true
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Tag != "!!merge" {
			continue
		}
		for v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		merged := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			merged = v.Content
		}
		for _, m := range merged {
			if !pairs(m, depth+1, yield) {
				return false
			}
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Tag == "!!merge" {
			continue
		}
		for v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		if !yield(k, v) {
			return false
		}
	}
	return true
}

// lookup returns the value of key in mapping n, or nil (also when n is nil
// or not a mapping).
func lookup(n *yaml.Node, key string) *yaml.Node {
	if n == nil {
		return nil
	}
	var found *yaml.Node
	for k, v := range mappingPairs(n) {
		if k.Value == key {
			found = v
		}
	}
	return found
}
