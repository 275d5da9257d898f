// Package pipeline glues leadconv's parts into the stream processor. Input
// records are first routed to the by-tenant topic (keyed by tenant, each
// record's order kept); each partition of that topic has one owner, the
// single writer of its tenants' matcher state. The owner's handler decodes
// each record, applies the batch to the matcher in one call, plans every
// changed cluster with the engine under its tenant's configuration, and
// returns the commands as CloudEvents records for the consumer to produce
// before it commits the batch.
package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/consumer"
	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/events"
	"github.com/leadconv/leadconv/ingest"
	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/internal/parallel"
	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/record"
)

// Owner is what the pipeline needs of the matcher: the single writer of
// the tenants of one by-tenant partition (matcher.Store).
type Owner interface {
	Apply(ctx context.Context, events []record.Event) ([]matcher.Change, error)
	ResolveAccounts(ctx context.Context, tenant string, values []string) (map[string]string, error)
	// Close drops the owner's resident state once its partition is gone.
	Close()
}

// Owners makes the owner of a partition, when the handler gets the first
// batch of it after it was assigned.
type Owners func() Owner

// Tenants resolves a tenant's configuration.
type Tenants interface {
	Tenant(name string) (*config.Tenant, error)
}

var (
	_ Owner   = (*matcher.Store)(nil)
	_ Tenants = (*config.File)(nil)
)

// DefaultMaxRecordBytes bounds an input record (960 KiB): routed or
// dead-lettered whole, it stays within the producer's default limit
// (consumer.DefaultMaxProduceBytes, 1,000,012 bytes) with room for headers.
const DefaultMaxRecordBytes = 960 << 10

// HandlerConfig configures a Handler.
type HandlerConfig struct {
	// CommandsTopic receives the commands (default leadconv.commands).
	CommandsTopic string
	// ChangesTopic, when set, receives a cluster.changed event per change.
	ChangesTopic string
	// MaxRecordBytes bounds an input record's value (default
	// DefaultMaxRecordBytes).
	MaxRecordBytes int
	// MaxProduceBytes is the producer's record limit (default
	// consumer.DefaultMaxProduceBytes): a plan with a larger command
	// becomes a review.requested (engine.ReasonCommandTooLarge).
	MaxProduceBytes int
	// Structured writes structured-mode CloudEvents instead of binary.
	Structured bool
	// ByTenantTopic, when set, is the topic the owners read: records of
	// every other topic are input, routed to it keyed by tenant instead of
	// being processed.
	ByTenantTopic string
	// ResultsTopic, when set, is the topic of the CRM writer's
	// command.result events: input like the records, routed to the
	// by-tenant topic keyed by tenant, where the tenant's owner hands each to
	// the planner (ResultPlanner). Other leadconv events on it (request
	// events share it by default) are not input and are skipped.
	ResultsTopic string
	// Decode decodes a record event payload (default DecodeEvent).
	Decode Decoder
	// Formats decode the topics that carry a CRM's own format, by topic;
	// other topics carry record events.
	Formats map[string]Format
	// Planner plans the changed clusters (default EachChange).
	Planner Planner
	// Requests, when its Handler is set, routes mass-conversion requests
	// to their tenants' owners (requests.go).
	Requests Requests
	Logger   zerolog.Logger
	Metrics  *Metrics
}

// Handler processes batches of input records: it routes the input topics'
// and, for each partition of the by-tenant topic, runs that partition's
// owner. It is safe for concurrent use by the consumer's partition workers,
// one per partition; its Planner keeps what was emitted per cluster between
// batches.
type Handler struct {
	cfg      HandlerConfig
	owners   Owners
	tenants  Tenants
	mu       sync.Mutex
	active   map[partitionKey]Owner
	byTenant map[string]Owner // the owner that last applied a tenant: Flush's accounts
	commands events.Encoder
	changes  events.Encoder
	planner  Planner
	metrics  *Metrics
	log      zerolog.Logger
	// committed reports whether the group committed offsets of a partition
	// (the consumer's): its new owner then expects the namespace's state.
	committed func(topic string, partition int32) bool
	lost      atomic.Pointer[error] // the first ErrStateLost, for /readyz
}

// stateExpecter is an owner told that state was written before
// (matcher.Store.ExpectState).
type stateExpecter interface{ ExpectState() }

// StateLost returns the error of the first owner that found the
// namespace's state lost (matcher.ErrStateLost), naming the command that
// rebuilds it; nil otherwise. A readiness check.
func (h *Handler) StateLost() error {
	if e := h.lost.Load(); e != nil {
		return *e
	}
	return nil
}

var (
	_ consumer.Handler  = (*Handler)(nil)
	_ consumer.Releaser = (*Handler)(nil)
)

// Format decodes one message of a CRM format into its events and the
// records (resync requests) to produce with the batch.
type Format interface {
	Decode(r *kgo.Record, maxBytes int) (ingest.Decoded, error)
}

var _ Format = (*ingest.Decoder)(nil)

type partitionKey struct {
	topic     string
	partition int32
}

// NewHandler returns a handler whose partitions' owners come from owners.
func NewHandler(cfg HandlerConfig, owners Owners, tenants Tenants) *Handler {
	if cfg.CommandsTopic == "" {
		cfg.CommandsTopic = "leadconv.commands"
	}
	if cfg.MaxRecordBytes <= 0 {
		cfg.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if cfg.MaxProduceBytes <= 0 {
		cfg.MaxProduceBytes = consumer.DefaultMaxProduceBytes
	}
	if cfg.Decode == nil {
		cfg.Decode = DecodeEvent
	}
	if cfg.Planner == nil {
		cfg.Planner = EachChange{}
	}
	return &Handler{
		cfg: cfg, owners: owners, tenants: tenants, planner: cfg.Planner, metrics: cfg.Metrics, log: cfg.Logger,
		active: map[partitionKey]Owner{}, byTenant: map[string]Owner{},
		commands: events.Encoder{Topic: cfg.CommandsTopic, Structured: cfg.Structured},
		changes:  events.Encoder{Topic: cfg.ChangesTopic, Structured: cfg.Structured},
	}
}

// input is one decoded record of a batch: an event, or a writer's result.
type input struct {
	rec *kgo.Record
	ev  record.Event
	res *events.CommandResult
}

// owner returns the partition's owner, made on its first batch.
func (h *Handler) owner(topic string, partition int32) Owner {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := partitionKey{topic, partition}
	o := h.active[k]
	if o == nil {
		o = h.owners()
		if x, ok := o.(stateExpecter); ok && h.committed != nil && h.committed(topic, partition) {
			x.ExpectState()
		}
		h.active[k] = o
	}
	return o
}

// Release ends the partition's owner (consumer.Releaser): once its worker
// stopped, the partition belongs to whoever the group gives it to, and if
// that is this process again, a new owner takes its tenants afresh.
func (h *Handler) Release(topic string, partition int32) {
	h.mu.Lock()
	k := partitionKey{topic, partition}
	o := h.active[k]
	delete(h.active, k)
	for t, to := range h.byTenant {
		if to == o {
			delete(h.byTenant, t)
		}
	}
	h.mu.Unlock()
	if o != nil {
		o.Close()
	}
}

// Handle processes one batch of one partition (consumer.Handler). Records
// that cannot be decoded, or that the store refuses, are returned as poison;
// any other error fails the batch, for the consumer to classify
// (consumer.Classify: a Redis outage is transient and retried). Handling the
// same batch again returns the same records: the store reports replayed
// events' current clusters and the engine's command ids are deterministic.
func (h *Handler) Handle(ctx context.Context, topic string, partition int32, recs []*kgo.Record) (consumer.Result, error) {
	if h.cfg.Requests.Handler != nil {
		if res, ok, err := h.requests(ctx, topic, partition, recs); ok {
			return res, err
		}
	}
	ins, extra, res, err := h.decodeAll(recs)
	if err != nil {
		return consumer.Result{}, err
	}
	if h.cfg.ByTenantTopic != "" && topic != h.cfg.ByTenantTopic {
		return h.route(ins, res, extra)
	}
	own := h.owner(topic, partition)
	ins, results := splitResults(ins)
	changes, ins, refused, err := h.apply(ctx, own, ins)
	if err != nil {
		return consumer.Result{}, err
	}
	if _, ok := h.planner.(Flusher); ok {
		h.mu.Lock()
		for _, in := range ins {
			h.byTenant[in.ev.Tenant] = own
		}
		h.mu.Unlock()
	}
	for i, r := range refused {
		// A message of several events is dead-lettered once.
		if i > 0 && refused[i-1] == r {
			continue
		}
		res.Poison = append(res.Poison, consumer.Poison{Record: r, Code: CodeInvalidEvent})
	}
	out, types, err := h.plan(ctx, own, ins, changes)
	if err != nil {
		return consumer.Result{}, err
	}
	// After the batch's events: the record events a writer emits for a
	// command precede its result.
	out, types, err = h.results(ctx, own, results, out, types)
	if err != nil {
		return consumer.Result{}, err
	}
	res.Out = append(out, extra...)
	if m := h.metrics; m != nil {
		for _, in := range ins {
			m.EventsIn.WithLabelValues(string(in.ev.Object), string(in.ev.Op)).Inc()
		}
		for _, in := range results {
			m.CommandResults.WithLabelValues(in.res.Outcome, reasonLabel(in.res.Reason)).Inc()
		}
		for _, t := range types {
			m.CommandsOut.WithLabelValues(t).Inc()
		}
	}
	return res, nil
}

// decodeAll decodes the batch, in parallel chunks: records that can never
// be decoded are poison; another error fails the batch. A message of a
// CRM's format can yield several events, and records to produce with the
// batch (extra: resync requests).
func (h *Handler) decodeAll(recs []*kgo.Record) (ins []input, extra []*kgo.Record, res consumer.Result, err error) {
	decs := make([]ingest.Decoded, len(recs))
	results := make([]*events.CommandResult, len(recs))
	errs := make([]error, len(recs))
	parallel.Chunks(len(recs), 128, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			if !h.isResult(recs[i]) {
				decs[i], errs[i] = h.decode(recs[i])
				continue
			}
			res, ok, err := decodeResult(recs[i], h.cfg.MaxRecordBytes)
			if ok {
				results[i] = &res
			}
			errs[i] = err
		}
	})
	ins = make([]input, 0, len(recs))
	for i, r := range recs {
		if err := errs[i]; err != nil {
			rej, ok := Rejected(err)
			if !ok {
				return nil, nil, consumer.Result{}, err
			}
			res.Poison = append(res.Poison, consumer.Poison{Record: r, Code: rej.Code, Reason: rej.Reason})
			continue
		}
		if results[i] != nil {
			ins = append(ins, input{rec: r, res: results[i]})
		}
		for _, ev := range decs[i].Events {
			ins = append(ins, input{rec: r, ev: ev})
		}
		extra = append(extra, decs[i].Out...)
	}
	return ins, extra, res, nil
}

// isResult reports whether r carries a writer's result: a record of the
// results topic, or one routed from it (its ce_type says so).
func (h *Handler) isResult(r *kgo.Record) bool {
	if _, ok := h.cfg.Formats[r.Topic]; ok {
		return false
	}
	if h.cfg.ResultsTopic != "" && r.Topic == h.cfg.ResultsTopic {
		return true
	}
	for _, hd := range r.Headers {
		if strings.EqualFold(hd.Key, events.HeaderPrefix+"type") {
			return string(hd.Value) == events.TypeCommandResult
		}
	}
	return false
}

// splitResults returns the events and the results of ins, each in order.
func splitResults(ins []input) (evs, results []input) {
	evs = ins[:0:0]
	for _, in := range ins {
		if in.res != nil {
			results = append(results, in)
		} else {
			evs = append(evs, in)
		}
	}
	return evs, results
}

// HeaderEcho marks an event as the echo of leadconv's own writer
// (record.Event.Echo), which the record event's JSON does not carry: set by
// a CRM writer (the reference writer does) or by the routing of a CRM
// format's event.
const HeaderEcho = events.HeaderEcho

// route forwards the decoded events to the by-tenant topic, keyed by
// tenant, in order: with the key partitioner every event of a tenant lands
// on one partition, so that partition's owner is the only writer of the
// tenant, and one record's events keep their order. A record event goes on
// as it came; an event decoded from a CRM's format goes on as a record
// event. Bad input is dead-lettered here, with its original coordinates, and
// extra (resync requests) is produced with the batch. The consumer commits
// the input's offsets only once the broker acknowledged the routed records.
func (h *Handler) route(ins []input, res consumer.Result, extra []*kgo.Record) (consumer.Result, error) {
	res.Out = make([]*kgo.Record, len(ins), len(ins)+len(extra))
	nEvents := 0
	for i, in := range ins {
		if in.res != nil {
			r, err := routedResult(h.cfg.ByTenantTopic, in)
			if err != nil {
				return consumer.Result{}, err
			}
			res.Out[i] = r
			continue
		}
		nEvents++
		// The input's timestamp stays: latency and event time count from it.
		out := &kgo.Record{Topic: h.cfg.ByTenantTopic, Key: []byte(in.ev.Tenant), Value: in.rec.Value, Headers: in.rec.Headers, Timestamp: in.rec.Timestamp}
		if _, ok := h.cfg.Formats[in.rec.Topic]; ok {
			b, err := json.Marshal(in.ev)
			if err != nil {
				return consumer.Result{}, fmt.Errorf("pipeline: route %s/%s: %w", in.ev.Object, in.ev.ID, err)
			}
			out.Value, out.Headers = b, nil
			if in.ev.Echo {
				out.Headers = []kgo.RecordHeader{{Key: HeaderEcho, Value: []byte("1")}}
			}
		}
		res.Out[i] = out
	}
	res.Out = append(res.Out, extra...)
	if m := h.metrics; m != nil {
		m.Routed.Add(float64(nEvents))
	}
	return res, nil
}

// routedResult is a writer's result as the router forwards it, keyed by
// its tenant and marked by its ce_type: a binary-mode CloudEvent as it came,
// a structured one as binary.
func routedResult(topic string, in input) (*kgo.Record, error) {
	out := &kgo.Record{Topic: topic, Key: []byte(in.res.Tenant), Value: in.rec.Value, Headers: in.rec.Headers, Timestamp: in.rec.Timestamp}
	for _, hd := range in.rec.Headers {
		if strings.EqualFold(hd.Key, events.HeaderPrefix+"specversion") {
			return out, nil
		}
	}
	b, err := json.Marshal(in.res)
	if err != nil {
		return nil, fmt.Errorf("pipeline: route result %s: %w", in.res.CommandID, err)
	}
	out.Value = b
	out.Headers = []kgo.RecordHeader{
		{Key: events.HeaderPrefix + "specversion", Value: []byte(events.SpecVersion)},
		{Key: events.HeaderPrefix + "type", Value: []byte(events.TypeCommandResult)},
		{Key: events.HeaderContentType, Value: []byte(events.ContentJSON)},
	}
	return out, nil
}

// results hands the batch's writer results, in order, to a planner that
// awaits them (ResultPlanner) and appends the commands of the plans they
// made due; without one, results are only counted.
func (h *Handler) results(ctx context.Context, own Owner, ins []input, out []*kgo.Record, types []string) ([]*kgo.Record, []string, error) {
	rp, ok := h.planner.(ResultPlanner)
	var plans []Planned
	for _, in := range ins {
		if rq := h.cfg.Requests.Handler; rq != nil && in.res.RequestID != "" {
			// The request's summary of outcomes, once all arrived.
			recs, err := rq.Outcome(ctx, *in.res)
			if err != nil {
				return nil, nil, err
			}
			out = append(out, recs...)
		}
		if !ok {
			continue
		}
		// The result's time: when the writer reported it.
		ps, err := rp.Result(ctx, in.res.Tenant, lifecycleResult(*in.res), in.rec.Timestamp, own.ResolveAccounts)
		if err != nil {
			return nil, nil, err
		}
		plans = append(plans, ps...)
	}
	return h.encode(out, types, plans)
}

// reasonLabel bounds the reason label of the results metric: a writer's
// reasons are codes (snake_case); anything else counts as "other".
func reasonLabel(reason string) string {
	if len(reason) > 40 {
		return "other"
	}
	for _, c := range reason {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return "other"
		}
	}
	return reason
}

// decode decodes one input record: a record event, or a message of the CRM
// format its topic carries (which can name several records, or ask for a
// resync).
func (h *Handler) decode(r *kgo.Record) (ingest.Decoded, error) {
	if f, ok := h.cfg.Formats[r.Topic]; ok {
		return f.Decode(r, h.cfg.MaxRecordBytes)
	}
	if len(r.Value) > h.cfg.MaxRecordBytes {
		return ingest.Decoded{}, &DecodeError{Code: CodeOversize, Detail: "record value over the limit"}
	}
	b, err := events.Payload(r)
	if err != nil {
		return ingest.Decoded{}, err
	}
	ev, err := h.cfg.Decode(b, h.cfg.MaxRecordBytes)
	if err != nil {
		return ingest.Decoded{}, err
	}
	for _, hd := range r.Headers {
		if hd.Key == HeaderEcho {
			ev.Echo = true
		}
	}
	return ingest.Decoded{Events: []record.Event{ev}}, nil
}

// apply applies the batch's events in one store call. Should the store
// refuse an event the decoder let through, the batch is applied event by
// event (a replay for those already applied) to dead-letter only the
// refused ones; ins is returned without them.
func (h *Handler) apply(ctx context.Context, own Owner, ins []input) ([]matcher.Change, []input, []*kgo.Record, error) {
	if len(ins) == 0 {
		return nil, ins, nil, nil
	}
	evs := make([]record.Event, len(ins))
	for i := range ins {
		evs[i] = ins[i].ev
	}
	changes, err := own.Apply(ctx, evs)
	if err == nil {
		return changes, ins, nil, nil
	}
	if errors.Is(err, matcher.ErrFenced) {
		// Another owner took a tenant of the partition: this one is a
		// zombie, and retrying can never succeed.
		return nil, nil, nil, fmt.Errorf("pipeline: apply: %w: %w", consumer.ErrPartitionLost, err)
	}
	if errors.Is(err, matcher.ErrStateLost) {
		// Applying on top of lost state would build partial records: the
		// partition stops until the namespace is rebuilt.
		if h.lost.CompareAndSwap(nil, &err) {
			h.log.Error().Err(err).Msg("matcher state lost: not applying")
		}
		return nil, nil, nil, fmt.Errorf("pipeline: apply: %w: %w", consumer.ErrPartitionLost, err)
	}
	if !errors.Is(err, matcher.ErrInvalidEvent) {
		return nil, nil, nil, fmt.Errorf("pipeline: apply: %w", err)
	}
	var refused []*kgo.Record
	kept := ins[:0:0]
	changes = changes[:0]
	for _, in := range ins {
		cs, err := own.Apply(ctx, []record.Event{in.ev})
		if errors.Is(err, matcher.ErrInvalidEvent) {
			refused = append(refused, in.rec)
			continue
		}
		if errors.Is(err, matcher.ErrFenced) {
			return nil, nil, nil, fmt.Errorf("pipeline: apply: %w: %w", consumer.ErrPartitionLost, err)
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
func (h *Handler) plan(ctx context.Context, own Owner, ins []input, changes []matcher.Change) (out []*kgo.Record, types []string, err error) {
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
		changed[i] = Changed{Change: c, Tenant: t, At: at, Echo: in.ev.Echo, Conversion: conversionOf(t, &in.ev)}
		if h.cfg.ChangesTopic != "" {
			origin := &events.Origin{Topic: in.rec.Topic, Partition: in.rec.Partition, Offset: in.rec.Offset}
			r, err := h.changes.ClusterChanged(events.NewClusterChanged(c, origin), at)
			if err != nil {
				return nil, nil, err
			}
			out = append(out, r)
		}
	}
	plans, err := h.planner.Plan(ctx, changed, own.ResolveAccounts)
	if err != nil {
		return nil, nil, err
	}
	return h.encode(out, types, plans)
}

// encode encodes the plans' commands, in parallel chunks (encoding is pure),
// keeping their order (encodePlan).
func (h *Handler) encode(out []*kgo.Record, types []string, plans []Planned) ([]*kgo.Record, []string, error) {
	outs := make([][]*kgo.Record, len(plans))
	errs := make([]error, len(plans))
	parallel.Chunks(len(plans), 16, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			outs[i], errs[i] = h.encodePlan(&plans[i])
		}
	})
	for i, p := range plans {
		if errs[i] != nil {
			return nil, nil, errs[i]
		}
		out = append(out, outs[i]...)
		for _, cmd := range p.Commands {
			types = append(types, cmd.Type())
		}
	}
	return out, types, nil
}

// commandOverhead is the room a command record needs in a produce request
// beyond its key, value and headers: batch and record framing.
const commandOverhead = 1 << 10

// encodePlan returns the records of p's commands, unless one of them would
// exceed the producer's limit: then p.Commands becomes one review.requested
// of the cluster (engine.ReasonCommandTooLarge), whose record is returned,
// and a planner that records what was emitted must record that. The input
// was valid, so it is not dead-lettered; the broker would refuse the
// command on every attempt, so it is not produced. (A lead of 615 KB whose
// fields carry over to the account it creates converts into a lead.convert
// of twice that: the fields are the contact's and the account's.)
func (h *Handler) encodePlan(p *Planned) ([]*kgo.Record, error) {
	recs, err := h.commands.Commands(nil, p.Commands, p.At)
	if err != nil {
		return nil, err
	}
	limit := h.cfg.MaxProduceBytes - commandOverhead
	for _, r := range recs {
		size := len(r.Key) + len(r.Value)
		for _, hd := range r.Headers {
			size += len(hd.Key) + len(hd.Value)
		}
		if size <= limit {
			continue
		}
		c := &p.Commands[0]
		h.log.Warn().Str("tenant", c.Tenant).Str("cluster_id", c.ClusterID).Int64("cluster_version", c.ClusterVersion).
			Int("bytes", size).Int("limit", limit).Msg("command too large to produce: review requested instead")
		p.Commands = []engine.Command{engine.TooLargeReview(p.Commands, size, limit)}
		return h.commands.Commands(nil, p.Commands, p.At)
	}
	return recs, nil
}

// resolveAccounts resolves a tenant's account values through the owner
// that last applied the tenant.
func (h *Handler) resolveAccounts(ctx context.Context, tenant string, values []string) (map[string]string, error) {
	h.mu.Lock()
	own := h.byTenant[tenant]
	h.mu.Unlock()
	if own == nil {
		return nil, fmt.Errorf("pipeline: no owner of tenant %s", tenant)
	}
	return own.ResolveAccounts(ctx, tenant, values)
}

// Flush returns the commands of every plan the planner still holds back
// (a settle window), at the end of the input (simulate, replay).
func (h *Handler) Flush(ctx context.Context) ([]*kgo.Record, error) {
	f, ok := h.planner.(Flusher)
	if !ok {
		return nil, nil
	}
	plans, err := f.Flush(ctx, h.resolveAccounts)
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
