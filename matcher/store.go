package matcher

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/leadconv/leadconv/record"
)

// ErrInvalidEvent marks an event the store can never apply (a permanent
// error: the caller dead-letters it instead of retrying).
var ErrInvalidEvent = errors.New("matcher: invalid event")

// ErrContention is returned when a batch kept conflicting with concurrent
// writers past the retry budget; it is transient.
var ErrContention = errors.New("matcher: contention: retries exhausted")

// RulesFunc returns the compiled rules of a tenant.
type RulesFunc func(tenant string) (*Ruleset, error)

// StoreOptions configures a Store.
type StoreOptions struct {
	// Namespace prefixes every key (default "lc"); a backfill builds its
	// state beside the live one under another namespace.
	Namespace string
	// Rules returns a tenant's compiled rules. Required.
	Rules RulesFunc
	// CacheSize bounds the prepared records kept in memory, so candidates
	// are not decoded and normalised again on every event (default 20,000:
	// at 100,000 the live heap it held made the garbage collector cost more
	// CPU than the decoding it saved, and lengthened the latency tail; see
	// BENCHMARKS.md).
	CacheSize int
	// MaxAttempts bounds the optimistic retries of one batch (default 100).
	MaxAttempts int
	// Logger receives warnings (oversize blocks); ids and rule names only.
	Logger zerolog.Logger
	// Registerer, when set, registers the store's metrics.
	Registerer prometheus.Registerer
}

// Store keeps every tenant's records, blocks, edges and clusters in Redis.
// It is safe for concurrent use, also by several processes: see README.md for
// the concurrency scheme.
type Store struct {
	rdb      redis.UniversalClient
	opts     StoreOptions
	cache    *prepCache
	instance string
	batches  atomic.Uint64
	// One combined batch at a time per process: workers of one process
	// would otherwise mostly conflict with each other (other processes are
	// kept out by the optimistic checks), and the batches that queue up
	// meanwhile go to Redis together, in one set of round trips.
	turn  chan struct{}
	mu    sync.Mutex
	queue []*applyReq
	// argScratch is applyArgs's map, used under the turn only.
	argScratch map[argKey]int
	warned     sync.Map

	oversize  *prometheus.CounterVec
	conflicts prometheus.Counter
	reloads   prometheus.Counter
	scriptDur *prometheus.HistogramVec
	combined  prometheus.Histogram
}

// NewStore returns a store on rdb.
func NewStore(rdb redis.UniversalClient, opts StoreOptions) *Store {
	if opts.Namespace == "" {
		opts.Namespace = "lc"
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 20_000
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 100
	}
	id := make([]byte, 6)
	_, _ = crand.Read(id)
	s := &Store{
		rdb:        rdb,
		opts:       opts,
		cache:      newPrepCache(opts.CacheSize),
		instance:   hex.EncodeToString(id),
		turn:       make(chan struct{}, 1),
		argScratch: map[argKey]int{},
		oversize: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "leadconv_matcher_oversize_blocks_total",
			Help: "Blocks that passed max_block_size and stopped producing candidates, by rule.",
		}, []string{"rule"}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "leadconv_matcher_conflicts_total",
			Help: "Optimistic-concurrency conflicts that made a batch retry.",
		}),
		reloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "leadconv_matcher_script_reloads_total",
			Help: "Times the Redis server had lost the matcher's scripts (a restart or failover) and they were loaded again.",
		}),
		scriptDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "leadconv_matcher_redis_round_trip_seconds",
			Help:    "Duration of one pipelined round trip of matcher scripts, by phase.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"phase"}),
	}
	s.combined = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "leadconv_matcher_combined_calls",
		Help:    "Apply calls (fetched batches) combined into one batch to Redis.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 8),
	})
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(s.oversize, s.conflicts, s.reloads, s.scriptDur, s.combined)
	}
	return s
}

// failTTL keeps a batch's conflict marker long enough for every script of
// the pipeline behind it to see it.
const failTTL = "60000"

// pending is one event on its way through a batch attempt.
type pending struct {
	idx int // index in the Apply input
	ev  *record.Event
	ref string
	pre *eventPrep // nil but for upserts of persons
	// the blocks whose candidates a read round fetched
	readBlocks     []string
	candidatesRead bool
	// decided
	skip      bool   // stale: nothing to do
	duplicate bool   // already applied: report the current cluster
	expSeq    string // account.lua's check of the stored record
	next      stored
	nextRec   *record.Record
	prep      *Prepared
	blockHex  []string
	neighbors []string
	ban       string // "+ref" or "-ref"
	banOnly   bool
	// what apply.lua checks and writes for it, and the clusters it changes
	checks  []check
	writes  []write
	changes []Change
}

// tenantRun is one tenant's share of a batch.
type tenantRun struct {
	tenant string
	keys   keys
	rules  *Ruleset
	events []*pending
	// hints are cluster ids an earlier attempt took as never used without
	// reading them: the next attempt reads them up front.
	hints map[string]bool
}

// Apply applies events in order and returns the clusters they changed. An
// event older than the stored record is ignored; an event already applied
// (a replay) changes nothing and reports its record's current cluster
// again, so the plans derived from it get the same command ids.
//
// Calls made while another is applying are combined: the next caller to
// get its turn applies every queued call's events as one batch (each call's
// own order kept), which is what makes small batches of many partitions
// cheap. A combined batch's error is every call's error, but for a caller
// holding the turn that gives up: the others then wait for the next turn.
//
// On error, a prefix of each tenant's events may have been applied; applying
// the same events again is safe.
func (s *Store) Apply(ctx context.Context, events []record.Event) ([]Change, error) {
	for i := range events {
		if err := validEvent(&events[i]); err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
	}
	// What needs no stored state is worked out now, in parallel with the
	// batch that has the turn.
	req := &applyReq{ctx: ctx, events: events, pre: s.prepare(events), done: make(chan applyResult, 1)}
	s.mu.Lock()
	s.queue = append(s.queue, req)
	s.mu.Unlock()
	for {
		select {
		case r := <-req.done:
			return r.changes, r.err
		case <-ctx.Done():
			return nil, ctx.Err()
		case s.turn <- struct{}{}:
			// Our own request is either in this take or already done. Calls
			// whose callers gave up are dropped.
			s.mu.Lock()
			reqs := slices.DeleteFunc(s.queue, func(r *applyReq) bool { return r.ctx.Err() != nil })
			s.queue = nil
			s.mu.Unlock()
			if len(reqs) > 0 {
				s.applyCombined(ctx, reqs)
			}
			<-s.turn
		}
	}
}

// applyReq is one Apply call waiting for its turn.
type applyReq struct {
	ctx    context.Context
	events []record.Event
	pre    []*eventPrep
	done   chan applyResult // buffered: the applier never waits on it
}

type applyResult struct {
	changes []Change
	err     error
}

// applyCombined applies the queued calls as one batch and hands each its
// changes, indexed into its own events.
func (s *Store) applyCombined(ctx context.Context, reqs []*applyReq) {
	s.combined.Observe(float64(len(reqs)))
	all, pre := reqs[0].events, reqs[0].pre
	if len(reqs) > 1 {
		n := 0
		for _, r := range reqs {
			n += len(r.events)
		}
		all, pre = make([]record.Event, 0, n), make([]*eventPrep, 0, n)
		for _, r := range reqs {
			all = append(all, r.events...)
			pre = append(pre, r.pre...)
		}
	}
	changes, err := s.apply(ctx, all, pre)
	if err != nil && ctx.Err() != nil {
		// The caller holding the turn gave up (shutdown, a revoked
		// partition), the others did not: they go back to the head of the
		// queue for the next turn. What was applied is then a replay.
		var back []*applyReq
		for _, r := range reqs {
			if r.ctx.Err() == nil {
				back = append(back, r)
			} else {
				r.done <- applyResult{err: err}
			}
		}
		s.mu.Lock()
		s.queue = append(back, s.queue...)
		s.mu.Unlock()
		return
	}
	off := 0
	for _, r := range reqs {
		if err != nil {
			r.done <- applyResult{err: err}
			continue
		}
		// The changes are in event order: each call's are a run of them.
		end := off + len(r.events)
		k := 0
		for k < len(changes) && changes[k].Index < end {
			changes[k].Index -= off
			k++
		}
		var mine []Change
		if k > 0 {
			mine = changes[:k:k]
		}
		changes = changes[k:]
		r.done <- applyResult{changes: mine}
		off = end
	}
}

// apply is one combined batch: read, decide, apply, with optimistic retries
// of the events after a conflict.
func (s *Store) apply(ctx context.Context, events []record.Event, pre []*eventPrep) ([]Change, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	runs, err := s.group(events, pre)
	if err != nil {
		return nil, err
	}
	var out []Change
	for attempt := 0; len(runs) > 0; attempt++ {
		if attempt >= s.opts.MaxAttempts {
			return nil, ErrContention
		}
		if attempt > 0 {
			s.conflicts.Inc()
			d := time.Duration(rand.IntN(1+min(attempt, 20)*2)) * time.Millisecond
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(d):
			}
		}
		changes, retry, err := s.attempt(ctx, runs)
		if errors.Is(err, errReloaded) {
			// The same events, decided afresh. The apply round's calls
			// before the one the server refused may have been applied:
			// those events are then replays.
			s.reloads.Inc()
			for _, r := range runs {
				r.events = resetPending(r.events)
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, changes...)
		runs = retry
	}
	slices.SortStableFunc(out, func(a, b Change) int { return a.Index - b.Index })
	return out, nil
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

// prepare works out each person upsert's eventPrep.
func (s *Store) prepare(events []record.Event) []*eventPrep {
	out := make([]*eventPrep, len(events))
	rules := map[string]*Ruleset{}
	for i := range events {
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
	return out
}

func (s *Store) group(events []record.Event, pre []*eventPrep) ([]*tenantRun, error) {
	byTenant := map[string]*tenantRun{}
	var runs []*tenantRun
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
			runs = append(runs, run)
		}
		run.events = append(run.events, &pending{idx: i, ev: ev, ref: refKey(ev.Ref()), pre: pre[i]})
	}
	return runs, nil
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

// attempt runs one optimistic pass over the runs: read, decide, apply. It
// returns the changes applied and, per tenant that hit a conflict, the events
// still to do.
func (s *Store) attempt(ctx context.Context, runs []*tenantRun) ([]Change, []*tenantRun, error) {
	views := make([]*view, len(runs))
	for i, run := range runs {
		views[i] = newView(run)
	}
	// Round 1: each event's stored record, and the candidates of the blocks
	// an upsert will have.
	if err := s.readRound(ctx, "read", views, func(v *view, p *pending) ([]string, bool) {
		if p.ev.Op != record.OpUpsert || p.ev.Object == record.Account {
			return nil, true
		}
		if p.pre != nil {
			p.blockHex = v.prepared(p)
		} else {
			p.blockHex = v.blocksOf(p, &p.ev.Record)
		}
		return p.blockHex, true
	}); err != nil {
		return nil, nil, err
	}
	// The record states each event leads to (they do not depend on matching).
	for _, v := range views {
		if err := v.states(); err != nil {
			return nil, nil, err
		}
	}
	// Round 2: candidates for events whose blocks were not known before
	// their stored record was (patches, review decisions).
	if err := s.readRound(ctx, "read_candidates", views, func(v *view, p *pending) ([]string, bool) {
		if p.skip || p.duplicate || p.banOnly || p.prep == nil || p.ev.Object == record.Account {
			return nil, false
		}
		if p.candidatesRead && slices.Equal(p.readBlocks, p.blockHex) {
			return nil, false
		}
		return p.blockHex, true
	}); err != nil {
		return nil, nil, err
	}
	// Round 3: the records and edges of the members of the clusters read.
	if err := s.membersRound(ctx, views); err != nil {
		return nil, nil, err
	}
	// Decide, and apply runs of decided events as they come.
	return s.applyRound(ctx, views)
}

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

// members decodes the member values a script returned, through the cache.
func (s *Store) members(run *tenantRun, keys []string, vals any) ([]record.Record, error) {
	list, _ := vals.([]any)
	if len(list) != len(keys) {
		return nil, fmt.Errorf("matcher: %d member values for %d members", len(list), len(keys))
	}
	out := make([]record.Record, 0, len(keys))
	for i, k := range keys {
		raw, _ := list[i].(string)
		e, err := s.entry(run, k, raw)
		if err != nil {
			return nil, err
		}
		if e == nil {
			return nil, fmt.Errorf("matcher: member %s of a cluster has no record", k)
		}
		out = append(out, *e.rec)
	}
	return out, nil
}

// entry returns the decoded and prepared form of a stored value, from the
// cache when the value is unchanged. It returns nil for tombstones.
func (s *Store) entry(run *tenantRun, ref, raw string) (*cacheEntry, error) {
	ck := run.tenant + "\x00" + ref
	if e := s.cache.get(ck, raw); e != nil {
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
	s.cache.put(ck, e)
	return e, nil
}

// currentClusters reports, for replayed events, the clusters their records
// are in now, without changing anything.
func (s *Store) currentClusters(ctx context.Context, dups []*pending, views map[*pending]*view) ([]Change, error) {
	pipe := s.rdb.Pipeline()
	cids := make([]*redis.StringCmd, len(dups))
	for i, p := range dups {
		cids[i] = pipe.HGet(ctx, views[p].run.keys.clusterM, p.ref)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("matcher: read clusters: %w", err)
	}
	var out []Change
	for i, p := range dups {
		cid, err := cids[i].Result()
		if errors.Is(err, redis.Nil) {
			continue // the record is out of matching: no cluster to report
		}
		if err != nil {
			return nil, fmt.Errorf("matcher: read cluster: %w", err)
		}
		run := views[p].run
		c, err := s.cluster(ctx, run, cid)
		if err != nil {
			return nil, err
		}
		c.Trigger, c.Index = p.ev.Ref(), p.idx
		out = append(out, c)
	}
	return out, nil
}

// cluster reads one cluster as it is now.
func (s *Store) cluster(ctx context.Context, run *tenantRun, cid string) (Change, error) {
	c := Change{Tenant: run.tenant, ClusterID: cid}
	k := run.keys
	pipe := s.rdb.Pipeline()
	cl := pipe.HGet(ctx, k.clusters, cid)
	cv := pipe.HGet(ctx, k.versions, cid)
	if _, err := pipe.Exec(ctx); err != nil {
		return c, fmt.Errorf("matcher: read cluster %s: %w", cid, err)
	}
	c.Version, _ = strconv.ParseInt(cv.Val(), 10, 64)
	var keys []string
	if c := parseCluster(cl.Val()); c != nil {
		keys = c.members
	}
	if len(keys) == 0 {
		c.Removed = true
		return c, nil
	}
	vals, err := s.rdb.HMGet(ctx, k.records, keys...).Result()
	if err != nil {
		return c, fmt.Errorf("matcher: read members of %s: %w", cid, err)
	}
	c.Members, err = s.members(run, keys, vals)
	return c, err
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
	ids, err := s.rdb.HMGet(ctx, tenantKeys(s.opts.Namespace, tenant).accounts, hexKeys...).Result()
	if err != nil {
		return nil, fmt.Errorf("matcher: resolve accounts: %w", err)
	}
	for i, id := range ids {
		if id, ok := id.(string); ok {
			out[ask[i]] = id
		}
	}
	return out, nil
}

func accountHex(key string) string {
	h, _ := blockKey(Block{Rule: "\x00account", Key: key})
	return h
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
	cid := pipe.HGet(ctx, k.clusterM, rk)
	adj := pipe.HGet(ctx, k.adj, rk)
	bans := pipe.HGet(ctx, k.bans, rk)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return View{}, fmt.Errorf("matcher: view %s: %w", ref, err)
	}
	v := View{Cluster: cid.Val(), Neighbours: refs(strings.Fields(adj.Val())), Bans: refs(strings.Fields(bans.Val()))}
	if v.Cluster == "" {
		return v, nil
	}
	pipe = s.rdb.Pipeline()
	cl := pipe.HGet(ctx, k.clusters, v.Cluster)
	cv := pipe.HGet(ctx, k.versions, v.Cluster)
	if _, err := pipe.Exec(ctx); err != nil {
		return View{}, fmt.Errorf("matcher: view %s: %w", ref, err)
	}
	v.Version, _ = strconv.ParseInt(cv.Val(), 10, 64)
	if c := parseCluster(cl.Val()); c != nil {
		v.Members = refs(c.members)
	}
	return v, nil
}

// Clusters returns every cluster of a tenant with two or more members, as
// sorted member lists. It scans the tenant's cluster hash: for tests,
// evaluation and audits, not for the event path.
func (s *Store) Clusters(ctx context.Context, tenant string) (map[string][]record.Ref, error) {
	k := tenantKeys(s.opts.Namespace, tenant)
	all, err := s.rdb.HGetAll(ctx, k.clusters).Result()
	if err != nil {
		return nil, fmt.Errorf("matcher: list clusters: %w", err)
	}
	out := make(map[string][]record.Ref, len(all))
	for id, v := range all {
		if c := parseCluster(v); c != nil {
			out[id] = refs(c.members)
		}
	}
	return out, nil
}

func (s *Store) warnOversize(rule, block string) {
	if _, seen := s.warned.LoadOrStore(block, true); seen {
		return
	}
	s.oversize.WithLabelValues(rule).Inc()
	s.opts.Logger.Warn().Str("rule", rule).Str("block", block).
		Msg("block passed max_block_size: it no longer produces candidates")
}

func (s *Store) nextBatch() string {
	return s.instance + "-" + strconv.FormatUint(s.batches.Add(1), 36)
}

// Get returns a record's stored state; ok is false when it is unknown or out
// of matching (deleted, converted, or an account).
func (s *Store) Get(ctx context.Context, tenant string, ref record.Ref) (rec record.Record, ok bool, err error) {
	k := tenantKeys(s.opts.Namespace, tenant)
	raw, err := s.rdb.HGet(ctx, k.records, refKey(ref)).Result()
	if errors.Is(err, redis.Nil) {
		return record.Record{}, false, nil
	}
	if err != nil {
		return record.Record{}, false, fmt.Errorf("matcher: get %s: %w", ref, err)
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
	it := s.rdb.HScan(ctx, k.records, 0, prefix+"*", 500).Iterator()
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
		return fmt.Errorf("matcher: scan leads: %w", err)
	}
	return nil
}
