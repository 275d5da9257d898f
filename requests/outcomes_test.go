package requests

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/events"
)

// The writer's results of a request's commands reach the ledger; once each
// command has one, request.outcomes counts them: a redelivered command
// counts its first outcome, a repeated result changes nothing, results of
// other commands or of no request are ignored, and a result redelivered
// after completion repeats the same event.
func TestWriterOutcomes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	h := e.handler(nil)
	o := process(t, h, webRequest("out"))
	cmds := o.commands
	if len(cmds) < 3 {
		t.Fatalf("the request emitted %d commands, the test needs 3", len(cmds))
	}
	for i, c := range cmds {
		if c.RequestID != "out" {
			t.Errorf("command %d carries request_id %q", i, c.RequestID)
		}
	}
	outcome := func(r events.CommandResult) []*kgo.Record {
		t.Helper()
		r.Tenant = tenant
		out, err := h.Outcome(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, r := range []events.CommandResult{
		{RequestID: "", CommandID: cmds[0].ID, Outcome: WriterApplied},
		{RequestID: "out", CommandID: "not-a-command", Outcome: WriterApplied},
		{RequestID: "out", CommandID: cmds[0].ID, Outcome: WriterFailed, Reason: "lead_already_converted"},
		{RequestID: "out", CommandID: cmds[0].ID, Outcome: WriterSkippedDuplicate, Previous: WriterApplied},
		{RequestID: "out", CommandID: cmds[1].ID, Outcome: WriterSkippedDuplicate, Previous: WriterStale},
	} {
		if out := outcome(r); len(out) != 0 {
			t.Fatalf("%+v: request.outcomes before every command has its result", r)
		}
	}
	var last []*kgo.Record
	for _, c := range cmds[2:] {
		last = outcome(events.CommandResult{RequestID: "out", CommandID: c.ID, Outcome: WriterApplied})
	}
	if len(last) != 1 || header(last[0], "ce_type") != TypeOutcomes || string(last[0].Key) != tenant+"/out" {
		t.Fatalf("after every result: %d records", len(last))
	}
	checkSchema(t, "request.outcomes", last[0].Value)
	var got Outcomes
	if err := json.Unmarshal(last[0].Value, &got); err != nil {
		t.Fatal(err)
	}
	want := Outcomes{Tenant: tenant, RequestID: "out", Commands: len(cmds),
		Counts: OutcomeCounts{Applied: len(cmds) - 2, Failed: 1, Stale: 1},
		Failures: []CommandFailure{
			{CommandID: cmds[0].ID, Kind: cmds[0].Kind, Subject: cmds[0].Subject, Outcome: WriterFailed, Reason: "lead_already_converted"},
			{CommandID: cmds[1].ID, Kind: cmds[1].Kind, Subject: cmds[1].Subject, Outcome: WriterStale},
		}}
	if want.Failures[0].CommandID > want.Failures[1].CommandID {
		want.Failures[0], want.Failures[1] = want.Failures[1], want.Failures[0]
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("outcomes %+v\nwant     %+v", got, want)
	}
	// The request again (a redelivery) awaits nothing new; a result
	// redelivered now repeats the event.
	process(t, h, webRequest("out"))
	again := outcome(events.CommandResult{RequestID: "out", CommandID: cmds[2].ID, Outcome: WriterSkippedDuplicate, Previous: WriterApplied})
	if len(again) != 1 || header(again[0], "ce_id") != header(last[0], "ce_id") || string(again[0].Value) != string(last[0].Value) {
		t.Error("a result redelivered after completion does not repeat request.outcomes")
	}
}
