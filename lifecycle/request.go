package lifecycle

import "github.com/leadconv/leadconv/engine"

// A mass-conversion request plans clusters on demand, outside the settle
// window, through the same lifecycle: relative to what was emitted for the
// cluster's records (RequestHistory), its emitted plan recorded as the
// cluster's state (RequestPlanned), so later plans compose on it. A request
// leaves a cluster's settle timer as it was: a pending live change is still
// planned, relative to what the request emitted. (A redelivered request
// re-emits the commands its ledger kept; planned again, it finds its own
// conversions emitted.)

// RequestHistory returns what was emitted for c's records, to plan a
// request's conversion of c relative to it: the states as they stand now.
func (l *Lifecycle) RequestHistory(c engine.Cluster) engine.History {
	return l.history(&Entry{ClusterID: c.ID, Seen: c})
}

// RequestPlanned records a request's plan of c: cmds emitted, st the
// cluster's state after it (engine.Prepared.State). When changed is false
// nothing irreversible was emitted and the states stay as they were.
func (l *Lifecycle) RequestPlanned(c engine.Cluster, cmds []engine.Command, st engine.State, changed bool) {
	if !changed {
		return
	}
	e := l.entry(c.ID)
	if e.Seen.Version == 0 && e.Seen.Records == nil || e.Settled {
		// A cluster no change reached yet, or one settled: the request's
		// view is the latest known (a failed result plans it again from
		// it).
		l.untrack(e.ClusterID)
		e.Seen, e.Settled = c, false
	}
	l.emitted(e, cmds, st, nil)
	l.settle(e)
}
