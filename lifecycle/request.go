package lifecycle

import "github.com/leadconv/leadconv/engine"

// A mass-conversion request plans clusters on demand, outside the settle
// window, through the same lifecycle: relative to what was emitted for the
// cluster's records (RequestHistory), its emitted plan recorded as the
// cluster's state (RequestPlanned), so later plans compose on it. A request
// leaves a cluster's settle timer as it was: a pending live change is still
// planned, relative to what the request emitted.

// RequestBase is the History a request planned a cluster version from.
type RequestBase struct {
	Version int64          `json:"version"`
	History engine.History `json:"history"`
}

// RequestHistory returns what was emitted for c's records, to plan the
// request requestID relative to it. For a request that planned this version
// of c before (a redelivery, a re-submission) it is the History that plan
// started from, so the request plans the same commands with the same ids
// again. Once c changed, it is what was emitted since, the request's own
// plan included: nothing is converted twice.
func (l *Lifecycle) RequestHistory(requestID string, c engine.Cluster) engine.History {
	if e := l.entries[c.ID]; e != nil {
		if b, ok := e.Requests[requestID]; ok && b.Version == c.Version {
			return b.History
		}
	}
	return l.history(&Entry{ClusterID: c.ID, Seen: c})
}

// RequestPlanned records the plan of c that request requestID emitted:
// planned from h (RequestHistory), cmds emitted, st the cluster's state
// after it (engine.Prepared.State). When changed is false nothing
// irreversible was emitted and the states stay as they were.
func (l *Lifecycle) RequestPlanned(requestID string, c engine.Cluster, h engine.History, cmds []engine.Command, st engine.State, changed bool) {
	e := l.entry(c.ID)
	if e.Seen.Version == 0 && e.Seen.Records == nil {
		// A cluster no change reached yet: the request's view is the
		// latest known (a failed result plans it again from it).
		e.Seen = c
	}
	if b, ok := e.Requests[requestID]; !ok || b.Version != c.Version {
		if e.Requests == nil {
			e.Requests = map[string]RequestBase{}
		}
		e.Requests[requestID] = RequestBase{Version: c.Version, History: h}
	}
	if changed {
		l.emitted(e, cmds, st)
	}
}
