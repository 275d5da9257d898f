package requests

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

var (
	schemasOnce sync.Once
	schemas     map[string]*jsonschema.Schema
	schemasErr  error
)

// checkSchema checks doc against schemas/<name>.json.
func checkSchema(t *testing.T, name string, doc []byte) {
	t.Helper()
	schemasOnce.Do(func() { schemas, schemasErr = compileSchemas("../schemas") })
	if schemasErr != nil {
		t.Fatal(schemasErr)
	}
	s := schemas[name]
	if s == nil {
		t.Fatalf("no schema %s", name)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(inst); err != nil {
		t.Errorf("%s: %v\n%s", name, err, doc)
	}
}

func compileSchemas(dir string) (map[string]*jsonschema.Schema, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	const base = "https://leadconv.io/schemas/"
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		if err := c.AddResource(base+filepath.Base(f), doc); err != nil {
			return nil, err
		}
	}
	out := map[string]*jsonschema.Schema{}
	for _, f := range files {
		s, err := c.Compile(base + filepath.Base(f))
		if err != nil {
			return nil, err
		}
		out[strings.TrimSuffix(filepath.Base(f), ".json")] = s
	}
	return out, nil
}
