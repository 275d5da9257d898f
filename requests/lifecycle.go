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
	// History returns what was emitted for c's records, as it stands.
	History(ctx context.Context, tenant string, c engine.Cluster) (engine.History, error)
	// Emitted records a request's plan of c: cmds emitted, st the
	// cluster's state after it (engine.Prepared.State; changed false:
	// nothing irreversible was emitted).
	Emitted(ctx context.Context, tenant string, c engine.Cluster, cmds []engine.Command, st engine.State, changed bool) error
}
