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
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/consumer"
	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/events"
	"github.com/leadconv/leadconv/ingest"
	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/internal/parallel"
	"github.com/leadconv/leadconv/lifecycle"
	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/record"
)

// Owner is what the pipeline needs of the matcher: the single writer of
// the tenants of one by-tenant partition (matcher.Store), which also keeps
// the tenants' lifecycles durable as its side state.
type Owner interface {
	ApplyPlanned(ctx context.Context, events []record.Event, plan matcher.PlanFunc) ([]matcher.Change, error)
	WriteSide(ctx context.Context, side map[string]matcher.Side) error
	IndexSide(name string)
	Indexed(ctx context.Context) ([]string, error)
	Take(ctx context.Context, tenants []string) (map[string]map[string]string, error)
	ReadSide(ctx context.Context, fields map[string][]string) (map[string]map[string]string, error)
	Holds(tenant, cluster string, version int64) bool
	Current(ctx context.Context, tenant string, ids []string) (map[string]matcher.Current, error)
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
	// by-tenant topic keyed by tenant, where the tenant's owner reconciles
	// its lifecycle with each. Other leadconv events on it (request
	// events share it by default) are not input and are skipped.
	ResultsTopic string
	// Decode decodes a record event payload (default DecodeEvent).
	Decode Decoder
	// Formats decode the topics that carry a CRM's own format, by topic;
	// other topics carry record events.
	Formats map[string]Format
	// Lifecycle returns a tenant's lifecycle options (default Settled:
	// the tenant's settle window).
	Lifecycle func(*config.Tenant) lifecycle.Options
	// Clock, when set, is the wall clock that decides when an idle
	// tenant's window passed, for Tick to produce its tick (the live
	// pipeline); nil produces no ticks (simulate, replay: the log's own
	// ticks are read, and what is pending is flushed at the end).
	Clock func() time.Time
	// LifecycleBytes bounds the estimated memory of the owners' settled
	// lifecycle entries, for the process (default DefaultLifecycleBytes):
	// past it, the longest settled are evicted and read back from their
	// side state when a change needs them.
	LifecycleBytes int64
	// Requests, when its Handler is set, routes mass-conversion requests
	// to their tenants' owners (requests.go).
	Requests Requests
	Logger   zerolog.Logger
	Metrics  *Metrics
}

// Handler processes batches of input records: it routes the input topics'
// and, for each partition of the by-tenant topic, runs that partition's
// owner, which keeps its tenants' lifecycles (what was emitted per cluster,
// the settle timers). It is safe for concurrent use by the consumer's
// partition workers, one per partition.
type Handler struct {
	cfg     HandlerConfig
	owners  Owners
	tenants Tenants
	mu      sync.Mutex
	active  map[partitionKey]*owner
	// requested: the owner running each tenant's mass-conversion requests
	// (History, Emitted), the one its requests were routed to.
	requested map[string]*owner
	commands  events.Encoder
	changes   events.Encoder
	metrics   *Metrics
	log       zerolog.Logger
	// committed reports whether the group committed offsets of a partition
	// (the consumer's): its new owner then expects the namespace's state.
	// It is set once the consumer exists, whose workers may already run.
	committed atomic.Pointer[func(topic string, partition int32) bool]
	lost      atomic.Pointer[error] // the first ErrStateLost or ErrNewerFormat, for /readyz
	// settled is the estimated memory of every owner's settled lifecycle
	// entries (HandlerConfig.LifecycleBytes).
	settled atomic.Int64
}

// DefaultLifecycleBytes is the default bound of the owners' settled
// lifecycle entries (HandlerConfig.LifecycleBytes).
const DefaultLifecycleBytes = 256 << 20

// stateExpecter is an owner told that state was written before
// (matcher.Store.ExpectState).
type stateExpecter interface{ ExpectState() }

// StateLost returns the error of the first owner that found the
// namespace's state lost (matcher.ErrStateLost), naming the command that
// rebuilds it, or in a newer format (matcher.ErrNewerFormat); nil
// otherwise. A readiness check.
func (h *Handler) StateLost() error {
	if e := h.lost.Load(); e != nil {
		return *e
	}
	return nil
}

var (
	_ consumer.Handler  = (*Handler)(nil)
	_ consumer.Releaser = (*Handler)(nil)
	_ consumer.Ticker   = (*Handler)(nil)
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
	if cfg.Lifecycle == nil {
		cfg.Lifecycle = Settled
	}
	if cfg.LifecycleBytes <= 0 {
		cfg.LifecycleBytes = DefaultLifecycleBytes
	}
	return &Handler{
		cfg: cfg, owners: owners, tenants: tenants, metrics: cfg.Metrics, log: cfg.Logger,
		active: map[partitionKey]*owner{}, requested: map[string]*owner{},
		commands: events.Encoder{Topic: cfg.CommandsTopic, Structured: cfg.Structured},
		changes:  events.Encoder{Topic: cfg.ChangesTopic, Structured: cfg.Structured},
	}
}

// input is one decoded record of a batch: an event, or a writer's result.
type input struct {
	rec  *kgo.Record
	ev   record.Event
	res  *events.CommandResult
	tick *tick
}

// owner returns the partition's owner, made on its first batch.
func (h *Handler) owner(topic string, partition int32) *owner {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := partitionKey{topic, partition}
	o := h.active[k]
	if o == nil {
		st := h.owners()
		if x, ok := st.(stateExpecter); ok && h.isCommitted(topic, partition) {
			x.ExpectState()
		}
		// The tenants with lifecycle state are listed by partition, for
		// the partition's next owner.
		st.IndexSide(fmt.Sprintf("%s/%d", topic, partition))
		o = newOwner(h, st)
		h.active[k] = o
	}
	return o
}

// isCommitted reports whether the group committed offsets of the partition.
func (h *Handler) isCommitted(topic string, partition int32) bool {
	f := h.committed.Load()
	return f != nil && (*f)(topic, partition)
}

// wall is the wall clock's time, zero without one.
func (h *Handler) wall() time.Time {
	if h.cfg.Clock == nil {
		return time.Time{}
	}
	return h.cfg.Clock()
}

// Release ends the partition's owner (consumer.Releaser): once its worker
// stopped, the partition belongs to whoever the group gives it to, and if
// that is this process again, a new owner takes its tenants afresh.
func (h *Handler) Release(topic string, partition int32) {
	h.mu.Lock()
	k := partitionKey{topic, partition}
	o := h.active[k]
	delete(h.active, k)
	for t, to := range h.requested {
		if to == o {
			delete(h.requested, t)
		}
	}
	h.mu.Unlock()
	if o != nil {
		o.store.Close()
		o.release()
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
	ins, marks := splitMarks(ins)
	changes, plans, ins, refused, err := h.apply(ctx, own, ins, marks)
	if err != nil {
		return consumer.Result{}, err
	}
	dead := map[*kgo.Record]bool{}
	for _, r := range refused {
		// A message of several events is dead-lettered once.
		if dead[r] {
			continue
		}
		dead[r] = true
		res.Poison = append(res.Poison, consumer.Poison{Record: r, Code: CodeInvalidEvent})
	}
	results := resultsOf(marks)
	out, types, err := h.finish(ctx, ins, changes, plans, results)
	if err != nil {
		// Nothing of the call is produced: its plans stay held, planned
		// again by the retry.
		own.retract()
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
	ticks := make([]*tick, len(recs))
	errs := make([]error, len(recs))
	parallel.Chunks(len(recs), 128, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			if isTick(recs[i]) {
				t, err := decodeTick(recs[i].Value)
				ticks[i], errs[i] = &t, err
				continue
			}
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
		if ticks[i] != nil {
			ins = append(ins, input{rec: r, tick: ticks[i]})
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

// marker is an input of a batch that changes no record, at its place among
// the batch's events (before the one at pos): a tick or a writer's result.
// The owner takes it there, so that what it does to the tenant's windows
// does not depend on how the log was cut into batches.
type marker struct {
	in  input
	pos int
}

// splitMarks returns the events of ins and its marks, each in order.
func splitMarks(ins []input) (evs []input, marks []marker) {
	evs = make([]input, 0, len(ins))
	for _, in := range ins {
		if in.tick != nil || in.res != nil {
			marks = append(marks, marker{in, len(evs)})
		} else {
			evs = append(evs, in)
		}
	}
	return evs, marks
}

// resultsOf returns the writer results among marks, in order.
func resultsOf(marks []marker) []input {
	var out []input
	for _, m := range marks {
		if m.in.res != nil {
			out = append(out, m.in)
		}
	}
	return out
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
		if in.tick != nil {
			res.Out[i] = forwarded(h.cfg.ByTenantTopic, in.tick.Tenant, in.rec)
			continue
		}
		if in.res != nil {
			r, err := routedResult(h.cfg.ByTenantTopic, in)
			if err != nil {
				return consumer.Result{}, err
			}
			res.Out[i] = r
			continue
		}
		nEvents++
		out := forwarded(h.cfg.ByTenantTopic, in.ev.Tenant, in.rec)
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

// forwarded is r as the router forwards it to topic, keyed by tenant. The
// input's timestamp stays: latency and event time count from it.
func forwarded(topic, tenant string, r *kgo.Record) *kgo.Record {
	return &kgo.Record{Topic: topic, Key: []byte(tenant), Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp}
}

// routedResult is a writer's result as the router forwards it, keyed by
// its tenant and marked by its ce_type: a binary-mode CloudEvent as it came,
// a structured one as binary.
func routedResult(topic string, in input) (*kgo.Record, error) {
	out := forwarded(topic, in.res.Tenant, in.rec)
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

// finish encodes what a batch made: its cluster.changed events, its plans'
// commands (the writer results' re-plans among them) and the
// request.outcomes of requests whose commands all have their results.
func (h *Handler) finish(ctx context.Context, ins []input, changes []matcher.Change, plans []Planned, results []input) ([]*kgo.Record, []string, error) {
	out, err := h.changed(ins, changes)
	if err != nil {
		return nil, nil, err
	}
	out, types, err := h.encode(out, nil, plans)
	if err != nil {
		return nil, nil, err
	}
	if rq := h.cfg.Requests.Handler; rq != nil {
		for _, in := range results {
			if in.res.RequestID == "" {
				continue
			}
			recs, err := rq.Outcome(ctx, *in.res)
			if err != nil {
				return nil, nil, err
			}
			out = append(out, recs...)
		}
	}
	return out, types, nil
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

// apply applies the batch's events in one store call, planning what they
// change. Should the store refuse an event the decoder let through, it
// wrote nothing (matcher.RefusedError): the batch is applied again without
// it, and the refused record returned to be dead-lettered; ins is returned
// without them.
func (h *Handler) apply(ctx context.Context, own *owner, ins []input, marks []marker) ([]matcher.Change, []Planned, []input, []*kgo.Record, error) {
	var refused []*kgo.Record
	for {
		if len(ins) == 0 {
			plans, err := own.marks(ctx, marks)
			if err != nil {
				return nil, nil, nil, nil, h.applyErr(err)
			}
			return nil, plans, ins, refused, nil
		}
		changes, plans, err := own.batch(ctx, ins, marks)
		var re *matcher.RefusedError
		if !errors.As(err, &re) || re.Index < 0 || re.Index >= len(ins) {
			if err != nil {
				return nil, nil, nil, nil, h.applyErr(err)
			}
			return changes, plans, ins, refused, nil
		}
		refused = append(refused, ins[re.Index].rec)
		ins = slices.Delete(slices.Clone(ins), re.Index, re.Index+1)
		marks = slices.Clone(marks)
		for i := range marks {
			if marks[i].pos > re.Index {
				marks[i].pos--
			}
		}
	}
}

// applyErr classifies an owner's error: a fence, lost state or state in a
// newer format stops the partition; anything else is transient.
func (h *Handler) applyErr(err error) error {
	switch {
	case errors.Is(err, matcher.ErrFenced):
		// Another owner took a tenant of the partition: this one is a
		// zombie, and retrying can never succeed.
		return fmt.Errorf("pipeline: apply: %w: %w", consumer.ErrPartitionLost, err)
	case errors.Is(err, matcher.ErrStateLost), errors.Is(err, matcher.ErrNewerFormat):
		// Applying on top of lost state would build partial records, on
		// state a newer leadconv wrote (an upgrade under way) misread ones:
		// the partition stops until the namespace is rebuilt or this
		// instance upgraded.
		if h.lost.CompareAndSwap(nil, &err) {
			msg := "matcher state lost: not applying"
			if errors.Is(err, matcher.ErrNewerFormat) {
				msg = "matcher state in a newer format: not applying"
			}
			h.log.Error().Err(err).Msg(msg)
		}
		return fmt.Errorf("pipeline: apply: %w: %w", consumer.ErrPartitionLost, err)
	}
	return fmt.Errorf("pipeline: apply: %w", err)
}

// changed encodes, when enabled, one cluster.changed event per change.
func (h *Handler) changed(ins []input, changes []matcher.Change) ([]*kgo.Record, error) {
	if h.cfg.ChangesTopic == "" {
		return nil, nil
	}
	out := make([]*kgo.Record, 0, len(changes))
	for _, c := range changes {
		in := ins[c.Index]
		origin := &events.Origin{Topic: in.rec.Topic, Partition: in.rec.Partition, Offset: in.rec.Offset}
		r, err := h.changes.ClusterChanged(events.NewClusterChanged(c, origin), eventTime(in))
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
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

// Due reports when the partition's owner next has work without input (its
// earliest settle timer, in wall time), false when none (consumer.Ticker).
// A partition just assigned gets its owner here, before any input, so that
// the plans its previous owner left pending fall due: once the group's
// committed offsets of it are known (the owner must know whether state is
// expected), asked again every ownerPoll until then. A partition without
// committed offsets has its input redelivered, which makes the owner.
func (h *Handler) Due(topic string, partition int32) (time.Time, bool) {
	if h.cfg.Clock == nil || h.cfg.ByTenantTopic != "" && topic != h.cfg.ByTenantTopic {
		return time.Time{}, false
	}
	h.mu.Lock()
	o := h.active[partitionKey{topic, partition}]
	h.mu.Unlock()
	if o == nil {
		if !h.isCommitted(topic, partition) {
			return h.wall().Add(ownerPoll), true
		}
		o = h.owner(topic, partition)
	}
	return o.due()
}

// ownerPoll is how often a partition assigned without input is asked
// whether the group committed offsets of it (Due).
const ownerPoll = 250 * time.Millisecond

// Tick does the partition's work without input (consumer.Ticker): it
// writes what waits to be written, in one fenced call, and for every
// tenant whose settle window passed on the wall clock with no new input
// produces a tick to the partition (HeaderTick), planned when it is read
// back. Its Result is the held plans' commands and the ticks.
func (h *Handler) Tick(ctx context.Context, topic string, partition int32) (consumer.Result, error) {
	h.mu.Lock()
	o := h.active[partitionKey{topic, partition}]
	h.mu.Unlock()
	if o == nil {
		return consumer.Result{}, nil
	}
	var ticks []*kgo.Record
	var due []dueTick
	plans, err := o.step(ctx, func(c *call, wall time.Time) error {
		ticks, due = o.dueTicks(topic, wall)
		return nil
	})
	if err != nil {
		return consumer.Result{}, h.applyErr(err)
	}
	out, err := h.encodeCounted(plans)
	if err != nil {
		return consumer.Result{}, err
	}
	o.ticking(due)
	return consumer.Result{Out: append(out, ticks...)}, nil
}

// Flush returns the commands of every plan the owners still hold back (a
// settle window), at the end of the input (simulate, replay). Call Sync
// once they were written out.
func (h *Handler) Flush(ctx context.Context) ([]*kgo.Record, error) {
	var plans []Planned
	for _, o := range h.owned() {
		ps, err := o.step(ctx, func(c *call, _ time.Time) error {
			for _, name := range slices.Sorted(maps.Keys(o.tenants)) {
				ts := o.tenants[name]
				if err := c.plan(ctx, ts, ts.lc.Flush()); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, h.applyErr(err)
		}
		plans = append(plans, ps...)
	}
	return h.encodeCounted(plans)
}

// Sync writes what the owners' lifecycles hold and Redis does not yet: the
// marks of the plans last returned, once they were written out (the end of
// simulate and replay).
func (h *Handler) Sync(ctx context.Context) error {
	for _, o := range h.owned() {
		if _, err := o.step(ctx, nil); err != nil {
			return h.applyErr(err)
		}
	}
	return nil
}

// Pending counts what the owners hold back: clusters with an unplanned
// change (a settle window open), and plans emitted whose release is not
// yet written (or other lifecycle changes not yet written).
func (h *Handler) Pending() (unplanned, unwritten int) {
	for _, o := range h.owned() {
		o.mu.Lock()
		unwritten += len(o.unacked)
		for _, ts := range o.tenants {
			unplanned += ts.lc.Pending()
			if ts.lc.Dirty() {
				unwritten++
			}
		}
		o.mu.Unlock()
	}
	return unplanned, unwritten
}

// owned returns the active owners, by partition.
func (h *Handler) owned() []*owner {
	h.mu.Lock()
	defer h.mu.Unlock()
	keys := slices.SortedFunc(maps.Keys(h.active), func(a, b partitionKey) int {
		return cmp.Or(strings.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
	})
	out := make([]*owner, len(keys))
	for i, k := range keys {
		out[i] = h.active[k]
	}
	return out
}

// encodeCounted encodes plans with no input, counting the commands.
func (h *Handler) encodeCounted(plans []Planned) ([]*kgo.Record, error) {
	out, types, err := h.encode(nil, nil, plans)
	if m := h.metrics; m != nil && err == nil {
		for _, t := range types {
			m.CommandsOut.WithLabelValues(t).Inc()
		}
	}
	return out, err
}
