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
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/consumer"
	"github.com/leadconv/leadconv/ingest"
	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/internal/topics"
	"github.com/leadconv/leadconv/lifecycle"
)

// DefaultByTenantTopic is the internal topic the input is routed to.
const DefaultByTenantTopic = "leadconv.records.by-tenant"

// Config configures a Pipeline. Topics default to leadconv.records,
// leadconv.records.by-tenant, leadconv.commands and leadconv.dlq;
// ChangesTopic is off unless set.
type Config struct {
	Brokers      []string
	Group        string
	RecordsTopic string
	// ByTenantTopic is the internal topic, keyed by tenant, that the input
	// is routed to; its partitions bound the parallelism, and the worker of
	// each is the only writer of its tenants. Created, with as many
	// partitions as RecordsTopic, when missing.
	ByTenantTopic string
	// InputByTenant skips the hop: RecordsTopic is already keyed by tenant
	// (with Kafka's default partitioner), so its partitions are owned
	// directly.
	InputByTenant bool
	// Topics are the service's further topics (mass-conversion requests,
	// co-partitioned, and their results), checked by Prepare with the
	// pipeline's own.
	Topics []topics.Topic
	// ResultsTopic, when set, is read for the CRM writer's command.result
	// events, routed to the by-tenant topic keyed by tenant so each reaches
	// its tenant's owner (needs the by-tenant topic: not with
	// InputByTenant).
	ResultsTopic string
	// Requests, when set, processes mass-conversion requests: read from
	// RequestsTopic (required with it) by this group, routed to
	// the owned topic keyed by tenant, and handled by the tenant's owner in
	// order with its record events. It is given the pipeline's handler, the
	// lifecycle the requests plan through (History, Emitted).
	Requests      func(lifecycle *Handler) RequestHandler
	RequestsTopic string
	// CommandsTopic receives commands; a dry-run replay points it elsewhere.
	CommandsTopic string
	DLQTopic      string
	ChangesTopic  string
	// MaxRecordBytes bounds an input record (default
	// DefaultMaxRecordBytes); larger ones are dead-lettered as oversize.
	MaxRecordBytes int
	// MaxProduceBytes is the producer's record limit
	// (consumer.Config.MaxProduceBytes); New refuses a MaxRecordBytes that
	// would not fit it routed or dead-lettered whole.
	MaxProduceBytes int
	// Structured writes structured-mode CloudEvents instead of binary.
	Structured bool
	// LifecycleBytes bounds the owners' settled lifecycle entries
	// (HandlerConfig.LifecycleBytes).
	LifecycleBytes int64
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

// Pipeline is one member of the processing consumer group: it routes the
// input partitions assigned to it and owns the by-tenant partitions
// assigned to it.
type Pipeline struct {
	cfg     Config
	cons    *consumer.Consumer
	handler *Handler
}

// New wires a pipeline over the owners of its partitions and tenants; Run
// starts it.
func New(cfg Config, owners Owners, tenants Tenants) (*Pipeline, error) {
	if owners == nil || tenants == nil {
		return nil, errors.New("pipeline: owners and tenants are required")
	}
	if cfg.RecordsTopic == "" {
		cfg.RecordsTopic = "leadconv.records"
	}
	if cfg.ByTenantTopic == "" {
		cfg.ByTenantTopic = DefaultByTenantTopic
	}
	if cfg.Group == "" {
		cfg.Group = "leadconv"
	}
	if limit := MaxRecordBytesFor(cmp.Or(cfg.MaxProduceBytes, consumer.DefaultMaxProduceBytes)); cmp.Or(cfg.MaxRecordBytes, DefaultMaxRecordBytes) > limit {
		return nil, fmt.Errorf("pipeline: MaxRecordBytes %d: at most %d, what MaxProduceBytes takes with a dead letter's headers", cmp.Or(cfg.MaxRecordBytes, DefaultMaxRecordBytes), limit)
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
	outputs := map[string]string{cmp.Or(cfg.CommandsTopic, "leadconv.commands"): "commands", cmp.Or(cfg.DLQTopic, "leadconv.dlq"): "dead-letter", cfg.ChangesTopic: "changes", cfg.ByTenantTopic: "by-tenant"}
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
	if rt := cfg.ResultsTopic; rt != "" {
		switch {
		case cfg.InputByTenant:
			return nil, fmt.Errorf("pipeline: results topic %s: results reach their tenant's owner through the by-tenant topic, which --input-keyed-by-tenant skips", rt)
		case outputs[rt] != "":
			return nil, fmt.Errorf("pipeline: results topic %s is the %s topic", rt, outputs[rt])
		case slices.Contains(topics, rt):
			return nil, fmt.Errorf("pipeline: results topic %s is an input topic of records", rt)
		}
		topics = append(topics, rt)
	}
	hc := HandlerConfig{
		ResultsTopic:  cfg.ResultsTopic,
		CommandsTopic: cfg.CommandsTopic, ChangesTopic: cfg.ChangesTopic, MaxRecordBytes: cfg.MaxRecordBytes, MaxProduceBytes: cfg.MaxProduceBytes,
		Structured: cfg.Structured, Decode: cfg.Decode, Formats: formats, Logger: cfg.Logger, Metrics: pm,
		LifecycleBytes: cfg.LifecycleBytes,
		// Live, the settle windows also run on the wall clock: a pending
		// cluster is planned once due, with no new input.
		Clock: time.Now,
	}
	if cfg.ResultsTopic != "" {
		// With the writer's feedback a cluster's next plan waits for the
		// results of its last: composing on a conversion the CRM may still
		// refuse would plan on a contact that never exists.
		hc.Lifecycle = func(t *config.Tenant) lifecycle.Options {
			o := Settled(t)
			o.AwaitResults = true
			return o
		}
	}
	if cfg.Requests != nil {
		rt := cfg.RequestsTopic
		if rt == "" {
			return nil, errors.New("pipeline: Requests needs RequestsTopic")
		}
		if what := outputs[rt]; what != "" || rt == cfg.RecordsTopic || slices.ContainsFunc(cfg.Inputs, func(c ingest.Config) bool { return c.Topic == rt }) {
			return nil, fmt.Errorf("pipeline: requests topic %q is also the %s topic", rt, cmp.Or(what, "an input"))
		}
		topics = append(topics, rt)
		to := cfg.ByTenantTopic
		if cfg.InputByTenant {
			to = cfg.RecordsTopic
		}
		hc.Requests = Requests{Topic: rt, To: to}
	}
	switch {
	case !cfg.InputByTenant:
		hc.ByTenantTopic = cfg.ByTenantTopic
		topics = append(topics, cfg.ByTenantTopic)
	case len(cfg.Inputs) > 0:
		// A CRM's topics are keyed by record: only the hop gives their
		// tenants one owner.
		return nil, errors.New("pipeline: inputs need the by-tenant topic: they cannot be read with the input keyed by tenant (--input-keyed-by-tenant)")
	}
	h := NewHandler(hc, owners, tenants)
	if cfg.Requests != nil {
		h.cfg.Requests.Handler = cfg.Requests(h)
	}
	cons, err := consumer.New(consumer.Config{
		Brokers: cfg.Brokers, Group: cfg.Group, Topics: topics, DLQTopic: cfg.DLQTopic,
		MaxPollRecords: cfg.MaxPollRecords, CommitInterval: cfg.CommitInterval, RevokeGrace: cfg.ShutdownGrace,
		FetchMinBytes: cfg.FetchMinBytes, FetchMaxWait: cfg.FetchMaxWait,
		ResetOffset: cfg.ResetOffset, Processed: cfg.Processed, MaxProduceBytes: cfg.MaxProduceBytes,
		Opts: cfg.Opts, Logger: cfg.Logger, Metrics: cm,
	}, h)
	if err != nil {
		return nil, err
	}
	committed := cons.Committed
	h.committed.Store(&committed)
	return &Pipeline{cfg: cfg, cons: cons, handler: h}, nil
}

// MaxRecordBytesFor is the largest input record a producer limited to
// maxProduceBytes can route or dead-letter whole: the limit less the dead
// letter's headers and framing.
func MaxRecordBytesFor(maxProduceBytes int) int {
	return maxProduceBytes - consumer.DeadLetterOverhead
}

// OwnedTopic is the topic whose partitions have owners: the by-tenant
// topic, or the input itself when it is keyed by tenant already.
func (p *Pipeline) OwnedTopic() string {
	if p.cfg.InputByTenant {
		return p.cfg.RecordsTopic
	}
	return p.cfg.ByTenantTopic
}

// Run checks the topics (Prepare), then consumes until ctx is cancelled
// and stops gracefully: in-flight batches finish, their offsets are
// committed, the member leaves the group.
func (p *Pipeline) Run(ctx context.Context) error {
	if err := p.Prepare(ctx); err != nil {
		p.cons.Client().Close()
		if ctx.Err() != nil {
			return nil // stopped during start-up: nothing to drain
		}
		return err
	}
	return p.cons.Run(ctx)
}

// Prepare creates the by-tenant topic when it is missing, with as many
// partitions as the input, then checks every topic (Topics): each exists,
// the co-partitioned ones have as many partitions as the owned one (with
// the same key partitioner that is what sends a tenant's requests to the
// owner of its records), and the producer is capped per output topic by its
// max.message.bytes. An input of MaxRecordBytes must fit the dead-letter
// and by-tenant topics whole. Errors wrap topics.ErrMissing (wait for it)
// or topics.ErrInvalid (no wait mends it).
func (p *Pipeline) Prepare(ctx context.Context) error {
	adm := kadm.NewClient(p.cons.Client())
	owned := p.OwnedTopic()
	if !p.cfg.InputByTenant {
		details, err := adm.ListTopics(ctx, p.cfg.RecordsTopic, owned)
		if err != nil {
			return fmt.Errorf("pipeline: list topics: %w", err)
		}
		if d, ok := details[owned]; !ok || d.Err != nil {
			in, ok := details[p.cfg.RecordsTopic]
			if !ok || in.Err != nil {
				return fmt.Errorf("pipeline: topic %s (records topic): %w", p.cfg.RecordsTopic, topics.ErrMissing)
			}
			_, err := adm.CreateTopic(ctx, int32(len(in.Partitions)), -1, nil, owned)
			// Another member may have created it meanwhile.
			if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
				return fmt.Errorf("pipeline: create topic %s: %w", owned, err)
			}
			p.cfg.Logger.Info().Str("topic", owned).Int("partitions", len(in.Partitions)).Msg("created the by-tenant topic")
		}
	}
	ts := p.Topics()
	infos, err := topics.Describe(ctx, adm, owned, ts)
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	limits := map[string]int{}
	for _, t := range ts {
		if t.Output {
			limits[t.Name] = infos[t.Name].MaxMessageBytes
		}
	}
	p.cons.SetTopicLimits(limits)
	whole := []string{p.dlqTopic()}
	if !p.cfg.InputByTenant {
		whole = append(whole, owned)
	}
	rec := cmp.Or(p.cfg.MaxRecordBytes, DefaultMaxRecordBytes)
	for _, t := range whole {
		if limit := MaxRecordBytesFor(p.cons.Limit(t)); rec > limit {
			return fmt.Errorf("pipeline: --max-record-bytes %d exceeds what topic %s takes (max.message.bytes %d): at most %d, %d bytes go to a dead letter's headers: %w",
				rec, t, infos[t].MaxMessageBytes, limit, consumer.DeadLetterOverhead, topics.ErrInvalid)
		}
	}
	return nil
}

// Topics lists the topics the pipeline reads and writes, then
// Config.Topics.
func (p *Pipeline) Topics() []topics.Topic {
	ts := []topics.Topic{{Name: p.cfg.RecordsTopic, Role: "records topic"}}
	for i, in := range p.cfg.Inputs {
		if in.Topic != p.cfg.RecordsTopic {
			ts = append(ts, topics.Topic{Name: in.Topic, Role: fmt.Sprintf("config inputs[%d].topic", i)})
		}
		if in.Format == ingest.SalesforceCDC {
			ts = append(ts, topics.Topic{Name: cmp.Or(in.ResyncTopic, ingest.DefaultResyncTopic), Role: fmt.Sprintf("config inputs[%d].resync_topic", i), Output: true})
		}
	}
	if !p.cfg.InputByTenant {
		ts = append(ts, topics.Topic{Name: p.cfg.ByTenantTopic, Role: "by-tenant topic", Output: true})
	}
	ts = append(ts,
		topics.Topic{Name: cmp.Or(p.cfg.CommandsTopic, "leadconv.commands"), Role: "commands topic", Output: true},
		topics.Topic{Name: p.dlqTopic(), Role: "dead-letter topic", Output: true})
	if p.cfg.ChangesTopic != "" {
		ts = append(ts, topics.Topic{Name: p.cfg.ChangesTopic, Role: "changes topic", Output: true})
	}
	if p.cfg.Requests != nil {
		ts = append(ts, topics.Topic{Name: p.cfg.RequestsTopic, Role: "mass-conversion requests topic"})
	}
	if p.cfg.ResultsTopic != "" {
		ts = append(ts, topics.Topic{Name: p.cfg.ResultsTopic, Role: "the writer's results topic, --command-results-topic"})
	}
	return append(ts, p.cfg.Topics...)
}

func (p *Pipeline) dlqTopic() string { return cmp.Or(p.cfg.DLQTopic, "leadconv.dlq") }

// Limit is the largest record batch produced to topic (Prepare caps it by
// the topic's max.message.bytes).
func (p *Pipeline) Limit(topic string) int { return p.cons.Limit(topic) }

// Client is the Kafka client, for readiness checks (Ping).
func (p *Pipeline) Client() *kgo.Client { return p.cons.Client() }

// Retrying names the partitions whose batch waits out a transient failure
// (Redis or the broker unavailable), nil when none: a readiness check.
func (p *Pipeline) Retrying() error { return p.cons.Retrying() }

// Handler is the batch handler the pipeline runs.
func (p *Pipeline) Handler() *Handler { return p.handler }
