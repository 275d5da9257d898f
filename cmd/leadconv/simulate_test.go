package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2"
)

// writeEvents writes a generated event file plus extra lines and returns
// its path.
func writeEvents(t *testing.T, records int, extra ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.jsonl")
	if code, _, stderr := runMain(t, nil, "gen", "--records", strconv.Itoa(records), "--updates", "0.1", "--contacts", "0.2", "--output", path); code != exitOK {
		t.Fatalf("gen: %s", stderr)
	}
	if len(extra) > 0 {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(strings.Join(extra, "\n") + "\n"); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func TestSimulatePrintsCloudEventsAndSummary(t *testing.T) {
	t.Parallel()
	path := writeEvents(t, 200, "not json", `{"tenant":"acme","object":"deal","id":"d1","op":"upsert"}`,
		`{"tenant":"acme","object":"lead","id":"L9","op":"patch","modified_at":"2026-02-30T00:00:00Z"}`)
	code, stdout, stderr := runMain(t, nil, "simulate", "--input", path, "--batch", "64", "--allow-rejected")
	if code != exitOK {
		t.Fatalf("code %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) < 20 {
		t.Fatalf("only %d command lines", len(lines))
	}
	ids := map[string]bool{}
	types := map[string]int{}
	for i, l := range lines {
		// A standard CloudEvents reader takes each line.
		ev := cloudevents.NewEvent()
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("line %d is not a CloudEvent: %v\n%s", i+1, err, l)
		}
		if err := ev.Validate(); err != nil || !strings.HasPrefix(ev.Type(), "io.leadconv.") || ev.DataSchema() == "" {
			t.Fatalf("line %d: invalid or foreign event (%v): %s", i+1, err, l)
		}
		if ids[ev.ID()] {
			t.Fatalf("line %d repeats id %s", i+1, ev.ID())
		}
		ids[ev.ID()] = true
		types[ev.Type()]++
	}
	if types["io.leadconv.lead.convert.v1"] == 0 || types["io.leadconv.records.merge.v1"] == 0 {
		t.Errorf("types %v: want conversions and merges", types)
	}
	want := "events applied, 3 rejected; " + strconv.Itoa(len(lines)) + " events out"
	for _, w := range []string{want, ": not_json value is not a single JSON document\n", ": unknown_object /object: enum\n",
		": schema_violation /modified_at: format date-time\n"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("summary lacks %q:\n%s", w, stderr)
		}
	}

	// Deterministic: the same input gives the same output, batch size aside.
	// Without --allow-rejected the same run fails, after printing the same
	// commands.
	code, again, stderr := runMain(t, nil, "simulate", "--input", path, "--batch", "64")
	if again != stdout {
		t.Error("a second run printed other commands")
	}
	if code != exitError || !strings.Contains(stderr, "3 line(s) rejected") {
		t.Errorf("with rejected lines: code %d, %s", code, stderr)
	}
}

func TestSimulateChangesAndStdin(t *testing.T) {
	path := writeEvents(t, 60)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out, errb strings.Builder
	e := &env{stdin: strings.NewReader(string(b)), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	if code := Main(t.Context(), []string{"simulate", "--input", "-", "--changes"}, e); code != exitOK {
		t.Fatalf("code %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), `"type":"io.leadconv.cluster.changed.v1"`) {
		t.Errorf("--changes printed no cluster.changed event")
	}
	if n := strings.Count(string(b), "\n"); !strings.Contains(errb.String(), "simulate: "+strconv.Itoa(n)+" lines, "+strconv.Itoa(n)+" events applied") {
		t.Errorf("summary: %s", errb.String())
	}
}

func TestSimulateUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, exitUsage, "--input is required"},
		{[]string{"--input", "x", "--batch", "0"}, exitUsage, "--batch 0"},
		{[]string{"--input", filepath.Join(t.TempDir(), "missing.jsonl")}, exitError, "no such file"},
		{[]string{"--input", "x", "--config", filepath.Join(t.TempDir(), "missing.yaml")}, exitError, "missing.yaml"},
	} {
		code, _, stderr := runMain(t, nil, append([]string{"simulate"}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("simulate %v: code %d, stderr %q", tc.args, code, stderr)
		}
	}
}
