package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/internal/redisconn"
	"github.com/leadconv/leadconv/internal/testutil/pgtest"
	"github.com/leadconv/leadconv/matcher/gen"
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
	report := filepath.Join(t.TempDir(), "report.txt")
	code, stdout, stderr := runMain(t, nil, "simulate", "--input", path, "--report", report)
	if code != exitOK {
		t.Fatalf("simulate: %s", stderr)
	}
	if !strings.Contains(stderr, "a writer would convert 3 distinct leads, merge away 0 contacts and file 0 reviews") {
		t.Errorf("summary: %s", stderr)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"(version 3, 3 commands)", "v3 convert L3 Ann Lee <ann.lee@acme.io> -> new contact, new account \"Acme\"",
		"v3 convert L1 Ann Lee <ann.lee@acme.io> -> contact and account of L3"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("report lacks %q:\n%s", want, b)
		}
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

// One pass of simulate over generated leads and contacts, duplicates in
// bursts and trickles, updates that split clusters, with the shipped
// defaults (no merge_contacts, the default settle window), its commands
// applied once, in order, to the reference writer's mirror without
// feedback: nothing is refused, each lead is converted by one command,
// every final cluster with a lead holds exactly one live contact and
// merged duplicates are gone.
func TestSimulateConvergesOnTheMirror(t *testing.T) {
	ctx := t.Context()
	set := gen.New(gen.Options{Seed: 7, Records: 1500, ContactShare: 0.25, Updates: 0.1, DupRate: 0.4, Bursts: 0.5})
	var in bytes.Buffer
	if err := writeJSONLines(&in, set.Events()); err != nil {
		t.Fatal(err)
	}
	rdb, closeRedis, err := openRedis(ctx, redisconn.Options{}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer closeRedis()
	cfg := config.Default()
	parts := handlerParts{rdb: rdb, cfg: cfg, namespace: "lc", commandsTopic: defaultCommandsTopic,
		maxRecordBytes: 1 << 20, structured: true, log: zerolog.Nop(), reg: prometheus.NewRegistry()}
	h := newHandler(parts)
	var out bytes.Buffer
	var sum simSummary
	if err := simulate(ctx, &in, 500, 1<<20, h, &out, &sum); err != nil {
		t.Fatal(err)
	}
	cmds := simCommands(t, out.String())

	m := newTestMirror(t)
	if err := m.Put(ctx, set.Records()...); err != nil {
		t.Fatal(err)
	}
	converts := map[string]int{}
	var merged []string
	refused := 0
	for i, res := range applyAll(ctx, t, m, cmds) {
		if res.Outcome != writer.OutcomeApplied {
			refused++
			t.Errorf("%s %s of cluster %s v%d: %s %s", res.Kind, cmds[i].Subject, res.ClusterID, res.ClusterVersion, res.Outcome, res.Reason)
		}
		switch d := cmds[i].Data.(type) {
		case *engine.LeadConvert:
			converts[d.LeadID]++
		case *engine.RecordsMerge:
			merged = append(merged, d.MergedIDs...)
		}
	}
	for id, n := range converts {
		if n != 1 {
			t.Errorf("lead %s: %d lead.convert commands", id, n)
		}
	}
	for _, id := range merged {
		if _, ok, err := m.Get(ctx, "acme", record.Ref{Object: record.Contact, ID: id}); err != nil || ok {
			t.Errorf("merged contact %s still live (%v)", id, err)
		}
	}

	// Every final cluster with a lead ends with one live contact, unless its
	// plan asked a person (review) or could not convert (blank account).
	lastKind := map[string]string{}
	for _, c := range cmds {
		lastKind[c.ClusterID] = c.Kind
	}
	var checked, contactsOnly, handedOver int
	final, err := newReader(parts).Clusters(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	for id, members := range final {
		if len(members) < 2 {
			continue
		}
		leads := 0
		for _, r := range members {
			if r.Object == record.Lead {
				leads++
			}
		}
		switch {
		case leads == 0:
			contactsOnly++ // merge_contacts is off: left alone by design
			continue
		case lastKind[id] == engine.KindConversionFailed || lastKind[id] == engine.KindReviewRequested:
			handedOver++
			continue
		}
		checked++
		live := map[string]bool{}
		for _, r := range members {
			got, ok, err := m.Get(ctx, "acme", r)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case !ok && r.Object == record.Contact:
				// merged away
			case !ok:
				t.Errorf("cluster %s: lead %s missing", id, r.ID)
			case r.Object == record.Contact:
				live[r.ID] = true
			case got.Fields["IsConverted"] != true:
				t.Errorf("cluster %s: lead %s not converted", id, r.ID)
			default:
				live[got.Fields.Str("ConvertedContactId")] = true
			}
		}
		if len(live) != 1 {
			t.Errorf("cluster %s (%d records): contacts %v, want one", id, len(members), live)
			// What was emitted for its records, to see why.
			rep := &demoReport{names: sum.names}
			for _, c := range cmds {
				if c.ClusterID == id || slices.ContainsFunc(members, func(r record.Ref) bool { return strings.Contains(c.Subject, r.ID) }) {
					t.Logf("  %s v%d %s", c.ClusterID, c.ClusterVersion, rep.describe(c))
				}
			}
			continue
		}
		for c := range live {
			if _, ok, _ := m.Get(ctx, "acme", record.Ref{Object: record.Contact, ID: c}); !ok {
				t.Errorf("cluster %s: its contact %s is gone", id, c)
			}
		}
	}
	t.Logf("%d commands, %d refused; %d leads converted, %d contacts merged away; %d final clusters with a lead checked, %d handed to a person, %d contact-only left alone",
		len(cmds), refused, len(converts), len(merged), checked, handedOver, contactsOnly)
	if checked < 100 || len(merged) == 0 {
		t.Errorf("the data exercised too little: %d clusters, %d merges", checked, len(merged))
	}
}
