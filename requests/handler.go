package requests

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/consumer"
	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/events"
)

// CloudEvents types of the request events.
const (
	TypeCompleted = "io.leadconv.request.completed.v1"
	TypeRejected  = "io.leadconv.request.rejected.v1"
	TypeProgress  = "io.leadconv.request.progress.v1"
)

// Default topics.
const (
	DefaultRequestsTopic = "leadconv.requests"
	DefaultCommandsTopic = "leadconv.commands"
	DefaultEventsTopic   = "leadconv.results"
)

// CodeInvalidRequest is the dead-letter code of a request record that names
// no tenant and request id, so no rejection can be addressed.
const CodeInvalidRequest = "invalid_request"

// Tenant is a tenant's configuration as requests use it.
type Tenant struct {
	Engine *engine.Config
	Policy Policy
	// Verifier checks the tenant's request tokens; nil rejects every
	// request (bad_signature: no key configured).
	Verifier *Verifier
}

// Tenants resolves a tenant's configuration.
type Tenants func(name string) (Tenant, error)

// HandlerConfig configures a Handler.
type HandlerConfig struct {
	// CommandsTopic receives the commands (default leadconv.commands).
	CommandsTopic string
	// EventsTopic receives request.completed, request.rejected and
	// request.progress (default leadconv.results).
	EventsTopic string
	// ProgressEvery emits a progress event every so many selected leads
	// planned (default 100); the events go out while the request is planned.
	ProgressEvery int
	// Structured writes structured-mode CloudEvents instead of binary, as
	// the pipeline's --content-mode does.
	Structured bool
	// Progress produces a progress event at once; nil drops them.
	Progress func(*kgo.Record)
	// Lifecycle is the tenants' conversion lifecycle the requests plan
	// through; nil plans every cluster from nothing.
	Lifecycle Lifecycle
	Logger    zerolog.Logger
}

// Handler processes request records (consumer.Handler).
type Handler struct {
	cfg     HandlerConfig
	store   Store
	tenants Tenants
	ledger  Ledger
	enc     events.Encoder
}

var _ consumer.Handler = (*Handler)(nil)

// NewHandler returns a handler over store, tenants and ledger.
func NewHandler(cfg HandlerConfig, store Store, tenants Tenants, ledger Ledger) *Handler {
	if cfg.CommandsTopic == "" {
		cfg.CommandsTopic = DefaultCommandsTopic
	}
	if cfg.EventsTopic == "" {
		cfg.EventsTopic = DefaultEventsTopic
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = 100
	}
	return &Handler{cfg: cfg, store: store, tenants: tenants, ledger: ledger, enc: events.Encoder{Topic: cfg.CommandsTopic, Structured: cfg.Structured}}
}

// Handle processes a batch of requests in order. A request record that
// cannot be read at all is poison; every other problem of a request is its
// request.rejected event. Errors are transient (store or ledger).
func (h *Handler) Handle(ctx context.Context, _ string, _ int32, recs []*kgo.Record) (consumer.Result, error) {
	var res consumer.Result
	for _, r := range recs {
		b, err := events.Payload(r)
		if err != nil {
			res.Poison = append(res.Poison, consumer.Poison{Record: r, Code: CodeInvalidRequest})
			continue
		}
		req, err := Decode(b)
		if err != nil {
			partial, ok := named(b)
			if !ok {
				res.Poison = append(res.Poison, consumer.Poison{Record: r, Code: CodeInvalidRequest})
				continue
			}
			h.cfg.Logger.Info().Str("tenant", partial.Tenant).Str("request_id", partial.RequestID).Msg("request rejected: invalid")
			out, err := h.rejected(&Rejection{Tenant: partial.Tenant, RequestID: partial.RequestID, Reason: ReasonInvalidRequest, Detail: err.Error()})
			if err != nil {
				return consumer.Result{}, err
			}
			res.Out = append(res.Out, out)
			continue
		}
		if t, err := h.tenants(req.Tenant); err == nil {
			// Who asks and with which roles is what the tenant's key
			// signed, never what the body says.
			who, reason, detail := t.Verifier.Verify(tokenOf(r), req.Tenant, b, time.Now())
			if reason != "" {
				h.cfg.Logger.Info().Str("tenant", req.Tenant).Str("request_id", req.RequestID).Str("reason", reason).Msg("request rejected")
				out, err := h.rejected(&Rejection{Tenant: req.Tenant, RequestID: req.RequestID, Reason: reason, Detail: detail})
				if err != nil {
					return consumer.Result{}, err
				}
				res.Out = append(res.Out, out)
				continue
			}
			req.RequestedBy = who
		}
		out, err := h.Process(ctx, req)
		if err != nil {
			return consumer.Result{}, err
		}
		res.Out = append(res.Out, out...)
	}
	return res, nil
}

// naming is the part of a request every record must carry to be answered.
type naming struct {
	Tenant    string `json:"tenant"`
	RequestID string `json:"request_id"`
}

// named reads the tenant and request id of a request body, even one that
// is otherwise invalid; ok is false when either is missing.
func named(b []byte) (naming, bool) {
	var n naming
	if json.Unmarshal(b, &n) != nil || n.Tenant == "" || n.RequestID == "" {
		return naming{}, false
	}
	return n, true
}

// Tenant returns the tenant a request record names, so that it can be
// routed to the tenant's owner; a record that cannot be answered (no
// tenant or request id) is returned as poison, as Handle would.
func (h *Handler) Tenant(r *kgo.Record) (string, *consumer.Poison) {
	b, err := events.Payload(r)
	if err != nil {
		return "", &consumer.Poison{Record: r, Code: CodeInvalidRequest}
	}
	n, ok := named(b)
	if !ok {
		return "", &consumer.Poison{Record: r, Code: CodeInvalidRequest}
	}
	return n.Tenant, nil
}

// Process runs one request and returns its output records: the commands
// then request.completed, or request.rejected alone. req.RequestedBy must
// come from a verified token, as Handle sets it.
func (h *Handler) Process(ctx context.Context, req *Request) ([]*kgo.Record, error) {
	log := h.cfg.Logger.With().Str("tenant", req.Tenant).Str("request_id", req.RequestID).Bool("dry_run", req.DryRun).Logger()
	reject := func(reason, detail string) ([]*kgo.Record, error) {
		log.Info().Str("reason", reason).Msg("request rejected")
		r, err := h.rejected(&Rejection{Tenant: req.Tenant, RequestID: req.RequestID, Reason: reason, Detail: detail})
		return []*kgo.Record{r}, err
	}
	t, err := h.tenants(req.Tenant)
	if err != nil {
		return reject(ReasonUnknownTenant, "")
	}
	if !t.Policy.allows(req.RequestedBy.Roles) {
		return reject(ReasonRoleNotAllowed, "")
	}
	cfg, err := req.engineConfig(t.Engine)
	if err != nil {
		return reject(ReasonInvalidOptions, err.Error())
	}
	var prev *Entry
	if !req.DryRun {
		if prev, err = h.ledger.Get(ctx, req.Tenant, req.RequestID); err != nil {
			return nil, err
		}
	}
	pl := &planner{store: h.store, lc: h.cfg.Lifecycle, req: req, cfg: cfg, policy: t.Policy, progress: h.progress(req)}
	var frozen []string
	if prev != nil {
		// A redelivery or re-submission: the same leads, never new ones;
		// an empty selection stays empty.
		frozen = append([]string{}, prev.Selection...)
		// The limits were checked when it first went ahead.
		pl.policy.MaxRecords, pl.policy.MaxNewRecords = math.MaxInt, math.MaxInt
	}
	p, rej, err := pl.run(ctx, frozen)
	if err != nil {
		return nil, err
	}
	if rej != nil {
		log.Info().Str("reason", rej.Reason).Int("count", rej.Count).Int("limit", rej.Limit).Msg("request rejected")
		r, err := h.rejected(rej)
		return []*kgo.Record{r}, err
	}
	summary := p.summary
	var out []*kgo.Record
	if !req.DryRun {
		cmds, err := h.emit(ctx, req, prev, p)
		if err != nil {
			return nil, err
		}
		for _, cmd := range cmds {
			// No time attribute: a re-emitted command encodes the same.
			r, err := h.enc.Command(cmd, time.Time{})
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
		if prev != nil {
			summary = prev.Summary
		}
	}
	r, err := h.event(req.Tenant, req.RequestID, TypeCompleted, "completed", summary)
	if err != nil {
		return nil, err
	}
	log.Info().Int("selected", summary.Selected).Int("converted", summary.Counts.Converted).Int("merged", summary.Counts.Merged).
		Int("skipped", summary.Counts.Skipped).Int("failed", summary.Counts.Failed).Int("commands", len(p.commands)).
		Bool("repeated", prev != nil).Msg("request completed")
	return append(out, r), nil
}

func (h *Handler) progress(req *Request) func(done, total int) {
	if h.cfg.Progress == nil {
		return nil
	}
	return func(done, total int) {
		if done%h.cfg.ProgressEvery != 0 || done == total {
			return
		}
		r, err := h.event(req.Tenant, req.RequestID, TypeProgress, "progress/"+strconv.Itoa(done),
			Progress{Tenant: req.Tenant, RequestID: req.RequestID, DryRun: req.DryRun, Planned: done, Selected: total})
		if err != nil {
			h.cfg.Logger.Warn().Err(err).Msg("progress event")
			return
		}
		h.cfg.Progress(r)
	}
}

// emit stores what a request that goes ahead emits and records it in the
// lifecycle, and returns the commands to produce. The first time, they are
// the plan's, stored in the ledger before the entry is put. A request with
// an entry (a redelivery, a re-submission) emits again the stored commands
// the writer has not answered, whatever changed since; its new plan is
// recorded in the lifecycle only for the clusters it planned to stored
// commands (the lifecycle may have lost them: a restart), never for what
// it would emit anew.
func (h *Handler) emit(ctx context.Context, req *Request, prev *Entry, p *plan) ([]engine.Command, error) {
	cmds := p.commands
	var stored map[string]Awaited
	if prev == nil {
		aw, err := awaited(p.commands)
		if err != nil {
			return nil, err
		}
		if err := h.ledger.Await(ctx, req.Tenant, req.RequestID, aw); err != nil {
			return nil, err
		}
		if _, err := h.ledger.Put(ctx, req.Tenant, req.RequestID, Entry{Selection: p.selection, Summary: p.summary}); err != nil {
			return nil, err
		}
	} else {
		var err error
		if stored, err = h.ledger.Commands(ctx, req.Tenant, req.RequestID); err != nil {
			return nil, err
		}
		if cmds, err = unanswered(stored); err != nil {
			return nil, err
		}
	}
	if lc := h.cfg.Lifecycle; lc != nil {
		for _, e := range p.emitted {
			if prev != nil && slices.ContainsFunc(e.cmds, func(c engine.Command) bool { _, ok := stored[c.ID]; return !ok }) {
				continue
			}
			if err := lc.Emitted(ctx, req.Tenant, e.cluster, e.cmds, e.state, e.changed); err != nil {
				return nil, fmt.Errorf("requests: record the plan of %s: %w", e.cluster.ID, err)
			}
		}
	}
	return cmds, nil
}

// Progress is the data of request.progress: how many selected leads are
// planned so far.
type Progress struct {
	Tenant    string `json:"tenant"`
	RequestID string `json:"request_id"`
	DryRun    bool   `json:"dry_run"`
	Planned   int    `json:"planned"`
	Selected  int    `json:"selected"`
}

func (h *Handler) rejected(r *Rejection) (*kgo.Record, error) {
	return h.event(r.Tenant, r.RequestID, TypeRejected, "rejected", r)
}

// event encodes a request event, keyed tenant/request_id. Its id is derived
// from the request and what it reports, so a repeated event is
// recognisable.
func (h *Handler) event(tenant, requestID, typ, what string, data any) (*kgo.Record, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("requests: encode %s: %w", typ, err)
	}
	sum := sha256.Sum256([]byte(strconv.Itoa(len(tenant)) + ":" + tenant + "/" + requestID + "/" + what))
	ev := cloudevents.New(events.SpecVersion)
	ev.SetID(hex.EncodeToString(sum[:16]))
	ev.SetSource(events.Source(tenant))
	ev.SetType(typ)
	ev.SetSubject(requestID)
	ev.SetDataSchema(events.SchemaURL(typeName(typ)))
	ev.DataEncoded = b
	ev.SetDataContentType(events.ContentJSON)
	if err := ev.Validate(); err != nil {
		return nil, fmt.Errorf("requests: %s event: %w", typ, err)
	}
	r := &kgo.Record{Topic: h.cfg.EventsTopic, Key: []byte(tenant + "/" + requestID), Value: b, Headers: events.BinaryHeaders(ev)}
	if h.cfg.Structured {
		if r.Value, err = json.Marshal(ev); err != nil {
			return nil, fmt.Errorf("requests: encode %s: %w", typ, err)
		}
		r.Headers = []kgo.RecordHeader{{Key: events.HeaderContentType, Value: []byte(events.ContentCloudEventsJSON)}}
	}
	return r, nil
}

// typeName maps io.leadconv.request.completed.v1 to request.completed.
func typeName(typ string) string {
	switch typ {
	case TypeCompleted:
		return "request.completed"
	case TypeRejected:
		return "request.rejected"
	case TypeProgress:
		return "request.progress"
	case TypeOutcomes:
		return "request.outcomes"
	}
	return ""
}
