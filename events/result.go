package events

import "github.com/leadconv/leadconv/record"

// CommandResult is what became of one command: the data of a CRM writer's
// command.result CloudEvent (schemas/command.result.v1.json), keyed by
// tenant. The writer produces it; the tenant's owner reconciles its
// lifecycle and its requests with it.
type CommandResult struct {
	CommandID      string `json:"command_id"`
	Kind           string `json:"kind"`
	Tenant         string `json:"tenant"`
	ClusterID      string `json:"cluster_id"`
	ClusterVersion int64  `json:"cluster_version"`
	Seq            int    `json:"seq"`
	// RequestID is the command's: set when a mass-conversion request
	// planned it.
	RequestID string `json:"request_id,omitempty"`
	// Outcome is applied, skipped_duplicate, stale or failed.
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"`
	// Previous is the outcome of the first delivery of a skipped_duplicate.
	Previous string `json:"previous_outcome,omitempty"`
	// NewestVersion is the cluster version that made a command stale.
	NewestVersion int64 `json:"newest_version,omitempty"`
	// Records are the records the command created, changed or deleted.
	Records []record.Ref `json:"records,omitempty"`
}
