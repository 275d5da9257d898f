package matcher

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/leadconv/leadconv/internal/parallel"
	"github.com/leadconv/leadconv/internal/redisconn"
	"github.com/leadconv/leadconv/record"
)

// ErrInvalidEvent marks an event the store can never apply (a permanent
// error: the caller dead-letters it instead of retrying).
var ErrInvalidEvent = errors.New("matcher: invalid event")

// RefusedError is ErrInvalidEvent naming the refused event by its index in
// the Apply input. A batch refused wrote nothing: the caller can apply it
// again without that event.
type RefusedError struct {
	Index int
	Err   error
}

func (e *RefusedError) Error() string { return fmt.Sprintf("event %d: %v", e.Index, e.Err) }

func (e *RefusedError) Unwrap() error { return e.Err }

// ErrFenced is returned once another owner took one of this store's
// tenants (its epoch moved): this store is a zombie and writes nothing
// more. The caller stops processing the partition; its new owner redoes
// what was not committed.
var ErrFenced = errors.New("matcher: fenced: another owner took the tenant")

// ErrStateLost is returned when Redis lost the namespace's state: the
// marker is missing (and no records are stored) although the caller said
// state was written before (StoreOptions.StateExpected: its partition has
// committed offsets), or a tenant's epoch vanished under its owner.
// Applying on top would make partial records. The error's text
// names the namespace and the command that rebuilds it. After it every
// call fails with it.
var ErrStateLost = errors.New("matcher: state lost")

// ErrNewerFormat is returned when the namespace's marker says its state is
// in a later format than StoredFormat: a newer leadconv wrote it, and this
// one would misread it. After it every call fails with it.
var ErrNewerFormat = errors.New("matcher: state in a newer format")

// errInconsistent reports stored state that contradicts itself (a member
// without a record, say): written by something else than the owner. The
// tenant's resident state is dropped and the batch fails.
var errInconsistent = errors.New("matcher: inconsistent stored state")

// RulesFunc returns the compiled rules of a tenant.
type RulesFunc func(tenant string) (*Ruleset, error)

// StoreOptions configures a Store.
type StoreOptions struct {
	// Namespace prefixes every key (default "lc"); a backfill builds its
	// state beside the live one under another namespace.
	Namespace string
	// Rules returns a tenant's compiled rules. Required.
	Rules RulesFunc
	// Resident is the process-wide memory budget, prepared-record cache
	// and metrics the stores of one process share (NewResident). Nil gives
	// the store its own, with the default budget, registered with
	// Registerer when that is set.
	Resident *Resident
	// Registerer registers a private Resident's metrics (ignored with
	// Resident set).
	Registerer prometheus.Registerer
	// StateExpected says state of the namespace was written before (the
	// owner's partition has committed offsets): a missing marker then means
	// the state was lost, and Apply refuses with ErrStateLost.
	StateExpected bool
	// Rebuild is the store of a rebuild (leadconv replay --rebuild), which
	// deleted the namespace and marked it rebuilding (BeginRebuild): it
	// neither checks nor writes the marker; EndRebuild marks the namespace
	// once everything is applied, so an interrupted rebuild is never taken
	// for state.
	Rebuild bool
}

// Store is the single writer of the tenants it applies events for: the
// owner of one partition of the by-tenant topic (README.md). It keeps each
// tenant's matcher state resident, read through from Redis on a miss and
// written through, in one fenced transaction per tenant and batch, on every
// change. Apply calls are serialised; the read methods (View, Clusters,
// Get, Leads, ResolveAccounts) read Redis and may be used by anyone.
type Store struct {
	rdb  redis.UniversalClient
	opts StoreOptions
	res  *Resident

	mu      sync.Mutex // one Apply at a time: the decisions are serial
	tenants map[string]*view
	epochs  map[string]string // the epoch taken per tenant, kept when a view is dropped
	// unloaded are the tenants taken to be loaded whole whose load failed:
	// the next batch of each loads it again.
	unloaded map[string]bool
	fenced   bool
	// marked: the namespace's marker is known to exist; formatted: it holds
	// StoredFormat; lost: it was missing with StateExpected (ErrStateLost
	// for good), or says a newer format (ErrNewerFormat).
	marked, formatted bool
	lost              error
	batches           uint64
	// side holds the side state takeEpochs read for tenants whose side
	// state was not handed to a PlanFunc yet; handed marks those handed.
	side   map[string]map[string]string
	handed map[string]bool
	// index, when set, is the set the tenants with side state are added to
	// (IndexSide); indexed are those added.
	index   string
	indexed map[string]bool
	// fences are the tenants' pinned connections (fence.go), from fencer,
	// a client of their own.
	fences map[string]*fence
	fencer redis.UniversalClient
}

// NewStore returns an owner on rdb. Two stores applying events of one
// tenant fence each other: the one that took the tenant last writes, the
// other gets ErrFenced.
func NewStore(rdb redis.UniversalClient, opts StoreOptions) *Store {
	if opts.Namespace == "" {
		opts.Namespace = "lc"
	}
	res := opts.Resident
	if res == nil {
		res = NewResident(ResidentOptions{Registerer: opts.Registerer})
	}
	// A rebuild's store takes the marker as seen: it never reads or
	// writes it.
	return &Store{rdb: rdb, opts: opts, res: res, tenants: map[string]*view{}, epochs: map[string]string{}, unloaded: map[string]bool{}, marked: opts.Rebuild, formatted: opts.Rebuild,
		side: map[string]map[string]string{}, handed: map[string]bool{}, indexed: map[string]bool{}, fences: map[string]*fence{}}
}

// pending is one event on its way through a batch.
type pending struct {
	idx int // index in the Apply input
	ev  *record.Event
	ref string
	pre *eventPrep // nil but for upserts of persons
	// decided
	skip      bool // stale: nothing to do
	duplicate bool // already applied: report the current cluster
	next      stored
	nextRec   *record.Record
	prep      *Prepared
	blockHex  []string
	rules     map[string]string // block hex -> rule name, for warnings
	neighbors []string
	ban       string // "+ref" or "-ref"
	banOnly   bool
	changes   []Change
}

// tenantRun is one tenant's share of a batch.
type tenantRun struct {
	tenant string
	keys   keys
	rules  *Ruleset
	events []*pending
}

// Apply applies events in order and returns the clusters they changed. An
// event older than the stored record is ignored; an event already applied
// (a replay) changes nothing and reports its record's current cluster
// again, so the plans derived from it get the same command ids.
//
// A batch costs one Redis round trip for a warm tenant: the fenced write.
// On error, some of the tenants may have been written; applying the
// same events again is safe. After ErrFenced every call fails with it.
func (s *Store) Apply(ctx context.Context, events []record.Event) ([]Change, error) {
	return s.ApplyPlanned(ctx, events, nil)
}

// Side is one tenant's side state, written with a batch: the owner's own
// state beside the matcher's (its lifecycle), opaque to the store, in two
// hashes. A field maps to its value; nil deletes the field.
type Side struct {
	// Taken is read whole when a store takes the tenant (Decided.Restored,
	// Take).
	Taken map[string]*string
	// Shelved is read only by field (ReadSide): state too large to read
	// at every take, which the owner reads back when it needs it.
	Shelved map[string]*string
}

// Len counts the fields the side state sets or deletes.
func (s Side) Len() int { return len(s.Taken) + len(s.Shelved) }

// Decided is a batch as the store decided it, before writing it.
type Decided struct {
	// Changes are what Apply returns.
	Changes []Change
	// Restored is the side state, field -> value as Redis holds it, of
	// each tenant of the batch whose side state this store has not handed
	// out before: read once, when the store became the tenant's owner.
	Restored map[string]map[string]string
	// ReadSide is Store.ReadSide during the PlanFunc call, its round trip
	// counted with the batch's.
	ReadSide func(ctx context.Context, fields map[string][]string) (map[string]map[string]string, error)
	// Holds is Store.Holds during the PlanFunc call: the clusters as the
	// batch leaves them.
	Holds func(tenant, cluster string, version int64) bool
}

// PlanFunc is called by ApplyPlanned between deciding a batch and writing
// it; the side state it returns, by tenant, is written in the same fenced
// calls as the batch. An error fails the batch, written nothing.
type PlanFunc func(ctx context.Context, d Decided) (map[string]Side, error)

// ApplyPlanned is Apply with plan called before the write: the caller
// plans what the batch changed and has its own state written atomically
// with the matcher's, in the batch's one round trip (a warm tenant's
// account lookups are answered from memory). Planning between deciding and
// writing, rather than after, is what makes the caller's state durable no
// later than the matcher's, without a second round trip.
func (s *Store) ApplyPlanned(ctx context.Context, events []record.Event, plan PlanFunc) ([]Change, error) {
	for i := range events {
		if err := validEvent(&events[i]); err != nil {
			return nil, &RefusedError{Index: i, Err: err}
		}
	}
	// What needs no stored state is worked out before taking the lock, on
	// every core.
	pre := s.prepare(events)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.batches++
	views, err := s.group(events, pre)
	if err != nil {
		return nil, err
	}
	changes, err := s.apply(ctx, views, plan)
	if err != nil {
		err = redisconn.Classify(err)
		// What the views hold may be ahead of Redis (a write whose reply was
		// lost) or behind it: they start cold.
		for _, v := range views {
			s.drop(v.run.tenant)
		}
		if errors.Is(err, ErrFenced) {
			s.fenced = true
			for t := range s.tenants {
				s.drop(t)
			}
		}
		return nil, err
	}
	s.evict(views)
	slices.SortStableFunc(changes, func(a, b Change) int { return a.Index - b.Index })
	return changes, nil
}

// ExpectState tells the store, before its first Apply, that state of the
// namespace was written before (StoreOptions.StateExpected).
func (s *Store) ExpectState() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.StateExpected = true
}

// Close drops the resident state, giving its memory back to the budget,
// and closes the store's connections.
func (s *Store) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t := range s.tenants {
		s.drop(t)
	}
	s.closeFences()
}

// eventPrep is the part of deciding an upsert that depends on the event
// alone: its normalised form, blocks and encoded state.
type eventPrep struct {
	prep  *Prepared
	keys  []string          // hex block keys, sorted, de-duplicated
	rules map[string]string // block key -> rule name
	blob  string
	err   error
}

// prepare works out each person upsert's eventPrep, in parallel chunks for
// a large batch: normalising is most of the CPU an event costs, and it
// needs no state, so one tenant still uses every core.
func (s *Store) prepare(events []record.Event) []*eventPrep {
	out := make([]*eventPrep, len(events))
	work := func(lo, hi int) {
		rules := map[string]*Ruleset{}
		for i := lo; i < hi; i++ {
			ev := &events[i]
			if ev.Op != record.OpUpsert || ev.Object == record.Account {
				continue
			}
			rs, ok := rules[ev.Tenant]
			if !ok {
				rs, _ = s.opts.Rules(ev.Tenant) // an error surfaces in group
				rules[ev.Tenant] = rs
			}
			if rs == nil {
				continue
			}
			rec := ev.Record
			if rec.Fields == nil {
				rec.Fields = record.Fields{}
			}
			p := &eventPrep{prep: rs.Prepare(&rec)}
			if p.prep.Active {
				p.keys, p.rules = blockKeys(p.prep)
				p.blob, p.err = encodeBlob(&rec)
			}
			out[i] = p
		}
	}
	parallel.Chunks(len(events), 64, work)
	return out
}

// group splits the batch by tenant, each onto its resident view.
func (s *Store) group(events []record.Event, pre []*eventPrep) ([]*view, error) {
	byTenant := map[string]*tenantRun{}
	var views []*view
	for i := range events {
		ev := &events[i]
		run := byTenant[ev.Tenant]
		if run == nil {
			rs, err := s.opts.Rules(ev.Tenant)
			if err != nil {
				return nil, fmt.Errorf("matcher: rules of tenant %s: %w", ev.Tenant, err)
			}
			run = &tenantRun{tenant: ev.Tenant, keys: tenantKeys(s.opts.Namespace, ev.Tenant), rules: rs}
			byTenant[ev.Tenant] = run
			v := s.tenants[ev.Tenant]
			if v == nil {
				v = newView()
				s.tenants[ev.Tenant] = v
			}
			v.run, v.lastUse = run, s.batches
			views = append(views, v)
		}
		run.events = append(run.events, &pending{idx: i, ev: ev, ref: refKey(ev.Ref()), pre: pre[i]})
	}
	return views, nil
}

func validEvent(ev *record.Event) error {
	switch {
	case ev.Tenant == "" || strings.ContainsAny(ev.Tenant, "{}"):
		return fmt.Errorf("%w: tenant must be non-empty without braces", ErrInvalidEvent)
	case !ev.Object.Valid():
		return fmt.Errorf("%w: unknown object", ErrInvalidEvent)
	case !ev.Op.Valid():
		return fmt.Errorf("%w: unknown op", ErrInvalidEvent)
	case !validID(ev.ID):
		return fmt.Errorf("%w: id must be non-empty without whitespace", ErrInvalidEvent)
	}
	if ev.Op == record.OpNotDuplicate || ev.Op == record.OpClearNotDuplicate {
		if ev.Other == nil || !ev.Other.Object.Valid() || !validID(ev.Other.ID) || ev.Other.Object == record.Account || ev.Object == record.Account {
			return fmt.Errorf("%w: %s needs two person records", ErrInvalidEvent, ev.Op)
		}
	}
	return nil
}

func validID(id string) bool {
	return id != "" && !strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' })
}

// apply is one batch: take the epochs of new tenants, read what the
// resident state lacks, decide, plan, and write.
func (s *Store) apply(ctx context.Context, views []*view, plan PlanFunc) ([]Change, error) {
	rt := &roundTrips{}
	if err := s.takeEpochs(ctx, views, plan != nil, rt); err != nil {
		return nil, err
	}
	if err := s.read(ctx, views, rt); err != nil {
		return nil, err
	}
	for _, v := range views {
		if err := v.decide(s); err != nil {
			return nil, err
		}
	}
	changes := changed(views)
	if err := s.lookupAccounts(ctx, views, rt); err != nil {
		return nil, err
	}
	var side map[string]Side
	if plan != nil {
		d := Decided{Changes: changes, ReadSide: func(ctx context.Context, fields map[string][]string) (map[string]map[string]string, error) {
			return s.readSide(ctx, fields, rt)
		}, Holds: s.holds}
		for _, v := range views {
			t := v.run.tenant
			if raw, ok := s.side[t]; ok {
				if d.Restored == nil {
					d.Restored = map[string]map[string]string{}
				}
				d.Restored[t] = raw
			}
		}
		slices.SortStableFunc(d.Changes, func(a, b Change) int { return a.Index - b.Index })
		var err error
		if side, err = plan(ctx, d); err != nil {
			return nil, err
		}
		// Handed out: the caller holds the tenants' side state from now on.
		for t := range d.Restored {
			delete(s.side, t)
			s.handed[t] = true
		}
	}
	if err := s.write(ctx, views, side, rt); err != nil {
		return nil, err
	}
	s.res.roundTrips.Observe(float64(rt.n))
	return changes, nil
}

// IndexSide names, before the store's first write, a set of the
// namespace (<ns>:side:<name>) that every tenant the store writes side state
// for is added to, in the round trip of its first such write: the caller's
// name for the tenants it owns (a partition), so that their next owner
// finds the tenants with side state before any input of theirs (Indexed,
// Take).
func (s *Store) IndexSide(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.index = sideIndexKey(s.opts.Namespace, name)
}

// Indexed returns the tenants of the IndexSide set, sorted.
func (s *Store) Indexed(ctx context.Context) ([]string, error) {
	s.mu.Lock()
	key := s.index
	s.mu.Unlock()
	if key == "" {
		return nil, nil
	}
	ts, err := s.rdb.SMembers(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("matcher: side index: %w", redisconn.Classify(err))
	}
	slices.Sort(ts)
	return ts, nil
}

// Take makes the store the owner of tenants without a batch of theirs, as
// Apply would (their epochs taken), and returns the side state of those
// whose side state it had not handed out yet, as Decided.Restored.
func (s *Store) Take(ctx context.Context, tenants []string) (map[string]map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return nil, err
	}
	s.batches++
	var views []*view
	for _, t := range tenants {
		if t == "" || strings.ContainsAny(t, "{}") {
			continue
		}
		v, err := s.outside(t)
		if err != nil {
			return nil, err
		}
		views = append(views, v)
	}
	rt := &roundTrips{}
	if err := s.takeEpochs(ctx, views, true, rt); err != nil {
		for _, v := range views {
			s.drop(v.run.tenant)
		}
		return nil, redisconn.Classify(err)
	}
	out := map[string]map[string]string{}
	for _, v := range views {
		t := v.run.tenant
		if raw, ok := s.side[t]; ok {
			out[t] = raw
			delete(s.side, t)
			s.handed[t] = true
		}
	}
	s.evict(views)
	return out, nil
}

// usable is the error every call returns once the store was fenced or
// found its state lost.
func (s *Store) usable() error {
	if s.fenced {
		return ErrFenced
	}
	return s.lost
}

// outside returns the tenant's view, made if the store holds none, for a
// call outside a batch (Take, Current): a run of its own, used now.
func (s *Store) outside(t string) (*view, error) {
	rs, err := s.opts.Rules(t)
	if err != nil {
		return nil, fmt.Errorf("matcher: rules of tenant %s: %w", t, err)
	}
	v := s.tenants[t]
	if v == nil {
		v = newView()
		s.tenants[t] = v
	}
	v.run, v.lastUse = &tenantRun{tenant: t, keys: tenantKeys(s.opts.Namespace, t), rules: rs}, s.batches
	return v, nil
}

// WriteSide writes side state alone, by tenant, in one round trip of
// fenced calls: what the caller changed with no batch (a timer fired). The
// tenants must have been taken by an Apply of this store. After ErrFenced
// every call fails with it.
func (s *Store) WriteSide(ctx context.Context, side map[string]Side) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	if len(side) == 0 {
		return nil
	}
	err := s.write(ctx, nil, side, &roundTrips{})
	if errors.Is(err, ErrFenced) {
		s.fenced = true
		for t := range s.tenants {
			s.drop(t)
		}
	}
	return redisconn.Classify(err)
}

// ReadSide reads fields of tenants' shelved side state (tenant -> fields)
// in one pipelined round trip, field -> value by tenant; a field Redis does
// not hold is absent. A field not shelved is read from the taken side state:
// an owner may shelve a field it wrote there before. An owner reads back
// what it evicted from memory.
func (s *Store) ReadSide(ctx context.Context, fields map[string][]string) (map[string]map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readSide(ctx, fields, &roundTrips{})
}

func (s *Store) readSide(ctx context.Context, fields map[string][]string, rt *roundTrips) (map[string]map[string]string, error) {
	pipe := s.rdb.Pipeline()
	cmds := map[string][2]*redis.SliceCmd{}
	for _, t := range slices.Sorted(maps.Keys(fields)) {
		if len(fields[t]) > 0 {
			k := tenantKeys(s.opts.Namespace, t)
			cmds[t] = [2]*redis.SliceCmd{pipe.HMGet(ctx, k.shelf, fields[t]...), pipe.HMGet(ctx, k.side, fields[t]...)}
		}
	}
	if err := s.exec(ctx, pipe, "side", rt); err != nil {
		return nil, redisconn.Classify(err)
	}
	out := make(map[string]map[string]string, len(cmds))
	for t, c := range cmds {
		m := make(map[string]string, len(fields[t]))
		shelved, taken := c[0].Val(), c[1].Val()
		for i, f := range fields[t] {
			if str, ok := shelved[i].(string); ok {
				m[f] = str
			} else if str, ok := taken[i].(string); ok {
				m[f] = str
			}
		}
		out[t] = m
	}
	return out, nil
}

// roundTrips counts a batch's round trips to Redis.
type roundTrips struct{ n int }

// refs parses ref keys, skipping any this code did not write.
func refs(keys []string) []record.Ref {
	if len(keys) == 0 {
		return nil
	}
	out := make([]record.Ref, 0, len(keys))
	for _, w := range keys {
		if r, ok := parseRefKey(w); ok {
			out = append(out, r)
		}
	}
	return out
}

// entry returns the decoded and prepared form of a stored value, from the
// cache when the value is unchanged. It returns nil for tombstones.
func (s *Store) entry(run *tenantRun, ref, raw string) (*cacheEntry, error) {
	ck := run.tenant + "\x00" + ref
	if e := s.res.prep.get(ck, raw); e != nil {
		return e, nil
	}
	st, err := parseStored(raw)
	if err != nil {
		return nil, err
	}
	if !st.live() {
		return nil, nil
	}
	r, ok := parseRefKey(ref)
	if !ok {
		return nil, fmt.Errorf("matcher: corrupt ref %q", ref)
	}
	rec, err := decodeRecord(run.tenant, r, &st)
	if err != nil {
		return nil, err
	}
	e := &cacheEntry{raw: raw, rec: &rec, prep: run.rules.Prepare(&rec)}
	s.res.prep.put(ck, e)
	return e, nil
}

// ResolveAccounts maps account-field values (company names as they appear on
// leads) to the ids of existing accounts with the same normalised name.
// Values without a match are absent from the result.
func (s *Store) ResolveAccounts(ctx context.Context, tenant string, values []string) (map[string]string, error) {
	rs, err := s.opts.Rules(tenant)
	if err != nil {
		return nil, fmt.Errorf("matcher: rules of tenant %s: %w", tenant, err)
	}
	var ask, hexKeys []string
	for _, v := range values {
		if key := rs.AccountKey(v); key != "" {
			ask = append(ask, v)
			hexKeys = append(hexKeys, accountHex(key))
		}
	}
	out := make(map[string]string, len(ask))
	if len(ask) == 0 {
		return out, nil
	}
	ids, err := s.rdb.HMGet(ctx, tenantKeys(s.opts.Namespace, tenant).hashes[hAcct], hexKeys...).Result()
	if err != nil {
		return nil, redisconn.Classify(fmt.Errorf("matcher: resolve accounts: %w", err))
	}
	for i, id := range ids {
		if id, ok := id.(string); ok {
			out[ask[i]] = id
		}
	}
	return out, nil
}

func accountHex(key string) string {
	return blockKey(Block{Rule: "\x00account", Key: key})
}

// View is a record's place in the match graph, for people reviewing it.
type View struct {
	Cluster    string
	Version    int64
	Members    []record.Ref
	Neighbours []record.Ref
	Bans       []record.Ref
}

// View returns the cluster, direct links and review bans of a record.
func (s *Store) View(ctx context.Context, tenant string, ref record.Ref) (View, error) {
	k := tenantKeys(s.opts.Namespace, tenant)
	rk := refKey(ref)
	pipe := s.rdb.Pipeline()
	cid := pipe.HGet(ctx, k.hashes[hCM], rk)
	adj := pipe.HGet(ctx, k.hashes[hA], rk)
	bans := pipe.HGet(ctx, k.hashes[hX], rk)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return View{}, redisconn.Classify(fmt.Errorf("matcher: view %s: %w", ref, err))
	}
	v := View{Cluster: cid.Val(), Neighbours: refs(strings.Fields(adj.Val())), Bans: refs(strings.Fields(bans.Val()))}
	if v.Cluster == "" {
		return v, nil
	}
	pipe = s.rdb.Pipeline()
	cl := pipe.HGet(ctx, k.hashes[hCL], v.Cluster)
	cv := pipe.HGet(ctx, k.hashes[hCV], v.Cluster)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return View{}, redisconn.Classify(fmt.Errorf("matcher: view %s: %w", ref, err))
	}
	c, ver, folded := parseCluster(cl.Val())
	if !folded {
		ver, _ = strconv.ParseInt(cv.Val(), 10, 64)
	}
	v.Version = ver
	if c != nil {
		v.Members = refs(c.members)
	}
	return v, nil
}

// Clusters returns every cluster of a tenant with two or more members, as
// sorted member lists. It scans the tenant's cluster hash: for tests,
// evaluation and audits, not for the event path.
func (s *Store) Clusters(ctx context.Context, tenant string) (map[string][]record.Ref, error) {
	k := tenantKeys(s.opts.Namespace, tenant)
	all, err := s.rdb.HGetAll(ctx, k.hashes[hCL]).Result()
	if err != nil {
		return nil, redisconn.Classify(fmt.Errorf("matcher: list clusters: %w", err))
	}
	out := make(map[string][]record.Ref, len(all))
	for id, v := range all {
		if c, _, _ := parseCluster(v); c != nil {
			out[id] = refs(c.members)
		}
	}
	return out, nil
}

func (s *Store) warnOversize(rule, block string) {
	if _, seen := s.res.warned.LoadOrStore(block, true); seen {
		return
	}
	s.res.oversize.WithLabelValues(rule).Inc()
	s.res.log.Warn().Str("rule", rule).Str("block", block).
		Msg("block passed max_block_size: it no longer produces candidates")
}

// Get returns a record's stored state; ok is false when it is unknown or out
// of matching (deleted, converted, or an account).
func (s *Store) Get(ctx context.Context, tenant string, ref record.Ref) (rec record.Record, ok bool, err error) {
	k := tenantKeys(s.opts.Namespace, tenant)
	raw, err := s.rdb.HGet(ctx, k.hashes[hR], refKey(ref)).Result()
	if errors.Is(err, redis.Nil) {
		return record.Record{}, false, nil
	}
	if err != nil {
		return record.Record{}, false, redisconn.Classify(fmt.Errorf("matcher: get %s: %w", ref, err))
	}
	return decodeLive(tenant, ref, raw)
}

func decodeLive(tenant string, ref record.Ref, raw string) (record.Record, bool, error) {
	st, err := parseStored(raw)
	if err != nil {
		return record.Record{}, false, err
	}
	if !st.live() {
		return record.Record{}, false, nil
	}
	r, err := decodeRecord(tenant, ref, &st)
	return r, err == nil, err
}

// Leads calls fn for every lead of the tenant that takes part in matching,
// in no particular order. It scans the tenant's records incrementally
// (HSCAN), so it neither blocks Redis nor holds them all in memory.
func (s *Store) Leads(ctx context.Context, tenant string, fn func(record.Record) error) error {
	k := tenantKeys(s.opts.Namespace, tenant)
	prefix := refKey(record.Ref{Object: record.Lead})
	it := s.rdb.HScan(ctx, k.hashes[hR], 0, prefix+"*", 500).Iterator()
	for it.Next(ctx) {
		field := it.Val()
		if !it.Next(ctx) {
			break
		}
		ref, ok := parseRefKey(field)
		if !ok {
			continue
		}
		r, live, err := decodeLive(tenant, ref, it.Val())
		if err != nil {
			return err
		}
		if !live {
			continue
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := it.Err(); err != nil {
		return redisconn.Classify(fmt.Errorf("matcher: scan leads: %w", err))
	}
	return nil
}
