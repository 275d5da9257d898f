package requests

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/events"
)

// TypeOutcomes is the CloudEvents type of request.outcomes.
const TypeOutcomes = "io.leadconv.request.outcomes.v1"

// Writer outcomes a request's summary counts.
const (
	WriterApplied          = "applied"
	WriterSkippedDuplicate = "skipped_duplicate"
	WriterStale            = "stale"
	WriterFailed           = "failed"
)

// Outcomes is the data of request.outcomes: what the writer made of every
// command of a request that went ahead, once each has its result.
type Outcomes struct {
	Tenant    string `json:"tenant"`
	RequestID string `json:"request_id"`
	// Commands counts the request's commands, as request.completed did.
	Commands int           `json:"commands"`
	Counts   OutcomeCounts `json:"counts"`
	// Failures lists every command not applied (failed or stale), by
	// command id.
	Failures []CommandFailure `json:"failures"`
}

// OutcomeCounts are the request's commands per writer outcome.
type OutcomeCounts struct {
	Applied int `json:"applied"`
	Failed  int `json:"failed"`
	Stale   int `json:"stale"`
}

// CommandFailure is one command the writer did not apply.
type CommandFailure struct {
	CommandID string `json:"command_id"`
	Kind      string `json:"kind"`
	// Subject is the command's: the lead id of a lead.convert.
	Subject string `json:"subject"`
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"`
}

// Awaited is one command a request emitted, in the ledger: the command
// itself (re-emitted for a redelivered request) and its writer outcome
// once known.
type Awaited struct {
	// Seq is the command's position in the request's output.
	Seq     int             `json:"seq"`
	Kind    string          `json:"kind"`
	Subject string          `json:"subject"`
	Command json.RawMessage `json:"command"`
	Outcome string          `json:"outcome,omitempty"`
	Reason  string          `json:"reason,omitempty"`
}

func awaited(cmds []engine.Command) (map[string]Awaited, error) {
	m := make(map[string]Awaited, len(cmds))
	for i := range cmds {
		c := &cmds[i]
		b, err := c.AppendJSON(nil)
		if err != nil {
			return nil, fmt.Errorf("requests: encode command %s: %w", c.ID, err)
		}
		m[c.ID] = Awaited{Seq: i, Kind: c.Kind, Subject: c.Subject, Command: b}
	}
	return m, nil
}

// unanswered returns, in their order, the stored commands the writer has
// not answered yet: what a redelivered request emits again.
func unanswered(stored map[string]Awaited) ([]engine.Command, error) {
	as := make([]Awaited, 0, len(stored))
	for _, a := range stored {
		if a.Outcome == "" {
			as = append(as, a)
		}
	}
	slices.SortFunc(as, func(a, b Awaited) int { return a.Seq - b.Seq })
	out := make([]engine.Command, len(as))
	for i, a := range as {
		if err := json.Unmarshal(a.Command, &out[i]); err != nil {
			return nil, fmt.Errorf("requests: stored command %d: %w", a.Seq, err)
		}
	}
	return out, nil
}

// Outcome takes a writer result of a request's command, at the tenant's
// owner: the ledger keeps it, and once every command of the request has
// its outcome the returned records hold request.outcomes (again for a
// result redelivered after that: the event's id is the same). A result of
// no request, or of a command the request did not emit, returns nothing.
func (h *Handler) Outcome(ctx context.Context, r events.CommandResult) ([]*kgo.Record, error) {
	if r.RequestID == "" {
		return nil, nil
	}
	outcome := r.Outcome
	if outcome == WriterSkippedDuplicate {
		outcome = r.Previous
	}
	if outcome != WriterApplied && outcome != WriterStale {
		outcome = WriterFailed
	}
	all, done, err := h.ledger.Result(ctx, r.Tenant, r.RequestID, r.CommandID, outcome, r.Reason)
	if err != nil || !done {
		return nil, err
	}
	o := Outcomes{Tenant: r.Tenant, RequestID: r.RequestID, Commands: len(all), Failures: []CommandFailure{}}
	for id, a := range all {
		switch a.Outcome {
		case WriterApplied:
			o.Counts.Applied++
			continue
		case WriterStale:
			o.Counts.Stale++
		case WriterFailed:
			o.Counts.Failed++
		}
		o.Failures = append(o.Failures, CommandFailure{CommandID: id, Kind: a.Kind, Subject: a.Subject, Outcome: a.Outcome, Reason: a.Reason})
	}
	slices.SortFunc(o.Failures, func(a, b CommandFailure) int { return strings.Compare(a.CommandID, b.CommandID) })
	h.cfg.Logger.Info().Str("tenant", r.Tenant).Str("request_id", r.RequestID).Int("commands", o.Commands).
		Int("applied", o.Counts.Applied).Int("failed", o.Counts.Failed).Int("stale", o.Counts.Stale).Msg("request outcomes")
	rec, err := h.event(r.Tenant, r.RequestID, TypeOutcomes, "outcomes", o)
	if err != nil {
		return nil, err
	}
	return []*kgo.Record{rec}, nil
}
