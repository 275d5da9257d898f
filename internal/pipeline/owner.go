package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/lifecycle"
	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/record"
)

// owner is the owner of one by-tenant partition: the single writer of its
// tenants' matcher state (the store) and of their lifecycles, made on the
// partition's first batch (or timer check) after assignment and dropped on
// Release. Each tenant's lifecycle entries live in Redis as the store's
// side state of the tenant, written in the same fenced call as the batch
// that changed them, so a batch's offsets are committed only once the
// pending state it caused is durable: the entries that wait for something
// taken (<ns>:{tenant}:side, cluster id -> JSON entry), read when the owner
// takes the tenant; the settled ones shelved (<ns>:{tenant}:shelf, the
// same), read back by cluster when a change needs them, with their stubs
// taken in their place (the field of an open entry holds its JSON, of a
// settled one its stub): a take reads what waits, not every cluster ever
// planned.
//
// A plan is recorded in the lifecycle (Planned) as it is made, and held
// (Hold: the cluster state and history it was planned from, kept in the
// entry) until its commands were acknowledged; the release (Acked) is
// recorded at the owner's next call, as the partition's worker calls again
// only after producing the previous Result, and written with that call's
// write. Should the process die between the write and the produce, the
// next owner finds the plan held and plans it again from what it was
// planned from, to the same commands and ids (the writer dedupes them): a
// plan is neither lost nor emitted under a new id, and a cluster may be
// planned several times in one batch, its plans composing.
type owner struct {
	h     *Handler
	store Owner

	mu      sync.Mutex // one call at a time: Handle and Tick of the worker, Flush at the end
	tenants map[string]*tenantState
	// unacked are the plans of the last call, released (Acked) at the
	// next.
	unacked []planItem
	// warmed: the tenants the partition's previous owners left lifecycle
	// state for were taken (warm).
	warmed bool
	// settled is the memory of its tenants' settled entries as last added
	// to the handler's (evict).
	settled int64
}

// tenantState is one tenant of an owner.
type tenantState struct {
	name string
	cfg  *config.Tenant
	lc   *lifecycle.Lifecycle
	// entryLen is the mean size of the entries its last write encoded:
	// the next one's buffer is sized by it (dirty).
	entryLen int
	// The tenant's clock is event time: the latest change's, result's or
	// tick's time in the log (wm); seen is the wall time of the tenant's
	// last input. Plans are made on the clock alone, live as in a replay;
	// between inputs a live tenant's clock runs on with the wall clock
	// from seen, and a window that passed so is closed by a tick (Tick).
	wm, seen time.Time
	// ticked is the time of the latest tick of the tenant produced and not
	// read back yet (zero: none): the windows due by then close when it
	// is, and a further tick is due only for a window after it.
	ticked time.Time
	// saved is the clock as last written (clockField).
	saved time.Time
	// fresh: restored, and the shelved entries its waiting clusters' plans
	// read not loaded yet (load).
	fresh bool
	// legacy: the clusters whose stubs the take found under stubField, each
	// with the stub to move into its own field (nil: that field is later,
	// the stub only goes), for the next writes; migrating: those the last
	// write took, back to legacy should it fail (touch).
	legacy, migrating map[string]*string
}

// clockField is the side-state field of the tenant's clock (no cluster id:
// those are hex), written with the lifecycle whenever it moved: the
// partition's next owner goes on from the clock its predecessor left, so a
// window closes where it would have with no change of owner (the latest
// event time may be a record whose cluster is no longer pending).
const clockField = "~clock"

// stubField prefixes the side-state field a shelved entry's stub
// (lifecycle.Stub) had of its own before 2026-12-08, followed by its
// cluster id: a settled write then set it and deleted the entry's field,
// two fields where one now holds the stub. Such fields are still read, the
// entry's own field winning, and moved into it by the owner's writes after
// the take (tenantState.legacy, legacyPerWrite).
const stubField = "~stub:"

// legacyPerWrite bounds the stubs under stubField one write moves besides
// those of its entries: a tenant's million settled entries are not one
// transaction of millions of fields.
var legacyPerWrite = 10_000

func newOwner(h *Handler, store Owner) *owner {
	return &owner{h: h, store: store, tenants: map[string]*tenantState{}}
}

// idle is the tenant's time at wall with no input since seen (zero wall:
// event time only).
func (ts *tenantState) idle(wall time.Time) time.Time {
	if wall.IsZero() || ts.seen.IsZero() {
		return ts.wm
	}
	return ts.wm.Add(max(0, wall.Sub(ts.seen)))
}

// observe moves the tenant's clock to t if t is ahead of it; any input
// restarts its idle time (a record older than the clock says more input
// may be on its way, as from input partitions that lag), from when it was
// logged (its Kafka timestamp), not processed: the clock stood at its
// time then, and processing sees it a batch later, which would close
// every window on the wall clock that much late. A log time more than
// maxLogLag before wall (a backlog, a producer's clock) counts as that.
// The idle time never restarts earlier than it stands: an older input
// logged before the one that set the clock would run the clock ahead of
// the wall clock by their gap. Nor earlier than an event time after its
// log time (the log keeps milliseconds), for the same reason.
func (ts *tenantState) observe(t, logged, wall time.Time) {
	at := wall
	if lag := wall.Sub(logged); !wall.IsZero() && !logged.IsZero() && lag > 0 {
		at = wall.Add(-min(lag, maxLogLag))
	}
	if t.After(at) && !t.After(wall) {
		at = t
	}
	if ts.wm.IsZero() || t.After(ts.wm) {
		ts.wm, ts.seen = t, at
		return
	}
	if at.After(ts.seen) {
		ts.seen = at
	}
}

// maxLogLag bounds how much earlier than its processing an input restarts
// its tenant's idle time (observe): about a batch's latency, and far below
// any settle window.
const maxLogLag = 100 * time.Millisecond

// tenant returns the tenant's state, restoring it from raw (the side state
// the store read when it took the tenant) or starting it empty. A restored
// tenant's shelved entries are evicted: the next load reads back those it
// must hold. Entries stored without the records of their cluster seen
// (lifecycle.InStore) get them from current, the store's clusters as
// they are outside a batch (inside one, the store holds the batch's
// decisions: nil, and such an entry is an error).
func (o *owner) tenant(ctx context.Context, name string, raw map[string]string, restore bool, wall time.Time, current currentFunc) (*tenantState, error) {
	ts := o.tenants[name]
	if ts != nil && !restore {
		return ts, nil
	}
	cfg, err := o.h.tenants.Tenant(name)
	if err != nil {
		return nil, fmt.Errorf("pipeline: tenant %s: %w", name, err)
	}
	ts = &tenantState{name: name, cfg: cfg}
	var entries []lifecycle.Entry
	var stubs []lifecycle.Stub
	for _, id := range slices.Sorted(maps.Keys(raw)) {
		if id == clockField {
			at, err := time.Parse(time.RFC3339Nano, raw[id])
			if err != nil {
				return nil, fmt.Errorf("pipeline: clock of tenant %s: %w", name, err)
			}
			ts.saved = at
			if at.After(ts.wm) {
				ts.wm, ts.seen = at, wall
			}
			continue
		}
		cid, legacy := strings.CutPrefix(id, stubField)
		if legacy {
			if ts.legacy == nil {
				ts.legacy = map[string]*string{}
			}
			if _, own := raw[cid]; own {
				ts.legacy[cid] = nil
				continue // stale: the entry's own field is later
			}
			v := raw[id]
			ts.legacy[cid] = &v
		}
		if legacy || !strings.HasPrefix(raw[id], "{") {
			if !legacy {
				cid = id
			}
			st, err := lifecycle.ParseStub(cid, raw[id])
			if err != nil {
				return nil, fmt.Errorf("pipeline: lifecycle of tenant %s: %w", name, err)
			}
			stubs = append(stubs, st)
			continue
		}
		var e lifecycle.Entry
		if err := json.Unmarshal([]byte(raw[id]), &e); err != nil {
			return nil, fmt.Errorf("pipeline: lifecycle of tenant %s, cluster %s: %w", name, id, err)
		}
		entries = append(entries, e)
		if e.Pending != nil && e.Pending.Last.After(ts.wm) {
			ts.wm, ts.seen = e.Pending.Last, wall
		}
		for _, hd := range e.Held {
			if hd.At.After(ts.wm) {
				ts.wm, ts.seen = hd.At, wall
			}
		}
	}
	if err := fill(ctx, name, entries, current); err != nil {
		return nil, err
	}
	ts.lc = lifecycle.Restore(o.h.cfg.Lifecycle(cfg), entries, stubs)
	ts.fresh = len(stubs) > 0
	o.tenants[name] = ts
	return ts, nil
}

// currentFunc returns clusters of a tenant as the store holds them
// (matcher.Store.Current).
type currentFunc func(ctx context.Context, tenant string, ids []string) (map[string]matcher.Current, error)

// fill gives the entries stored without the records of their cluster seen
// the store's records of it, which must be at the entry's version: the
// store writes every change of a cluster in the call that writes the side
// state reporting it, and an entry refers to the store only for a version
// it holds (dirty).
func fill(ctx context.Context, tenant string, entries []lifecycle.Entry, current currentFunc) error {
	var ids []string
	for i := range entries {
		if entries[i].InStore() {
			ids = append(ids, entries[i].Seen.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if current == nil {
		return fmt.Errorf("pipeline: lifecycle of tenant %s restored inside a batch, %d clusters stored by reference", tenant, len(ids))
	}
	cur, err := current(ctx, tenant, ids)
	if err != nil {
		return err
	}
	for i := range entries {
		e := &entries[i]
		if !e.InStore() {
			continue
		}
		c := cur[e.Seen.ID]
		if c.Version != e.Seen.Version || len(c.Records) == 0 {
			return fmt.Errorf("pipeline: lifecycle of tenant %s, cluster %s: stored by reference to version %d, the store holds version %d with %d records", tenant, e.Seen.ID, e.Seen.Version, c.Version, len(c.Records))
		}
		e.Fill(c.Records)
	}
	return nil
}

// warm takes, once, the tenants the partition's previous owners left
// lifecycle state for (the store's side index), before any input of
// theirs: a plan pending when the partition moved or the process stopped
// falls due with no new input.
func (o *owner) warm(ctx context.Context, wall time.Time) error {
	if o.warmed {
		return nil
	}
	names, err := o.store.Indexed(ctx)
	if err != nil {
		return err
	}
	if err := o.takeNew(ctx, names, wall); err != nil {
		return err
	}
	// What the taken tenants must hold is loaded by the call's next load.
	o.warmed = true
	return nil
}

// takeNew takes and restores those of the named tenants the owner does not
// hold yet, outside a batch: a batch's new tenants before it, since their
// restored entries read the store's clusters as they were before the batch
// (fill).
func (o *owner) takeNew(ctx context.Context, names []string, wall time.Time) error {
	var want []string
	for _, n := range names {
		if o.tenants[n] == nil && !slices.Contains(want, n) {
			want = append(want, n)
		}
	}
	if len(want) == 0 {
		return nil
	}
	raw, err := o.store.Take(ctx, want)
	if err != nil {
		return err
	}
	for _, n := range slices.Sorted(maps.Keys(raw)) {
		if _, err := o.tenant(ctx, n, raw[n], true, wall, o.store.Current); err != nil {
			return err
		}
	}
	return nil
}

// readSide reads fields of tenants' side state (matcher.Store.ReadSide).
type readSide func(ctx context.Context, fields map[string][]string) (map[string]map[string]string, error)

// ack releases the previous call's plans: acknowledged, since the worker
// calls again only after producing them.
func (o *owner) ack() {
	for _, it := range o.unacked {
		it.tenant.lc.Acked(it.ready)
	}
	o.unacked = nil
}

// dirty takes what changed in every tenant's lifecycle as side state to
// write, with the ids taken by tenant, for touch should the write fail.
// An entry whose cluster seen the store holds once this is written (holds)
// refers to it rather than copy its records (lifecycle.InStore).
// A tenant's entries are encoded into one buffer, sized by the mean entry
// of its last write, that becomes the string their values share: about
// one allocation for the bytes of a batch. (A pooled buffer, copied out,
// allocated two to three times that: the collector drops pools, a
// full-speed batch's entries are over 16 MB, and a large slice grows by a
// quarter at a time.)
func (o *owner) dirty(holds func(tenant, cluster string, version int64) bool) (map[string]matcher.Side, map[string][]string, error) {
	var side map[string]matcher.Side
	var taken map[string][]string
	var ends []int
	for name, ts := range o.tenants {
		clock := !ts.wm.Equal(ts.saved)
		ts.migrating = nil
		if !ts.lc.Dirty() && !clock && len(ts.legacy) == 0 {
			continue
		}
		changed, removed := ts.lc.TakeDirty()
		if side == nil {
			side, taken = map[string]matcher.Side{}, map[string][]string{}
		}
		var buf []byte
		var err error
		in := func(cluster string, version int64) bool { return holds(name, cluster, version) }
		buf, ends, err = lifecycle.AppendEntriesJSON(make([]byte, 0, ts.entryLen*len(changed)*5/4+512), slices.Grow(ends[:0], len(changed)), changed, in)
		if err != nil {
			// What was taken is marked dirty again by the caller (touch).
			for _, e := range changed {
				taken[name] = append(taken[name], e.ClusterID)
			}
			taken[name] = append(taken[name], removed...)
			return nil, taken, fmt.Errorf("pipeline: lifecycle of tenant %s, cluster %s: %w", name, changed[len(ends)].ClusterID, err)
		}
		// The settled entries' stubs go into the buffer after the entries:
		// ends[n+i] is where entry i's stub ends.
		n, at := len(changed), len(buf)
		for i := range changed {
			if changed[i].Settled {
				buf = changed[i].AppendStub(buf)
			}
			ends = append(ends, len(buf))
		}
		// buf is not written again: its bytes are the string's.
		all := unsafe.String(unsafe.SliceData(buf), len(buf))
		if n > 0 {
			ts.entryLen = len(buf) / n
		}
		vals := make([]string, 2*n)
		moving := min(len(ts.legacy), legacyPerWrite+n+len(removed))
		s := matcher.Side{Taken: make(map[string]*string, n+len(removed)+2*moving+1), Shelved: make(map[string]*string, n+len(removed))}
		ids := make([]string, 0, len(changed)+len(removed)+moving+1)
		// Stubs under stubField move into their own fields first, what the
		// batch writes of their entries going over them: those of the
		// batch's entries (a removed one's must not outlive it), then up
		// to legacyPerWrite more.
		if len(ts.legacy) > 0 {
			ts.migrating = make(map[string]*string, moving)
			move := func(id string) {
				stub := ts.legacy[id]
				s.Taken[stubField+id] = nil
				if stub != nil {
					s.Taken[id] = stub
				}
				ts.migrating[id] = stub
				delete(ts.legacy, id)
				ids = append(ids, stubField+id)
			}
			for _, e := range changed {
				if _, ok := ts.legacy[e.ClusterID]; ok {
					move(e.ClusterID)
				}
			}
			for _, id := range removed {
				if _, ok := ts.legacy[id]; ok {
					move(id)
				}
			}
			extra := 0
			for id := range ts.legacy {
				if extra == legacyPerWrite {
					break
				}
				move(id)
				extra++
			}
		}
		if clock {
			v := ts.wm.Format(time.RFC3339Nano)
			s.Taken[clockField] = &v
			ts.saved = ts.wm
			ids = append(ids, clockField)
		}
		start := 0
		for i := range changed {
			vals[2*i] = all[start:ends[i]]
			start = ends[i]
			id := changed[i].ClusterID
			// A settled entry is shelved, its stub taken in its place; an
			// open one is taken. A shelved copy an open one leaves is
			// stale but harmless (the next settled write or the delete
			// replaces it): only an entry last written settled, its field
			// holding a stub, is read back.
			if changed[i].Settled {
				vals[2*i+1], at = all[at:ends[n+i]], ends[n+i]
				s.Shelved[id], s.Taken[id] = &vals[2*i], &vals[2*i+1]
			} else {
				s.Taken[id] = &vals[2*i]
			}
			ids = append(ids, id)
		}
		for _, id := range removed {
			s.Taken[id], s.Shelved[id] = nil, nil
			ids = append(ids, id)
		}
		side[name], taken[name] = s, ids
	}
	return side, taken, nil
}

// touch marks what a failed write took dirty again, for the next write.
func (o *owner) touch(taken map[string][]string) {
	for name, ids := range taken {
		if ts := o.tenants[name]; ts != nil {
			if slices.Contains(ids, clockField) {
				ts.saved = time.Time{}
			}
			ids = slices.DeleteFunc(slices.Clone(ids), func(id string) bool {
				return id == clockField || strings.HasPrefix(id, stubField)
			})
			for id, stub := range ts.migrating {
				if ts.legacy == nil {
					ts.legacy = map[string]*string{}
				}
				ts.legacy[id] = stub
			}
			ts.migrating = nil
			ts.lc.Touch(ids...)
		}
	}
}

// call is one call's planning: each cluster state planned once (a held
// plan planned again, and the same state found due again, are one).
type call struct {
	o      *owner
	plans  []Planned
	items  []planItem
	picked map[*tenantState]map[string]int64
}

// plan plans rs of ts now, holds them and records them in the lifecycle,
// so that a later change in the call composes with them.
func (c *call) plan(ctx context.Context, ts *tenantState, rs []lifecycle.Ready) error {
	return c.planMarked(ctx, ts, rs, true)
}

// planMarked is plan; without mark the plans are only emitted: held plans
// planned again, whose outcome the lifecycle recorded when they were
// first made (the record and the hold are written together), and which
// must not undo what reconciled it since.
func (c *call) planMarked(ctx context.Context, ts *tenantState, rs []lifecycle.Ready, mark bool) error {
	if c.picked == nil {
		c.picked = map[*tenantState]map[string]int64{}
	}
	if c.picked[ts] == nil {
		c.picked[ts] = map[string]int64{}
	}
	var items []planItem
	for _, r := range rs {
		if v, ok := c.picked[ts][r.Cluster.ID]; ok && v == r.Cluster.Version {
			continue
		}
		c.picked[ts][r.Cluster.ID] = r.Cluster.Version
		ts.lc.Hold(r)
		items = append(items, planItem{tenant: ts, ready: r})
	}
	plans, marks, err := planItems(ctx, items, c.o.store.ResolveAccounts)
	if err != nil {
		return err
	}
	for _, m := range marks {
		if mark {
			m.tenant.lc.Planned(m.ready, m.cmds, m.st, m.changed)
		}
	}
	c.plans = append(c.plans, plans...)
	c.items = append(c.items, items...)
	return nil
}

// held plans again what every tenant still holds: restored with its
// lifecycle, or left by a call that failed.
func (c *call) held(ctx context.Context) error {
	for _, name := range slices.Sorted(maps.Keys(c.o.tenants)) {
		ts := c.o.tenants[name]
		if err := c.planMarked(ctx, ts, ts.lc.Held(), false); err != nil {
			return err
		}
	}
	return nil
}

// batch applies a batch's events and plans what is due: each change is
// recorded at its tenant's clock (event time), the clusters due before it
// planned first, so which states are planned does not depend on batch
// boundaries; then those due after the batch. The lifecycles' changes are
// written with the matcher's in the store's one fenced call.
func (o *owner) batch(ctx context.Context, ins []input, marks []marker) ([]matcher.Change, []Planned, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ack()
	wall := o.h.wall()
	if err := o.warm(ctx, wall); err != nil {
		return nil, nil, err
	}
	if err := o.takeResults(ctx, marks, wall); err != nil {
		return nil, nil, err
	}
	evs := make([]record.Event, len(ins))
	var fresh []string
	for i := range ins {
		evs[i] = ins[i].ev
		if t := evs[i].Tenant; o.tenants[t] == nil && (len(fresh) == 0 || fresh[len(fresh)-1] != t) {
			fresh = append(fresh, t)
		}
	}
	if err := o.takeNew(ctx, fresh, wall); err != nil {
		return nil, nil, err
	}
	c := &call{o: o}
	var taken map[string][]string
	changes, err := o.store.ApplyPlanned(ctx, evs, func(ctx context.Context, d matcher.Decided) (map[string]matcher.Side, error) {
		for name, raw := range d.Restored {
			if _, err := o.tenant(ctx, name, raw, true, wall, nil); err != nil {
				return nil, err
			}
		}
		if err := o.load(ctx, d.ReadSide, o.wanted(d.Changes)); err != nil {
			return nil, err
		}
		if err := c.held(ctx); err != nil {
			return nil, err
		}
		next := 0
		// markTo takes the batch's marks before the event at pos.
		markTo := func(pos int) error {
			for ; next < len(marks) && marks[next].pos <= pos; next++ {
				if err := c.mark(ctx, marks[next], wall); err != nil {
					return err
				}
			}
			return nil
		}
		for _, ch := range d.Changes {
			if err := markTo(ch.Index); err != nil {
				return nil, err
			}
			ts, err := o.tenant(ctx, ch.Tenant, nil, false, wall, nil)
			if err != nil {
				return nil, err
			}
			ts.observe(eventTime(ins[ch.Index]), ins[ch.Index].rec.Timestamp, wall)
			// Due strictly before the change: changes at one instant are
			// one state, and a window closes only once the log shows a
			// later instant (a later change or a tick), never at a batch's
			// end, so that how the log is cut into batches changes nothing.
			if err := c.plan(ctx, ts, ts.lc.Due(ts.wm.Add(-time.Nanosecond))); err != nil {
				return nil, err
			}
			ev := &ins[ch.Index].ev
			ts.lc.Change(lifecycle.Change{
				Cluster: engine.Cluster{Tenant: ch.Tenant, ID: ch.ClusterID, Version: ch.Version, Records: ch.Members, Accounts: ch.Accounts},
				At:      ts.wm, Removed: ch.Removed, MergedInto: ch.MergedInto,
				Echo: echo(ts.lc, ev.Echo, conversionOf(ts.cfg, ev), ch),
			})
		}
		if err := markTo(len(evs)); err != nil {
			return nil, err
		}
		if err := o.faults(); err != nil {
			return nil, err
		}
		side, tk, err := o.dirty(d.Holds)
		taken = tk
		return side, err
	})
	if err != nil {
		// The batch is retried: what the failed write took goes again, and
		// the plans made are held, to be planned again the same.
		o.touch(taken)
		return nil, nil, err
	}
	o.unacked = c.items
	o.evict()
	return changes, c.plans, nil
}

// step plans what plan plans (ticks; Flush: everything pending), after the
// held plans, and writes what changed, with no input: one fenced side-state
// write. With plan nil it only writes.
func (o *owner) step(ctx context.Context, plan func(c *call, wall time.Time) error) ([]Planned, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ack()
	wall := o.h.wall()
	if err := o.warm(ctx, wall); err != nil {
		return nil, err
	}
	if err := o.load(ctx, o.store.ReadSide, nil); err != nil {
		return nil, err
	}
	c := &call{o: o}
	var err error
	if plan != nil {
		// Without plan (Sync) nothing is emitted: held plans stay held.
		err = c.held(ctx)
		if err == nil {
			err = plan(c, wall)
		}
	}
	if err == nil {
		err = o.writeSide(ctx)
	}
	if err != nil {
		return nil, err
	}
	o.unacked = c.items
	return c.plans, nil
}

// writeSide writes what changed in the lifecycles alone, fenced, and keeps
// the settled entries within their bound once it is written; what a failed
// write took goes with the next one. A call that read an evicted entry not
// loaded writes nothing.
func (o *owner) writeSide(ctx context.Context) error {
	if err := o.faults(); err != nil {
		return err
	}
	side, taken, err := o.dirty(o.store.Holds)
	if err == nil && len(side) > 0 {
		err = o.store.WriteSide(ctx, side)
	}
	if err != nil {
		o.touch(taken)
		return err
	}
	o.evict()
	return nil
}

// marks takes a batch of marks alone.
func (o *owner) marks(ctx context.Context, marks []marker) ([]Planned, error) {
	if len(marks) == 0 {
		return nil, nil
	}
	return o.step(ctx, func(c *call, wall time.Time) error {
		if err := o.takeResults(ctx, marks, wall); err != nil {
			return err
		}
		for _, m := range marks {
			if err := c.mark(ctx, m, wall); err != nil {
				return err
			}
		}
		return nil
	})
}

// takeResults takes, before a call, the tenants of the writer results
// among marks that the owner does not hold yet.
func (o *owner) takeResults(ctx context.Context, marks []marker, wall time.Time) error {
	for _, m := range marks {
		if m.in.res != nil {
			if _, err := o.take(ctx, m.in.res.Tenant, wall); err != nil {
				return err
			}
		}
	}
	return nil
}

// mark takes a tick or a writer's result at its place.
func (c *call) mark(ctx context.Context, m marker, wall time.Time) error {
	if m.in.tick != nil {
		return c.tick(ctx, *m.in.tick)
	}
	return c.result(ctx, m.in, wall)
}

// result reconciles the tenant's lifecycle with a writer's result and
// plans what fell due before its time: a cluster that waited for its
// results, or was released by a failure.
func (c *call) result(ctx context.Context, in input, wall time.Time) error {
	ts := c.o.tenants[in.res.Tenant] // taken before the call
	// The result's time: when the writer reported it.
	if ts == nil || !ts.lc.Result(lifecycleResult(*in.res), in.rec.Timestamp) {
		return nil
	}
	ts.observe(in.rec.Timestamp, in.rec.Timestamp, wall)
	return c.plan(ctx, ts, ts.lc.Due(ts.wm.Add(-time.Nanosecond)))
}

// tick moves the tenant's clock to the tick's time and plans what fell
// due by then. A tick of a tenant the owner holds no state of has nothing
// to close.
func (c *call) tick(ctx context.Context, t tick) error {
	ts := c.o.tenants[t.Tenant]
	if ts == nil {
		return nil
	}
	if !t.At.Before(ts.ticked) {
		ts.ticked = time.Time{}
	}
	if t.At.After(ts.wm) {
		// A tick is no input: the clock moves to its time and its idle
		// time runs on as before (seen moves with it), rather than from the
		// tick's reading, which would make the clock lag the wall clock by
		// a round trip for every tick.
		if !ts.seen.IsZero() {
			ts.seen = ts.seen.Add(t.At.Sub(ts.wm))
		}
		ts.wm = t.At
	}
	// Due by the tick's time, not the clock: a tick read after later
	// changes says nothing of their instant.
	return c.plan(ctx, ts, ts.lc.Due(t.At))
}

// dueTick is a tick produced for a tenant, marked once its call succeeded
// (ticking).
type dueTick struct {
	tenant *tenantState
	at     time.Time
}

// dueTicks returns a tick record, for topic, of every tenant with a window
// closed on the wall clock that no tick on its way closes, and those
// ticks, to be marked once the call succeeded (ticking). Ticks on their way
// do not hold a later one back: a window waits for one tick's round trip,
// not for those of the ticks before it.
func (o *owner) dueTicks(topic string, wall time.Time) ([]*kgo.Record, []dueTick) {
	var recs []*kgo.Record
	var due []dueTick
	for _, name := range slices.Sorted(maps.Keys(o.tenants)) {
		ts := o.tenants[name]
		d, ok := ts.lc.NextDueAfter(ts.ticked)
		if at := ts.idle(wall); ok && !at.Before(d) {
			recs = append(recs, tickRecord(topic, name, at))
			due = append(due, dueTick{ts, at})
		}
	}
	return recs, due
}

// ticking marks the ticks as on their way: their Tick call succeeded, so
// its Result, the ticks, is produced (a failed call's is not, and the next
// call ticks again).
func (o *owner) ticking(due []dueTick) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, t := range due {
		if t.at.After(t.tenant.ticked) {
			t.tenant.ticked = t.at
		}
	}
}

// due reports when the owner next has work without input: at once when
// marks or changes wait to be written, else its earliest timer in wall
// time; false when none (or no wall clock).
func (o *owner) due() (time.Time, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	wall := o.h.wall()
	if wall.IsZero() {
		return time.Time{}, false
	}
	if len(o.unacked) > 0 || !o.warmed {
		return wall, true
	}
	var next time.Time
	found := false
	for _, ts := range o.tenants {
		if ts.lc.Dirty() {
			return wall, true
		}
		d, ok := ts.lc.NextDueAfter(ts.ticked)
		if !ok {
			continue
		}
		// The tenant's clock runs at wall speed from ts.seen.
		at := wall
		if !ts.seen.IsZero() {
			at = ts.seen.Add(d.Sub(ts.wm))
		}
		if !found || at.Before(next) {
			next, found = at, true
		}
	}
	return next, found
}

// loaded returns the tenant's state, taken if the owner does not hold it
// yet, with the evicted entries a plan of c reads loaded.
func (o *owner) loaded(ctx context.Context, tenant string, c engine.Cluster) (*tenantState, error) {
	wall := o.h.wall()
	if err := o.warm(ctx, wall); err != nil {
		return nil, err
	}
	ts, err := o.take(ctx, tenant, wall)
	if err != nil {
		return nil, err
	}
	refs := make([]record.Ref, len(c.Records))
	for i := range c.Records {
		refs[i] = c.Records[i].Ref()
	}
	if err := o.load(ctx, o.store.ReadSide, map[string][]string{tenant: ts.lc.Wanted([]string{c.ID}, refs)}); err != nil {
		return nil, err
	}
	return ts, nil
}

// eventTime is an input's event time: the record's modification, else its
// Kafka timestamp.
func eventTime(in input) time.Time {
	if at := in.ev.ModifiedAt; !at.IsZero() {
		return at
	}
	return in.rec.Timestamp
}

// take returns the tenant's state, taking the tenant from the store first
// if the owner does not hold it yet, with what a restored tenant must hold
// loaded.
func (o *owner) take(ctx context.Context, tenant string, wall time.Time) (*tenantState, error) {
	ts := o.tenants[tenant]
	if ts == nil {
		raw, err := o.store.Take(ctx, []string{tenant})
		if err != nil {
			return nil, err
		}
		if ts, err = o.tenant(ctx, tenant, raw[tenant], true, wall, o.store.Current); err != nil {
			return nil, err
		}
	}
	return ts, o.load(ctx, o.store.ReadSide, nil)
}

// retract forgets that the last call's plans are to be released: the call
// failed after planning, so they were not produced. They stay held, and
// the next call plans them again under the same ids.
func (o *owner) retract() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.unacked = nil
}

// requestHistory is what the tenant's lifecycle emitted for c's records, for
// a mass-conversion request to plan relative to it.
func (o *owner) requestHistory(ctx context.Context, tenant string, c engine.Cluster) (engine.History, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ts, err := o.loaded(ctx, tenant, c)
	if err != nil {
		return engine.History{}, err
	}
	h := ts.lc.RequestHistory(c)
	return h, o.faults()
}

// requestEmitted records a request's plan of c in the tenant's lifecycle,
// written at once, fenced: the request's ledger re-emits its commands
// should they not be produced. It releases no plan: the partition's next
// batch or tick does, once the worker produced the last one.
func (o *owner) requestEmitted(ctx context.Context, tenant string, c engine.Cluster, cmds []engine.Command, st engine.State, changed bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	ts, err := o.loaded(ctx, tenant, c)
	if err != nil {
		return err
	}
	ts.lc.RequestPlanned(c, cmds, st, changed)
	return o.writeSide(ctx)
}

// wanted returns, by tenant, the evicted lifecycle entries the batch's
// changes may read (lifecycle.Wanted): their clusters, those joined into
// them, and those claiming their records or their events' records
// (Trigger).
func (o *owner) wanted(changes []matcher.Change) map[string][]string {
	ids := map[string][]string{}
	refs := map[string][]record.Ref{}
	for _, ch := range changes {
		ts := o.tenants[ch.Tenant]
		if ts == nil || !ts.lc.HasEvicted() {
			continue
		}
		ids[ch.Tenant] = append(append(ids[ch.Tenant], ch.ClusterID), ch.MergedFrom...)
		refs[ch.Tenant] = append(refs[ch.Tenant], ch.Trigger)
		for i := range ch.Members {
			refs[ch.Tenant] = append(refs[ch.Tenant], ch.Members[i].Ref())
		}
	}
	var out map[string][]string
	for t := range ids {
		if want := o.tenants[t].lc.Wanted(ids[t], refs[t]); len(want) > 0 {
			if out == nil {
				out = map[string][]string{}
			}
			out[t] = want
		}
	}
	return out
}

// load reads back the evicted entries want names, by tenant, with read
// (one round trip), into the tenants' lifecycles, and those the waiting
// clusters of the tenants restored since the last load read when planned
// (lifecycle.Protected: a plan falling due on a tick loads nothing first).
// An entry evicted is durable: one Redis does not hold means the tenant's
// state was lost.
func (o *owner) load(ctx context.Context, read readSide, want map[string][]string) error {
	var fresh []*tenantState
	for name, ts := range o.tenants {
		if !ts.fresh {
			continue
		}
		fresh = append(fresh, ts)
		if ids := ts.lc.Protected(); len(ids) > 0 {
			if want == nil {
				want = map[string][]string{}
			}
			want[name] = slices.Compact(slices.Sorted(slices.Values(append(want[name], ids...))))
		}
	}
	for t, ids := range want {
		if len(ids) == 0 {
			delete(want, t)
		}
	}
	if len(want) > 0 {
		if err := o.read(ctx, read, want); err != nil {
			return err
		}
	}
	for _, ts := range fresh {
		ts.fresh = false
	}
	return nil
}

// read reads back the evicted entries want names, by tenant, with read,
// into the tenants' lifecycles.
func (o *owner) read(ctx context.Context, read readSide, want map[string][]string) error {
	got, err := read(ctx, want)
	if err != nil {
		return err
	}
	n := 0
	for t, ids := range want {
		es := make([]lifecycle.Entry, len(ids))
		for i, id := range ids {
			raw, ok := got[t][id]
			if !ok {
				return fmt.Errorf("pipeline: lifecycle of tenant %s, cluster %s: evicted from memory, missing from Redis", t, id)
			}
			if err := json.Unmarshal([]byte(raw), &es[i]); err != nil {
				return fmt.Errorf("pipeline: lifecycle of tenant %s, cluster %s: %w", t, id, err)
			}
		}
		o.tenants[t].lc.Load(es)
		n += len(es)
	}
	if m := o.h.metrics; m != nil {
		m.LifecycleLoaded.Add(float64(n))
	}
	return nil
}

// faults fails a call that read an evicted entry without loading it
// (lifecycle.Faults): what it decided must not be written.
func (o *owner) faults() error {
	for _, name := range slices.Sorted(maps.Keys(o.tenants)) {
		if n := o.tenants[name].lc.Faults(); n > 0 {
			return fmt.Errorf("pipeline: lifecycle of tenant %s: %d reads of evicted entries not loaded first", name, n)
		}
	}
	return nil
}

// evict keeps the process's settled lifecycle entries within the
// handler's bound, once a call's writes succeeded (what is evicted is
// durable): past it, this owner evicts from its own tenants, each in
// proportion to its share, down to 90 % of the bound.
func (o *owner) evict() {
	budget := o.h.cfg.LifecycleBytes
	var mine int64
	for _, ts := range o.tenants {
		mine += ts.lc.SettledBytes()
	}
	total := o.h.settled.Add(mine - o.settled)
	o.settled = mine
	if total > budget && mine > 0 {
		keep := max(0, mine-(total-budget/10*9))
		n := 0
		after := int64(0)
		for _, ts := range o.tenants {
			b := ts.lc.SettledBytes()
			n += ts.lc.Evict(int64(float64(b) * float64(keep) / float64(mine)))
			after += ts.lc.SettledBytes()
		}
		total = o.h.settled.Add(after - mine)
		o.settled = after
		if m := o.h.metrics; m != nil {
			m.LifecycleEvicted.Add(float64(n))
		}
	}
	if m := o.h.metrics; m != nil {
		m.LifecycleBytes.Set(float64(total))
	}
}

// release gives the owner's settled entries' memory back to the handler's
// bound: its partition is gone.
func (o *owner) release() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.h.settled.Add(-o.settled)
	o.settled = 0
}
