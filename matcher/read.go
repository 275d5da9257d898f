package matcher

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/leadconv/leadconv/record"
)

// readRound reads what the events want selects need: their stored records,
// bans, blocks with their stripe versions, and the stored records of the
// blocks' members. Plain HMGETs, two round trips per round for all tenants:
// record values never pass through Lua, where turning each into a Lua
// string costs more than the rest of the read.
//
// No snapshot is needed. Stripes are read first: a write that lands after
// that read, and could make any later read of this round newer than the
// stripe versions, bumps a stripe the apply then finds changed, so the
// decision is redone (a false conflict at worst). The events' own records
// are guarded the same way by their record stripes; clusters.lua reads
// every record's cluster with that cluster's version, atomically.
func (s *Store) readRound(ctx context.Context, phase string, views []*view, want func(*view, *pending) ([]string, bool)) error {
	type tenantRead struct {
		v                    *view
		ps                   []*pending
		blocks               [][]string
		stripes, bkeys, refs []string
		sv, bv, bans, vals   *redis.SliceCmd
		// after the first trip: block and stripe values by block, and the
		// members of the blocks under the size limit
		bvals, svals map[string]string
		members      map[string][]string
		cands        []string
		cvals        []*redis.SliceCmd
		// blocks the events' stored records are in but not asked for: the
		// apply rewrites them when a record leaves them.
		okeys    []string
		osv, obv *redis.SliceCmd
		rsv      *redis.SliceCmd
		cl       *redis.Cmd
	}
	var reads []*tenantRead
	pipe := s.rdb.Pipeline()
	for _, v := range views {
		tr := &tenantRead{v: v}
		seenB := make(map[string]bool, 4*len(v.run.events))
		for _, p := range v.run.events {
			blocks, ok := want(v, p)
			if !ok {
				continue
			}
			tr.ps = append(tr.ps, p)
			tr.refs = append(tr.refs, p.ref)
			tr.blocks = append(tr.blocks, blocks)
			for _, b := range blocks {
				if !seenB[b] {
					seenB[b] = true
					tr.bkeys = append(tr.bkeys, b)
					tr.stripes = append(tr.stripes, strconv.Itoa(stripeOf(b)))
				}
			}
		}
		if len(tr.ps) == 0 {
			continue
		}
		k := v.run.keys
		rstripes := make([]string, len(tr.refs))
		for i, r := range tr.refs {
			rstripes[i] = strconv.Itoa(stripeOfRef(r))
		}
		tr.rsv = pipe.HMGet(ctx, k.stripeV, rstripes...)
		if len(tr.bkeys) > 0 {
			tr.sv = pipe.HMGet(ctx, k.stripeV, tr.stripes...)
			tr.bv = pipe.HMGet(ctx, k.blocks, tr.bkeys...)
		}
		tr.bans = pipe.HMGet(ctx, k.bans, tr.refs...)
		tr.vals = pipe.HMGet(ctx, k.records, tr.refs...)
		reads = append(reads, tr)
	}
	if len(reads) == 0 {
		return nil
	}
	start := time.Now()
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("matcher: %s: %w", phase, err)
	}
	// Second trip: the members of the usable blocks.
	pipe = s.rdb.Pipeline()
	for _, tr := range reads {
		tr.bvals, tr.svals = make(map[string]string, len(tr.bkeys)), make(map[string]string, len(tr.bkeys))
		tr.members = make(map[string][]string, len(tr.bkeys))
		if tr.bv != nil {
			svals := tr.sv.Val()
			for i, x := range tr.bv.Val() {
				b := tr.bkeys[i]
				raw, _ := x.(string)
				tr.bvals[b] = raw
				tr.svals[b], _ = svals[i].(string)
				if !strings.HasPrefix(raw, "!") {
					tr.members[b] = strings.Fields(raw)
				}
			}
		}
		own := map[string]bool{}
		for _, r := range tr.refs {
			own[r] = true
		}
		for _, b := range tr.bkeys {
			for _, m := range tr.members[b] {
				if !own[m] {
					own[m] = true
					tr.cands = append(tr.cands, m)
				}
			}
		}
		for i := 0; i < len(tr.cands); i += 1000 {
			tr.cvals = append(tr.cvals, pipe.HMGet(ctx, tr.v.run.keys.records, tr.cands[i:min(i+1000, len(tr.cands))]...))
		}
		// The clusters of all these records, and the ids the batch's new
		// clusters are likely to take (a new record's first choice, and any
		// an earlier attempt found it lacked).
		k := tr.v.run.keys
		args := make([]any, 0, 1+len(tr.refs)+len(tr.cands)+len(tr.ps)+len(tr.v.run.hints))
		args = append(args, len(tr.refs)+len(tr.cands))
		for _, r := range tr.refs {
			args = append(args, r)
		}
		for _, r := range tr.cands {
			args = append(args, r)
		}
		for _, p := range tr.ps {
			if p.ev.Op == record.OpUpsert && p.ev.Object != record.Account {
				args = append(args, clusterID(tr.v.run.tenant, p.ref, 0))
			}
		}
		for id := range tr.v.run.hints {
			args = append(args, id)
		}
		tr.cl = clustersScript.EvalSha(ctx, pipe, []string{k.clusterM, k.versions, k.clusters, k.adj}, args...)
		// The events' own records go into the view now: the blocks they
		// are in (as the view first read them) are rewritten when a record
		// leaves them, so those are read too.
		seenO := map[string]bool{}
		for i, x := range tr.vals.Val() {
			raw, _ := x.(string)
			tr.v.seeRecord(tr.refs[i], raw)
			for _, b := range tr.v.recs[tr.refs[i]].blocks {
				if _, asked := tr.bvals[b]; !asked && !seenO[b] && tr.v.blocks[b] == nil {
					seenO[b] = true
					tr.okeys = append(tr.okeys, b)
				}
			}
		}
		if len(tr.okeys) > 0 {
			stripes := make([]string, len(tr.okeys))
			for i, b := range tr.okeys {
				stripes[i] = strconv.Itoa(stripeOf(b))
			}
			tr.osv = pipe.HMGet(ctx, tr.v.run.keys.stripeV, stripes...)
			tr.obv = pipe.HMGet(ctx, tr.v.run.keys.blocks, tr.okeys...)
		}
	}
	if err := s.execScripts(ctx, pipe); err != nil {
		return fmt.Errorf("matcher: %s: %w", phase, err)
	}
	s.scriptDur.WithLabelValues(phase).Observe(time.Since(start).Seconds())
	// What was read goes into the views once per key, however many events
	// asked for it. A key read twice in one attempt (a second read round
	// re-reads the events' records) keeps its first value. That is safe
	// because every value is vouched for by a version read no later than it,
	// and the apply checks the first-read versions: if a value changed
	// between two reads, so did the version behind it, and the apply
	// conflicts.
	for _, tr := range reads {
		v := tr.v
		for i, x := range tr.rsv.Val() {
			sv, _ := x.(string)
			v.seeStripe(stripeOfRef(tr.refs[i]), sv)
		}
		if err := v.seeClusters(slices.Concat(tr.refs, tr.cands), tr.cl); err != nil {
			return fmt.Errorf("matcher: %s: %w", phase, err)
		}
		bans := tr.bans.Val()
		for i, p := range tr.ps {
			if _, ok := v.bans[p.ref]; !ok {
				v.bans[p.ref], _ = bans[i].(string)
			}
			p.readBlocks, p.candidatesRead = tr.blocks[i], true
		}
		for _, b := range tr.bkeys {
			v.seeBlock(b, tr.bvals[b], tr.svals[b])
		}
		at := 0
		for _, cmd := range tr.cvals {
			for _, x := range cmd.Val() {
				raw, _ := x.(string)
				v.seeRecord(tr.cands[at], raw)
				at++
			}
		}
		if tr.obv != nil {
			svals, bvals := tr.osv.Val(), tr.obv.Val()
			for i, b := range tr.okeys {
				raw, _ := bvals[i].(string)
				sv, _ := svals[i].(string)
				tr.v.seeBlock(b, raw, sv)
			}
		}
	}
	return nil
}

// membersRound reads the records and edges of the members of every
// cluster read, in one round trip. The versions of those clusters were read
// before, so a write landing in between bumps a version the apply then
// finds changed.
func (s *Store) membersRound(ctx context.Context, views []*view) error {
	type tenantRead struct {
		v         *view
		recs, adj []string
		r, a      *redis.SliceCmd
	}
	var reads []*tenantRead
	pipe := s.rdb.Pipeline()
	for _, v := range views {
		if v.interfered {
			continue
		}
		tr := &tenantRead{v: v}
		seen := map[string]bool{}
		for _, c := range v.cl {
			if c == nil {
				continue
			}
			for _, m := range c.members {
				if seen[m] {
					continue
				}
				seen[m] = true
				if _, known := v.recs[m]; !known {
					tr.recs = append(tr.recs, m)
				}
				if _, known := v.adj[m]; !known {
					tr.adj = append(tr.adj, m)
				}
			}
		}
		if len(tr.recs) > 0 {
			tr.r = pipe.HMGet(ctx, v.run.keys.records, tr.recs...)
		}
		if len(tr.adj) > 0 {
			tr.a = pipe.HMGet(ctx, v.run.keys.adj, tr.adj...)
		}
		if tr.r != nil || tr.a != nil {
			reads = append(reads, tr)
		}
	}
	if len(reads) == 0 {
		return nil
	}
	start := time.Now()
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("matcher: read cluster members: %w", err)
	}
	s.scriptDur.WithLabelValues("read_members").Observe(time.Since(start).Seconds())
	for _, tr := range reads {
		if tr.r != nil {
			for i, x := range tr.r.Val() {
				raw, _ := x.(string)
				tr.v.seeRecord(tr.recs[i], raw)
			}
		}
		if tr.a != nil {
			for i, x := range tr.a.Val() {
				tr.v.seeAdj(tr.adj[i], x)
			}
		}
	}
	return nil
}
