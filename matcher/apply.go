package matcher

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/leadconv/leadconv/record"
)

// errReloaded reports that the server had lost its script cache (a restart
// or failover) and the scripts were loaded again: the attempt is redone from
// its reads, which is safe because every script checks its preconditions
// and an event already applied is recognised as a replay.
var errReloaded = errors.New("matcher: scripts reloaded")

// execScripts runs a pipeline of EVALSHA calls.
func (s *Store) execScripts(ctx context.Context, pipe redis.Pipeliner) error {
	_, err := pipe.Exec(ctx)
	if err == nil || !redis.HasErrorPrefix(err, "NOSCRIPT") {
		return err
	}
	for _, sc := range []*redis.Script{applyScript, accountScript, clustersScript} {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return err
		}
	}
	return errReloaded
}

// applyChunk bounds the events of one apply.lua call, so one call never
// holds the server for long.
const applyChunk = 64

// applyCall is one script call of the apply round: a run of consecutive
// person events of one tenant, or one account event, in the batch's order.
type applyCall struct {
	v   *view
	ps  []*pending
	cmd *redis.Cmd
}

// applyStream is the apply round, overlapped with deciding: runs go to
// Redis as they are decided, so the server applies one run while the next
// is decided instead of idling until the whole batch is. One goroutine
// sends them, whatever has queued up as one pipeline, each pipeline after
// the last one's replies: Redis runs the calls in batch order, and a
// conflicting call's fail marker stops every later call of its tenant. A
// batch that fits in one run per tenant, as at low rates, has nothing to
// overlap: it goes in one pipeline from the caller, without the goroutine.
type applyStream struct {
	s   *Store
	ctx context.Context
	// per view, decided person events not yet handed to a call, and how
	// many of its events were decided
	runs    map[*view][]*pending
	decided map[*view]int
	dups    []*pending
	dupView map[*pending]*view
	calls   []*applyCall // in batch order, for the results
	started bool         // the sender runs

	mu     sync.Mutex
	queue  []*applyCall
	tail   func(redis.Pipeliner) // set on close: the reads after the writes
	closed bool
	wake   chan struct{}
	done   chan struct{}
	err    error // the sender's, read after done
}

func (s *Store) startApply(ctx context.Context) *applyStream {
	return &applyStream{
		s: s, ctx: ctx,
		runs: map[*view][]*pending{}, decided: map[*view]int{}, dupView: map[*pending]*view{},
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
}

// event takes p, the next decided event of v.
func (a *applyStream) event(v *view, p *pending) {
	a.decided[v]++
	switch {
	case p.skip:
	case p.duplicate:
		a.dups = append(a.dups, p)
		a.dupView[p] = v
	case p.ev.Object == record.Account:
		a.flush(v)
		a.push(&applyCall{v: v, ps: []*pending{p}})
	default:
		a.runs[v] = append(a.runs[v], p)
		if len(a.runs[v]) == applyChunk {
			a.flush(v)
		}
	}
}

func (a *applyStream) flush(v *view) {
	if run := a.runs[v]; len(run) > 0 {
		a.push(&applyCall{v: v, ps: run})
		a.runs[v] = nil
	}
}

func (a *applyStream) push(c *applyCall) {
	if !a.started {
		a.started = true
		go a.send()
	}
	a.calls = append(a.calls, c)
	a.mu.Lock()
	a.queue = append(a.queue, c)
	a.mu.Unlock()
	a.poke()
}

// poke wakes the sender; a wake-up already pending covers this one too.
func (a *applyStream) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// close sends what is left of the views' runs and tail, which adds the
// reads that follow the writes, as one last pipeline, after whatever the
// sender still has, and returns once all is done. A view whose decision
// stopped on an event that lacked data keeps its run: those events are
// redone.
func (a *applyStream) close(views []*view, tail func(redis.Pipeliner)) error {
	var rest []*applyCall
	for _, v := range views {
		if run := a.runs[v]; len(run) > 0 && !v.interfered {
			c := &applyCall{v: v, ps: run}
			a.calls = append(a.calls, c)
			rest = append(rest, c)
			a.runs[v] = nil
		}
	}
	if !a.started {
		a.exec(rest, tail)
		return a.err
	}
	a.mu.Lock()
	a.queue = append(a.queue, rest...)
	a.tail, a.closed = tail, true
	a.mu.Unlock()
	a.poke()
	<-a.done
	return a.err
}

// send runs the queued calls until the stream is closed and drained.
func (a *applyStream) send() {
	defer close(a.done)
	for range a.wake {
		a.mu.Lock()
		calls, closed, tail := a.queue, a.closed, a.tail
		a.queue = nil
		a.mu.Unlock()
		if !closed {
			tail = nil
		}
		a.exec(calls, tail)
		if closed {
			return
		}
	}
}

// exec sends calls, then what tail adds, as one pipeline. After an error it
// sends nothing more: the batch fails, and applying it again is safe.
func (a *applyStream) exec(calls []*applyCall, tail func(redis.Pipeliner)) {
	if a.err != nil {
		return
	}
	s := a.s
	pipe := s.rdb.Pipeline()
	for _, c := range calls {
		v, k := c.v, c.v.run.keys
		if p := c.ps[0]; p.ev.Object == record.Account {
			key := ""
			if len(p.next.blocks) > 0 {
				key = p.next.blocks[0]
			}
			c.cmd = accountScript.EvalSha(a.ctx, pipe, []string{k.records, k.accounts, k.fail + v.batch},
				p.ref, p.expSeq, p.next.raw, key, p.ev.ID, failTTL)
			continue
		}
		c.cmd = applyScript.EvalSha(a.ctx, pipe,
			[]string{k.records, k.blocks, k.adj, k.clusterM, k.clusters, k.versions, k.stripeV, k.fail + v.batch, k.bans},
			applyArgs(c.ps, s.argScratch)...)
	}
	if tail != nil {
		tail(pipe)
	}
	if pipe.Len() == 0 {
		return
	}
	start := time.Now()
	a.err = s.execScripts(a.ctx, pipe)
	s.scriptDur.WithLabelValues("apply").Observe(time.Since(start).Seconds())
}

// applyRound decides the views' events, applies them as they are decided,
// reads the accounts of the changed clusters' companies, and collects what
// the calls applied.
func (s *Store) applyRound(ctx context.Context, views []*view) ([]Change, []*tenantRun, error) {
	a := s.startApply(ctx)
	for _, v := range views {
		if v.interfered {
			continue
		}
		if err := v.decide(s, a.event); err != nil {
			_ = a.close(nil, nil)
			return nil, nil, err
		}
	}
	// The accounts of the changed clusters' companies, read right after the
	// writes in the same round trip as the last of them, so planning needs
	// no lookup of its own (a batch of one run takes one round trip). A
	// company shared by several changes of the batch is read once.
	type accountRead struct {
		v   *view
		at  []int // per lookup, its field's index
		ids *redis.SliceCmd
	}
	var accountReads []accountRead
	err := a.close(views, func(pipe redis.Pipeliner) {
		for _, v := range views {
			if len(v.accountLookups) == 0 {
				continue
			}
			r := accountRead{v: v, at: make([]int, len(v.accountLookups))}
			var fields []string
			index := map[string]int{}
			for i, l := range v.accountLookups {
				j, ok := index[l.key]
				if !ok {
					j = len(fields)
					index[l.key] = j
					fields = append(fields, accountHex(l.key))
				}
				r.at[i] = j
			}
			r.ids = pipe.HMGet(ctx, v.run.keys.accounts, fields...)
			accountReads = append(accountReads, r)
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("matcher: apply: %w", err)
	}
	for _, r := range accountReads {
		ids := r.ids.Val()
		for i, l := range r.v.accountLookups {
			if id, ok := ids[r.at[i]].(string); ok {
				l.into[l.value] = id
			}
		}
	}
	var out []Change
	failedAt := map[*view]int{}
	for _, c := range a.calls {
		if _, failed := failedAt[c.v]; failed {
			continue
		}
		res, err := c.cmd.Slice()
		if err != nil {
			return nil, nil, fmt.Errorf("matcher: apply %s: %w", c.ps[0].ref, err)
		}
		if status, _ := res[0].(string); status != "ok" {
			failedAt[c.v] = indexOf(c.v.run.events, c.ps[0])
			continue
		}
		for _, p := range c.ps {
			out = append(out, p.changes...)
		}
	}
	// Replays of already applied events report their clusters as they are.
	if len(a.dups) > 0 {
		changes, err := s.currentClusters(ctx, a.dups, a.dupView)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, changes...)
	}
	var retry []*tenantRun
	for _, v := range views {
		from, failed := failedAt[v]
		if v.interfered {
			unsent := firstUnsent(v.run.events, a.decided[v], a.runs[v])
			if !failed || unsent < from {
				from = unsent
			}
			failed = true
		}
		if !failed {
			continue
		}
		// Duplicates past the failure point are re-examined next time.
		rest := v.run.events[from:]
		out = slices.DeleteFunc(out, func(c Change) bool {
			return c.Tenant == v.run.tenant && c.Index >= rest[0].idx && isDupIndex(rest, c.Index)
		})
		hints := v.run.hints
		if len(v.assumed) > 0 {
			hints = maps.Clone(hints)
			if hints == nil {
				hints = map[string]bool{}
			}
			for _, id := range v.assumed {
				hints[id] = true
			}
		}
		retry = append(retry, &tenantRun{
			tenant: v.run.tenant, keys: v.run.keys, rules: v.run.rules, events: resetPending(rest), hints: hints,
		})
	}
	return out, retry, nil
}

// argKey is a field of a hash apply.lua writes (hash >= 0) or checks
// (-1 stripes, -2 clusters).
type argKey struct {
	hash  int
	field string
}

// applyArgs builds apply.lua's arguments for a run of decided events: the
// versions their decisions read (as the first event to check each found
// it) and their writes (the last one of each field wins).
// at is scratch space, cleared here.
func applyArgs(run []*pending, at map[argKey]int) []any {
	clear(at)
	// Each list gets its share of one backing array, sized by what the run
	// holds at most.
	var nChecks [2]int
	var nWrites [nHashes]int
	for _, p := range run {
		for _, c := range p.checks {
			if c.cluster {
				nChecks[1]++
			} else {
				nChecks[0]++
			}
		}
		for _, w := range p.writes {
			nWrites[w.hash]++
		}
	}
	var checks [2][]check
	cbuf := make([]check, nChecks[0]+nChecks[1])
	checks[0], checks[1] = cbuf[:0:nChecks[0]], cbuf[nChecks[0]:nChecks[0]]
	var writes [nHashes][]write
	n := nChecks[0] + nChecks[1]
	for _, c := range nWrites {
		n += c
	}
	wbuf := make([]write, n-nChecks[0]-nChecks[1])
	off := 0
	for h, c := range nWrites {
		writes[h] = wbuf[off : off : off+c]
		off += c
	}
	var bans []any
	for _, p := range run {
		for _, c := range p.checks {
			kind := 0
			if c.cluster {
				kind = 1
			}
			k := argKey{-1 - kind, c.field}
			if _, ok := at[k]; !ok {
				at[k] = len(checks[kind])
				checks[kind] = append(checks[kind], c)
			}
		}
		for _, w := range p.writes {
			k := argKey{w.hash, w.field}
			if i, ok := at[k]; ok {
				writes[w.hash][i] = w
			} else {
				at[k] = len(writes[w.hash])
				writes[w.hash] = append(writes[w.hash], w)
			}
		}
		if p.ban != "" {
			bans = append(bans, p.ref, p.ban)
		}
	}
	args := make([]any, 0, 2+2*n+2*nHashes+len(bans))
	args = append(args, failTTL)
	for _, cs := range checks {
		args = append(args, len(cs))
		for _, c := range cs {
			args = append(args, c.field, c.version)
		}
	}
	for _, ws := range writes {
		sets := 0
		for _, w := range ws {
			if !w.del {
				sets++
			}
		}
		args = append(args, sets)
		for _, w := range ws {
			if !w.del {
				args = append(args, w.field, w.value)
			}
		}
		args = append(args, len(ws)-sets)
		for _, w := range ws {
			if w.del {
				args = append(args, w.field)
			}
		}
	}
	args = append(args, len(bans)/2)
	return append(args, bans...)
}

// firstUnsent is the index of the first of events that no call holds:
// the first of run, the decided events not yet sent, or else the first
// event not decided. Skipped and replayed events decided after run's first
// are not sent either, so the count of decided events alone would pass
// over run.
func firstUnsent(events []*pending, decided int, run []*pending) int {
	if len(run) > 0 {
		return indexOf(events, run[0])
	}
	return decided
}

func isDupIndex(events []*pending, idx int) bool {
	for _, p := range events {
		if p.idx == idx {
			return p.duplicate
		}
	}
	return false
}

func indexOf(events []*pending, p *pending) int {
	for i, q := range events {
		if q == p {
			return i
		}
	}
	return len(events)
}

func resetPending(events []*pending) []*pending {
	out := make([]*pending, len(events))
	for i, p := range events {
		out[i] = &pending{idx: p.idx, ev: p.ev, ref: p.ref, pre: p.pre}
	}
	return out
}
