package pipeline

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/consumer"
	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/events"
)

// HeaderRequest marks a record of the owned topic as a mass-conversion
// request routed there, not a record event. A request is forwarded as it
// came (its value is what its token signed), so only a header can tell.
const HeaderRequest = "leadconv_request"

// RequestHandler processes mass-conversion requests at their tenant's
// owner, in order with the tenant's record events (requests.Handler).
type RequestHandler interface {
	consumer.Handler
	// Tenant returns the tenant a request record names; a record naming
	// none is poison, dead-lettered by the router.
	Tenant(r *kgo.Record) (string, *consumer.Poison)
	// Outcome takes the writer's result of a request's command and returns
	// the records to produce (request.outcomes once every command has one).
	Outcome(ctx context.Context, r events.CommandResult) ([]*kgo.Record, error)
}

// Requests routes mass-conversion requests to the owners of their
// tenants (HandlerConfig.Requests).
type Requests struct {
	// Topic is the requests topic, read as input like the records topic.
	Topic string
	// To is the owned topic the requests are routed to: the by-tenant
	// topic, or the records topic when it is keyed by tenant already.
	To      string
	Handler RequestHandler
}

// requests handles a batch that holds requests: routed when it comes from
// the requests topic; at the owner, split into runs of record events and
// of requests, handled in order, so a request sees the state the tenant's
// events before it made, and the events after it compose on what it
// emitted. ok is false for a batch without requests.
func (h *Handler) requests(ctx context.Context, topic string, partition int32, recs []*kgo.Record) (res consumer.Result, ok bool, err error) {
	rq := h.cfg.Requests
	if topic == rq.Topic {
		return h.routeRequests(recs), true, nil
	}
	if topic != rq.To || !hasRequest(recs) {
		return consumer.Result{}, false, nil
	}
	for len(recs) > 0 {
		req := isRequest(recs[0])
		n := 1
		for n < len(recs) && isRequest(recs[n]) == req {
			n++
		}
		var r consumer.Result
		if req {
			own := h.owner(topic, partition)
			h.mu.Lock()
			for _, r := range recs[:n] {
				if t, poison := rq.Handler.Tenant(r); poison == nil {
					h.requested[t] = own
				}
			}
			h.mu.Unlock()
			r, err = rq.Handler.Handle(ctx, topic, partition, recs[:n])
		} else {
			r, err = h.Handle(ctx, topic, partition, recs[:n])
		}
		if err != nil {
			return consumer.Result{}, true, err
		}
		res.Out = append(res.Out, r.Out...)
		res.Poison = append(res.Poison, r.Poison...)
		recs = recs[n:]
	}
	return res, true, nil
}

// routeRequests forwards requests to the owned topic keyed by tenant,
// value and headers as they came, marked HeaderRequest. A request naming
// no tenant is dead-lettered here, with its original coordinates.
func (h *Handler) routeRequests(recs []*kgo.Record) consumer.Result {
	var res consumer.Result
	for _, r := range recs {
		tenant, poison := h.cfg.Requests.Handler.Tenant(r)
		if poison != nil {
			res.Poison = append(res.Poison, *poison)
			continue
		}
		hs := append(append(make([]kgo.RecordHeader, 0, len(r.Headers)+1), r.Headers...), kgo.RecordHeader{Key: HeaderRequest, Value: []byte("1")})
		res.Out = append(res.Out, &kgo.Record{Topic: h.cfg.Requests.To, Key: []byte(tenant), Value: r.Value, Headers: hs, Timestamp: r.Timestamp})
	}
	if m := h.metrics; m != nil {
		m.Routed.Add(float64(len(res.Out)))
	}
	return res
}

func isRequest(r *kgo.Record) bool { return hasHeader(r, HeaderRequest) }

// hasHeader reports whether r carries a header key: the marks of the
// records the routing puts beside the events (HeaderRequest, HeaderTick).
func hasHeader(r *kgo.Record, key string) bool {
	for _, hd := range r.Headers {
		if hd.Key == key {
			return true
		}
	}
	return false
}

func hasRequest(recs []*kgo.Record) bool {
	for _, r := range recs {
		if isRequest(r) {
			return true
		}
	}
	return false
}

// History returns what the tenant's lifecycle emitted for c's records, for
// a mass-conversion request to plan relative to it (requests.Lifecycle).
func (h *Handler) History(ctx context.Context, tenant string, c engine.Cluster) (engine.History, error) {
	o, err := h.requestOwner(tenant)
	if err != nil {
		return engine.History{}, err
	}
	return o.requestHistory(ctx, tenant, c)
}

// Emitted records a request's plan of c in the tenant's lifecycle
// (requests.Lifecycle): later plans compose on it.
func (h *Handler) Emitted(ctx context.Context, tenant string, c engine.Cluster, cmds []engine.Command, st engine.State, changed bool) error {
	o, err := h.requestOwner(tenant)
	if err != nil {
		return err
	}
	if err := o.requestEmitted(ctx, tenant, c, cmds, st, changed); err != nil {
		return h.applyErr(err)
	}
	return nil
}

// requestOwner is the owner running the tenant's requests: the one of the
// partition the request was routed to.
func (h *Handler) requestOwner(tenant string) (*owner, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	o := h.requested[tenant]
	if o == nil {
		return nil, fmt.Errorf("pipeline: no owner runs the requests of tenant %s", tenant)
	}
	return o, nil
}
