package matcher

import (
	"context"
	"fmt"
	"maps"
	"slices"
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
// each tenant in side, as one fenced script call per tenant, in one round
// trip. A call that finds the tenant's epoch moved writes nothing: the
// store is fenced. A tenant of side without a view must have been taken
// by this store.
func (s *Store) write(ctx context.Context, views []*view, side map[string]Side, rt *roundTrips) error {
	type call struct {
		tenant string
		keys   []string
		args   []any
	}
	var calls []call
	inBatch := map[string]bool{}
	for _, v := range views {
		// A batch that writes nothing still checks the epoch: a stale
		// owner must not even report replays from what it holds.
		k := v.run.keys
		t := v.run.tenant
		inBatch[t] = true
		calls = append(calls, call{t, append([]string{k.epoch}, append(k.hashes[:], k.side, k.shelf)...), v.writeArgs(s.epochs[t], side[t])})
	}
	for _, t := range slices.Sorted(maps.Keys(side)) {
		if inBatch[t] {
			continue
		}
		epoch, ok := s.epochs[t]
		if !ok {
			return fmt.Errorf("matcher: side state of tenant %s, which this store does not own", t)
		}
		k := tenantKeys(s.opts.Namespace, t)
		calls = append(calls, call{t, append([]string{k.epoch}, append(k.hashes[:], k.side, k.shelf)...), (&view{}).writeArgs(epoch, side[t])})
	}
	// The tenants with side state not yet in the index go into it in the
	// same round trip (another slot: not atomic with the write, but a
	// failed round trip fails the batch, which is retried).
	var index []any
	if s.index != "" {
		for _, t := range slices.Sorted(maps.Keys(side)) {
			if side[t].Len() > 0 && !s.indexed[t] {
				index = append(index, t)
			}
		}
	}
	var cmds []*redis.Cmd
	build := func() redis.Pipeliner {
		pipe := s.rdb.Pipeline()
		cmds = cmds[:0]
		if !s.marked {
			// The marker goes with the first write of this store, in the
			// same round trip: state without it is a batch that failed and
			// is retried.
			pipe.HSetNX(ctx, MarkerKey(s.opts.Namespace), markerCreated, time.Now().UTC().Format(time.RFC3339))
		}
		for _, c := range calls {
			cmds = append(cmds, writeScript.EvalSha(ctx, pipe, c.keys, c.args...))
		}
		if len(index) > 0 {
			pipe.SAdd(ctx, s.index, index...)
		}
		return pipe
	}
	err := s.exec(ctx, build(), "write", rt)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// The server lost its script cache (a restart or failover): no call
		// ran, so the same round goes again.
		s.res.reloads.Inc()
		if err = writeScript.Load(ctx, s.rdb).Err(); err == nil {
			err = s.exec(ctx, build(), "write", rt)
		}
	}
	if err != nil {
		return err
	}
	s.marked = true
	for i, c := range cmds {
		switch n, _ := c.Int(); n {
		case 1:
		case -1:
			s.lost = s.stateLost("the epoch of tenant " + calls[i].tenant + " vanished under its owner")
			return s.lost
		default:
			s.res.fenced.Inc()
			return fmt.Errorf("%w (tenant %s)", ErrFenced, calls[i].tenant)
		}
	}
	for _, t := range index {
		s.indexed[t.(string)] = true
	}
	for _, v := range views {
		v.writes = [nHashes]map[string]*string{}
	}
	return nil
}

// writeArgs is write.lua's ARGV for the view's writes and the tenant's
// side state.
func (v *view) writeArgs(epoch string, side Side) []any {
	n := side.Len()
	for _, w := range v.writes {
		n += len(w)
	}
	args := make([]any, 0, 1+2*(nHashes+2)+2*n)
	args = append(args, epoch)
	for _, w := range append(v.writes[:], side.Taken, side.Shelved) {
		sets := 0
		for _, val := range w {
			if val != nil {
				sets++
			}
		}
		args = append(args, sets)
		for f, val := range w {
			if val != nil {
				args = append(args, f, *val)
			}
		}
		args = append(args, len(w)-sets)
		for f, val := range w {
			if val == nil {
				args = append(args, f)
			}
		}
	}
	return args
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
