package lifecycle

import (
	"fmt"
	"slices"
	"strings"

	"github.com/leadconv/leadconv/record"
)

// A tenant keeps an entry for every cluster it ever planned, so an owner
// bounds the memory they take: it evicts settled entries (Evict), which
// wait for nothing and change only with a later change of their cluster,
// once they are durable, and loads them back (Load) before the changes
// that read them: those the owner names, before each batch, with Wanted.
// The claims of an evicted entry stay, so that Wanted can name the
// clusters whose states a record's change reads. An evicted entry read
// without being loaded is a fault (Faults): the owner's call fails rather
// than decide without it.

// An owner also shelves settled entries: it writes them where its take
// does not read them, with a stub of each beside its open entries (Stub),
// so that a take reads what waits for something rather than every cluster
// ever planned, and restores the rest evicted (Restore).

// Stub is what a take restores of a shelved entry: its cluster and the
// records its state claims, all that a lifecycle keeps of an evicted
// entry. (A settled entry was joined into no cluster: a change that joins
// it empties it, and an empty cluster does not settle.)
type Stub struct {
	ClusterID string
	Claims    []record.Ref
}

// AppendStub appends the claims of e's stub, as ParseStub reads them:
// record.Ref strings, space-separated (ids hold no spaces: the record
// event's rules).
func (e *Entry) AppendStub(b []byte) []byte {
	for i, r := range e.State.Claims() {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(append(append(b, r.Object...), '/'), r.ID...)
	}
	return b
}

// ParseStub reads the stub of cluster id that AppendStub wrote.
func ParseStub(id, s string) (Stub, error) {
	st := Stub{ClusterID: id}
	for _, w := range strings.Fields(s) {
		r, ok := record.ParseRef(w)
		if !ok {
			return Stub{}, fmt.Errorf("lifecycle: stub of cluster %s: %q is not a record ref", id, w)
		}
		st.Claims = append(st.Claims, r)
	}
	return st, nil
}

// settledEntry is a resident settled entry: its estimated size, and the
// settlement it is queued under.
type settledEntry struct {
	size int
	n    uint64
}

// queued is a settlement in the eviction queue; stale once its entry
// settled again (a later n), left the settled ones or went.
type queued struct {
	id string
	n  uint64
}

// track records that e is settled and resident, as the newest settlement.
func (l *Lifecycle) track(e *Entry) {
	l.untrack(e.ClusterID)
	l.settlements++
	s := settledEntry{size: entrySize(e), n: l.settlements}
	l.settled[e.ClusterID] = s
	l.settledBytes += int64(s.size)
	l.queue = append(l.queue, queued{e.ClusterID, s.n})
	if len(l.queue) > 2*len(l.settled)+1024 {
		// Drop the stale settlements, keeping the order of the rest.
		l.queue = slices.DeleteFunc(l.queue, func(q queued) bool { return l.settled[q.id].n != q.n })
	}
}

// untrack forgets that id is settled and resident.
func (l *Lifecycle) untrack(id string) {
	if s, ok := l.settled[id]; ok {
		l.settledBytes -= int64(s.size)
		delete(l.settled, id)
	}
}

// entrySize estimates the heap a settled entry takes: the struct, its
// state's field map and strings (calibrated against a heap profile of a
// restored 1M-lead tenant, BENCHMARKS.md; TestEntrySizeEstimatesTheHeap
// holds it at or above the heap, by at most a third).
func entrySize(e *Entry) int {
	n := 640 + 2*len(e.ClusterID) + len(e.State.Master.ID) + len(e.State.Master.FromLead) + len(e.State.Account.ID) + len(e.State.Account.FromLead)
	for k, v := range e.State.Fields {
		n += 96 + len(k)
		if s, ok := v.(string); ok {
			n += len(s)
		}
	}
	for _, id := range e.State.Converted {
		n += 48 + len(id)
	}
	for _, t := range e.State.Merged {
		n += 64 + len(t.ID) + len(t.FromLead)
	}
	for _, h := range e.State.Held {
		n += 96 + len(h.Ref.ID) + len(h.Reason)
	}
	return n
}

// SettledBytes is the estimated memory of the resident settled entries:
// what Evict bounds.
func (l *Lifecycle) SettledBytes() int64 { return l.settledBytes }

// Evict drops settled entries from memory, the longest settled first,
// until their estimated memory is within budget (the owner picks a
// budget below its bound, so that eviction does not run on every write).
// Dirty entries (not yet written) stay, and so do those a cluster waiting
// for something may read when it is planned: the clusters claiming its
// records. It returns how many it evicted.
func (l *Lifecycle) Evict(budget int64) int {
	if l.settledBytes <= budget {
		return 0
	}
	keep := l.protected()
	n := 0
	for k := len(l.queue); k > 0 && l.settledBytes > budget; k-- {
		q := l.queue[0]
		l.queue = l.queue[1:]
		if s, ok := l.settled[q.id]; !ok || s.n != q.n {
			continue
		}
		if l.dirty[q.id] || keep[q.id] {
			l.track(l.entries[q.id])
			continue
		}
		l.untrack(q.id)
		delete(l.entries, q.id)
		delete(l.open, q.id)
		l.evicted[q.id] = true
		n++
	}
	return n
}

// protected returns the clusters whose states the plan of a cluster that
// waits for something (pending, held or awaiting results) reads: those
// claiming its records.
func (l *Lifecycle) protected() map[string]bool {
	keep := map[string]bool{}
	see := func(e *Entry) {
		for i := range e.Seen.Records {
			if id, ok := l.claims[e.Seen.Records[i].Ref()]; ok {
				keep[id] = true
			}
		}
	}
	for _, e := range l.open {
		see(e)
	}
	for _, id := range l.sent {
		if e := l.entries[id]; e != nil {
			see(e)
		}
	}
	return keep
}

// Protected returns the evicted entries, sorted, that a plan of a
// cluster waiting for something reads (those Evict keeps): after Restore,
// what the owner loads before anything else.
func (l *Lifecycle) Protected() []string {
	if len(l.evicted) == 0 {
		return nil
	}
	var out []string
	for id := range l.protected() {
		if l.evicted[id] {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// Wanted returns the evicted entries, sorted, that changes of the clusters
// ids and of the records refs may read: the clusters themselves and those
// claiming the records. An owner loads them (Load) before the changes.
func (l *Lifecycle) Wanted(ids []string, refs []record.Ref) []string {
	if len(l.evicted) == 0 {
		return nil
	}
	var out []string
	add := func(id string) {
		if l.evicted[id] && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	for _, id := range ids {
		add(id)
	}
	for _, r := range refs {
		if id, ok := l.claims[r]; ok {
			add(id)
		}
	}
	slices.Sort(out)
	return out
}

// HasEvicted reports whether any entry is evicted.
func (l *Lifecycle) HasEvicted() bool { return len(l.evicted) > 0 }

// Load puts evicted entries back, as the owner's store holds them. An
// entry not evicted is ignored: the resident one is the latest. Claims are
// left as they stand: another cluster's plan may have claimed a record
// since.
func (l *Lifecycle) Load(entries []Entry) {
	for i := range entries {
		e := entries[i]
		if !l.evicted[e.ClusterID] {
			continue
		}
		delete(l.evicted, e.ClusterID)
		l.entries[e.ClusterID] = &e
		if e.Settled {
			l.track(&e)
		}
	}
}

// Faults counts reads of evicted entries that were not loaded first: a
// call that made one decided without what the entry holds, and must not
// be written.
func (l *Lifecycle) Faults() int { return l.faults }

// get returns the entry of id, counting a fault if it is evicted.
func (l *Lifecycle) get(id string) *Entry {
	if l.evicted[id] {
		l.faults++
	}
	return l.entries[id]
}
