package matcher

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/leadconv/leadconv/record"
)

// errReloaded reports that the server had lost its script cache (a restart
// or failover) and the scripts were loaded again: the attempt is redone from
// its reads, which is safe because every script checks its preconditions.
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

func (s *Store) applyRound(ctx context.Context, views []*view) ([]Change, []*tenantRun, error) {
	// A call applies a run of consecutive person events of one tenant, or
	// one account event, in the batch's order.
	type call struct {
		v   *view
		ps  []*pending
		cmd *redis.Cmd
	}
	var calls []call
	pipe := s.rdb.Pipeline()
	var dups []*pending
	dupView := map[*pending]*view{}
	for _, v := range views {
		if v.interfered {
			continue
		}
		k := v.run.keys
		var run []*pending
		flush := func() {
			if len(run) == 0 {
				return
			}
			cmd := applyScript.EvalSha(ctx, pipe,
				[]string{k.records, k.blocks, k.adj, k.clusterM, k.clusters, k.versions, k.stripeV, k.fail + v.batch, k.bans},
				applyArgs(run, s.argScratch)...)
			calls = append(calls, call{v, run, cmd})
			run = nil
		}
		for _, p := range v.run.events {
			switch {
			case p.skip:
				continue
			case p.duplicate:
				dups = append(dups, p)
				dupView[p] = v
				continue
			}
			if p.ev.Object == record.Account {
				flush()
				key := ""
				if len(p.next.blocks) > 0 {
					key = p.next.blocks[0]
				}
				cmd := accountScript.EvalSha(ctx, pipe, []string{k.records, k.accounts, k.fail + v.batch},
					p.ref, p.expSeq, p.next.raw, key, p.ev.ID, failTTL)
				calls = append(calls, call{v, []*pending{p}, cmd})
				continue
			}
			run = append(run, p)
			if len(run) == applyChunk {
				flush()
			}
		}
		flush()
	}
	// The accounts of the changed clusters' companies, read right after the
	// writes in the same round trip, so planning needs no lookup of its own.
	// A company shared by several changes of the batch is read once.
	type accountRead struct {
		v   *view
		at  []int // per lookup, its field's index
		ids *redis.SliceCmd
	}
	var accountReads []accountRead
	for _, v := range views {
		if v.interfered || len(v.accountLookups) == 0 {
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
	var out []Change
	if len(calls) > 0 || len(accountReads) > 0 {
		start := time.Now()
		if err := s.execScripts(ctx, pipe); err != nil {
			return nil, nil, fmt.Errorf("matcher: apply: %w", err)
		}
		s.scriptDur.WithLabelValues("apply").Observe(time.Since(start).Seconds())
	}
	for _, r := range accountReads {
		ids := r.ids.Val()
		for i, l := range r.v.accountLookups {
			if id, ok := ids[r.at[i]].(string); ok {
				l.into[l.value] = id
			}
		}
	}
	failedAt := map[*view]int{}
	for _, c := range calls {
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
	if len(dups) > 0 {
		changes, err := s.currentClusters(ctx, dups, dupView)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, changes...)
	}
	var retry []*tenantRun
	for _, v := range views {
		from, failed := failedAt[v]
		if v.interfered {
			from, failed = 0, true
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
