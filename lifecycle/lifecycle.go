// Package lifecycle decides when a tenant's changed clusters are planned
// and remembers what was emitted for them, so that plans compose: a cluster
// is planned once it has not changed for the settle window (or has kept
// changing for max_settle), only its latest state, relative to the
// engine.State of what earlier plans emitted. Writer results and the CRM's
// echoes of leadconv's own changes reconcile that state.
//
// It is pure: no I/O, no clock (times are passed in), no goroutines. One
// Lifecycle holds one tenant and has one owner; it is not safe for
// concurrent use. Its state is plain data (Snapshot, Restore) in a
// deterministic order, so an owner can keep it durable.
package lifecycle

import (
	"cmp"
	"container/heap"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/record"
)

// Options configure one tenant's lifecycle.
type Options struct {
	// Settle is how long a cluster must stay unchanged before it is
	// planned; 0 plans every batch's latest state at once.
	Settle time.Duration
	// MaxSettle bounds the wait of a cluster that never stops changing,
	// from its first unplanned change; 0 means no bound.
	MaxSettle time.Duration
	// AwaitResults holds a cluster's next plan while commands of its last
	// one have no writer result yet (the live loop with writer feedback).
	// Without it an emitted command counts as applied (simulate, replay).
	AwaitResults bool
}

// Change is one change of a cluster, as the matcher reports it.
type Change struct {
	Cluster engine.Cluster
	// At is the change's time: event time (the triggering record's
	// modification) or the owner's clock.
	At time.Time
	// Removed: the cluster no longer exists; MergedInto names the cluster
	// it was joined into. (A cluster split off another needs no mark: the
	// states claiming its records are found by record.)
	Removed    bool
	MergedInto string
	// Echo: the change is the CRM's echo of leadconv's own write (a lead
	// converted, a contact created or updated, a duplicate deleted). For a
	// cluster leadconv emitted commands for, whose state explains the echo,
	// it updates the latest state but starts no plan and leaves a running
	// settle timer as it was. For a cluster with nothing emitted (leadconv's
	// new contact met an existing one there) it is an ordinary change: no
	// plan accounted for those records together.
	Echo bool
}

// Entry is one cluster's lifecycle state.
type Entry struct {
	ClusterID string `json:"cluster_id"`
	// State is what was emitted for the cluster.
	State engine.State `json:"state"`
	// Seen is the cluster's latest known state; Pending is set while it is
	// unplanned.
	Seen    engine.Cluster `json:"seen"`
	Pending *Timer         `json:"pending,omitempty"`
	// Settled: nothing is pending, outstanding or held, and Seen keeps only
	// the cluster's id and version. No decision reads a settled cluster's
	// records (a plan reads its own cluster's, a failed result those of
	// the cluster it awaited), and they were most of a large tenant's
	// memory and of what an owner writes.
	Settled bool `json:"settled,omitempty"`
	// MergedInto: the cluster was joined into that one, whose next plan
	// takes this state over.
	MergedInto string `json:"merged_into,omitempty"`
	// Outstanding are emitted commands without a writer result yet
	// (AwaitResults), in emission order.
	Outstanding []engine.Command `json:"outstanding,omitempty"`
	// Held are plans whose emission is not yet acknowledged (Hold, until
	// Acked), in plan order: kept with the entry, they are planned again
	// as they were, to the same commands and ids, should the owner change
	// before their emission was known to have happened.
	Held []Held `json:"held,omitempty"`
	// inStore: restored without Seen's records (InStore), heldSeen the
	// held plans whose cluster is Seen, to be filled with them (Fill).
	inStore  bool
	heldSeen []int
}

// Held is a Ready kept in an entry (Hold).
type Held struct {
	Cluster  engine.Cluster `json:"cluster"`
	History  engine.History `json:"history"`
	At       time.Time      `json:"at"`
	Absorbed []string       `json:"absorbed,omitempty"`
}

// Timer is a cluster's settle timer.
type Timer struct {
	// First is the first unplanned change, Last the latest (the time the
	// plan's commands carry).
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

// Ready is a cluster due for planning: plan it with engine.PrepareFrom
// under History, then report the outcome with Planned.
type Ready struct {
	Cluster engine.Cluster
	History engine.History
	// At is the time of the cluster's latest change.
	At time.Time
	// absorbed are the clusters whose states History took over (the
	// cluster and those joined into it), at the time Ready was made.
	absorbed []string
}

// Stats counts what the lifecycle saw.
type Stats struct {
	// Failed counts failed writer results by reason.
	Failed map[string]int
	// Reconciled counts pending targets replaced by the ids a writer
	// reported (results and echoes).
	Reconciled int
}

// Lifecycle is one tenant's clusters between plans.
type Lifecycle struct {
	opts    Options
	entries map[string]*Entry
	// claims maps a record to the cluster whose state speaks for it.
	claims map[record.Ref]string
	// sent maps an outstanding command id to its cluster.
	sent map[string]string
	// joined maps a cluster to the clusters joined into it (their
	// MergedInto) until its next plan takes them over.
	joined map[string][]string
	// dirty holds the clusters whose entries changed (or went) since the
	// last TakeDirty: what the owner writes to its durable copy.
	dirty map[string]bool
	// open holds the entries with a pending change or held plans (reopen
	// keeps it so): what Flush, Pending and Evict's protection look at,
	// rather than every entry a large tenant keeps.
	open map[string]*Entry
	// holding is the part of open with held plans: what Held, asked
	// every batch, looks at, while open holds every cluster of the
	// settle window.
	holding map[string]*Entry
	// timers holds a due time for every pending cluster that may fall
	// due, ordered (a min-heap): Due, asked before every change, pops what
	// fell due instead of scanning the open entries. An item whose cluster
	// was planned, went, or has a later due time since is stale and
	// skipped; a cluster awaiting results is pushed again when one comes.
	timers timerHeap
	stats  Stats
	// keepSettled: settle keeps the records (a test's reference: no
	// decision may depend on them).
	keepSettled bool
	// settled are the resident settled entries, settledBytes their
	// estimated size, queue their settlements in order (Evict); evicted
	// the entries evicted, faults the reads of them not loaded first
	// (resident.go).
	settled      map[string]settledEntry
	settledBytes int64
	settlements  uint64
	queue        []queued
	evicted      map[string]bool
	faults       int
}

// timer is a cluster's due time when it was pushed.
type timer struct {
	at time.Time
	id string
}

// timerHeap is a min-heap of timers by time (container/heap).
type timerHeap []timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

// dueAt is when e's pending change falls due.
func (l *Lifecycle) dueAt(e *Entry) time.Time {
	t := e.Pending.Last.Add(l.opts.Settle)
	if m := e.Pending.First.Add(l.opts.MaxSettle); l.opts.MaxSettle > 0 && m.Before(t) {
		t = m
	}
	return t
}

// arm pushes e's due time, if it is pending.
func (l *Lifecycle) arm(e *Entry) {
	if e.Pending != nil {
		heap.Push(&l.timers, timer{l.dueAt(e), e.ClusterID})
	}
}

// live returns the entry of a timer if the timer still stands: its
// cluster pending with that due time and not awaiting results. A timer
// that does not stand is stale: the cluster was planned or went, got a
// later due time (pushed too), or awaits results (pushed again on one).
func (l *Lifecycle) live(t timer) *Entry {
	e := l.entries[t.id]
	if e == nil || e.Pending == nil || !l.dueAt(e).Equal(t.at) || l.opts.AwaitResults && len(e.Outstanding) > 0 {
		return nil
	}
	return e
}

// New returns an empty lifecycle.
func New(opts Options) *Lifecycle {
	return &Lifecycle{opts: opts, entries: map[string]*Entry{}, claims: map[record.Ref]string{},
		sent: map[string]string{}, joined: map[string][]string{}, dirty: map[string]bool{}, open: map[string]*Entry{}, holding: map[string]*Entry{}, stats: Stats{Failed: map[string]int{}},
		settled: map[string]settledEntry{}, evicted: map[string]bool{}}
}

// reopen puts e in open and holding, or takes it out, as its pending
// change and held plans now stand: called wherever they change.
func (l *Lifecycle) reopen(e *Entry) {
	id := e.ClusterID
	if e.Pending != nil || len(e.Held) > 0 {
		l.open[id] = e
	} else {
		delete(l.open, id)
	}
	if len(e.Held) > 0 {
		l.holding[id] = e
	} else {
		delete(l.holding, id)
	}
}

// drop forgets an entry.
func (l *Lifecycle) drop(id string) {
	delete(l.entries, id)
	delete(l.open, id)
	delete(l.holding, id)
	l.untrack(id)
}

// Stats returns the counters; the map is a copy.
func (l *Lifecycle) Stats() Stats {
	s := l.stats
	s.Failed = maps.Clone(s.Failed)
	return s
}

func (l *Lifecycle) entry(id string) *Entry {
	if l.evicted[id] {
		// Not loaded: the stored entry is left as it is, and the call
		// fails (Faults).
		l.faults++
		return &Entry{ClusterID: id}
	}
	l.dirty[id] = true
	e := l.entries[id]
	if e == nil {
		e = &Entry{ClusterID: id}
		l.entries[id] = e
	}
	return e
}

// Change records a change. An older version than one already seen is
// ignored (partitions planned out of order), and so is the same version
// again, a replay (a batch redelivered after a crash, the namespace
// replayed): a pending cluster keeps its timer, and a planned one is not
// planned again, since what it planned was emitted (a plan not known to be
// produced is held, and its owner plans it again: Hold). Planning it again
// would start a timer at the clock's time, not the replayed event's: a
// change after the replay could compose with it into a plan the first run
// never made.
func (l *Lifecycle) Change(c Change) {
	if c.Echo && !l.Emitted(c.Cluster.ID) {
		c.Echo = false
	}
	e := l.entry(c.Cluster.ID)
	if c.Cluster.Version <= e.Seen.Version {
		// Older, or a replay: as if the replayed event had not come again.
		return
	}
	l.setMergedInto(e, "")
	l.untrack(e.ClusterID)
	e.Settled = false
	if c.Removed {
		e.Pending = nil
		l.reopen(e)
		e.Seen.Version = c.Cluster.Version
		e.Seen.Records, e.Seen.Accounts = nil, nil
		if e.State.IsZero() && len(e.Outstanding) == 0 && len(e.Held) == 0 {
			l.drop(e.ClusterID)
			return
		}
		l.setMergedInto(e, c.MergedInto)
		return
	}
	e.Seen = c.Cluster
	if c.Echo {
		l.settle(e)
		return
	}
	if e.Pending == nil {
		e.Pending = &Timer{First: c.At}
		l.reopen(e)
	}
	e.Pending.Last = c.At
	l.arm(e)
}

// settle drops the records of an entry that waits for nothing (Settled),
// unless it went (pruned).
func (l *Lifecycle) settle(e *Entry) {
	if !l.keepSettled && e.Pending == nil && len(e.Outstanding) == 0 && len(e.Held) == 0 && len(e.Seen.Records) > 0 && l.entries[e.ClusterID] == e {
		e.Seen.Records, e.Seen.Accounts = nil, nil
		e.Settled = true
		l.dirty[e.ClusterID] = true
		l.track(e)
	}
}

// gone reports whether the entry's cluster no longer exists.
func (e *Entry) gone() bool { return len(e.Seen.Records) == 0 && !e.Settled }

// Emitted reports whether commands were emitted for the cluster: its state
// is not zero, or commands of it await their results.
func (l *Lifecycle) Emitted(cluster string) bool {
	e := l.get(cluster)
	return e != nil && (!e.State.IsZero() || len(e.Outstanding) > 0)
}

// setMergedInto records that e was joined into target ("": into none).
func (l *Lifecycle) setMergedInto(e *Entry, target string) {
	l.dirty[e.ClusterID] = true
	if old := e.MergedInto; old != "" {
		l.joined[old] = slices.DeleteFunc(l.joined[old], func(id string) bool { return id == e.ClusterID })
		if len(l.joined[old]) == 0 {
			delete(l.joined, old)
		}
	}
	e.MergedInto = target
	if target != "" {
		l.joined[target] = append(l.joined[target], e.ClusterID)
	}
}

// Due returns the clusters due at now, ordered by their latest change and
// then id: the order their plans are emitted in. A held cluster is not due
// again before its Planned.
func (l *Lifecycle) Due(now time.Time) []Ready {
	var es []*Entry
	seen := map[string]bool{}
	for len(l.timers) > 0 && !l.timers[0].at.After(now) {
		t := heap.Pop(&l.timers).(timer)
		if e := l.live(t); e != nil && !seen[t.id] {
			seen[t.id] = true
			es = append(es, e)
		}
	}
	// They stay due until planned: asked again, they are found again.
	for _, e := range es {
		l.arm(e)
	}
	return l.readyOf(es)
}

// Flush returns every cluster with an unplanned change, as at the end of
// the input (simulate, replay), results awaited or not.
func (l *Lifecycle) Flush() []Ready {
	return l.ready(func(e *Entry) bool { return e.Pending != nil })
}

// Hold keeps r in its entry until Acked: an owner holds each plan it
// emits, so that the durable copy it writes before the emission is
// acknowledged can plan it again, the same.
func (l *Lifecycle) Hold(r Ready) {
	e := l.entry(r.Cluster.ID)
	if !slices.ContainsFunc(e.Held, func(h Held) bool { return h.Cluster.Version == r.Cluster.Version }) {
		e.Held = append(e.Held, Held{Cluster: r.Cluster, History: r.History, At: r.At, Absorbed: r.absorbed})
		l.reopen(e)
	}
}

// Acked releases the held plan r: its emission was acknowledged.
func (l *Lifecycle) Acked(r Ready) {
	e := l.entries[r.Cluster.ID]
	if e == nil {
		return
	}
	n := len(e.Held)
	e.Held = slices.DeleteFunc(e.Held, func(h Held) bool { return h.Cluster.Version == r.Cluster.Version })
	if len(e.Held) != n {
		l.dirty[e.ClusterID] = true
	}
	if len(e.Held) == 0 {
		e.Held = nil
		l.reopen(e)
		l.prune(e)
		l.settle(e)
	}
}

// prune forgets an entry that holds nothing: nothing emitted, nothing
// pending or held, no cluster joined to or from it (a lone record's
// cluster, planned to nothing). Replanned, it plans the same from nothing.
func (l *Lifecycle) prune(e *Entry) {
	if e.State.IsZero() && e.Pending == nil && len(e.Held) == 0 && len(e.Outstanding) == 0 && e.MergedInto == "" && len(l.joined[e.ClusterID]) == 0 {
		l.drop(e.ClusterID)
		l.dirty[e.ClusterID] = true
	}
}

// Held returns the held plans, entries by cluster id, each entry's in plan
// order: to plan again, and record with Planned again, when their emission
// is not known to have happened (a restored lifecycle, a failed write).
func (l *Lifecycle) Held() []Ready {
	ids := slices.Sorted(maps.Keys(l.holding))
	var out []Ready
	for _, id := range ids {
		for _, h := range l.holding[id].Held {
			out = append(out, Ready{Cluster: h.Cluster, History: h.History, At: h.At, absorbed: h.Absorbed})
		}
	}
	return out
}

// NextDue returns when the next pending cluster falls due, false when none
// is pending: an owner sets its timer to it.
func (l *Lifecycle) NextDue() (time.Time, bool) {
	for len(l.timers) > 0 {
		if l.live(l.timers[0]) != nil {
			return l.timers[0].at, true
		}
		heap.Pop(&l.timers)
	}
	return time.Time{}, false
}

// NextDueAfter is NextDue of the clusters falling due after t (zero t:
// NextDue): an owner with a tick on its way, which closes the windows due
// by t, asks it for the next one.
func (l *Lifecycle) NextDueAfter(t time.Time) (time.Time, bool) {
	if t.IsZero() {
		return l.NextDue()
	}
	var next time.Time
	found := false
	for _, tm := range l.timers {
		if tm.at.After(t) && (!found || tm.at.Before(next)) && l.live(tm) != nil {
			next, found = tm.at, true
		}
	}
	return next, found
}

func (l *Lifecycle) ready(pick func(*Entry) bool) []Ready {
	var es []*Entry
	for _, e := range l.open {
		if pick(e) {
			es = append(es, e)
		}
	}
	return l.readyOf(es)
}

func (l *Lifecycle) readyOf(es []*Entry) []Ready {
	slices.SortFunc(es, func(a, b *Entry) int {
		return cmp.Or(a.Pending.Last.Compare(b.Pending.Last), strings.Compare(a.ClusterID, b.ClusterID))
	})
	out := make([]Ready, len(es))
	for i, e := range es {
		out[i] = Ready{Cluster: e.Seen, History: l.history(e), At: e.Pending.Last, absorbed: l.own(e)}
	}
	return out
}

// history gathers what was emitted for e's records: its own state and
// those of clusters joined into it carry their masters; states of other
// clusters claiming its records (it split off them) carry their marks.
func (l *Lifecycle) history(e *Entry) engine.History {
	var h engine.History
	own := l.own(e)
	for _, id := range own {
		// e itself is not stored when a request plans a new cluster.
		if o := l.get(id); o != nil && !o.State.IsZero() {
			h.Own = append(h.Own, o.State)
		}
	}
	var split []string
	for i := range e.Seen.Records {
		id, ok := l.claims[e.Seen.Records[i].Ref()]
		if ok && !slices.Contains(own, id) && !slices.Contains(split, id) && l.get(id) != nil {
			split = append(split, id)
		}
	}
	slices.Sort(split)
	for _, id := range split {
		h.Split = append(h.Split, l.entries[id].State)
	}
	return h
}

// own returns the clusters whose states carry over to e's next plan: e's
// and those joined into it (absorbed), and any cluster that is gone,
// joined into none, whose master contact e now holds. That happens when
// the converted leads left their cluster (their echoes) before the contact
// they were converted into arrived: the contact forms a cluster of its
// own, later met by other records, and is still the master leadconv chose.
func (l *Lifecycle) own(e *Entry) []string {
	out := l.absorbed(e.ClusterID)
	for i := range e.Seen.Records {
		r := &e.Seen.Records[i]
		if r.Object != record.Contact {
			continue
		}
		id, ok := l.claims[r.Ref()]
		o := l.entries[id]
		if !ok || o == nil || slices.Contains(out, id) || !o.gone() || o.MergedInto != "" || o.State.Master.ID != r.ID {
			continue
		}
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// absorbed returns id and the clusters joined into it, directly or through
// others, sorted.
func (l *Lifecycle) absorbed(id string) []string {
	out := []string{id}
	for k := 0; k < len(out); k++ {
		for _, j := range l.joined[out[k]] {
			if !slices.Contains(out, j) {
				out = append(out, j)
			}
		}
	}
	slices.Sort(out)
	return out
}

// Planned records the plan of r: its commands were emitted and st is the
// cluster's state after it (engine.Prepared.State). When changed is false
// the plan emitted nothing irreversible and the states stay as they were.
// A change recorded after r was made (an owner marks its plans once they
// are acknowledged) stays pending: the next plan takes it from st.
func (l *Lifecycle) Planned(r Ready, cmds []engine.Command, st engine.State, changed bool) {
	e := l.entry(r.Cluster.ID)
	if e.Seen.Version == r.Cluster.Version {
		e.Pending = nil
		l.reopen(e)
	}
	if !changed {
		l.prune(e)
	} else {
		l.emitted(e, cmds, st, r.absorbed)
	}
	l.settle(e)
}

// emitted records that e's plan emitted cmds and left st: the clusters
// joined into it (absorbed; nil: as they stand now) are taken over, the
// records st claims point at it, and the conversions and merges await their
// results (AwaitResults).
func (l *Lifecycle) emitted(e *Entry, cmds []engine.Command, st engine.State, absorbed []string) {
	if absorbed == nil {
		absorbed = l.absorbed(e.ClusterID)
	}
	for _, id := range absorbed {
		if o := l.entries[id]; id != e.ClusterID && o != nil {
			// Its state lives on in st; its outstanding commands move here.
			e.Outstanding = append(e.Outstanding, o.Outstanding...)
			l.setMergedInto(o, "")
			l.drop(id)
		}
	}
	e.State = st
	for _, ref := range st.Claims() {
		l.claims[ref] = e.ClusterID
	}
	if l.opts.AwaitResults {
		for _, c := range cmds {
			// A replayed plan emits the same ids again: awaited once.
			if (c.Kind == engine.KindLeadConvert || c.Kind == engine.KindRecordsMerge) &&
				!slices.ContainsFunc(e.Outstanding, func(o engine.Command) bool { return o.ID == c.ID }) {
				c.Explain = nil
				e.Outstanding = append(e.Outstanding, c)
			}
		}
	}
	for _, c := range e.Outstanding {
		l.sent[c.ID] = e.ClusterID
	}
}

// Result is a writer's command.result, as far as the lifecycle needs it.
type Result struct {
	CommandID string
	// Outcome is applied, skipped_duplicate, stale or failed.
	Outcome string
	Reason  string
	// Records are the records the command created, changed or deleted.
	Records []record.Ref
}

// Writer outcomes (command.result).
const (
	OutcomeApplied          = "applied"
	OutcomeSkippedDuplicate = "skipped_duplicate"
	OutcomeStale            = "stale"
	OutcomeFailed           = "failed"
)

// Result reconciles a writer result with the pending state. An applied
// conversion that created the master names the contact and account it
// created; a failed one is released: the cluster is planned again (after
// the settle window from at), the failed records handed to a person with
// the writer's reason (engine.ReasonWriterFailed). A stale one (dropped
// unexecuted: the writer applied a newer plan of the cluster) is released
// too, but its records are planned again rather than reviewed. It reports
// whether the result belonged to a command this lifecycle awaits.
func (l *Lifecycle) Result(r Result, at time.Time) bool {
	id, ok := l.sent[r.CommandID]
	e := l.entries[id]
	if !ok || e == nil {
		return false
	}
	delete(l.sent, r.CommandID)
	l.dirty[id] = true
	k := slices.IndexFunc(e.Outstanding, func(c engine.Command) bool { return c.ID == r.CommandID })
	if k < 0 {
		return false
	}
	cmd := e.Outstanding[k]
	e.Outstanding = slices.Delete(e.Outstanding, k, k+1)
	defer func() {
		l.arm(e) // it may be due now that a result came
		l.settle(e)
	}()
	switch r.Outcome {
	case OutcomeApplied, OutcomeSkippedDuplicate:
		if d, ok := cmd.Data.(*engine.LeadConvert); ok {
			if e.State.Reconcile(d.LeadID, firstOf(r.Records, record.Contact), firstOf(r.Records, record.Account)) {
				l.stats.Reconciled++
				l.reclaim(e)
			}
		}
	default:
		reason := r.Reason
		if r.Outcome == OutcomeStale {
			reason = OutcomeStale
		}
		l.stats.Failed[reason]++
		modified := make(map[record.Ref]time.Time, len(e.Seen.Records))
		for _, rec := range e.Seen.Records {
			modified[rec.Ref()] = rec.ModifiedAt
		}
		e.State.Release(&cmd, reason, modified)
		if r.Outcome == OutcomeStale {
			// Dropped unexecuted, not refused: nothing for a person to look
			// at; the record is planned again with the rest.
			e.State.Held = slices.DeleteFunc(e.State.Held, func(h engine.Held) bool { return h.Reason == OutcomeStale })
		}
		// Planned anew from the state as it now stands.
		if e.Seen.Records != nil && e.Pending == nil {
			e.Pending = &Timer{First: at, Last: at}
			l.reopen(e)
		}
		l.reclaim(e)
	}
	return true
}

// Echo reconciles the CRM's change event of a lead leadconv converted
// (IsConverted, with the contact and account it went into): a pending
// master or account named by that lead is replaced by its id. An echo
// never starts a plan by itself. It reports whether the lead was one this
// lifecycle converted.
func (l *Lifecycle) Echo(lead, contactID, accountID string) bool {
	id, ok := l.claims[record.Ref{Object: record.Lead, ID: lead}]
	if !ok {
		return false
	}
	e := l.get(id)
	if e == nil || !slices.Contains(e.State.Converted, lead) {
		return false
	}
	if e.State.Reconcile(lead, contactID, accountID) {
		l.dirty[id] = true
		l.stats.Reconciled++
		l.reclaim(e)
		if e.Settled {
			l.track(e) // its size changed
		}
	}
	return true
}

func (l *Lifecycle) reclaim(e *Entry) {
	for _, ref := range e.State.Claims() {
		l.claims[ref] = e.ClusterID
	}
}

func firstOf(refs []record.Ref, obj record.Object) string {
	for _, r := range refs {
		if r.Object == obj {
			return r.ID
		}
	}
	return ""
}

// Snapshot returns every resident entry, sorted by cluster id: with none
// evicted, the lifecycle's whole state as plain data.
func (l *Lifecycle) Snapshot() []Entry {
	out := make([]Entry, 0, len(l.entries))
	for _, id := range slices.Sorted(maps.Keys(l.entries)) {
		out = append(out, *l.entries[id])
	}
	return out
}

// Pending counts the clusters with an unplanned change.
func (l *Lifecycle) Pending() int {
	n := 0
	for _, e := range l.open {
		if e.Pending != nil {
			n++
		}
	}
	return n
}

// Dirty reports whether entries changed since the last TakeDirty.
func (l *Lifecycle) Dirty() bool { return len(l.dirty) > 0 }

// TakeDirty returns the entries changed since the last call, sorted by
// cluster id, and the ids of the entries gone since: what an owner writes
// to keep its durable copy in step. The entries are the lifecycle's own:
// encode them before the next change.
func (l *Lifecycle) TakeDirty() (changed []*Entry, removed []string) {
	changed = make([]*Entry, 0, len(l.dirty))
	for _, id := range slices.Sorted(maps.Keys(l.dirty)) {
		if e := l.entries[id]; e != nil {
			changed = append(changed, e)
		} else {
			removed = append(removed, id)
		}
	}
	clear(l.dirty)
	return changed, removed
}

// Touch marks clusters dirty again: the owner's write of what TakeDirty
// returned failed, so they go with the next one.
func (l *Lifecycle) Touch(ids ...string) {
	for _, id := range ids {
		l.dirty[id] = true
	}
}

// Restore returns a lifecycle holding a Snapshot's entries, and the
// settled entries of stubs evicted (Stub): what an owner's take reads. A
// stub of one of the entries is stale (it was written open since) and
// ignored. Before a change or plan reads them, the owner loads those
// Protected names.
func Restore(opts Options, entries []Entry, stubs []Stub) *Lifecycle {
	l := New(opts)
	for i := range entries {
		e := entries[i]
		l.entries[e.ClusterID] = &e
		l.reopen(&e)
		l.arm(&e)
		if e.Settled {
			l.track(&e)
		}
	}
	stubbed := make(map[string]*Stub, len(stubs))
	for i := range stubs {
		if l.entries[stubs[i].ClusterID] == nil {
			stubbed[stubs[i].ClusterID] = &stubs[i]
			l.evicted[stubs[i].ClusterID] = true
		}
	}
	// Joins and claims in cluster order, entries and stubs alike: a record
	// two states claim is the later one's, as it was before the take.
	ids := append(slices.Collect(maps.Keys(l.entries)), slices.Collect(maps.Keys(stubbed))...)
	slices.Sort(ids)
	for _, id := range ids {
		if st := stubbed[id]; st != nil {
			for _, ref := range st.Claims {
				l.claims[ref] = id
			}
			continue
		}
		e := l.entries[id]
		if e.MergedInto != "" {
			l.joined[e.MergedInto] = append(l.joined[e.MergedInto], id)
		}
		l.reclaim(e)
		for _, c := range e.Outstanding {
			l.sent[c.ID] = id
		}
	}
	return l
}
