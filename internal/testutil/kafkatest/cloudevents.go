package kafkatest

import (
	"bytes"
	"context"
	"strings"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/binding/format"
	"github.com/cloudevents/sdk-go/v2/binding/spec"
	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Message adapts a franz-go record to sdk-go's binding.Message the way
// sdk-go's own Kafka bindings (kafka_sarama, kafka_confluent) read their
// clients' messages: structured when content-type names an event format,
// binary when ce_specversion names a spec version. sdk-go has no franz-go
// binding; with this, sdk-go's binding.ToEvent does all the decoding, so a
// record it reads is one a standard CloudEvents consumer reads.
func Message(r *kgo.Record) binding.Message {
	m := &message{value: r.Value, headers: map[string]string{}}
	for _, h := range r.Headers {
		m.headers[strings.ToLower(h.Key)] = string(h.Value)
	}
	if f := format.Lookup(m.headers[contentType]); f != nil {
		m.format = f
	} else {
		m.version = kafkaSpecs.Version(m.headers[kafkaSpecs.PrefixedSpecVersionName()])
	}
	return m
}

// CloudEvent decodes r with sdk-go (see Message) and validates the event.
func CloudEvent(r *kgo.Record) (*cloudevents.Event, error) {
	ev, err := binding.ToEvent(context.Background(), Message(r))
	if err != nil {
		return nil, err
	}
	return ev, ev.Validate()
}

const contentType = "content-type"

var kafkaSpecs = spec.WithPrefix("ce_")

type message struct {
	value   []byte
	headers map[string]string
	format  format.Format
	version spec.Version
}

var (
	_ binding.Message               = (*message)(nil)
	_ binding.MessageMetadataReader = (*message)(nil)
)

func (m *message) ReadEncoding() binding.Encoding {
	switch {
	case m.format != nil:
		return binding.EncodingStructured
	case m.version != nil:
		return binding.EncodingBinary
	}
	return binding.EncodingUnknown
}

func (m *message) ReadStructured(ctx context.Context, w binding.StructuredWriter) error {
	if m.format == nil {
		return binding.ErrNotStructured
	}
	return w.SetStructuredEvent(ctx, m.format, bytes.NewReader(m.value))
}

func (m *message) ReadBinary(_ context.Context, w binding.BinaryWriter) error {
	if m.version == nil {
		return binding.ErrNotBinary
	}
	for k, v := range m.headers {
		var err error
		switch {
		case k == contentType:
			err = w.SetAttribute(m.version.AttributeFromKind(spec.DataContentType), v)
		case strings.HasPrefix(k, "ce_"):
			if a := m.version.Attribute(k); a != nil {
				err = w.SetAttribute(a, v)
			} else {
				err = w.SetExtension(strings.TrimPrefix(k, "ce_"), v)
			}
		}
		if err != nil {
			return err
		}
	}
	return w.SetData(bytes.NewReader(m.value))
}

func (m *message) GetAttribute(k spec.Kind) (spec.Attribute, any) {
	if m.version == nil {
		return nil, nil
	}
	if a := m.version.AttributeFromKind(k); a != nil {
		return a, m.headers[a.PrefixedName()]
	}
	return nil, nil
}

func (m *message) GetExtension(name string) any { return m.headers["ce_"+name] }

func (m *message) Finish(error) error { return nil }
