// Package events maps leadconv's messages to and from CloudEvents on Kafka,
// following the CloudEvents Kafka protocol binding: commands go out in binary
// content mode (ce_ headers, the command JSON as value) or, as an option, in
// structured mode (the whole event as application/cloudevents+json); record
// events come in as plain JSON or as CloudEvents in either mode.
//
// Encoding is deterministic: the event time is the triggering record's
// modified_at, never the wall clock, and headers are written in a fixed
// order, so replaying a topic reproduces the commands byte for byte.
package events

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/engine"
)

// Kafka header names of the binary content mode.
const (
	HeaderPrefix      = "ce_"
	HeaderContentType = "content-type"
	SpecVersion       = cloudevents.CloudEventsVersionV1
	// ContentJSON is the data content type of every leadconv event.
	ContentJSON = cloudevents.ApplicationJSON
	// ContentCloudEventsJSON marks a structured-mode message.
	ContentCloudEventsJSON = cloudevents.ApplicationCloudEventsJSON
)

// TypeClusterChanged is the type of the optional cluster delta events.
const TypeClusterChanged = "io.leadconv.cluster.changed.v1"

// TypeCommandResult is the type of a CRM writer's report of one command
// (schemas/command.result.v1.json).
const TypeCommandResult = "io.leadconv.command.result.v1"

// TypePrefix starts the type of every event leadconv defines.
const TypePrefix = "io.leadconv."

// HeaderEcho marks a record event as the echo of leadconv's own write: a
// CRM writer's change event of a record a command changed (what
// Salesforce's changeOrigin says in its own format, record.Event.Echo).
const HeaderEcho = "leadconv_echo"

// SchemaURL returns the dataschema of a command kind or event name
// ("lead.convert" -> https://leadconv.io/schemas/lead.convert.v1.json).
func SchemaURL(kind string) string { return "https://leadconv.io/schemas/" + kind + ".v1.json" }

// Source returns the CloudEvents source of a tenant's events.
func Source(tenant string) string { return "leadconv/" + tenant }

// Key returns the Kafka key of a cluster's events: every event of one cluster
// lands on one partition, in order.
func Key(tenant, clusterID string) []byte { return []byte(tenant + "/" + clusterID) }

// Encoder turns commands and deltas into Kafka records.
type Encoder struct {
	// Topic is the topic of produced records.
	Topic string
	// Structured selects structured content mode instead of binary.
	Structured bool
}

// Command encodes cmd as a CloudEvent record. at is the modified_at of the
// event that triggered the plan; zero omits the time attribute.
func (e Encoder) Command(cmd engine.Command, at time.Time) (*kgo.Record, error) {
	buf := bufs.Get().(*[]byte)
	defer bufs.Put(buf)
	b, err := cmd.AppendJSON((*buf)[:0])
	*buf = b
	if err != nil {
		return nil, fmt.Errorf("events: encode %s %s: %w", cmd.Kind, cmd.ID, err)
	}
	return e.command(&cmd, at, clone(b))
}

// Commands appends the records of the commands of one plan to out, each as
// Command encodes it: the plan's shared explain block and field maps are
// encoded once (engine.AppendPlanJSON) and the values share one allocation.
func (e Encoder) Commands(out []*kgo.Record, cmds []engine.Command, at time.Time) ([]*kgo.Record, error) {
	if len(cmds) == 0 {
		return out, nil
	}
	buf := bufs.Get().(*[]byte)
	defer bufs.Put(buf)
	var endsBuf [16]int
	b, ends, err := engine.AppendPlanJSON((*buf)[:0], endsBuf[:0], cmds)
	*buf = b
	if err != nil {
		c := &cmds[len(ends)]
		return out, fmt.Errorf("events: encode %s %s: %w", c.Kind, c.ID, err)
	}
	data := clone(b)
	start := 0
	for i := range cmds {
		r, err := e.command(&cmds[i], at, data[start:ends[i]:ends[i]])
		if err != nil {
			return out, err
		}
		out = append(out, r)
		start = ends[i]
	}
	return out, nil
}

// clone copies b exactly (make and copy: the runtime skips clearing it);
// growing a fresh slice to a command's size takes several allocations.
func clone(b []byte) []byte {
	c := make([]byte, len(b))
	copy(c, b)
	return c
}

// command returns the record of cmd with its JSON data.
func (e Encoder) command(cmd *engine.Command, at time.Time, data []byte) (*kgo.Record, error) {
	if !e.Structured && plain(cmd.Tenant) && plain(cmd.Kind) && plain(cmd.ID) && cmd.Subject != "" && strings.TrimSpace(cmd.Subject) == cmd.Subject {
		return &kgo.Record{Topic: e.Topic, Key: Key(cmd.Tenant, cmd.ClusterID), Value: data, Headers: commandHeaders(cmd, at)}, nil
	}
	return e.record(cmd.Tenant, cmd.ClusterID, cmd.ID, cmd.Type(), cmd.Subject, SchemaURL(cmd.Kind), at, data)
}

// bufs holds encoding buffers, grown to the size of the largest commands.
var bufs = sync.Pool{New: func() any { return new([]byte) }}

// plain reports whether s is non-empty and made of URL-unreserved
// characters only: it survives the SDK's trimming, URL parsing and
// re-serialisation of the id, source, type and dataschema unchanged, so
// commandHeaders writes what BinaryHeaders would.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return s != ""
}

// commandHeaders writes the binary-mode headers of a command whose
// attributes are plain and whose subject is trimmed and non-empty, without
// the SDK's event: those attributes are always valid, and building the
// event (two URL parses and its validation) cost more than the headers.
// The values share one allocation.
func commandHeaders(cmd *engine.Command, at time.Time) []kgo.RecordHeader {
	v := make([]byte, 0, 160+2*len(cmd.Kind)+len(cmd.ID)+len(cmd.Tenant)+len(cmd.Subject))
	hs := make([]kgo.RecordHeader, 0, 8)
	add := func(k string, start int) {
		hs = append(hs, kgo.RecordHeader{Key: k, Value: v[start:len(v):len(v)]})
	}
	n := len(v)
	v = append(v, SpecVersion...)
	add(HeaderPrefix+"specversion", n)
	n = len(v)
	v = append(v, cmd.ID...)
	add(HeaderPrefix+"id", n)
	n = len(v)
	v = append(append(v, "leadconv/"...), cmd.Tenant...)
	add(HeaderPrefix+"source", n)
	n = len(v)
	v = append(append(append(v, "io.leadconv."...), cmd.Kind...), ".v1"...)
	add(HeaderPrefix+"type", n)
	n = len(v)
	v = append(v, cmd.Subject...)
	add(HeaderPrefix+"subject", n)
	if !at.IsZero() {
		n = len(v)
		v = at.UTC().AppendFormat(v, time.RFC3339Nano)
		add(HeaderPrefix+"time", n)
	}
	n = len(v)
	v = append(append(append(v, "https://leadconv.io/schemas/"...), cmd.Kind...), ".v1.json"...)
	add(HeaderPrefix+"dataschema", n)
	n = len(v)
	v = append(v, ContentJSON...)
	add(HeaderContentType, n)
	return hs
}

func (e Encoder) record(tenant, cluster, id, typ, subject, schema string, at time.Time, data []byte) (*kgo.Record, error) {
	ev := cloudevents.New(SpecVersion)
	ev.SetID(id)
	ev.SetSource(Source(tenant))
	ev.SetType(typ)
	ev.SetSubject(subject)
	ev.SetDataSchema(schema)
	if !at.IsZero() {
		ev.SetTime(at.UTC())
	}
	ev.DataEncoded = data
	ev.SetDataContentType(ContentJSON)
	if err := ev.Validate(); err != nil {
		return nil, fmt.Errorf("events: invalid event %s: %w", id, err)
	}
	r := &kgo.Record{Topic: e.Topic, Key: Key(tenant, cluster)}
	if e.Structured {
		b, err := json.Marshal(ev)
		if err != nil {
			return nil, fmt.Errorf("events: marshal %s: %w", id, err)
		}
		r.Value = b
		r.Headers = []kgo.RecordHeader{{Key: HeaderContentType, Value: []byte(ContentCloudEventsJSON)}}
		return r, nil
	}
	r.Value = data
	r.Headers = BinaryHeaders(ev)
	return r, nil
}

// BinaryHeaders maps ev's context attributes to Kafka headers in a fixed
// order: ce_specversion, ce_id, ce_source, ce_type, then the optional
// ce_subject, ce_time, ce_dataschema, and content-type for
// datacontenttype, as the Kafka protocol binding specifies.
func BinaryHeaders(ev cloudevents.Event) []kgo.RecordHeader {
	hs := make([]kgo.RecordHeader, 0, 8)
	add := func(k, v string) {
		if v != "" {
			hs = append(hs, kgo.RecordHeader{Key: k, Value: []byte(v)})
		}
	}
	add(HeaderPrefix+"specversion", ev.SpecVersion())
	add(HeaderPrefix+"id", ev.ID())
	add(HeaderPrefix+"source", ev.Source())
	add(HeaderPrefix+"type", ev.Type())
	add(HeaderPrefix+"subject", ev.Subject())
	if t := ev.Time(); !t.IsZero() {
		add(HeaderPrefix+"time", t.Format(time.RFC3339Nano))
	}
	add(HeaderPrefix+"dataschema", ev.DataSchema())
	add(HeaderContentType, ev.DataContentType())
	return hs
}

// header returns the value of the first header named key (case-insensitive,
// as the binding asks of header names).
func header(r *kgo.Record, key string) ([]byte, bool) {
	for _, h := range r.Headers {
		if strings.EqualFold(h.Key, key) {
			return h.Value, true
		}
	}
	return nil, false
}

// Input error codes, written to the dead-letter topic's error code header.
const (
	CodeBadCloudEvent      = "bad_cloudevent"
	CodeUnsupportedContent = "unsupported_content_type"
)

// InputError is a record whose envelope cannot be read.
type InputError struct {
	Code   string
	Reason string
}

func (e *InputError) Error() string { return "events: " + e.Code + ": " + e.Reason }

// ErrorCode returns Code; with Transient and ErrorReason it classifies the
// error (consumer.Coded): an envelope never becomes readable on retry.
func (e *InputError) ErrorCode() string { return e.Code }

// Transient is false.
func (e *InputError) Transient() bool { return false }

// ErrorReason returns Reason.
func (e *InputError) ErrorReason() string { return e.Reason }

// Payload returns the record event JSON that r carries: its value as it is
// when r is plain JSON, the data of a binary-mode CloudEvent (a ce_specversion
// header) or of a structured-mode one (content-type
// application/cloudevents+json). Errors are *InputError.
func Payload(r *kgo.Record) ([]byte, error) {
	b, _, err := TypedPayload(r)
	return b, err
}

// TypedPayload is Payload with the CloudEvents type of r ("" for plain
// JSON).
func TypedPayload(r *kgo.Record) ([]byte, string, error) {
	if v, ok := header(r, HeaderPrefix+"specversion"); ok {
		if string(v) != SpecVersion {
			return nil, "", &InputError{CodeBadCloudEvent, "unsupported specversion"}
		}
		if ct, ok := header(r, HeaderContentType); ok && !isJSON(string(ct)) {
			return nil, "", &InputError{CodeUnsupportedContent, "binary data is not JSON"}
		}
		typ, _ := header(r, HeaderPrefix+"type")
		return r.Value, string(typ), nil
	}
	ct, ok := header(r, HeaderContentType)
	if !ok || !strings.HasPrefix(string(ct), "application/cloudevents") {
		return r.Value, "", nil
	}
	if !strings.HasPrefix(string(ct), ContentCloudEventsJSON) || strings.HasPrefix(string(ct), cloudevents.ApplicationCloudEventsBatchJSON) {
		return nil, "", &InputError{CodeUnsupportedContent, "only application/cloudevents+json is read"}
	}
	var ev cloudevents.Event
	if err := json.Unmarshal(r.Value, &ev); err != nil {
		return nil, "", &InputError{CodeBadCloudEvent, "structured event does not parse"}
	}
	if !isJSON(ev.DataContentType()) {
		return nil, "", &InputError{CodeUnsupportedContent, "structured data is not JSON"}
	}
	return ev.Data(), ev.Type(), nil
}

// isJSON reports whether a data content type is JSON; absent means JSON.
func isJSON(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(strings.ToLower(mt))
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}
