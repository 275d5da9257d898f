package matcher

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/leadconv/leadconv/record"
)

// takeEpochs makes the store the owner of the tenants it touches for the
// first time: one INCR of each one's epoch, whose new value every later
// write of the store checks, with the size of its records hash, in one
// round trip. Everything resident is read after the INCR, so it includes
// whatever a previous owner wrote before it was fenced. An empty tenant is
// complete at once; one small enough to fit a quarter of the budget is
// loaded whole in a second round trip, so its warm batches read nothing.
// With side, the side state of the tenants not handed out yet is read in
// the first round trip too, after the INCR: whatever a previous owner
// wrote before it was fenced.
func (s *Store) takeEpochs(ctx context.Context, views []*view, side bool, rt *roundTrips) error {
	var fresh, load []*view
	pipe := s.rdb.Pipeline()
	sides := map[string]*redis.MapStringStringCmd{}
	readSide := func(v *view) {
		if _, read := s.side[v.run.tenant]; side && !read && !s.handed[v.run.tenant] {
			sides[v.run.tenant] = pipe.HGetAll(ctx, v.run.keys.side)
		}
	}
	for _, v := range views {
		if _, ok := s.epochs[v.run.tenant]; !ok {
			fresh = append(fresh, v)
		} else {
			// Taken by an earlier batch that failed before handing it out.
			readSide(v)
			if s.unloaded[v.run.tenant] {
				load = append(load, v)
			}
		}
	}
	if len(fresh) == 0 && len(sides) == 0 && len(load) == 0 {
		return nil
	}
	var marker *redis.SliceCmd
	var format *redis.StringCmd
	if len(fresh) > 0 {
		if !s.marked {
			marker = pipe.HMGet(ctx, MarkerKey(s.opts.Namespace), markerCreated, markerRebuilding)
		}
		if !s.opts.Rebuild {
			// At every take: a newer leadconv may have written the tenant
			// since this store last read the format.
			format = pipe.HGet(ctx, MarkerKey(s.opts.Namespace), markerFormat)
		}
	}
	incr := make([]*redis.IntCmd, len(fresh))
	size := make([]*redis.IntCmd, len(fresh))
	for i, v := range fresh {
		incr[i] = pipe.Incr(ctx, v.run.keys.epoch)
		size[i] = pipe.HLen(ctx, v.run.keys.hashes[hR])
		readSide(v)
	}
	if err := s.exec(ctx, pipe, "epoch", rt); err != nil {
		return err
	}
	for t, c := range sides {
		s.side[t] = c.Val()
	}
	if format != nil {
		f := parseFormat(format.Val()) // absent: redis.Nil, ""
		if f > StoredFormat {
			s.lost = fmt.Errorf("%w: namespace %q holds format %d, this leadconv reads formats up to %d: run the newer leadconv that wrote it", ErrNewerFormat, s.opts.Namespace, f, StoredFormat)
			return s.lost
		}
		s.formatted = f == StoredFormat
	}
	if marker != nil {
		switch v := marker.Val(); {
		case marker.Err() != nil:
			return marker.Err()
		case v[0] != nil:
			s.marked = true
		case v[1] != nil:
			// A rebuild deleted the state and has not marked it complete.
			s.lost = s.stateLost("a rebuild of the namespace is running or was interrupted (" + MarkerKey(s.opts.Namespace) + " says rebuilding)")
			return s.lost
		case s.opts.StateExpected && !slices.ContainsFunc(size, func(c *redis.IntCmd) bool { return c.Val() > 0 }):
			// Records without a marker are state written before markers
			// existed: it is marked with the next write.
			s.lost = s.stateLost("no state marker (" + MarkerKey(s.opts.Namespace) + ") although the partition has committed offsets: Redis came back empty")
			return s.lost
		}
	}
	for i, v := range fresh {
		s.epochs[v.run.tenant] = strconv.FormatInt(incr[i].Val(), 10)
		switch n := size[i].Val(); {
		case n == 0:
			v.complete = true
		case n <= s.res.fullLoadRecords():
			load = append(load, v)
		}
	}
	err := s.loadWhole(ctx, load, rt)
	for _, v := range load {
		// A failed load is done again by the tenant's next batch: else the
		// owner would read the tenant through for as long as it owns it.
		if v.complete = err == nil; err != nil {
			s.unloaded[v.run.tenant] = true
		} else {
			delete(s.unloaded, v.run.tenant)
		}
	}
	return err
}

// loadPage is the fields an HSCAN of loadWhole asks for per hash and round
// trip: a page of a large tenant's records is a few MB.
const loadPage = 10_000

// loadWhole reads every hash of the views, all of them advancing together
// by a page per round trip (HSCAN): one HGETALL of a tenant of a million
// records, some GB, took longer than the read timeout. The pages are
// consistent with each other because the epochs are taken: no other owner
// writes these tenants now, and this one writes nothing before the load
// ends. (An HSCAN may return a field twice; never one it does not hold.)
func (s *Store) loadWhole(ctx context.Context, views []*view, rt *roundTrips) error {
	type scan struct {
		v      *view
		h      int
		cursor uint64
		cmd    *redis.ScanCmd
	}
	var open []*scan
	for _, v := range views {
		for h := range nHashes {
			open = append(open, &scan{v: v, h: h})
		}
	}
	for len(open) > 0 {
		pipe := s.rdb.Pipeline()
		for _, sc := range open {
			sc.cmd = pipe.HScan(ctx, sc.v.run.keys.hashes[sc.h], sc.cursor, "", loadPage)
		}
		if err := s.exec(ctx, pipe, "load", rt); err != nil {
			return err
		}
		next := open[:0]
		for _, sc := range open {
			kv, cursor := sc.cmd.Val()
			for i := 0; i+1 < len(kv); i += 2 {
				sc.v.see(sc.h, kv[i], kv[i+1])
			}
			if sc.cursor = cursor; cursor != 0 {
				next = append(next, sc)
			}
		}
		open = next
	}
	return nil
}

// stateLost is ErrStateLost with why and the command that rebuilds the
// namespace.
func (s *Store) stateLost(why string) error {
	ns := s.opts.Namespace
	return fmt.Errorf("%w: namespace %q: %s; rebuild it with %s, then restart leadconv run", ErrStateLost, ns, why, RebuildCommand(ns))
}

// exec runs one pipelined round trip and times it.
func (s *Store) exec(ctx context.Context, pipe redis.Pipeliner, phase string, rt *roundTrips) error {
	if pipe.Len() == 0 {
		return nil
	}
	start := time.Now()
	_, err := pipe.Exec(ctx)
	rt.n++
	s.res.rtDur.WithLabelValues(phase).Observe(time.Since(start).Seconds())
	if err != nil && err != redis.Nil {
		return fmt.Errorf("matcher: %s: %w", phase, err)
	}
	return nil
}

// loader gathers one read round: the keys the views lack, read with
// HMGETs in one round trip. A complete view lacks nothing: what it does not
// hold is absent.
type loader struct {
	s     *Store
	want  map[*view]*[nHashes][]string
	asked map[*view]*[nHashes]map[string]bool
}

func (s *Store) newLoader() *loader {
	return &loader{s: s, want: map[*view]*[nHashes][]string{}, asked: map[*view]*[nHashes]map[string]bool{}}
}

func (l *loader) add(v *view, h int, fields ...string) {
	for _, f := range fields {
		if v.knows(h, f) {
			l.s.res.hits.Inc()
			continue
		}
		if v.complete {
			l.s.res.hits.Inc()
			v.see(h, f, "")
			continue
		}
		a := l.asked[v]
		if a == nil {
			a = &[nHashes]map[string]bool{}
			l.asked[v] = a
			l.want[v] = &[nHashes][]string{}
		}
		if a[h] == nil {
			a[h] = map[string]bool{}
		}
		if a[h][f] {
			continue
		}
		a[h][f] = true
		w := l.want[v]
		w[h] = append(w[h], f)
	}
}

// run reads what was asked and lays it into the views.
func (l *loader) run(ctx context.Context, phase string, rt *roundTrips) error {
	type read struct {
		v      *view
		h      int
		fields []string
		cmd    *redis.SliceCmd
	}
	var reads []read
	pipe := l.s.rdb.Pipeline()
	for v, w := range l.want {
		for h, fields := range w {
			for i := 0; i < len(fields); i += 1000 {
				part := fields[i:min(i+1000, len(fields))]
				reads = append(reads, read{v, h, part, pipe.HMGet(ctx, v.run.keys.hashes[h], part...)})
			}
		}
	}
	if len(reads) == 0 {
		return nil
	}
	if err := l.s.exec(ctx, pipe, phase, rt); err != nil {
		return err
	}
	for _, r := range reads {
		l.s.res.miss.Add(float64(len(r.fields)))
		for i, x := range r.cmd.Val() {
			raw, _ := x.(string)
			r.v.see(r.h, r.fields[i], raw)
		}
	}
	return nil
}

// read makes the views hold everything the batch's decisions use, in up
// to five rounds, each needing what the one before returned; a warm tenant
// already holds it all and reads nothing.
//
//  1. each event's record, bans, cluster id and edges (and the other
//     record's bans for a review decision), and an upsert's blocks;
//  2. the blocks a patched or refreshed record will have, the blocks the
//     stored records are in (rewritten when a record leaves them), and an
//     account's old index entries;
//  3. the candidates: records, cluster ids and edges of the members of the
//     blocks the new states are in;
//  4. the clusters (members, versions) of the events' records and of the
//     candidates;
//  5. the records and edges of those clusters' members, which joins,
//     splits and the reported changes use.
func (s *Store) read(ctx context.Context, views []*view, rt *roundTrips) error {
	l := s.newLoader()
	for _, v := range views {
		for _, p := range v.run.events {
			if p.ev.Op == record.OpUpsert && p.ev.Object != record.Account {
				if p.pre != nil {
					p.blockHex = v.prepared(p)
				} else {
					p.blockHex = v.blocksOf(p, &p.ev.Record)
				}
			}
			if v.complete {
				// It lacks nothing: what it does not hold is absent.
				continue
			}
			l.add(v, hR, p.ref)
			if p.ev.Object == record.Account {
				continue
			}
			l.add(v, hX, p.ref)
			l.add(v, hCM, p.ref)
			l.add(v, hA, p.ref)
			if p.ev.Other != nil {
				l.add(v, hX, refKey(*p.ev.Other))
			}
			l.add(v, hB, p.blockHex...)
		}
	}
	if err := l.run(ctx, "read_events", rt); err != nil {
		return err
	}
	// The record states each event leads to (they do not depend on matching).
	l = s.newLoader()
	for _, v := range views {
		if err := v.states(); err != nil {
			return err
		}
		if v.complete {
			continue
		}
		for _, p := range v.run.events {
			old := v.recs[p.ref]
			if p.ev.Object == record.Account {
				l.add(v, hAcct, old.blocks...)
				continue
			}
			if p.skip || p.duplicate || p.banOnly {
				continue
			}
			l.add(v, hB, p.blockHex...)
			l.add(v, hB, old.blocks...)
		}
	}
	if err := l.run(ctx, "read_blocks", rt); err != nil {
		return err
	}
	l = s.newLoader()
	for _, v := range views {
		if v.complete {
			continue
		}
		for _, p := range v.run.events {
			if p.skip || p.duplicate || p.banOnly || !p.next.live() || p.ev.Object == record.Account {
				continue
			}
			for _, b := range p.blockHex {
				if bv := v.blocks[b]; bv != nil && !bv.poisoned {
					l.add(v, hR, bv.members...)
					l.add(v, hCM, bv.members...)
					l.add(v, hA, bv.members...)
				}
			}
		}
	}
	if err := l.run(ctx, "read_candidates", rt); err != nil {
		return err
	}
	// The clusters of the events' records and of the candidates.
	ids := map[*view][]string{}
	l = s.newLoader()
	for _, v := range views {
		if v.complete {
			continue
		}
		seen := map[string]bool{}
		use := func(ref string) {
			if id := v.cm[ref]; id != "" && !seen[id] {
				seen[id] = true
				ids[v] = append(ids[v], id)
				l.add(v, hCL, id)
				l.add(v, hCV, id)
			}
		}
		for _, p := range v.run.events {
			if p.ev.Object == record.Account {
				continue
			}
			use(p.ref)
			if p.skip || p.duplicate || p.banOnly || !p.next.live() {
				continue
			}
			for _, b := range p.blockHex {
				if bv := v.blocks[b]; bv != nil && !bv.poisoned {
					for _, m := range bv.members {
						use(m)
					}
				}
			}
		}
	}
	if err := l.run(ctx, "read_clusters", rt); err != nil {
		return err
	}
	l = s.newLoader()
	for _, v := range views {
		for _, id := range ids[v] {
			if c := v.cl[id]; c != nil {
				l.add(v, hR, c.members...)
				l.add(v, hA, c.members...)
			}
		}
	}
	return l.run(ctx, "read_members", rt)
}
