package writer

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/events"
	"github.com/leadconv/leadconv/internal/pipeline"
	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
)

// The writer contract, end to end with the pipeline's router: every result
// the writer produces (real PostgreSQL, kfake) decodes as the owner decodes
// it and is routed keyed by its tenant and marked as a result; the record
// events it feeds back are routed as echoes.
func TestFeedbackRoutesToTheOwner(t *testing.T) {
	t.Parallel()
	_, dbURL := newMirrorDB(t)
	c := kafkatest.New(t, 3, commandsTopic, recordsTopic, resultsTopic)
	convert := convertL1()
	convert.RequestID = "req-1"
	missing := command(engine.KindLeadConvert, "cmd-missing", 3, &engine.LeadConvert{LeadID: "L7", Contact: engine.Target{Create: true}})
	missing.ClusterID = "K2"
	var recs []*kgo.Record
	for _, cmd := range []*engine.Command{convert, missing} {
		r, err := events.Encoder{Topic: commandsTopic}.Command(*cmd, t0)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	c.Produce(recs...)
	runWriter(t, c, dbURL, "w-feedback")

	cfg, err := pipeline.GeneratedConfig()
	if err != nil {
		t.Fatal(err)
	}
	const byTenant = "t.by-tenant"
	router := pipeline.NewHandler(pipeline.HandlerConfig{ByTenantTopic: byTenant, ResultsTopic: resultsTopic},
		func() pipeline.Owner { panic("the router owns nothing") }, cfg)
	route := func(topic string) []*kgo.Record {
		t.Helper()
		byPart := map[int32][]*kgo.Record{}
		for _, r := range c.ReadAll(topic) {
			byPart[r.Partition] = append(byPart[r.Partition], r)
		}
		var out []*kgo.Record
		for p, rs := range byPart {
			res, err := router.Handle(t.Context(), topic, p, rs)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Poison) > 0 {
				t.Fatalf("%s: dead-lettered %s %s", topic, res.Poison[0].Code, res.Poison[0].Reason)
			}
			out = append(out, res.Out...)
		}
		return out
	}
	got := map[string]events.CommandResult{}
	for _, r := range route(resultsTopic) {
		if string(kafkatest.Header(r, "ce_type")) != events.TypeCommandResult || r.Topic != byTenant {
			t.Errorf("routed result on %s, ce_type %q", r.Topic, kafkatest.Header(r, "ce_type"))
		}
		res, err := pipeline.DecodeResult(r.Value, 0)
		if err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != res.Tenant {
			t.Errorf("result of %s routed under key %q", res.CommandID, r.Key)
		}
		got[res.CommandID] = res
	}
	if r := got[convert.ID]; r.Outcome != OutcomeApplied || r.RequestID != "req-1" || len(r.Records) == 0 {
		t.Errorf("conversion's result %+v", r)
	}
	if r := got[missing.ID]; r.Outcome != OutcomeFailed || r.Reason != ReasonMissingLead || got[missing.ID].RequestID != "" {
		t.Errorf("failed result %+v", got[missing.ID])
	}
	echoes := 0
	for _, r := range route(recordsTopic) {
		if string(kafkatest.Header(r, pipeline.HeaderEcho)) != "1" {
			t.Errorf("routed record event %s lost its echo mark", r.Key)
		}
		echoes++
	}
	if echoes < 3 {
		t.Errorf("%d record events fed back, want the lead, contact and account", echoes)
	}
}
