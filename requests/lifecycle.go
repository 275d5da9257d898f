package requests

import (
	"context"

	"github.com/leadconv/leadconv/engine"
)

// Lifecycle is what a request needs of its tenant's conversion lifecycle,
// kept by the tenant's owner (the pipeline's planner): what was emitted for
// a cluster's records, so the request plans relative to it (a lead whose
// conversion is pending is never converted twice, a pending master is
// converted into), and where to record what the request emitted, so later
// plans compose on it. The owner calls the request in order with the
// tenant's record events, so both see the same state.
type Lifecycle interface {
	// History returns what was emitted for c's records. For a request that
	// planned c before (a redelivery) it is the History that plan started
	// from, so the request plans the same commands again.
	History(ctx context.Context, tenant, requestID string, c engine.Cluster) (engine.History, error)
	// Emitted records request requestID's plan of c: planned from h, cmds
	// emitted, st the cluster's state after it (engine.Prepared.State;
	// changed false: nothing irreversible was emitted).
	Emitted(ctx context.Context, tenant, requestID string, c engine.Cluster, h engine.History, cmds []engine.Command, st engine.State, changed bool) error
}
