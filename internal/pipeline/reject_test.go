package pipeline_test

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/consumer"
	"github.com/leadconv/leadconv/internal/pipeline"
	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
	"github.com/leadconv/leadconv/internal/testutil/redistest"
	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/schemas"
)

// A record schemas.DecodeEvent refuses is dead-lettered with its code and
// the failing path and rule, for either decoder; it is never a batch error
// (which would be retried forever). The dead letter carries the reason in
// a header, and neither names the value.
func TestRejectionReachesTheDeadLetter(t *testing.T) {
	cfg, err := pipeline.GeneratedConfig()
	if err != nil {
		t.Fatal(err)
	}
	srv := redistest.New(t)
	good := &kgo.Record{Topic: recordsTopic, Offset: 0, Value: []byte(`{"tenant":"acme","object":"lead","id":"L1","op":"delete"}`)}
	bad := &kgo.Record{Topic: recordsTopic, Offset: 1, Value: []byte(`{"tenant":"acme","object":"lead","id":"L2","op":"patch","modified_at":"secret-value"}`)}
	for _, d := range []struct {
		name   string
		decode pipeline.Decoder
		reason string
	}{{"pipeline", pipeline.DecodeEvent, "/modified_at: format date-time"}, {"schemas", schemas.DecodeEvent, "/modified_at: format date-time"}} {
		t.Run(d.name, func(t *testing.T) {
			ns := redistest.Namespace(t)
			owners := func() pipeline.Owner {
				return matcher.NewStore(srv.Client(), matcher.StoreOptions{Namespace: ns, Rules: cfg.Rules})
			}
			h := pipeline.NewHandler(pipeline.HandlerConfig{CommandsTopic: commandsTopic, Decode: d.decode}, owners, cfg)
			res, err := h.Handle(t.Context(), recordsTopic, 0, []*kgo.Record{good, bad})
			if err != nil {
				t.Fatalf("batch error (retried forever): %v", err)
			}
			if len(res.Poison) != 1 || res.Poison[0].Record != bad || res.Poison[0].Code != pipeline.CodeSchemaViolation || res.Poison[0].Reason != d.reason {
				t.Fatalf("poison %+v, want %s with reason %q", res.Poison, pipeline.CodeSchemaViolation, d.reason)
			}
			dl := consumer.DeadLetter(dlqTopic, res.Poison[0], consumer.DefaultMaxProduceBytes)
			if got := string(kafkatest.Header(dl, consumer.HeaderErrorReason)); got != d.reason {
				t.Fatalf("reason header %q, want %q", got, d.reason)
			}
			for _, h := range dl.Headers {
				if strings.Contains(string(h.Value), "secret") {
					t.Fatalf("header %s carries the value: %q", h.Key, h.Value)
				}
			}
		})
	}
}

// A record marked as a tick that is no tick is dead-lettered (bad_tick)
// with the rule it broke, never its value, and the batch goes on.
func TestBadTickIsDeadLettered(t *testing.T) {
	cfg, err := pipeline.GeneratedConfig()
	if err != nil {
		t.Fatal(err)
	}
	srv := redistest.New(t)
	ns := redistest.Namespace(t)
	h := pipeline.NewHandler(pipeline.HandlerConfig{CommandsTopic: commandsTopic}, func() pipeline.Owner {
		return matcher.NewStore(srv.Client(), matcher.StoreOptions{Namespace: ns, Rules: cfg.Rules})
	}, cfg)
	mark := []kgo.RecordHeader{{Key: pipeline.HeaderTick, Value: []byte("1")}}
	good := &kgo.Record{Topic: byTenantTopic, Offset: 0, Headers: mark, Value: []byte(`{"tenant":"acme","at":"2026-01-05T09:00:00Z"}`)}
	for _, v := range []string{`secret-value`, `{"tenant":"acme"}`, `{"at":"2026-01-05T09:00:00Z"}`, `{"tenant":"acme","at":"secret-value"}`} {
		bad := &kgo.Record{Topic: byTenantTopic, Offset: 1, Headers: mark, Value: []byte(v)}
		res, err := h.Handle(t.Context(), byTenantTopic, 0, []*kgo.Record{good, bad})
		if err != nil {
			t.Fatalf("%s: batch error (retried forever): %v", v, err)
		}
		if len(res.Poison) != 1 || res.Poison[0].Record != bad || res.Poison[0].Code != pipeline.CodeBadTick || res.Poison[0].Reason == "" {
			t.Fatalf("%s: poison %+v, want one %s with a reason", v, res.Poison, pipeline.CodeBadTick)
		}
		if strings.Contains(res.Poison[0].Reason, "secret") {
			t.Fatalf("the reason names the value: %q", res.Poison[0].Reason)
		}
	}
}
