// Package pipeline glues leadconv's parts into the stream processor: decode
// each input record, apply the batch to the matcher in one call, plan every
// changed cluster with the engine under its tenant's configuration, and
// return the commands as CloudEvents records for the consumer to produce
// before it commits the batch.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/consumer"
	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/events"
	"github.com/leadconv/leadconv/ingest"
	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/record"
)

// Store is what the pipeline needs of the matcher's store.
type Store interface {
	Apply(ctx context.Context, events []record.Event) ([]matcher.Change, error)
	ResolveAccounts(ctx context.Context, tenant string, values []string) (map[string]string, error)
}

// Tenants resolves a tenant's configuration.
type Tenants interface {
	Tenant(name string) (*config.Tenant, error)
}

var (
	_ Store   = (*matcher.Store)(nil)
	_ Tenants = (*config.File)(nil)
)

// DefaultMaxRecordBytes bounds an input record (1 MiB).
const DefaultMaxRecordBytes = 1 << 20

// HandlerConfig configures a Handler.
type HandlerConfig struct {
	// CommandsTopic receives the commands (default leadconv.commands).
	CommandsTopic string
	// ChangesTopic, when set, receives a cluster.changed event per change.
	ChangesTopic string
	// MaxRecordBytes bounds an input record's value (default 1 MiB).
	MaxRecordBytes int
	// Structured writes structured-mode CloudEvents instead of binary.
	Structured bool
	// Decode decodes a record event payload (default DecodeEvent).
	Decode Decoder
	// Formats decode the topics that carry a CRM's own format, by topic;
	// other topics carry record events.
	Formats map[string]Format
	Logger  zerolog.Logger
	Metrics *Metrics
}

// Handler processes batches of input records. It holds no per-batch state
// and is safe for concurrent use by the consumer's partition workers.
type Handler struct {
	cfg      HandlerConfig
	store    Store
	tenants  Tenants
	commands events.Encoder
	changes  events.Encoder
	metrics  *Metrics
	log      zerolog.Logger
}

var _ consumer.Handler = (*Handler)(nil)

// Format decodes one message of a CRM format into its events and the
// records (resync requests) to produce with the batch.
type Format interface {
	Decode(r *kgo.Record, maxBytes int) (ingest.Decoded, error)
}

var _ Format = (*ingest.Decoder)(nil)

// NewHandler returns a handler over store and tenants.
func NewHandler(cfg HandlerConfig, store Store, tenants Tenants) *Handler {
	if cfg.CommandsTopic == "" {
		cfg.CommandsTopic = "leadconv.commands"
	}
	if cfg.MaxRecordBytes <= 0 {
		cfg.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if cfg.Decode == nil {
		cfg.Decode = DecodeEvent
	}
	return &Handler{
		cfg: cfg, store: store, tenants: tenants, metrics: cfg.Metrics, log: cfg.Logger,
		commands: events.Encoder{Topic: cfg.CommandsTopic, Structured: cfg.Structured},
		changes:  events.Encoder{Topic: cfg.ChangesTopic, Structured: cfg.Structured},
	}
}

// input is one decoded record of a batch.
type input struct {
	rec *kgo.Record
	ev  record.Event
}

// Handle processes one batch of one partition (consumer.Handler). Records
// that cannot be decoded, or that the store refuses, are returned as poison;
// any other error is transient and the whole batch is retried. Handling the
// same batch again returns the same records: the store reports replayed
// events' current clusters and the engine's command ids are deterministic.
func (h *Handler) Handle(ctx context.Context, _ string, _ int32, recs []*kgo.Record) (consumer.Result, error) {
	var res consumer.Result
	ins := make([]input, 0, len(recs))
	var extra []*kgo.Record
	for _, r := range recs {
		var err error
		ins, extra, err = h.decode(ins, extra, r)
		if err != nil {
			rej, ok := Rejected(err)
			if !ok {
				return consumer.Result{}, err
			}
			res.Poison = append(res.Poison, consumer.Poison{Record: r, Code: rej.Code, Reason: rej.Reason})
		}
	}
	changes, ins, refused, err := h.apply(ctx, ins)
	if err != nil {
		return consumer.Result{}, err
	}
	for i, r := range refused {
		// A message of several events is dead-lettered once.
		if i > 0 && refused[i-1] == r {
			continue
		}
		res.Poison = append(res.Poison, consumer.Poison{Record: r, Code: CodeInvalidEvent})
	}
	out, types, err := h.plan(ctx, ins, changes)
	if err != nil {
		return consumer.Result{}, err
	}
	res.Out = append(out, extra...)
	if m := h.metrics; m != nil {
		for _, in := range ins {
			m.EventsIn.WithLabelValues(string(in.ev.Object), string(in.ev.Op)).Inc()
		}
		for _, t := range types {
			m.CommandsOut.WithLabelValues(t).Inc()
		}
	}
	return res, nil
}

// decode appends the events of one input record to ins, and to out the
// records it calls for: a record event, or a message of the CRM format its
// topic carries (which can name several records, or ask for a resync).
func (h *Handler) decode(ins []input, out []*kgo.Record, r *kgo.Record) ([]input, []*kgo.Record, error) {
	if f, ok := h.cfg.Formats[r.Topic]; ok {
		d, err := f.Decode(r, h.cfg.MaxRecordBytes)
		if err != nil {
			return ins, out, err
		}
		for _, ev := range d.Events {
			ins = append(ins, input{rec: r, ev: ev})
		}
		return ins, append(out, d.Out...), nil
	}
	if len(r.Value) > h.cfg.MaxRecordBytes {
		return ins, out, &DecodeError{Code: CodeOversize, Detail: "record value over the limit"}
	}
	b, err := events.Payload(r)
	if err != nil {
		return ins, out, err
	}
	ev, err := h.cfg.Decode(b, h.cfg.MaxRecordBytes)
	if err != nil {
		return ins, out, err
	}
	return append(ins, input{rec: r, ev: ev}), out, nil
}

// apply applies the batch's events in one store call. Should the store
// refuse an event the decoder let through, the batch is applied event by
// event (a replay for those already applied) to dead-letter only the
// refused ones; ins is returned without them.
func (h *Handler) apply(ctx context.Context, ins []input) ([]matcher.Change, []input, []*kgo.Record, error) {
	if len(ins) == 0 {
		return nil, ins, nil, nil
	}
	evs := make([]record.Event, len(ins))
	for i := range ins {
		evs[i] = ins[i].ev
	}
	changes, err := h.store.Apply(ctx, evs)
	if err == nil {
		return changes, ins, nil, nil
	}
	if !errors.Is(err, matcher.ErrInvalidEvent) {
		return nil, nil, nil, fmt.Errorf("pipeline: apply: %w", err)
	}
	var refused []*kgo.Record
	kept := ins[:0:0]
	changes = changes[:0]
	for _, in := range ins {
		cs, err := h.store.Apply(ctx, []record.Event{in.ev})
		if errors.Is(err, matcher.ErrInvalidEvent) {
			refused = append(refused, in.rec)
			continue
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("pipeline: apply: %w", err)
		}
		for _, c := range cs {
			c.Index = len(kept)
			changes = append(changes, c)
		}
		kept = append(kept, in)
	}
	return changes, kept, refused, nil
}

// plan plans every changed cluster that still exists, in the order of the
// events that changed them, and encodes the commands (and, when enabled,
// one cluster.changed event per change).
func (h *Handler) plan(ctx context.Context, ins []input, changes []matcher.Change) (out []*kgo.Record, types []string, err error) {
	if len(changes) == 0 {
		return nil, nil, nil
	}
	tenants := map[string]*config.Tenant{}
	values := map[string][]string{}
	// Each cluster is prepared once for its account lookup and its plan.
	preps := make([]*engine.Prepared, len(changes))
	want := make([][]string, len(changes))
	for i, c := range changes {
		t := tenants[c.Tenant]
		if t == nil {
			var err error
			if t, err = h.tenants.Tenant(c.Tenant); err != nil {
				return nil, nil, fmt.Errorf("pipeline: tenant %s: %w", c.Tenant, err)
			}
			tenants[c.Tenant] = t
		}
		if c.Removed {
			continue
		}
		preps[i] = engine.Prepare(t.Engine, engine.Cluster{Tenant: c.Tenant, ID: c.ClusterID, Version: c.Version, Records: c.Members})
		want[i] = preps[i].AccountValues()
		for _, v := range want[i] {
			// The matcher read most with the change itself.
			if _, ok := c.Accounts[v]; !ok {
				values[c.Tenant] = append(values[c.Tenant], v)
			}
		}
	}
	// One account lookup per tenant and batch for the rest.
	accounts := map[string]map[string]string{}
	for tenant, vs := range values {
		slices.Sort(vs)
		got, err := h.store.ResolveAccounts(ctx, tenant, slices.Compact(vs))
		if err != nil {
			return nil, nil, fmt.Errorf("pipeline: resolve accounts of %s: %w", tenant, err)
		}
		accounts[tenant] = got
	}
	for i, c := range changes {
		in := ins[c.Index]
		at := in.ev.ModifiedAt
		if at.IsZero() {
			at = in.rec.Timestamp
		}
		if h.cfg.ChangesTopic != "" {
			origin := &events.Origin{Topic: in.rec.Topic, Partition: in.rec.Partition, Offset: in.rec.Offset}
			r, err := h.changes.ClusterChanged(events.NewClusterChanged(c, origin), at)
			if err != nil {
				return nil, nil, err
			}
			out = append(out, r)
		}
		if c.Removed {
			continue
		}
		var acc map[string]string
		if len(want[i]) > 0 {
			acc = make(map[string]string, len(want[i]))
			for _, v := range want[i] {
				id, ok := c.Accounts[v]
				if !ok {
					id = accounts[c.Tenant][v]
				}
				if id != "" {
					acc[v] = id
				}
			}
		}
		res := preps[i].Plan(acc)
		if out, err = h.commands.Commands(out, res.Commands, at); err != nil {
			return nil, nil, err
		}
		for _, cmd := range res.Commands {
			types = append(types, cmd.Type())
		}
	}
	return out, types, nil
}
