package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/internal/testutil/pgtest"
	"github.com/leadconv/leadconv/record"
	"github.com/leadconv/leadconv/writer"
)

// newTestMirror is a migrated reference-writer mirror on a fresh database.
func newTestMirror(t *testing.T) *writer.Mirror {
	t.Helper()
	pool := pgtest.New(t).Pool()
	if err := writer.Migrate(t.Context(), pool); err != nil {
		t.Fatal(err)
	}
	return writer.NewMirror(pool)
}

// simCommands decodes simulate's CloudEvents lines into commands, in order.
func simCommands(t *testing.T, stdout string) []engine.Command {
	t.Helper()
	var cmds []engine.Command
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		ev := cloudevents.NewEvent()
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("not a CloudEvent: %v", err)
		}
		if !strings.HasPrefix(ev.Type(), "io.leadconv.") || ev.Type() == "io.leadconv.cluster.changed.v1" {
			continue
		}
		var cmd engine.Command
		if err := json.Unmarshal(ev.Data(), &cmd); err != nil {
			t.Fatalf("command %s: %v", ev.ID(), err)
		}
		cmds = append(cmds, cmd)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cmds
}

// applyAll applies cmds in order to m, as a writer without feedback does,
// and returns the results.
func applyAll(ctx context.Context, t *testing.T, m *writer.Mirror, cmds []engine.Command) []writer.Result {
	t.Helper()
	out := make([]writer.Result, 0, len(cmds))
	for i := range cmds {
		res, _, err := m.Apply(ctx, &cmds[i])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, res)
	}
	return out
}

// The defect of issue 15: three duplicate leads in one batch planned at
// versions 2 and 3 as two independent plans, each creating a contact, so
// the later conversions were refused (lead_already_converted) and the person
// ended with two contacts.
func TestSimulateThreeDuplicateLeadsOneBatch(t *testing.T) {
	ctx := t.Context()
	var lines []string
	var recs []record.Record
	for i, first := range []string{"Ann", "Anne", "Ann"} {
		r := record.Record{Tenant: "acme", Object: record.Lead, ID: "L" + string(rune('1'+i)),
			CreatedAt: t0sim.Add(timeSec(i)), ModifiedAt: t0sim.Add(timeSec(i)),
			Fields: record.Fields{"FirstName": first, "LastName": "Lee", "Email": "ann.lee@acme.io", "Company": "Acme", "Phone": "415-555-0100"}}
		if i == 2 {
			r.Fields["Title"] = "CTO" // the most complete: it wins the master
		}
		recs = append(recs, r)
		b, err := json.Marshal(record.Event{Record: r, Op: record.OpUpsert})
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(b))
	}
	path := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runMain(t, nil, "simulate", "--input", path)
	if code != exitOK {
		t.Fatalf("simulate: %s", stderr)
	}
	cmds := simCommands(t, stdout)
	m := newTestMirror(t)
	if err := m.Put(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	for _, res := range applyAll(ctx, t, m, cmds) {
		if res.Outcome != writer.OutcomeApplied {
			t.Errorf("%s %s (v%d): %s %s", res.Kind, res.CommandID, res.ClusterVersion, res.Outcome, res.Reason)
		}
	}
	contacts, err := m.List(ctx, "acme", record.Contact)
	if err != nil {
		t.Fatal(err)
	}
	if len(contacts) != 1 {
		t.Fatalf("%d contacts, want 1 (commands: %d)", len(contacts), len(cmds))
	}
	converts := 0
	for _, c := range cmds {
		if c.Kind == engine.KindLeadConvert {
			converts++
		}
	}
	if converts != 3 {
		t.Errorf("%d lead.convert for 3 leads", converts)
	}
}

var t0sim = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func timeSec(i int) time.Duration { return time.Duration(i) * time.Second }
