package matcher

import (
	"cmp"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/leadconv/leadconv/record"
)

// The hashes apply.lua writes, in the order of its KEYS.
const (
	hR = iota
	hB
	hA
	hCM
	hCL
	hCV
	hSV
	nHashes
)

// check is a version the apply must find unchanged: a stripe's or a
// cluster's, as the event's decision saw it.
type check struct {
	cluster bool
	field   string
	version int64
}

// write is one field the apply sets, or deletes.
type write struct {
	hash  int
	field string
	value string
	del   bool
}

func (p *pending) put(hash int, field, value string) {
	p.writes = append(p.writes, write{hash: hash, field: field, value: value})
}

func (p *pending) del(hash int, field string) {
	p.writes = append(p.writes, write{hash: hash, field: field, del: true})
}

func (v *view) useStripe(p *pending, st int) {
	p.checks = append(p.checks, check{field: strconv.Itoa(st), version: v.stripes[st]})
}

// useCluster records that p's decision relied on cluster id as the view
// has it (its members, their edges and records, or its absence).
func (v *view) useCluster(p *pending, id string) {
	p.checks = append(p.checks, check{cluster: true, field: id, version: v.cv[id]})
}

// bump increments a cluster's version, as every change of it does.
func (v *view) bump(p *pending, id string) int64 {
	v.useCluster(p, id)
	v.cv[id]++
	p.put(hCV, id, strconv.FormatInt(v.cv[id], 10))
	return v.cv[id]
}

func (v *view) setCluster(p *pending, id string, c *clusterVal) {
	v.cl[id] = c
	if c == nil {
		p.del(hCL, id)
		return
	}
	p.put(hCL, id, c.String())
}

func (v *view) setMember(p *pending, ref, id string) {
	v.cm[ref] = id
	if id == "" {
		p.del(hCM, ref)
	} else {
		p.put(hCM, ref, id)
	}
}

func (v *view) setAdj(p *pending, ref string, list []string) {
	v.adj[ref] = strings.Join(list, " ")
	if len(list) == 0 {
		p.del(hA, ref)
	} else {
		p.put(hA, ref, v.adj[ref])
	}
}

// newID returns a free id for a new cluster: the first 16 hex digits of
// SHA-1 over the tenant, a seed and a counter that steps past ids in use.
// An id the reads did not cover is taken as never used, which the apply
// checks (its version must still be 0).
func (v *view) newID(p *pending, seed string) (string, error) {
	for i := range 100 {
		id := clusterID(v.run.tenant, seed, i)
		c, known := v.cl[id]
		if !known {
			v.cl[id], v.cv[id] = nil, 0
			v.assumed = append(v.assumed, id)
		}
		if c == nil {
			v.useCluster(p, id)
			return id, nil
		}
	}
	return "", fmt.Errorf("matcher: no free cluster id for seed %q", seed)
}

func clusterID(tenant, seed string, i int) string {
	sum := sha1.Sum([]byte(tenant + "|" + seed + "|" + strconv.Itoa(i)))
	return hex.EncodeToString(sum[:8])
}

// clusters decides what p's write does to the edges and clusters: the
// record's full neighbour set replaces its old one (reverse edges
// included); a join merges every cluster an added neighbour belongs to,
// the larger keeping its id (then the one with the older oldest member); a
// removed edge or record recomputes the components of that one cluster
// from its members' edges and splits it, the part holding the oldest
// member keeping the id. old is the record before p.
func (v *view) clusters(s *Store, p *pending, old stored) error {
	ref := p.ref
	live := p.next.live()
	added, removed, ok := v.relink(p, old)
	if !ok {
		v.interfered = true
		return nil
	}

	cid := ""
	if old.exists() {
		id, ok := v.cm[ref]
		if !ok {
			v.interfered = true
			return nil
		}
		cid = id
	}
	var members []string
	var oldest int64
	var before []string
	switch {
	case cid != "":
		c := v.cl[cid]
		if c == nil {
			v.interfered = true
			return nil
		}
		v.useCluster(p, cid)
		members, oldest, before = slices.Clone(c.members), c.oldest, c.members
	case live:
		id, err := v.newID(p, ref)
		if err != nil {
			return err
		}
		cid, members, oldest = id, []string{ref}, p.next.created
		v.setMember(p, ref, cid)
	default:
		return nil // a tombstone for a record that never took part
	}
	if !live {
		members = slices.DeleteFunc(members, func(m string) bool { return m == ref })
		v.setMember(p, ref, "")
	}
	change := func(c Change) {
		c.Tenant, c.Trigger, c.Index = v.run.tenant, p.ev.Ref(), p.idx
		p.changes = append(p.changes, c)
	}

	var mergedFrom []string
	if len(added) > 0 {
		type cand struct {
			id      string
			oldest  int64
			members []string
		}
		cands := []cand{{cid, oldest, members}}
		for _, n := range added {
			nc, ok := v.cm[n]
			if !ok || nc == "" {
				v.interfered = true
				return nil
			}
			if slices.ContainsFunc(cands, func(c cand) bool { return c.id == nc }) {
				continue
			}
			c := v.cl[nc]
			if c == nil {
				v.interfered = true
				return nil
			}
			v.useCluster(p, nc)
			cands = append(cands, cand{nc, c.oldest, c.members})
		}
		if len(cands) > 1 {
			slices.SortFunc(cands, func(a, b cand) int {
				if len(a.members) != len(b.members) {
					return len(b.members) - len(a.members)
				}
				if a.oldest != b.oldest {
					return cmp.Compare(a.oldest, b.oldest)
				}
				return strings.Compare(a.id, b.id)
			})
			win := cands[0]
			all := slices.Clone(win.members)
			for _, lose := range cands[1:] {
				all = append(all, lose.members...)
				for _, m := range lose.members {
					v.setMember(p, m, win.id)
				}
				win.oldest = min(win.oldest, lose.oldest)
				mergedFrom = append(mergedFrom, lose.id)
				v.setCluster(p, lose.id, nil)
				ver := v.bump(p, lose.id)
				was := lose.members
				if lose.id == cid {
					was, before = before, nil
				}
				change(Change{ClusterID: lose.id, Version: ver, Removed: true, Before: refs(was), MergedInto: win.id})
			}
			if win.id != cid {
				before = win.members
			}
			cid, oldest, members = win.id, win.oldest, all
		}
	}

	// Split: components of the cluster's members over their stored edges.
	var parts [][]string
	if (len(removed) > 0 || !live) && len(members) > 1 {
		if parts, ok = v.components(members); !ok {
			v.interfered = true
			return nil
		}
	}
	created := func(m string) int64 {
		st, ok := v.recs[m]
		if !ok {
			v.interfered = true
		}
		return st.created
	}
	// oldestOf returns a part's oldest creation time and, among the members
	// created then, the smallest ref.
	oldestOf := func(part []string) (int64, string) {
		c, r := created(part[0]), part[0]
		for _, m := range part[1:] {
			if x := created(m); x < c || x == c && m < r {
				c, r = x, m
			}
		}
		return c, r
	}
	var splitInto []string
	if len(parts) > 1 {
		keep := 0
		kc, kr := oldestOf(parts[0])
		for i, part := range parts[1:] {
			if c, r := oldestOf(part); c < kc || c == kc && r < kr {
				keep, kc, kr = i+1, c, r
			}
		}
		if v.interfered {
			return nil
		}
		version := strconv.FormatInt(v.cv[cid], 10)
		for i, part := range parts {
			if i == keep {
				continue
			}
			slices.Sort(part)
			c, _ := oldestOf(part)
			id, err := v.newID(p, cid+"|"+version+"|"+part[0])
			if err != nil {
				return err
			}
			v.setCluster(p, id, &clusterVal{oldest: c, members: part})
			for _, m := range part {
				v.setMember(p, m, id)
			}
			ver := v.bump(p, id)
			splitInto = append(splitInto, id)
			recs, accounts, err := v.records(s, part)
			if recs == nil {
				return err
			}
			change(Change{ClusterID: id, Version: ver, SplitFrom: cid, Members: recs, Accounts: accounts})
		}
		members, oldest = parts[keep], kc
	} else if !live && len(members) > 0 {
		oldest, _ = oldestOf(members)
		if v.interfered {
			return nil
		}
	}

	slices.Sort(members)
	ver := v.bump(p, cid)
	if len(members) == 0 {
		v.setCluster(p, cid, nil)
		change(Change{ClusterID: cid, Version: ver, Removed: true, Before: refs(before), MergedFrom: mergedFrom})
		return nil
	}
	v.setCluster(p, cid, &clusterVal{oldest: oldest, members: members})
	recs, accounts, err := v.records(s, members)
	if recs == nil {
		return err
	}
	change(Change{ClusterID: cid, Version: ver, Before: refs(before), MergedFrom: mergedFrom, SplitInto: splitInto, Members: recs, Accounts: accounts})
	return nil
}

// relink replaces p's record's neighbour set with p.neighbors, reverse
// edges included, and returns the neighbours it gained and lost (the lost
// ones sorted). ok is false when an edge list it needs was not read.
func (v *view) relink(p *pending, old stored) (added, removed []string, ok bool) {
	var oldn []string
	if old.exists() {
		a, ok := v.adj[p.ref]
		if !ok {
			return nil, nil, false
		}
		oldn = strings.Fields(a)
	}
	added = slices.DeleteFunc(slices.Clone(p.neighbors), func(n string) bool { return slices.Contains(oldn, n) })
	removed = slices.DeleteFunc(oldn, func(n string) bool { return slices.Contains(p.neighbors, n) })
	slices.Sort(removed)
	if len(p.neighbors) > 0 || len(removed) > 0 {
		v.setAdj(p, p.ref, p.neighbors)
	}
	for _, n := range added {
		a, ok := v.adj[n]
		if !ok {
			return nil, nil, false
		}
		v.setAdj(p, n, append(strings.Fields(a), p.ref))
	}
	for _, n := range removed {
		a, ok := v.adj[n]
		if !ok {
			return nil, nil, false
		}
		v.setAdj(p, n, slices.DeleteFunc(strings.Fields(a), func(m string) bool { return m == p.ref }))
	}
	return added, removed, true
}

// components returns the connected components of members over their
// edges, each in breadth-first order from its first member in members. ok
// is false when an edge list was not read.
func (v *view) components(members []string) (parts [][]string, ok bool) {
	inside := make(map[string]bool, len(members))
	for _, m := range members {
		inside[m] = true
	}
	seen := make(map[string]bool, len(members))
	for _, m := range members {
		if seen[m] {
			continue
		}
		seen[m] = true
		part := []string{m}
		for i := 0; i < len(part); i++ {
			a, ok := v.adj[part[i]]
			if !ok {
				return nil, false
			}
			for _, n := range strings.Fields(a) {
				if inside[n] && !seen[n] {
					seen[n] = true
					part = append(part, n)
				}
			}
		}
		parts = append(parts, part)
	}
	return parts, true
}

// records returns the current records of members, through the cache, and
// the map their company values' accounts go into once the apply round has
// looked them up. It returns nil when one has no live record in the view:
// the reads saw a cluster and its members at different moments, so another
// writer got in between.
func (v *view) records(s *Store, members []string) ([]record.Record, map[string]string, error) {
	out := make([]record.Record, 0, len(members))
	var accounts map[string]string
	for _, m := range members {
		e, err := s.entry(v.run, m, v.recs[m].raw)
		if err != nil {
			return nil, nil, err
		}
		if e == nil {
			v.interfered = true
			return nil, nil, nil
		}
		out = append(out, *e.rec)
		if e.prep.Account == "" {
			continue
		}
		if accounts == nil {
			accounts = make(map[string]string, 1)
		}
		value := v.run.rules.accountValue(e.rec)
		if _, ok := accounts[value]; !ok {
			accounts[value] = ""
			v.accountLookups = append(v.accountLookups, accountLookup{key: e.prep.Account, value: value, into: accounts})
		}
	}
	return out, accounts, nil
}

// accountLookup is a company value whose account the apply round reads.
type accountLookup struct {
	key, value string
	into       map[string]string
}
