package matcher

import "github.com/leadconv/leadconv/record"

// Change is one cluster altered by an applied event: what the engine plans
// from and what a cluster.changed delta reports. It describes the cluster
// right after its event, however the events were cut into batches.
type Change struct {
	Tenant    string
	ClusterID string
	// Version increases with every change of the cluster; plans carry it so
	// writers can drop stale ones.
	Version int64
	// Members are the cluster's records (leads and contacts as stored,
	// contact fields under contact names, numbers as json.Number).
	Members []record.Record
	// Accounts maps the members' company values (the account field) to the
	// ids of the accounts with the same normalised name, as the account
	// index held them right after the change was applied; "" means none. A
	// value missing here was not looked up (ResolveAccounts does that).
	Accounts map[string]string
	// Before lists the members before the change.
	Before []record.Ref
	// Trigger is the record whose event caused the change.
	Trigger record.Ref
	// MergedFrom names clusters joined into this one and MergedInto the
	// cluster this one was joined into (then Removed is set). SplitInto names
	// the clusters split off from this one, SplitFrom the cluster this one was
	// split off from.
	MergedFrom []string
	MergedInto string
	SplitInto  []string
	SplitFrom  string
	// Removed is set when the cluster no longer exists (emptied or merged away).
	Removed bool
	// Index is the position of the triggering event in the applied batch.
	Index int
}
