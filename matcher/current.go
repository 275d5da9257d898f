package matcher

import (
	"context"
	"fmt"

	"github.com/leadconv/leadconv/internal/redisconn"
	"github.com/leadconv/leadconv/record"
)

// Current is a cluster as the store holds it: its version, and its
// members' records in member order (none once it is gone).
type Current struct {
	Version int64
	Records []record.Record
}

// Holds reports whether the store holds the tenant's cluster at version
// with members, as its resident state knows it: what Redis holds, or will
// hold once the batch being planned is written (Decided.Holds). Side state
// that refers to the cluster at that version by id (its records not
// copied) is then exact, for the cluster changes only with a version
// written in the same call as the side state that reports it. Unknown
// (the state evicted, dropped after a failed batch) is false.
func (s *Store) Holds(tenant, cluster string, version int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.holds(tenant, cluster, version)
}

func (s *Store) holds(tenant, cluster string, version int64) bool {
	v := s.tenants[tenant]
	if v == nil {
		return false
	}
	ver, ok := v.cv[cluster]
	return ok && ver == version && v.cl[cluster] != nil
}

// Current returns the clusters ids of a tenant this store took (Take or a
// batch) as it holds them: read through its resident state, outside a
// batch, for an owner restoring side state that refers to them (Holds).
func (s *Store) Current(ctx context.Context, tenant string, ids []string) (map[string]Current, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return nil, err
	}
	if _, ok := s.epochs[tenant]; !ok {
		return nil, fmt.Errorf("matcher: clusters of tenant %s, which this store does not own", tenant)
	}
	v, err := s.outside(tenant)
	if err != nil {
		return nil, err
	}
	rt := &roundTrips{}
	l := s.newLoader()
	l.add(v, hCL, ids...)
	l.add(v, hCV, ids...)
	if err := l.run(ctx, "read_current", rt); err != nil {
		return nil, redisconn.Classify(err)
	}
	l = s.newLoader()
	for _, id := range ids {
		if c := v.cl[id]; c != nil {
			l.add(v, hR, c.members...)
		}
	}
	if err := l.run(ctx, "read_current", rt); err != nil {
		return nil, redisconn.Classify(err)
	}
	out := make(map[string]Current, len(ids))
	for _, id := range ids {
		cur := Current{Version: v.cv[id]}
		if c := v.cl[id]; c != nil {
			cur.Records = make([]record.Record, 0, len(c.members))
			for _, m := range c.members {
				e, err := v.member(s, m)
				if err != nil {
					return nil, err
				}
				cur.Records = append(cur.Records, *e.rec)
			}
		}
		out[id] = cur
	}
	s.evict([]*view{v})
	return out, nil
}
