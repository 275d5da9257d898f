package requests

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/consumer"
	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/events"
	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/internal/pipeline"
	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
	"github.com/leadconv/leadconv/internal/testutil/redistest"
	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/record"
)

// owned is a pipeline whose owners run the requests routed to them,
// planning live changes and requests through the owners' lifecycles, as
// `leadconv run` wires them; records are read back from the matcher's
// store. No writer: every emitted conversion stays pending.
type owned struct {
	t  *testing.T
	kc *kafkatest.Cluster
}

const (
	ownRecords  = "own.records"
	ownByTenant = "own.records.by-tenant"
	ownCommands = "own.commands"
	ownResults  = "own.results"
	ownRequests = "own.requests"
	ownDLQ      = "own.dlq"
)

func newOwned(t *testing.T, opts ...func(*pipeline.Config)) *owned {
	t.Helper()
	cfg := config.Default()
	srv := redistest.New(t)
	ns := redistest.Namespace(t)
	o := &owned{t: t, kc: kafkatest.New(t, 1, ownRecords, ownByTenant, ownCommands, ownResults, ownRequests, ownDLQ)}
	store := matcher.NewStore(srv.Client(), matcher.StoreOptions{Namespace: ns, Rules: cfg.Rules})
	tenants := func(name string) (Tenant, error) {
		tc, err := cfg.Tenant(name)
		if err != nil {
			return Tenant{}, err
		}
		return Tenant{Engine: tc.Engine, Policy: Policy{Roles: []string{"sales_admin"}}, Verifier: testVerifier(t)}, nil
	}
	requests := func(lc *pipeline.Handler) pipeline.RequestHandler {
		return NewHandler(HandlerConfig{CommandsTopic: ownCommands, EventsTopic: ownResults, Lifecycle: lc, Logger: zerolog.Nop()},
			&Source{Graph: store, Records: store}, tenants, NewRedisLedger(srv.Client(), ns))
	}
	pc := pipeline.Config{
		Brokers: o.kc.Addrs(), Group: "own", RecordsTopic: ownRecords, ByTenantTopic: ownByTenant,
		Requests: requests, RequestsTopic: ownRequests, CommandsTopic: ownCommands, DLQTopic: ownDLQ,
		CommitInterval: 100 * time.Millisecond, Logger: zerolog.Nop(),
	}
	for _, f := range opts {
		f(&pc)
	}
	p, err := pipeline.New(pc, func() pipeline.Owner {
		return matcher.NewStore(srv.Client(), matcher.StoreOptions{Namespace: ns, Rules: cfg.Rules})
	}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("pipeline: %v", err)
		}
	})
	return o
}

// person is a lead of person n (leads of one person are duplicates).
func person(id string, n int, modified int) record.Record {
	names := []string{"Ann Lee", "Bob Ray", "Cat Doe"}
	emails := []string{"ann@x.com", "bob@y.com", "cat@z.com"}
	companies := []string{"Globex", "Initech", "Umbrella"}
	first, last, _ := cut(names[n])
	return record.Record{Tenant: tenant, Object: record.Lead, ID: id, CreatedAt: day(modified), ModifiedAt: day(modified),
		Fields: record.Fields{"FirstName": first, "LastName": last, "Email": emails[n], "Company": companies[n]}}
}

func cut(s string) (string, string, bool) {
	for i := range s {
		if s[i] == ' ' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// event is a record event for topic, keyed by tenant.
func (o *owned) event(topic string, r record.Record) *kgo.Record {
	b, err := json.Marshal(record.Event{Op: record.OpUpsert, Record: r})
	if err != nil {
		o.t.Fatal(err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(tenant), Value: b}
}

// request is a signed request selecting ids, for topic.
func (o *owned) request(topic, id string, ids ...string) *kgo.Record {
	b, err := json.Marshal(Request{Tenant: tenant, RequestID: id, Select: Selection{IDs: ids}})
	if err != nil {
		o.t.Fatal(err)
	}
	return signed(o.t, topic, b, "sales_admin")
}

// commands returns the commands written so far.
func (o *owned) commands() []engine.Command {
	var out []engine.Command
	for _, r := range o.kc.ReadAll(ownCommands) {
		b, err := events.Payload(r)
		if err != nil {
			o.t.Fatal(err)
		}
		var c engine.Command
		if err := json.Unmarshal(b, &c); err != nil {
			o.t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// summaries waits for n request.completed of request id.
func (o *owned) summaries(id string, n int) []Summary {
	o.t.Helper()
	var got []Summary
	kafkatest.WaitFor(o.t, 20*time.Second, "request.completed of "+id, func() bool {
		got = got[:0]
		for _, r := range o.kc.ReadAll(ownResults) {
			if string(kafkatest.Header(r, "ce_type")) == TypeCompleted && string(kafkatest.Header(r, "ce_subject")) == id {
				var s Summary
				if err := json.Unmarshal(r.Value, &s); err != nil {
					o.t.Fatal(err)
				}
				got = append(got, s)
			}
		}
		return len(got) >= n
	})
	return got
}

// conversions maps each lead to the distinct ids of the lead.convert
// commands naming it, and to the request that emitted them ("" live).
func conversions(cmds []engine.Command) (ids map[string][]string, by map[string]string) {
	ids, by = map[string][]string{}, map[string]string{}
	for _, c := range cmds {
		if d, ok := c.Data.(*engine.LeadConvert); ok && !slices.Contains(ids[d.LeadID], c.ID) {
			ids[d.LeadID] = append(ids[d.LeadID], c.ID)
			by[d.LeadID] = c.RequestID
		}
	}
	return ids, by
}

// A request reaches the tenant's owner through the by-tenant topic and
// plans through its lifecycle: leads the live pipeline's conversion is
// pending for are reported conversion_pending, never converted twice; the
// owner runs requests in order with the tenant's record events (a request
// before the events of its leads finds none of them); live changes after
// a request compose on what it emitted; a re-submitted request id reports
// its first summary and converts nothing anew.
func TestRequestsThroughTheOwner(t *testing.T) {
	t.Parallel()
	o := newOwned(t)
	// L1 and L2 are duplicates: the live pipeline converts both (pending:
	// no writer answers). L3 is alone: nothing to do live.
	o.kc.Produce(o.event(ownRecords, person("L1", 0, 1)), o.event(ownRecords, person("L2", 0, 2)), o.event(ownRecords, person("L3", 1, 3)))
	kafkatest.WaitFor(t, 20*time.Second, "the live conversions", func() bool {
		ids, _ := conversions(o.commands())
		return len(ids["L1"]) > 0 && len(ids["L2"]) > 0
	})

	o.kc.Produce(o.request(ownRequests, "r1", "L1", "L2", "L3"))
	s1 := o.summaries("r1", 1)[0]
	wantFails := []Failure{{"L1", OutcomeSkipped, ReasonConversionPending}, {"L2", OutcomeSkipped, ReasonConversionPending}}
	if s1.Counts != (Counts{Converted: 1, Skipped: 2}) || !reflect.DeepEqual(s1.Failures, wantFails) {
		t.Errorf("r1: counts %+v failures %v, want L3 converted and %v", s1.Counts, s1.Failures, wantFails)
	}

	// Routed as the router writes it: a request, then the events of the
	// leads it names, on the tenant's partition in one go. L4 is L3's
	// duplicate.
	req := o.request(ownByTenant, "r2", "L4", "L5")
	req.Key = []byte(tenant)
	req.Headers = append(req.Headers, kgo.RecordHeader{Key: pipeline.HeaderRequest, Value: []byte("1")})
	o.kc.Produce(req, o.event(ownByTenant, person("L4", 1, 4)), o.event(ownByTenant, person("L5", 2, 5)))
	s2 := o.summaries("r2", 1)[0]
	if want := []Failure{{"L4", OutcomeFailed, ReasonNotFound}, {"L5", OutcomeFailed, ReasonNotFound}}; !reflect.DeepEqual(s2.Failures, want) {
		t.Errorf("r2 ran after the events it precedes: failures %v, want %v", s2.Failures, want)
	}
	kafkatest.WaitFor(t, 20*time.Second, "L4's live conversion", func() bool {
		ids, _ := conversions(o.commands())
		return len(ids["L4"]) > 0
	})

	o.kc.Produce(o.request(ownRequests, "r1", "L1", "L2", "L3"))
	if again := o.summaries("r1", 2)[1]; !reflect.DeepEqual(again, s1) {
		t.Errorf("re-submitted r1 reported %+v, first %+v", again, s1)
	}
	kafkatest.WaitFor(t, 20*time.Second, "the pipeline to commit", func() bool {
		return o.kc.Committed("own", ownByTenant) >= o.kc.EndOffsets(ownByTenant) && o.kc.Committed("own", ownRequests) >= o.kc.EndOffsets(ownRequests)
	})

	cmds := o.commands()
	ids, by := conversions(cmds)
	for _, lead := range []string{"L1", "L2", "L3", "L4"} {
		if len(ids[lead]) != 1 {
			t.Errorf("%s converted by %d distinct commands", lead, len(ids[lead]))
		}
	}
	if by["L3"] != "r1" || by["L1"] != "" || by["L4"] != "" {
		t.Errorf("request ids of the conversions: %v, want L3 by r1, the others live", by)
	}
	// The re-submission, once L4 had joined L3's cluster, emitted r1's
	// unanswered command again, as it was.
	sent := 0
	for _, c := range cmds {
		if len(ids["L3"]) == 1 && c.ID == ids["L3"][0] {
			sent++
		}
	}
	if sent != 2 {
		t.Errorf("r1's conversion of L3 emitted %d times, want twice (first and re-submitted)", sent)
	}
	for _, c := range cmds {
		if d, ok := c.Data.(*engine.LeadConvert); ok && d.LeadID == "L4" && d.Contact.FromLead != "L3" {
			t.Errorf("L4 converts into %+v, not the contact r1's conversion of L3 creates", d.Contact)
		}
	}
	if _, ok := ids["L5"]; ok {
		t.Error("lone L5 converted live")
	}
}

// With the input keyed by tenant already (no hop), requests are routed onto
// the records topic itself, whose partitions have the owners; a request
// naming no tenant is dead-lettered by the router with the coordinates it
// had on the requests topic.
func TestRequestsRoutedOntoKeyedInput(t *testing.T) {
	t.Parallel()
	o := newOwned(t, func(c *pipeline.Config) { c.InputByTenant = true })
	o.kc.Produce(o.event(ownRecords, person("L1", 0, 1)), o.event(ownRecords, person("L2", 0, 2)))
	kafkatest.WaitFor(t, 20*time.Second, "the live conversions", func() bool {
		ids, _ := conversions(o.commands())
		return len(ids["L1"]) > 0 && len(ids["L2"]) > 0
	})
	o.kc.Produce(&kgo.Record{Topic: ownRequests, Value: []byte(`{"request_id":"r0"}`)}, o.request(ownRequests, "r1", "L1", "L2"))
	s := o.summaries("r1", 1)[0]
	if want := []Failure{{"L1", OutcomeSkipped, ReasonConversionPending}, {"L2", OutcomeSkipped, ReasonConversionPending}}; !reflect.DeepEqual(s.Failures, want) || s.Commands != 0 {
		t.Errorf("r1: failures %v, %d commands; want %v and none", s.Failures, s.Commands, want)
	}
	var routed int
	for _, r := range o.kc.ReadAll(ownRecords) {
		if kafkatest.Header(r, pipeline.HeaderRequest) != nil {
			routed++
			if string(r.Key) != tenant {
				t.Errorf("routed request keyed %q", r.Key)
			}
		}
	}
	if routed != 1 {
		t.Errorf("%d requests routed onto the records topic, want 1", routed)
	}
	dl := o.kc.ReadAll(ownDLQ)
	if len(dl) != 1 || string(kafkatest.Header(dl[0], consumer.HeaderErrorCode)) != CodeInvalidRequest ||
		string(kafkatest.Header(dl[0], consumer.HeaderSourceTopic)) != ownRequests {
		t.Fatalf("dead letters %d, want the request without tenant from %s", len(dl), ownRequests)
	}
}
