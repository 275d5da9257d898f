package requests

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/consumer"
)

// Config configures Run.
type Config struct {
	Brokers []string
	// Group is the consumer group (default leadconv-requests).
	Group string
	// RequestsTopic is consumed (default leadconv.requests).
	RequestsTopic string
	// CommandsTopic and EventsTopic: see HandlerConfig.
	CommandsTopic string
	EventsTopic   string
	// DLQTopic receives unreadable request records (default leadconv.dlq).
	DLQTopic      string
	ProgressEvery int
	// Structured writes structured-mode CloudEvents.
	Structured bool
	// MaxProduceBytes and ShutdownGrace: see consumer.Config
	// (MaxProduceBytes, RevokeGrace).
	MaxProduceBytes int
	ShutdownGrace   time.Duration
	// Opts are extra franz-go options (TLS, SASL, tests).
	Opts   []kgo.Opt
	Logger zerolog.Logger
}

// Run consumes requests until ctx is done. A request's commands and its
// request.completed are produced before its offset is committed (at least
// once; the ledger and the deterministic command ids make a redelivery
// harmless).
func Run(ctx context.Context, cfg Config, store Store, tenants Tenants, ledger Ledger) error {
	if store == nil || tenants == nil || ledger == nil {
		return errors.New("requests: store, tenants and ledger are required")
	}
	if cfg.Group == "" {
		cfg.Group = DefaultGroup
	}
	if cfg.RequestsTopic == "" {
		cfg.RequestsTopic = DefaultRequestsTopic
	}
	h := NewHandler(HandlerConfig{
		CommandsTopic: cfg.CommandsTopic, EventsTopic: cfg.EventsTopic, ProgressEvery: cfg.ProgressEvery, Structured: cfg.Structured, Logger: cfg.Logger,
	}, store, tenants, ledger)
	cons, err := consumer.New(consumer.Config{
		Brokers: cfg.Brokers, Group: cfg.Group, Topics: []string{cfg.RequestsTopic}, DLQTopic: cfg.DLQTopic,
		ClientID: "leadconv-requests", MaxProduceBytes: cfg.MaxProduceBytes, RevokeGrace: cfg.ShutdownGrace,
		Opts: cfg.Opts, Logger: cfg.Logger,
	}, h)
	if err != nil {
		return err
	}
	cl := cons.Client()
	h.cfg.Progress = func(r *kgo.Record) {
		// Progress is informative: a lost one is logged, not retried.
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil && ctx.Err() == nil {
				cfg.Logger.Warn().Err(err).Msg("progress event not produced")
			}
		})
	}
	return cons.Run(ctx)
}
