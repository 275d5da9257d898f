package matcher

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// write sends every view's writes of the batch as one fenced script call
// per tenant, with the account lookups of the changed clusters behind
// them, in one round trip, and returns the batch's changes. A call that
// finds the tenant's epoch moved writes nothing: the store is fenced.
func (s *Store) write(ctx context.Context, views []*view, rt *roundTrips) ([]Change, error) {
	var out []Change
	for _, v := range views {
		for _, p := range v.dups {
			c, ok, err := v.current(s, p)
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, c)
			}
		}
	}
	type lookup struct {
		v      *view
		fields []string
		cmd    *redis.SliceCmd
	}
	var calls []*redis.Cmd
	var lookups []*lookup
	build := func() redis.Pipeliner {
		pipe := s.rdb.Pipeline()
		calls, lookups = calls[:0], lookups[:0]
		if !s.marked {
			// The marker goes with the first write of this store, in the
			// same round trip: state without it is a batch that failed and
			// is retried.
			pipe.HSetNX(ctx, MarkerKey(s.opts.Namespace), markerCreated, time.Now().UTC().Format(time.RFC3339))
		}
		for _, v := range views {
			// A batch that writes nothing still checks the epoch: a stale
			// owner must not even report replays from what it holds.
			k := v.run.keys
			calls = append(calls, writeScript.EvalSha(ctx, pipe, append([]string{k.epoch}, k.hashes[:]...), v.writeArgs(s.epochs[v.run.tenant])...))
			// The accounts of the changed clusters' companies, as the index
			// holds them once the batch is written.
			lk := &lookup{v: v}
			seen := map[string]bool{}
			for _, a := range v.accountLookups {
				f := accountHex(a.key)
				if !v.knows(hAcct, f) && !v.complete && !seen[f] {
					seen[f] = true
					lk.fields = append(lk.fields, f)
				}
			}
			if len(lk.fields) > 0 {
				lk.cmd = pipe.HMGet(ctx, v.run.keys.hashes[hAcct], lk.fields...)
				lookups = append(lookups, lk)
			}
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
		return nil, err
	}
	s.marked = true
	for i, c := range calls {
		switch n, _ := c.Int(); n {
		case 1:
		case -1:
			s.lost = s.stateLost("the epoch of tenant " + views[i].run.tenant + " vanished under its owner")
			return nil, s.lost
		default:
			s.res.fenced.Inc()
			return nil, fmt.Errorf("%w (tenant %s)", ErrFenced, views[i].run.tenant)
		}
	}
	for _, lk := range lookups {
		for i, x := range lk.cmd.Val() {
			id, _ := x.(string)
			lk.v.see(hAcct, lk.fields[i], id)
		}
	}
	for _, v := range views {
		for _, a := range v.accountLookups {
			if id := v.acct[accountHex(a.key)]; id != "" {
				a.into[a.value] = id
			}
		}
		for _, p := range v.run.events {
			out = append(out, p.changes...)
		}
		v.writes = [nHashes]map[string]*string{}
		v.dups, v.accountLookups = nil, nil
	}
	return out, nil
}

// writeArgs is write.lua's ARGV for the view's writes.
func (v *view) writeArgs(epoch string) []any {
	n := 0
	for _, w := range v.writes {
		n += len(w)
	}
	args := make([]any, 0, 1+2*nHashes+2*n)
	args = append(args, epoch)
	for _, w := range v.writes {
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
// changing anything; ok is false when the record is out of matching.
func (v *view) current(s *Store, p *pending) (Change, bool, error) {
	cid := v.cm[p.ref]
	if cid == "" {
		return Change{}, false, nil
	}
	c := Change{Tenant: v.run.tenant, ClusterID: cid, Version: v.cv[cid], Trigger: p.ev.Ref(), Index: p.idx}
	cl := v.cl[cid]
	if cl == nil || len(cl.members) == 0 {
		c.Removed = true
		return c, true, nil
	}
	recs, accounts, err := v.records(s, cl.members)
	if err != nil {
		return Change{}, false, fmt.Errorf("matcher: replay of %s: %w", p.ref, err)
	}
	c.Members, c.Accounts = recs, accounts
	return c, true, nil
}
