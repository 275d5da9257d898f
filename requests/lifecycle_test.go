package requests

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/lifecycle"
)

// oneTenant is the Lifecycle of one tenant over the pure lifecycle, as an
// owner keeps it (the pipeline's Handler dispatches to each tenant's owner).
type oneTenant struct{ l *lifecycle.Lifecycle }

func (o oneTenant) History(_ context.Context, _ string, c engine.Cluster) (engine.History, error) {
	return o.l.RequestHistory(c), nil
}

func (o oneTenant) Emitted(_ context.Context, _ string, c engine.Cluster, cmds []engine.Command, st engine.State, changed bool) error {
	o.l.RequestPlanned(c, cmds, st, changed)
	return nil
}

// Requests plan through the lifecycle: a second request finds the first's
// conversions pending; a lead a writer failed to convert is reported
// failed with the writer's reason and not planned until it changes; a
// dry run records nothing.
func TestRequestsThroughTheLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	lc := oneTenant{lifecycle.New(lifecycle.Options{AwaitResults: true})}
	h := e.handlerWith(HandlerConfig{CommandsTopic: "cmds", EventsTopic: "evs", Lifecycle: lc})
	ids := func(id string) *Request {
		return &Request{Tenant: tenant, RequestID: id, RequestedBy: Requester{User: "u1", Roles: []string{"sales_admin"}},
			Select: Selection{IDs: []string{"L3", "L4"}}}
	}
	dry := ids("dry")
	dry.DryRun = true
	completed(t, process(t, h, dry))
	first := process(t, h, ids("r1"))
	if conv, _ := converts(first.commands); !slices.Equal(conv, []string{"L3->from L4", "L4->new"}) {
		t.Fatalf("r1 converts %v after a dry run", conv)
	}

	second := process(t, h, ids("r2"))
	want := []Failure{{"L3", OutcomeSkipped, ReasonConversionPending}, {"L4", OutcomeSkipped, ReasonConversionPending}}
	if s := completed(t, second); len(second.commands) != 0 || !reflect.DeepEqual(s.Failures, want) {
		t.Errorf("r2: %d commands, failures %v; want none and %v", len(second.commands), s.Failures, want)
	}

	// The writer fails the conversion creating the contact.
	for _, c := range first.commands {
		if d, ok := c.Data.(*engine.LeadConvert); ok && d.LeadID == "L4" {
			if !lc.l.Result(lifecycle.Result{CommandID: c.ID, Outcome: lifecycle.OutcomeFailed, Reason: "missing_lead"}, time.Now()) {
				t.Fatal("the failed result was not awaited")
			}
		}
	}
	third := process(t, h, ids("r3"))
	s := completed(t, third)
	if i := slices.IndexFunc(s.Failures, func(f Failure) bool { return f.LeadID == "L4" }); i < 0 || s.Failures[i] != (Failure{"L4", OutcomeFailed, "missing_lead"}) {
		t.Errorf("r3 failures %v, want L4 failed with the writer's reason", s.Failures)
	}
	for _, c := range third.commands {
		if d, ok := c.Data.(*engine.LeadConvert); ok && d.LeadID == "L4" {
			t.Errorf("r3 converts the held L4 again")
		}
	}
}
