// Package writer is leadconv's reference CRM writer: it consumes the
// commands topic, applies each command in one PostgreSQL transaction to a CRM
// mirror (leads, contacts, accounts, opportunities and their related notes
// and attachments), and feeds the result back as a CRM would: record events
// of the changed records to the records topic and a command.result
// CloudEvent to the results topic.
//
// The contract every CRM writer must keep (see README "Writing your own CRM
// writer"): commands of one cluster arrive in order on one partition (key
// tenant/cluster_id); a command id is applied at most once; a command whose
// cluster_version is older than one already applied for its cluster is
// dropped as stale; offsets are committed only after the transaction
// committed and every output was acknowledged.
package writer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/internal/ops"
	"github.com/leadconv/leadconv/internal/topics"
	"github.com/leadconv/leadconv/record"
)

// Defaults of Config.
const (
	DefaultGroup         = "leadconv-writer"
	DefaultCommandsTopic = "leadconv.commands"
	DefaultRecordsTopic  = "leadconv.records"
	DefaultResultsTopic  = "leadconv.results"
)

// Config configures Run.
type Config struct {
	Brokers []string
	// Group is the consumer group (default leadconv-writer).
	Group string
	// CommandsTopic is consumed (default leadconv.commands).
	CommandsTopic string
	// RecordsTopic receives the record events of changed records (default
	// leadconv.records, the pipeline's input: the loop closes).
	RecordsTopic string
	// ResultsTopic receives a command.result per command (default
	// leadconv.results).
	ResultsTopic string
	// PostgresURL is the mirror database; its schema is migrated at start.
	PostgresURL string
	Logger      zerolog.Logger
	// ClientOpts are extra franz-go options (tests, TLS, SASL).
	ClientOpts []kgo.Opt
	// Ready, when set, is called once PostgreSQL and Kafka answered and the
	// schema is migrated, with their readiness checks.
	Ready func(checks map[string]func(context.Context) error)
}

func (c *Config) defaults() error {
	if len(c.Brokers) == 0 {
		return errors.New("writer: no brokers")
	}
	if c.PostgresURL == "" {
		return errors.New("writer: no PostgreSQL URL")
	}
	set := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	set(&c.Group, DefaultGroup)
	set(&c.CommandsTopic, DefaultCommandsTopic)
	set(&c.RecordsTopic, DefaultRecordsTopic)
	set(&c.ResultsTopic, DefaultResultsTopic)
	return nil
}

// Run consumes commands until ctx is done (returning nil) or a fatal error.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.defaults(); err != nil {
		return err
	}
	err := run(ctx, cfg)
	if ctx.Err() != nil {
		// Stopped, maybe while connecting or migrating: whatever was
		// uncommitted is redelivered.
		return nil
	}
	return err
}

func run(ctx context.Context, cfg Config) error {
	pool, err := pgxpool.New(ctx, cfg.PostgresURL)
	if err != nil {
		return fmt.Errorf("writer: postgres: %w", err)
	}
	defer pool.Close()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.CommandsTopic),
		kgo.DisableAutoCommit(),
		// Between a poll and its commit no partition moves: a batch is
		// never committed by an owner that lost it.
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ProducerLinger(time.Millisecond),
	}, cfg.ClientOpts...)...)
	if err != nil {
		return fmt.Errorf("writer: kafka client: %w", err)
	}
	defer cl.Close()
	// Started before PostgreSQL or the brokers: waited for, as run waits.
	pg := pool.Config().ConnConfig
	if err := ops.AwaitDependencies(ctx, cfg.Logger,
		ops.Dependency{Name: "postgres", Addr: fmt.Sprintf("%s:%d/%s", pg.Host, pg.Port, pg.Database), Ping: pool.Ping},
		ops.Dependency{Name: "kafka", Addr: strings.Join(cfg.Brokers, ","), Ping: cl.Ping}); err != nil {
		return err
	}
	// A missing topic is waited for (created beside the writer), named in
	// the log; a consumed topic that never comes would leave it idle.
	if err := ops.AwaitDependencies(ctx, cfg.Logger, ops.Dependency{Name: "topics", Addr: strings.Join(cfg.Brokers, ","), Fatal: topics.Fatal,
		Ping: func(ctx context.Context) error {
			_, err := topics.Describe(ctx, kadm.NewClient(cl), cfg.CommandsTopic, []topics.Topic{
				{Name: cfg.CommandsTopic, Role: "commands topic, --commands-topic"},
				{Name: cfg.RecordsTopic, Role: "records topic, --records-topic", Output: true},
				{Name: cfg.ResultsTopic, Role: "results topic, --results-topic", Output: true},
			})
			return err
		}}); err != nil {
		return err
	}
	if err := Migrate(ctx, pool); err != nil {
		return err
	}
	if cfg.Ready != nil {
		cfg.Ready(map[string]func(context.Context) error{"postgres": pool.Ping, "kafka": cl.Ping})
	}
	w := &worker{cfg: cfg, mirror: NewMirror(pool), cl: cl, log: cfg.Logger}
	cfg.Logger.Info().Str("group", cfg.Group).Str("topic", cfg.CommandsTopic).Msg("writer started")
	for {
		fs := cl.PollRecords(ctx, 1000)
		if ctx.Err() != nil || fs.IsClientClosed() {
			cl.AllowRebalance()
			return nil
		}
		fs.EachError(func(topic string, p int32, err error) {
			w.log.Warn().Err(err).Str("topic", topic).Int32("partition", p).Msg("fetch error")
		})
		recs := fs.Records()
		if err := w.process(ctx, recs); err != nil {
			cl.AllowRebalance()
			if ctx.Err() != nil {
				// Uncommitted commands are redelivered and skipped as
				// duplicates (their record events re-emitted).
				return nil
			}
			return err
		}
		if len(recs) > 0 {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			err := cl.CommitRecords(cctx, recs...)
			cancel()
			if err != nil {
				w.log.Warn().Err(err).Msg("commit failed; the batch will be redelivered")
			}
		}
		cl.AllowRebalance()
	}
}

type worker struct {
	cfg    Config
	mirror *Mirror
	cl     *kgo.Client
	log    zerolog.Logger
}

// process applies recs in order and returns once every output is
// acknowledged.
func (w *worker) process(ctx context.Context, recs []*kgo.Record) error {
	var (
		mu      sync.Mutex
		failed  error
		pending sync.WaitGroup
	)
	produce := func(r *kgo.Record) {
		pending.Add(1)
		w.cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			defer pending.Done()
			if err != nil {
				mu.Lock()
				failed = errors.Join(failed, err)
				mu.Unlock()
			}
		})
	}
	for _, r := range recs {
		res, events, err := w.handle(ctx, r)
		if err != nil {
			pending.Wait()
			return err
		}
		for _, ev := range events {
			out, err := eventRecord(w.cfg.RecordsTopic, ev)
			if err != nil {
				pending.Wait()
				return err
			}
			produce(out)
		}
		out, err := resultRecord(w.cfg.ResultsTopic, r.Key, res, w.mirror.now())
		if err != nil {
			pending.Wait()
			return err
		}
		produce(out)
	}
	pending.Wait()
	if failed != nil {
		return fmt.Errorf("writer: produce: %w", failed)
	}
	return nil
}

// handle decodes and applies one command record, retrying transient
// database errors until ctx ends.
func (w *worker) handle(ctx context.Context, r *kgo.Record) (Result, []record.Event, error) {
	cmd, id, err := decodeCommand(r)
	if err != nil {
		w.log.Warn().Err(err).Str("command_id", id).Int32("partition", r.Partition).Int64("offset", r.Offset).
			Msg("invalid command record")
		return Result{CommandID: id, Outcome: OutcomeFailed, Reason: ReasonInvalidCommand}, nil, nil
	}
	backoff := 50 * time.Millisecond
	for {
		res, events, err := w.mirror.Apply(ctx, cmd)
		if err == nil {
			ev := w.log.Debug()
			if res.Outcome == OutcomeFailed || res.Outcome == OutcomeStale {
				ev = w.log.Info()
			}
			ev.Str("command_id", cmd.ID).Str("tenant", cmd.Tenant).Str("cluster_id", cmd.ClusterID).
				Str("kind", cmd.Kind).Str("outcome", res.Outcome).Str("reason", res.Reason).Msg("command")
			return res, events, nil
		}
		w.log.Warn().Err(err).Str("command_id", cmd.ID).Dur("backoff", backoff).Msg("apply failed; retrying")
		select {
		case <-ctx.Done():
			return Result{}, nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
