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
)

// changed returns the batch's changes as the views decided them.
func changed(views []*view) []Change {
	n := 0
	for _, v := range views {
		for _, p := range v.run.events {
			n += len(p.changes)
		}
	}
	if n == 0 {
		return nil
	}
	out := make([]Change, 0, n)
	for _, v := range views {
		for _, p := range v.run.events {
			out = append(out, p.changes...)
		}
	}
	return out
}

// lookupAccounts fills in the accounts the changes could not take from the
// view: index entries it did not know when the change was decided, so that
// no event of the batch had written them, and the value before the batch is
// the value then. A view that knows every key reads nothing; otherwise this
// is one round trip, before the write, so that the caller can plan the
// changes between deciding and writing.
func (s *Store) lookupAccounts(ctx context.Context, views []*view, rt *roundTrips) error {
	type lookup struct {
		v      *view
		fields []string
		cmd    *redis.SliceCmd
	}
	var lookups []*lookup
	pipe := s.rdb.Pipeline()
	for _, v := range views {
		lk := &lookup{v: v}
		seen := map[string]bool{}
		for _, a := range v.accountLookups {
			if !seen[a.field] {
				seen[a.field] = true
				lk.fields = append(lk.fields, a.field)
			}
		}
		if len(lk.fields) > 0 {
			lk.cmd = pipe.HMGet(ctx, v.run.keys.hashes[hAcct], lk.fields...)
			lookups = append(lookups, lk)
		}
	}
	if err := s.exec(ctx, pipe, "accounts", rt); err != nil {
		return err
	}
	for _, lk := range lookups {
		before := make(map[string]string, len(lk.fields))
		for i, x := range lk.cmd.Val() {
			id, _ := x.(string)
			f := lk.fields[i]
			before[f] = id
			// An entry an account event of the batch wrote after the
			// change stays as written.
			if !lk.v.knows(hAcct, f) {
				lk.v.see(hAcct, f, id)
			}
		}
		for _, a := range lk.v.accountLookups {
			a.into[a.value] = before[a.field]
		}
	}
	for _, v := range views {
		v.accountLookups = nil
	}
	return nil
}

// write sends every view's writes of the batch, and the side state of
// each tenant in side, as one fenced MULTI/EXEC per tenant on the tenant's
// own connection (fence.go): one round trip for the batch, the tenants'
// transactions in parallel. A transaction that finds the tenant's epoch
// touched writes nothing: the store is fenced. A tenant of side without a
// view must have been taken by this store.
func (s *Store) write(ctx context.Context, views []*view, side map[string]Side, rt *roundTrips) error {
	var writes []*tenantWrite
	inBatch := map[string]bool{}
	for _, v := range views {
		// A batch that writes nothing still checks the epoch: a stale
		// owner must not even report replays from what it holds.
		t := v.run.tenant
		inBatch[t] = true
		w := &tenantWrite{tenant: t, keys: v.run.keys}
		copy(w.hashes[:], v.writes[:])
		w.hashes[nHashes], w.hashes[nHashes+1] = side[t].Taken, side[t].Shelved
		writes = append(writes, w)
	}
	for _, t := range slices.Sorted(maps.Keys(side)) {
		if inBatch[t] {
			continue
		}
		if _, ok := s.epochs[t]; !ok {
			return fmt.Errorf("matcher: side state of tenant %s, which this store does not own", t)
		}
		w := &tenantWrite{tenant: t, keys: tenantKeys(s.opts.Namespace, t)}
		w.hashes[nHashes], w.hashes[nHashes+1] = side[t].Taken, side[t].Shelved
		writes = append(writes, w)
	}
	// The namespace's marker goes before the first write of a store that
	// did not find it: state without it is a batch that failed and is
	// retried. The tenants with side state not yet in the index go into it
	// in the same round trip (another slot: not atomic with the write, but
	// a failed round trip fails the batch, which is retried).
	var index []any
	if s.index != "" {
		for _, t := range slices.Sorted(maps.Keys(side)) {
			if side[t].Len() > 0 && !s.indexed[t] {
				index = append(index, t)
			}
		}
	}
	pipe := s.rdb.Pipeline()
	if !s.marked {
		pipe.HSetNX(ctx, MarkerKey(s.opts.Namespace), markerCreated, time.Now().UTC().Format(time.RFC3339))
	}
	if !s.formatted {
		// Before the store's first write: set if absent, never lowered (a
		// later format raises it; takeEpochs refused one above this).
		pipe.HSetNX(ctx, MarkerKey(s.opts.Namespace), markerFormat, StoredFormat)
	}
	if len(index) > 0 {
		pipe.SAdd(ctx, s.index, index...)
	}
	if err := s.exec(ctx, pipe, "write", rt); err != nil {
		return err
	}
	s.marked, s.formatted = true, true
	for _, t := range index {
		s.indexed[t.(string)] = true
	}
	for lo := 0; lo < len(writes); lo += maxFences {
		if err := s.writeWave(ctx, writes[lo:min(lo+maxFences, len(writes))], rt); err != nil {
			return err
		}
	}
	for _, v := range views {
		// Emptied, their room kept: grown from nothing each batch, the
		// maps of a full-speed batch's thousands of fields cost about 4 %
		// of the process's CPU (BENCHMARKS.md, A batch's write maps kept).
		for h := range v.writes {
			clear(v.writes[h])
		}
	}
	return nil
}

// writeWave writes at most maxFences tenants, each on its fence, in
// parallel: one round trip, two for a tenant whose fence is not armed.
func (s *Store) writeWave(ctx context.Context, wave []*tenantWrite, rt *roundTrips) error {
	keep := map[string]bool{}
	need := 0
	for _, w := range wave {
		keep[w.tenant] = true
		if s.fences[w.tenant] == nil {
			need++
		}
	}
	s.makeRoom(keep, need)
	fences := make([]*fence, len(wave))
	arming := false
	for i, w := range wave {
		f, err := s.fenceOf(w.tenant)
		if err != nil {
			return err
		}
		f.used = s.batches
		arming = arming || !f.armed
		fences[i] = f
	}
	errs := make([]error, len(wave))
	if len(wave) == 1 {
		errs[0] = fences[0].write(ctx, s.res, wave[0], s.epochs[wave[0].tenant])
	} else {
		var wg sync.WaitGroup
		for i, w := range wave {
			wg.Go(func() { errs[i] = fences[i].write(ctx, s.res, w, s.epochs[w.tenant]) })
		}
		wg.Wait()
	}
	rt.n++
	if arming {
		rt.n++
	}
	var first error
	for i, err := range errs {
		if err == nil {
			wave[i].count(s.res)
			continue
		}
		t := wave[i].tenant
		fences[i].close()
		delete(s.fences, t)
		if c, ok := s.fencer.(*redis.ClusterClient); ok {
			// The slot may have moved (a failover, a resharding): the
			// next fence is dialled where the cluster now says.
			c.ReloadState(ctx)
		}
		switch {
		case errors.Is(err, errEpochGone):
			s.lost = s.stateLost("the epoch of tenant " + t + " vanished under its owner")
			err = s.lost
		case errors.Is(err, errEpochMoved):
			s.res.fenced.Inc()
			err = fmt.Errorf("%w (tenant %s)", ErrFenced, t)
		default:
			err = fmt.Errorf("matcher: write of tenant %s: %w", t, err)
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// tenantWrite is one tenant's writes of a batch: field -> value (nil to
// delete) for each of its hashes, then its side and shelf hashes.
type tenantWrite struct {
	tenant string
	keys   keys
	hashes [nHashes + 2]map[string]*string
	// bytes is each hash's value bytes, summed by queue.
	bytes [nHashes + 2]int
}

// count adds the fields written and their values' bytes to the metrics.
func (w *tenantWrite) count(res *Resident) {
	for i, m := range w.hashes {
		if len(m) > 0 {
			res.written[i].Add(float64(len(m)))
			res.writtenBytes[i].Add(float64(w.bytes[i]))
		}
	}
}

// queue adds the writes to pipe: at most an HSET and an HDEL per hash.
func (w *tenantWrite) queue(ctx context.Context, pipe redis.Pipeliner) {
	for i, m := range w.hashes {
		if len(m) == 0 {
			continue
		}
		key := w.keys.side
		switch {
		case i < nHashes:
			key = w.keys.hashes[i]
		case i == nHashes+1:
			key = w.keys.shelf
		}
		set := make([]any, 0, 2+2*len(m))
		set = append(set, "HSET", key)
		var del []any
		w.bytes[i] = 0 // a write sent again is queued again
		for f, val := range m {
			if val != nil {
				set = append(set, f, *val)
				w.bytes[i] += len(*val)
			} else {
				if del == nil {
					del = append(make([]any, 0, 2+len(m)), "HDEL", key)
				}
				del = append(del, f)
			}
		}
		if len(set) > 2 {
			pipe.Do(ctx, set...)
		}
		if len(del) > 0 {
			pipe.Do(ctx, del...)
		}
	}
}

// current reports a replayed event's cluster as the view holds it, without
// changing anything; nothing when the record is out of matching.
func (v *view) current(s *Store, p *pending) error {
	cid := v.cm[p.ref]
	if cid == "" {
		return nil
	}
	c := Change{Tenant: v.run.tenant, ClusterID: cid, Version: v.cv[cid], Trigger: p.ev.Ref(), Index: p.idx}
	if cl := v.cl[cid]; cl == nil || len(cl.members) == 0 {
		c.Removed = true
	} else {
		recs, accounts, err := v.records(s, cl.members)
		if err != nil {
			return fmt.Errorf("matcher: replay of %s: %w", p.ref, err)
		}
		c.Members, c.Accounts = recs, accounts
	}
	p.changes = append(p.changes, c)
	return nil
}
