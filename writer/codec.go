package writer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/events"
	"github.com/leadconv/leadconv/record"
)

// ResultType is the CloudEvents type of a command result.
const ResultType = events.TypeCommandResult

// resultSource is the CloudEvents source of the writer's results.
const resultSource = "leadconv/writer"

const (
	headerContentType = "content-type"
	structuredType    = "application/cloudevents+json"
)

// errInvalid marks a command record that can never be applied.
var errInvalid = errors.New("invalid command record")

// decodeCommand reads a command from a Kafka record in any form the pipeline
// may write: CloudEvents binary mode (ce_ headers, the data in the value),
// structured mode (content-type application/cloudevents+json), or the bare
// command JSON. The returned id is the best known command id, for reporting
// an invalid record.
func decodeCommand(r *kgo.Record) (*engine.Command, string, error) {
	var (
		data   []byte
		ceType string
		ceID   string
	)
	switch {
	case header(r, "ce_specversion") != "":
		e := event.New(header(r, "ce_specversion"))
		e.SetID(header(r, "ce_id"))
		e.SetSource(header(r, "ce_source"))
		e.SetType(header(r, "ce_type"))
		if err := e.Validate(); err != nil {
			return nil, e.ID(), fmt.Errorf("%w: binary mode: %w", errInvalid, err)
		}
		data, ceType, ceID = r.Value, e.Type(), e.ID()
	case strings.HasPrefix(header(r, headerContentType), structuredType):
		var e event.Event
		if err := json.Unmarshal(r.Value, &e); err != nil {
			return nil, "", fmt.Errorf("%w: structured mode: %w", errInvalid, err)
		}
		if err := e.Validate(); err != nil {
			return nil, e.ID(), fmt.Errorf("%w: structured mode: %w", errInvalid, err)
		}
		data, ceType, ceID = e.Data(), e.Type(), e.ID()
	default:
		data = r.Value
	}
	cmd := new(engine.Command)
	if err := json.Unmarshal(data, cmd); err != nil {
		return nil, ceID, fmt.Errorf("%w: data: %w", errInvalid, err)
	}
	if ceType != "" && ceType != cmd.Type() {
		return nil, ceID, fmt.Errorf("%w: type %s carries a %s command", errInvalid, ceType, cmd.Kind)
	}
	if ceID != "" && ceID != cmd.ID {
		return nil, ceID, fmt.Errorf("%w: event id is not the command id", errInvalid)
	}
	return cmd, cmd.ID, nil
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// resultRecord builds the command.result CloudEvent in binary mode, keyed
// by tenant: a tenant's results stay in order (a cluster's with them) on
// one partition, and the pipeline routes them to the tenant's owner. A
// record that was no command at all, with no tenant known, keeps the
// command record's key. Its id is derived from the command id and outcome:
// a redelivered result carries the same id.
func resultRecord(topic string, cmdKey []byte, res Result, at time.Time) (*kgo.Record, error) {
	key := []byte(res.Tenant)
	if res.Tenant == "" {
		key = cmdKey
	}
	h := sha256.Sum256([]byte(res.CommandID + "/" + res.Outcome))
	e := event.New()
	e.SetID(hex.EncodeToString(h[:16]))
	e.SetSource(resultSource)
	e.SetType(ResultType)
	e.SetSubject(res.CommandID)
	e.SetTime(at)
	if err := e.SetData(event.ApplicationJSON, res); err != nil {
		return nil, fmt.Errorf("writer: result data: %w", err)
	}
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("writer: result event: %w", err)
	}
	return &kgo.Record{Topic: topic, Key: key, Value: e.Data(), Headers: []kgo.RecordHeader{
		{Key: "ce_specversion", Value: []byte(e.SpecVersion())},
		{Key: "ce_id", Value: []byte(e.ID())},
		{Key: "ce_source", Value: []byte(e.Source())},
		{Key: "ce_type", Value: []byte(e.Type())},
		{Key: "ce_subject", Value: []byte(e.Subject())},
		{Key: "ce_time", Value: []byte(e.Time().UTC().Format(time.RFC3339Nano))},
		{Key: headerContentType, Value: []byte(event.ApplicationJSON)},
	}}, nil
}

// eventRecord builds a record event as a CRM's change stream carries it:
// the record-event JSON, keyed tenant/object/id so one record's changes stay
// in order, marked as leadconv's echo.
func eventRecord(topic string, ev record.Event) (*kgo.Record, error) {
	b, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("writer: record event %s: %w", ev.Ref(), err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(ev.Tenant + "/" + string(ev.Object) + "/" + ev.ID), Value: b,
		// The pipeline applies an echo but plans nothing from it.
		Headers: []kgo.RecordHeader{{Key: events.HeaderEcho, Value: []byte("1")}}}, nil
}
