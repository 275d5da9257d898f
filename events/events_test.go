package events_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/events"
	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/record"
)

var modified = time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.FixedZone("CET", 3600))

func command() engine.Command {
	return engine.Command{
		Kind: engine.KindConversionFailed, ID: "cmd-1", Tenant: "acme", ClusterID: "c42", ClusterVersion: 3,
		Subject: "c42",
		Data: &engine.ConversionFailed{
			Reason: engine.ReasonBlankAccount, Master: record.Ref{Object: record.Lead, ID: "L1"},
			Records: []record.Ref{{Object: record.Lead, ID: "L1"}, {Object: record.Lead, ID: "L2"}},
		},
	}
}

// The binary record carries exactly the headers the Kafka protocol binding
// names, in a fixed order, and the command JSON as its value.
func TestBinaryModeIsByteExact(t *testing.T) {
	cmd := command()
	r, err := events.Encoder{Topic: "cmds"}.Command(cmd, modified)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"ce_specversion=1.0",
		"ce_id=cmd-1",
		"ce_source=leadconv/acme",
		"ce_type=io.leadconv.conversion.failed.v1",
		"ce_subject=c42",
		"ce_time=2026-03-04T04:06:07.89Z",
		"ce_dataschema=https://leadconv.io/schemas/conversion.failed.v1.json",
		"content-type=application/json",
	}
	var got []string
	for _, h := range r.Headers {
		got = append(got, h.Key+"="+string(h.Value))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("headers:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if string(r.Key) != "acme/c42" || r.Topic != "cmds" {
		t.Fatalf("key %q topic %q", r.Key, r.Topic)
	}
	data, _ := json.Marshal(cmd)
	if !bytes.Equal(r.Value, data) {
		t.Fatalf("value %s, want %s", r.Value, data)
	}
	again, _ := events.Encoder{Topic: "cmds"}.Command(command(), modified)
	if !bytes.Equal(again.Value, r.Value) || len(again.Headers) != len(r.Headers) {
		t.Fatal("encoding the same command twice differs")
	}
}

// A standard CloudEvents consumer (sdk-go's binding) reads both modes back to
// the same event, and the data decodes to the command.
func TestSDKReadsBothModes(t *testing.T) {
	for _, structured := range []bool{false, true} {
		r, err := events.Encoder{Topic: "cmds", Structured: structured}.Command(command(), modified)
		if err != nil {
			t.Fatal(err)
		}
		msg := kafkatest.Message(r)
		wantEnc := binding.EncodingBinary
		if structured {
			wantEnc = binding.EncodingStructured
		}
		if msg.ReadEncoding() != wantEnc {
			t.Fatalf("structured=%v: encoding %v", structured, msg.ReadEncoding())
		}
		ev, err := kafkatest.CloudEvent(r)
		if err != nil {
			t.Fatalf("structured=%v: sdk-go cannot read the record: %v", structured, err)
		}
		if ev.ID() != "cmd-1" || ev.Type() != "io.leadconv.conversion.failed.v1" || ev.Source() != "leadconv/acme" ||
			ev.Subject() != "c42" || !ev.Time().Equal(modified) || ev.DataContentType() != "application/json" ||
			ev.DataSchema() != "https://leadconv.io/schemas/conversion.failed.v1.json" || ev.SpecVersion() != "1.0" {
			t.Fatalf("structured=%v: attributes %s", structured, ev)
		}
		var got engine.Command
		if err := ev.DataAs(&got); err != nil {
			t.Fatal(err)
		}
		if d, ok := got.Data.(*engine.ConversionFailed); !ok || got.ID != "cmd-1" || d.Reason != engine.ReasonBlankAccount || len(d.Records) != 2 {
			t.Fatalf("structured=%v: data %+v", structured, got)
		}
	}
}

func TestClusterChanged(t *testing.T) {
	c := matcher.Change{
		Tenant: "acme", ClusterID: "c1", Version: 7,
		Members:    []record.Record{{Object: record.Lead, ID: "L1", Fields: record.Fields{"Email": "x@example.com"}}, {Object: record.Contact, ID: "C1"}},
		Before:     []record.Ref{{Object: record.Lead, ID: "L1"}},
		Trigger:    record.Ref{Object: record.Contact, ID: "C1"},
		MergedFrom: []string{"c2"},
	}
	r, err := events.Encoder{Topic: "changes"}.ClusterChanged(events.NewClusterChanged(c, &events.Origin{Topic: "in", Partition: 2, Offset: 9}), modified)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := kafkatest.CloudEvent(r)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type() != events.TypeClusterChanged || ev.ID() != "c1@7" || string(r.Key) != "acme/c1" {
		t.Fatalf("event %s key %s", ev, r.Key)
	}
	want := `{"tenant":"acme","cluster_id":"c1","cluster_version":7,"members":[{"object":"lead","id":"L1"},{"object":"contact","id":"C1"}],` +
		`"before":[{"object":"lead","id":"L1"}],"trigger":{"object":"contact","id":"C1"},"origin":{"topic":"in","partition":2,"offset":9},"merged_from":["c2"]}`
	if string(ev.Data()) != want {
		t.Fatalf("data %s\nwant %s", ev.Data(), want)
	}
	if bytes.Contains(r.Value, []byte("example.com")) {
		t.Fatal("the delta carries field values")
	}
}

func TestPayload(t *testing.T) {
	body := []byte(`{"tenant":"acme","object":"lead","id":"L1","op":"upsert"}`)
	ce := cloudevents.New()
	ce.SetID("e1")
	ce.SetSource("crm")
	ce.SetType("com.example.record")
	if err := ce.SetData(cloudevents.ApplicationJSON, json.RawMessage(body)); err != nil {
		t.Fatal(err)
	}
	structured, _ := json.Marshal(ce)
	ceB64 := ce.Clone()
	ceB64.SetDataContentType("")
	ceB64.DataBase64 = true
	b64, _ := json.Marshal(ceB64)
	binary := &kgo.Record{Value: body, Headers: events.BinaryHeaders(ce)}
	hdr := func(k, v string) []kgo.RecordHeader { return []kgo.RecordHeader{{Key: k, Value: []byte(v)}} }
	for _, tc := range []struct {
		name string
		rec  *kgo.Record
		code string
	}{
		{"plain", &kgo.Record{Value: body}, ""},
		{"plain with json content type", &kgo.Record{Value: body, Headers: hdr("content-type", "application/json")}, ""},
		{"binary", binary, ""},
		{"structured", &kgo.Record{Value: structured, Headers: hdr("Content-Type", "application/cloudevents+json; charset=utf-8")}, ""},
		{"structured base64", &kgo.Record{Value: b64, Headers: hdr("content-type", "application/cloudevents+json")}, ""},
		{"structured garbage", &kgo.Record{Value: []byte("{"), Headers: hdr("content-type", "application/cloudevents+json")}, events.CodeBadCloudEvent},
		{"batch", &kgo.Record{Value: []byte("[]"), Headers: hdr("content-type", "application/cloudevents-batch+json")}, events.CodeUnsupportedContent},
		{"binary spec 0.3", &kgo.Record{Value: body, Headers: hdr("ce_specversion", "0.3")}, events.CodeBadCloudEvent},
		{"binary xml", &kgo.Record{Value: body, Headers: append(hdr("ce_specversion", "1.0"), hdr("content-type", "application/xml")...)}, events.CodeUnsupportedContent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := events.Payload(tc.rec)
			var ie *events.InputError
			switch {
			case tc.code == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.code == "" && !bytes.Equal(got, body):
				t.Fatalf("payload %s", got)
			case tc.code != "" && (!errors.As(err, &ie) || ie.Code != tc.code):
				t.Fatalf("error %v, want code %s", err, tc.code)
			}
		})
	}
}

// Command writes the same records as the SDK-built event with
// encoding/json's data, for generated plans and for attributes the SDK
// trims, escapes or refuses.
func TestCommandMatchesSDK(t *testing.T) {
	cmds := generatedCommands(t)
	for _, tenant := range []string{"acme", "", "é", "a%41", "a%zz", "a?b", "a#b", "a/b", "a:b", "a b"} {
		for _, kind := range []string{engine.KindReviewRequested, "", " x", "a/b"} {
			for _, id := range []string{"0123abc", "", " x ", "x~y"} {
				for _, subject := range []string{"L1", "", " ", " s ", "s\u00a0", "a,b"} {
					c := command()
					c.Tenant, c.Kind, c.ID, c.Subject = tenant, kind, id, subject
					cmds = append(cmds, c)
				}
			}
		}
	}
	for _, structured := range []bool{false, true} {
		enc := events.Encoder{Topic: "cmds", Structured: structured}
		for _, at := range []time.Time{modified, {}, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} {
			for _, c := range cmds {
				got, err := enc.Command(c, at)
				want, werr := enc.CommandViaSDK(c, at)
				if (err == nil) != (werr == nil) {
					t.Fatalf("%+v: error %v, via the SDK %v", c, err, werr)
				}
				if err != nil {
					continue
				}
				if got.Topic != want.Topic || !bytes.Equal(got.Key, want.Key) || !bytes.Equal(got.Value, want.Value) {
					t.Fatalf("%+v: record\n%s %s %s\nvia the SDK\n%s %s %s", c, got.Topic, got.Key, got.Value, want.Topic, want.Key, want.Value)
				}
				if len(got.Headers) != len(want.Headers) {
					t.Fatalf("%+v: headers %v, via the SDK %v", c, got.Headers, want.Headers)
				}
				for i, h := range got.Headers {
					if h.Key != want.Headers[i].Key || !bytes.Equal(h.Value, want.Headers[i].Value) {
						t.Fatalf("%+v: header %s=%s, via the SDK %s=%s", c, h.Key, h.Value, want.Headers[i].Key, want.Headers[i].Value)
					}
				}
			}
		}
	}
}

// Commands writes each command of a plan as Command does.
func TestCommandsMatchCommand(t *testing.T) {
	plans := generatedPlans(t)
	several := 0
	for _, structured := range []bool{false, true} {
		enc := events.Encoder{Topic: "cmds", Structured: structured}
		for _, p := range plans {
			if len(p) > 1 {
				several++
			}
			prev := &kgo.Record{}
			got, err := enc.Commands([]*kgo.Record{prev}, p, modified)
			if err != nil || len(got) != len(p)+1 || got[0] != prev {
				t.Fatalf("%d records, error %v", len(got), err)
			}
			for i, c := range p {
				want, err := enc.CommandViaSDK(c, modified)
				if err != nil {
					t.Fatal(err)
				}
				r := got[i+1]
				if !bytes.Equal(r.Value, want.Value) || !bytes.Equal(r.Key, want.Key) || len(r.Headers) != len(want.Headers) {
					t.Fatalf("command %d of %s: %s\nvia the SDK %s", i, c.ClusterID, r.Value, want.Value)
				}
				for j, h := range r.Headers {
					if h.Key != want.Headers[j].Key || !bytes.Equal(h.Value, want.Headers[j].Value) {
						t.Fatalf("command %d of %s: header %s=%s, via the SDK %s=%s", i, c.ClusterID, h.Key, h.Value, want.Headers[j].Key, want.Headers[j].Value)
					}
				}
			}
		}
	}
	if several < 20 {
		t.Fatalf("only %d plans of several commands", several)
	}
	bad := command()
	bad.Kind, bad.ID = engine.KindLeadConvert, "cmd-2"
	bad.Data = &engine.LeadConvert{Fields: record.Fields{"X": math.NaN()}}
	if _, err := (events.Encoder{}).Commands(nil, []engine.Command{command(), bad}, modified); err == nil || err.Error() != "events: encode lead.convert cmd-2: json: unsupported value: NaN" {
		t.Fatalf("error %v", err)
	}
}
