package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/consumer"
	"github.com/leadconv/leadconv/ingest"
)

// Config configures a Pipeline. Topics default to leadconv.records,
// leadconv.commands and leadconv.dlq; ChangesTopic is off unless set.
type Config struct {
	Brokers      []string
	Group        string
	RecordsTopic string
	// CommandsTopic receives commands; a dry-run replay points it elsewhere.
	CommandsTopic string
	DLQTopic      string
	ChangesTopic  string
	// MaxRecordBytes bounds an input record (default 1 MiB); larger ones
	// are dead-lettered as oversize.
	MaxRecordBytes int
	// Structured writes structured-mode CloudEvents instead of binary.
	Structured bool
	// MaxPollRecords bounds one poll (default 5000).
	MaxPollRecords int
	// CommitInterval is the period of offset commits (default 1s).
	CommitInterval time.Duration
	// FetchMinBytes and FetchMaxWait tune fetching (consumer.Config).
	FetchMinBytes int32
	FetchMaxWait  time.Duration
	// ShutdownGrace bounds how long in-flight batches may take to finish at
	// shutdown or revocation (default 10s).
	ShutdownGrace time.Duration
	// ResetOffset is where a group without committed offsets starts
	// (default: the start of the topic).
	ResetOffset *kgo.Offset
	// Decode replaces the built-in record event decoder.
	Decode Decoder
	// Inputs are further input topics, each in its format (a native one
	// carries record events too); RecordsTopic is always read.
	Inputs []ingest.Config
	// Processed is called after a batch's commands were acknowledged and
	// its offsets marked (consumer.Config.Processed).
	Processed func(topic string, partition int32, recs []*kgo.Record)
	// Opts are extra client options (TLS, SASL, tests).
	Opts       []kgo.Opt
	Logger     zerolog.Logger
	Registerer prometheus.Registerer
}

// Pipeline is one member of the processing consumer group.
type Pipeline struct {
	cons    *consumer.Consumer
	handler *Handler
}

// New wires a pipeline over store and tenants; Run starts it.
func New(cfg Config, store Store, tenants Tenants) (*Pipeline, error) {
	if store == nil || tenants == nil {
		return nil, errors.New("pipeline: store and tenants are required")
	}
	if cfg.RecordsTopic == "" {
		cfg.RecordsTopic = "leadconv.records"
	}
	if cfg.Group == "" {
		cfg.Group = "leadconv"
	}
	var pm *Metrics
	var cm *consumer.Metrics
	if cfg.Registerer != nil {
		pm = NewMetrics(cfg.Registerer)
		cm = consumer.NewMetrics(cfg.Registerer)
	}
	topics := []string{cfg.RecordsTopic}
	formats := map[string]Format{}
	// Reading what leadconv writes would loop.
	outputs := map[string]string{cmp.Or(cfg.CommandsTopic, "leadconv.commands"): "commands", cmp.Or(cfg.DLQTopic, "leadconv.dlq"): "dead-letter", cfg.ChangesTopic: "changes"}
	for i, in := range cfg.Inputs {
		if what := outputs[in.Topic]; what != "" && in.Topic != "" {
			return nil, fmt.Errorf("pipeline: inputs[%d].topic: %q is the %s topic", i, in.Topic, what)
		}
		if rt := cmp.Or(in.ResyncTopic, ingest.DefaultResyncTopic); in.Format == ingest.SalesforceCDC &&
			(rt == cfg.RecordsTopic || slices.ContainsFunc(cfg.Inputs, func(c ingest.Config) bool { return c.Topic == rt })) {
			return nil, fmt.Errorf("pipeline: inputs[%d].resync_topic: %q is an input topic", i, rt)
		}
		if in.Topic != cfg.RecordsTopic {
			topics = append(topics, in.Topic)
		}
		if in.Format == ingest.Native {
			continue
		}
		d, err := ingest.New(in, cfg.Structured)
		if err != nil {
			return nil, fmt.Errorf("pipeline: input %s: %w", in.Topic, err)
		}
		formats[in.Topic] = d
	}
	h := NewHandler(HandlerConfig{
		CommandsTopic: cfg.CommandsTopic, ChangesTopic: cfg.ChangesTopic, MaxRecordBytes: cfg.MaxRecordBytes,
		Structured: cfg.Structured, Decode: cfg.Decode, Formats: formats, Logger: cfg.Logger, Metrics: pm,
	}, store, tenants)
	cons, err := consumer.New(consumer.Config{
		Brokers: cfg.Brokers, Group: cfg.Group, Topics: topics, DLQTopic: cfg.DLQTopic,
		MaxPollRecords: cfg.MaxPollRecords, CommitInterval: cfg.CommitInterval, RevokeGrace: cfg.ShutdownGrace,
		FetchMinBytes: cfg.FetchMinBytes, FetchMaxWait: cfg.FetchMaxWait,
		ResetOffset: cfg.ResetOffset, Processed: cfg.Processed, Opts: cfg.Opts, Logger: cfg.Logger, Metrics: cm,
	}, h)
	if err != nil {
		return nil, err
	}
	return &Pipeline{cons: cons, handler: h}, nil
}

// Run consumes until ctx is cancelled, then stops gracefully: in-flight
// batches finish, their offsets are committed, the member leaves the group.
func (p *Pipeline) Run(ctx context.Context) error { return p.cons.Run(ctx) }

// Client is the Kafka client, for readiness checks (Ping).
func (p *Pipeline) Client() *kgo.Client { return p.cons.Client() }

// Handler is the batch handler the pipeline runs.
func (p *Pipeline) Handler() *Handler { return p.handler }
