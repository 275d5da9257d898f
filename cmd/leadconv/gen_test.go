package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/leadconv/leadconv/record"
)

func TestGenEvents(t *testing.T) {
	code, stdout, stderr := runMain(t, nil, "gen", "--records", "50", "--seed", "7")
	if code != exitOK {
		t.Fatalf("code %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 50 {
		t.Fatalf("got %d lines, want 50", len(lines))
	}
	var ev record.Event
	if err := json.Unmarshal([]byte(lines[0]), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Tenant != "acme" || ev.Op != record.OpUpsert || ev.ID == "" || ev.CreatedAt.IsZero() || len(ev.Fields) == 0 {
		t.Fatalf("first event = %+v", ev)
	}
	// Deterministic per seed.
	if _, again, _ := runMain(t, nil, "gen", "--records", "50", "--seed", "7"); again != stdout {
		t.Fatal("same seed gave different output")
	}
	if _, other, _ := runMain(t, nil, "gen", "--records", "50", "--seed", "8"); other == stdout {
		t.Fatal("another seed gave the same output")
	}
}

func TestGenEvalFormatToFile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "truth.jsonl")
	code, stdout, stderr := runMain(t, nil, "gen", "--records", "200", "--format", "eval", "--output", out)
	if code != exitOK || stdout != "" {
		t.Fatalf("code %d stdout %q stderr %q", code, stdout, stderr)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entities := map[string]int{}
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); n++ {
		var l evalLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		if l.ID == "" || l.Entity == "" || l.Object != record.Lead {
			t.Fatalf("line %d = %+v", n+1, l)
		}
		entities[l.Entity]++
	}
	if n != 200 || len(entities) >= n || len(entities) < n/2 {
		t.Fatalf("%d records in %d entities: want about 30%% duplicates", n, len(entities))
	}
}

func TestGenNoDuplicates(t *testing.T) {
	_, stdout, _ := runMain(t, nil, "gen", "--records", "100", "--dup-rate", "0", "--format", "eval")
	entities := map[string]bool{}
	for line := range strings.Lines(stdout) {
		var l evalLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatal(err)
		}
		entities[l.Entity] = true
	}
	if len(entities) != 100 {
		t.Fatalf("--dup-rate 0 gave %d entities for 100 records", len(entities))
	}
}

func TestGenRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"gen", "--records", "0"},
		{"gen", "--dup-rate", "1.5"},
		{"gen", "--format", "csv"},
	} {
		if code, _, stderr := runMain(t, nil, args...); code != exitUsage || !strings.Contains(stderr, args[1]) {
			t.Errorf("%v: code %d, stderr %q", args, code, stderr)
		}
	}
}
