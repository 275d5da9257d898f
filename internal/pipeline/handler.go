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

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/consumer"
	"github.com/leadconv/leadconv/events"
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
	// Planner plans the changed clusters (default EachChange).
	Planner Planner
	Logger  zerolog.Logger
	Metrics *Metrics
}

// Handler processes batches of input records. It is safe for concurrent use
// by the consumer's partition workers; its Planner keeps what was emitted
// per cluster between batches.
type Handler struct {
	cfg      HandlerConfig
	store    Store
	tenants  Tenants
	commands events.Encoder
	changes  events.Encoder
	planner  Planner
	metrics  *Metrics
	log      zerolog.Logger
}

var _ consumer.Handler = (*Handler)(nil)

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
	if cfg.Planner == nil {
		cfg.Planner = EachChange{}
	}
	return &Handler{
		cfg: cfg, store: store, tenants: tenants, planner: cfg.Planner, metrics: cfg.Metrics, log: cfg.Logger,
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
	for _, r := range recs {
		ev, err := h.decode(r)
		if err != nil {
			code, ok := ErrorCode(err)
			if !ok {
				return consumer.Result{}, err
			}
			res.Poison = append(res.Poison, consumer.Poison{Record: r, Code: code})
			continue
		}
		ins = append(ins, input{rec: r, ev: ev})
	}
	changes, ins, refused, err := h.apply(ctx, ins)
	if err != nil {
		return consumer.Result{}, err
	}
	for _, r := range refused {
		res.Poison = append(res.Poison, consumer.Poison{Record: r, Code: CodeInvalidEvent})
	}
	out, types, err := h.plan(ctx, ins, changes)
	if err != nil {
		return consumer.Result{}, err
	}
	res.Out = out
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

func (h *Handler) decode(r *kgo.Record) (record.Event, error) {
	if len(r.Value) > h.cfg.MaxRecordBytes {
		return record.Event{}, &DecodeError{CodeOversize, "record value over the limit"}
	}
	b, err := events.Payload(r)
	if err != nil {
		return record.Event{}, err
	}
	return h.cfg.Decode(b, h.cfg.MaxRecordBytes)
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

// plan encodes, when enabled, one cluster.changed event per change, and
// the commands of the plans the planner says are due.
func (h *Handler) plan(ctx context.Context, ins []input, changes []matcher.Change) (out []*kgo.Record, types []string, err error) {
	if len(changes) == 0 {
		return nil, nil, nil
	}
	tenants := map[string]*config.Tenant{}
	changed := make([]Changed, len(changes))
	for i, c := range changes {
		t := tenants[c.Tenant]
		if t == nil {
			var err error
			if t, err = h.tenants.Tenant(c.Tenant); err != nil {
				return nil, nil, fmt.Errorf("pipeline: tenant %s: %w", c.Tenant, err)
			}
			tenants[c.Tenant] = t
		}
		in := ins[c.Index]
		at := in.ev.ModifiedAt
		if at.IsZero() {
			at = in.rec.Timestamp
		}
		changed[i] = Changed{Change: c, Tenant: t, At: at}
		if h.cfg.ChangesTopic != "" {
			origin := &events.Origin{Topic: in.rec.Topic, Partition: in.rec.Partition, Offset: in.rec.Offset}
			r, err := h.changes.ClusterChanged(events.NewClusterChanged(c, origin), at)
			if err != nil {
				return nil, nil, err
			}
			out = append(out, r)
		}
	}
	plans, err := h.planner.Plan(ctx, changed, h.store.ResolveAccounts)
	if err != nil {
		return nil, nil, err
	}
	return h.encode(out, types, plans)
}

func (h *Handler) encode(out []*kgo.Record, types []string, plans []Planned) ([]*kgo.Record, []string, error) {
	var err error
	for _, p := range plans {
		if out, err = h.commands.Commands(out, p.Commands, p.At); err != nil {
			return nil, nil, err
		}
		for _, cmd := range p.Commands {
			types = append(types, cmd.Type())
		}
	}
	return out, types, nil
}

// Flush returns the commands of every plan the planner still holds back
// (a settle window), at the end of the input (simulate, replay).
func (h *Handler) Flush(ctx context.Context) ([]*kgo.Record, error) {
	f, ok := h.planner.(Flusher)
	if !ok {
		return nil, nil
	}
	plans, err := f.Flush(ctx, h.store.ResolveAccounts)
	if err != nil {
		return nil, err
	}
	out, types, err := h.encode(nil, nil, plans)
	if m := h.metrics; m != nil && err == nil {
		for _, t := range types {
			m.CommandsOut.WithLabelValues(t).Inc()
		}
	}
	return out, err
}
