package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// tpOf reads tp= from eval's output.
func tpOf(t *testing.T, out string) int {
	t.Helper()
	m := regexp.MustCompile(`\btp=(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no tp= in %q", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestEvalServiceConfig: eval --config takes the service config (the
// defaults block, or --tenant's block) as well as a bare rules file.
func TestEvalServiceConfig(t *testing.T) {
	data := filepath.Join(t.TempDir(), "sf.jsonl")
	if code, _, stderr := runMain(t, nil, "gen", "--crm", "salesforce", "--records", "1500", "--contacts", "0.2", "--format", "eval", "--output", data); code != exitOK {
		t.Fatalf("gen: %d %s", code, stderr)
	}
	run := func(args ...string) string {
		t.Helper()
		code, stdout, stderr := runMain(t, nil, append([]string{"eval", "--oracle", "--format", "jsonl", "--input", data}, args...)...)
		if code != exitOK {
			t.Fatalf("eval %v: code %d: %s", args, code, stderr)
		}
		return stdout
	}
	sf := run("--config", "../../examples/salesforce.yaml")
	if !strings.Contains(sf, "precision=1.0000") && !strings.Contains(sf, "precision=0.99") {
		t.Errorf("salesforce example on salesforce data: %s", sf)
	}
	// globex matches on e-mail only: fewer links than the defaults block.
	defaults, globex := run("--config", "../../examples/leadconv.yaml"), run("--config", "../../examples/leadconv.yaml", "--tenant", "globex")
	if tpOf(t, globex) >= tpOf(t, defaults) || tpOf(t, globex) == 0 {
		t.Errorf("globex (e-mail only) tp %d, defaults tp %d: want fewer, not none", tpOf(t, globex), tpOf(t, defaults))
	}
	// The bare rules file of the same e-mail rule finds the same links.
	rules := filepath.Join(t.TempDir(), "email.yaml")
	if err := os.WriteFile(rules, []byte("rules:\n  - name: email\n    all:\n      - {field: Email, normalizer: email, comparator: exact}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if bare := run("--config", rules); tpOf(t, bare) != tpOf(t, globex) {
		t.Errorf("bare e-mail rules tp %d, globex tp %d: want equal", tpOf(t, bare), tpOf(t, globex))
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--config", "../../examples/leadconv.yaml", "--tenant", "nope"}, "not configured (tenants: acme, globex)"},
		{[]string{"--config", rules, "--tenant", "acme"}, "bare rules file"},
		{[]string{"--tenant", "acme"}, "needs --config"},
	} {
		code, _, stderr := runMain(t, nil, append([]string{"eval", "--oracle", "--format", "jsonl", "--input", data}, tt.args...)...)
		if code != exitUsage || !strings.Contains(stderr, tt.want) {
			t.Errorf("eval %v: code %d, %q; want usage error mentioning %q", tt.args, code, stderr, tt.want)
		}
	}
}

// TestValidateConfigRulesFile: validate-config checks a bare rules file
// too, naming the failing path.
func TestValidateConfigRulesFile(t *testing.T) {
	code, stdout, stderr := runMain(t, nil, "validate-config", "../../examples/eval/febrl1.yaml")
	if code != exitOK || !strings.Contains(stdout, "valid matching rules file") {
		t.Fatalf("febrl1: code %d %q %q", code, stdout, stderr)
	}
	for _, ex := range []string{"salesforce", "zoho", "hubspot", "dynamics"} {
		if code, stdout, stderr := runMain(t, nil, "validate-config", "../../examples/"+ex+".yaml"); code != exitOK || !strings.Contains(stdout, "valid;") {
			t.Errorf("%s: code %d %q %q", ex, code, stdout, stderr)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("rules:\n  - name: x\n    all:\n      - {field: Email, normalizer: mail, comparator: exact}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runMain(t, nil, "validate-config", bad)
	if code != exitError || !strings.Contains(stderr, "rules[0].all[0].normalizer") || !strings.Contains(stderr, "phone") {
		t.Errorf("bad rules: code %d, %q", code, stderr)
	}
}

// TestGenCRM: gen --crm writes the CRM's field names.
func TestGenCRM(t *testing.T) {
	code, stdout, stderr := runMain(t, nil, "gen", "--crm", "dynamics", "--records", "20")
	if code != exitOK || !strings.Contains(stdout, `"emailaddress1"`) || !strings.Contains(stdout, `"createdon"`) || strings.Contains(stdout, `"Email"`) {
		t.Fatalf("code %d: %.300s %s", code, stdout, stderr)
	}
	if code, _, stderr := runMain(t, nil, "gen", "--crm", "sugar"); code != exitUsage || !strings.Contains(stderr, "salesforce, zoho, hubspot, dynamics") {
		t.Errorf("--crm sugar: code %d %q", code, stderr)
	}
}
