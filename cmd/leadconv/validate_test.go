package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateConfigShippedExample(t *testing.T) {
	code, stdout, stderr := runMain(t, nil, "validate-config", "../../examples/leadconv.yaml")
	if code != exitOK || !strings.Contains(stdout, "valid") {
		t.Fatalf("code %d stdout %q stderr %q", code, stdout, stderr)
	}
	// --config and $LEADCONV_CONFIG name the same file.
	if code, _, stderr := runMain(t, map[string]string{"LEADCONV_CONFIG": "../../examples/leadconv.yaml"}, "validate-config"); code != exitOK {
		t.Fatalf("from LEADCONV_CONFIG: code %d, %s", code, stderr)
	}
}

// An invalid file is reported with the YAML path of the field and the
// allowed values, and the exit status says so.
func TestValidateConfigNamesFieldAndAllowedValues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	bad := "tenants:\n  acme:\n    engine:\n      master:\n        strategy: loudest\n"
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runMain(t, nil, "validate-config", "--config", path)
	if code != exitError || stdout != "" {
		t.Fatalf("code %d stdout %q", code, stdout)
	}
	for _, want := range []string{"tenants.acme.engine.master.strategy", "loudest", "most_complete", "newest_date"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("error does not mention %q:\n%s", want, stderr)
		}
	}
}

func TestValidateConfigUsage(t *testing.T) {
	if code, _, stderr := runMain(t, nil, "validate-config"); code != exitUsage || !strings.Contains(stderr, "no config file") {
		t.Fatalf("no file: code %d, %q", code, stderr)
	}
	if code, _, stderr := runMain(t, nil, "validate-config", "/nonexistent/leadconv.yaml"); code != exitError || !strings.Contains(stderr, "/nonexistent/leadconv.yaml") {
		t.Fatalf("missing file: code %d, %q", code, stderr)
	}
}

// One run names every mistake of a file, and an empty file is an error,
// not "every tenant gets the defaults".
func TestValidateConfigEveryErrorAndEmptyFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	src := "defaults:\n  engine: {crm: pipedrive, max_cluster_sise: 3}\ntenants:\n  acme:\n    engine:\n      master: {stratgy: most_complete}\n      fields: {default: newest}\n"
	if err := os.WriteFile(bad, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runMain(t, nil, "validate-config", bad)
	if code != exitError {
		t.Fatalf("code %d, %s", code, stderr)
	}
	for _, want := range []string{"defaults.engine.crm", "defaults.engine.max_cluster_sise", "tenants.acme.engine.master.stratgy", "tenants.acme.engine.fields.default"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("error does not mention %q:\n%s", want, stderr)
		}
	}
	empty := filepath.Join(dir, "empty.yaml")
	if err := os.WriteFile(empty, []byte("# all commented out\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := runMain(t, nil, "validate-config", empty); code != exitError || stdout != "" || !strings.Contains(stderr, "holds no settings") {
		t.Fatalf("empty file: code %d stdout %q stderr %q", code, stdout, stderr)
	}
}
