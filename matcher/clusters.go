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

// bump increments a cluster's version, as every change of it does.
func (v *view) bump(id string) int64 {
	v.cv[id]++
	v.put(hCL, id, clusterValue(v.cv[id], v.cl[id]))
	return v.cv[id]
}

// setCluster sets a cluster's members (nil: gone). Its version goes into
// the same field: bump writes it again, the last write of the field
// winning, so it holds both as the change leaves them.
func (v *view) setCluster(id string, c *clusterVal) {
	v.cl[id] = c
	v.put(hCL, id, clusterValue(v.cv[id], c))
}

func (v *view) setMember(ref, id string) {
	v.cm[ref] = id
	if id == "" {
		v.del(hCM, ref)
	} else {
		v.put(hCM, ref, id)
	}
}

func (v *view) setAdj(ref string, list []string) {
	v.adj[ref] = strings.Join(list, " ")
	if len(list) == 0 {
		v.del(hA, ref)
	} else {
		v.put(hA, ref, v.adj[ref])
	}
}

// newID returns the id of a new cluster: the first 16 hex digits of SHA-1
// over the tenant, a seed and a counter that steps past ids the view knows
// in use. Seeds never repeat (a new record's carries its write count, a
// split-off part's its parent's id and version, and versions only grow), so
// an id the view does not know was never used and needs no read.
func (v *view) newID(seed string) (string, error) {
	for i := range 100 {
		id := clusterID(v.run.tenant, seed, i)
		if v.cl[id] == nil {
			if _, known := v.cv[id]; !known {
				v.cl[id], v.cv[id] = nil, 0
			}
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
		return v.inconsistent("edges of " + ref + " or a neighbour unknown")
	}

	cid := ""
	if old.exists() {
		id, ok := v.cmOf(ref)
		if !ok {
			return v.inconsistent("cluster of " + ref + " unknown")
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
			return v.inconsistent("cluster " + cid + " of " + ref + " absent")
		}
		members, oldest, before = slices.Clone(c.members), c.oldest, c.members
	case live:
		id, err := v.newID(ref + "|" + strconv.FormatInt(p.next.seq, 10))
		if err != nil {
			return err
		}
		cid, members, oldest = id, []string{ref}, p.next.created
		v.setMember(ref, cid)
	default:
		return nil // a tombstone for a record that never took part
	}
	if !live {
		members = slices.DeleteFunc(members, func(m string) bool { return m == ref })
		v.setMember(ref, "")
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
			nc, ok := v.cmOf(n)
			if !ok || nc == "" {
				return v.inconsistent("neighbour " + n + " without a cluster")
			}
			if slices.ContainsFunc(cands, func(c cand) bool { return c.id == nc }) {
				continue
			}
			c := v.cl[nc]
			if c == nil {
				return v.inconsistent("cluster " + nc + " absent")
			}
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
					v.setMember(m, win.id)
				}
				win.oldest = min(win.oldest, lose.oldest)
				mergedFrom = append(mergedFrom, lose.id)
				v.setCluster(lose.id, nil)
				ver := v.bump(lose.id)
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
			return v.inconsistent("edges of a member of " + cid + " unknown")
		}
	}
	missing := false
	created := func(m string) int64 {
		st, ok := v.recs[m]
		if !ok && !v.complete {
			missing = true
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
		if missing {
			return v.inconsistent("a member of " + cid + " without a record")
		}
		version := strconv.FormatInt(v.cv[cid], 10)
		for i, part := range parts {
			if i == keep {
				continue
			}
			slices.Sort(part)
			c, _ := oldestOf(part)
			id, err := v.newID(cid + "|" + version + "|" + part[0])
			if err != nil {
				return err
			}
			v.setCluster(id, &clusterVal{oldest: c, members: part})
			for _, m := range part {
				v.setMember(m, id)
			}
			ver := v.bump(id)
			splitInto = append(splitInto, id)
			recs, accounts, err := v.records(s, part)
			if err != nil {
				return err
			}
			change(Change{ClusterID: id, Version: ver, SplitFrom: cid, Members: recs, Accounts: accounts})
		}
		members, oldest = parts[keep], kc
	} else if !live && len(members) > 0 {
		oldest, _ = oldestOf(members)
		if missing {
			return v.inconsistent("a member of " + cid + " without a record")
		}
	}

	slices.Sort(members)
	ver := v.bump(cid)
	if len(members) == 0 {
		v.setCluster(cid, nil)
		change(Change{ClusterID: cid, Version: ver, Removed: true, Before: refs(before), MergedFrom: mergedFrom})
		return nil
	}
	v.setCluster(cid, &clusterVal{oldest: oldest, members: members})
	recs, accounts, err := v.records(s, members)
	if err != nil {
		return err
	}
	change(Change{ClusterID: cid, Version: ver, Before: refs(before), MergedFrom: mergedFrom, SplitInto: splitInto, Members: recs, Accounts: accounts})
	return nil
}

// relink replaces p's record's neighbour set with p.neighbors, reverse
// edges included, and returns the neighbours it gained and lost (the lost
// ones sorted). ok is false when an edge list it needs is unknown.
func (v *view) relink(p *pending, old stored) (added, removed []string, ok bool) {
	var oldn []string
	if old.exists() {
		a, ok := v.adjOf(p.ref)
		if !ok {
			return nil, nil, false
		}
		oldn = strings.Fields(a)
	}
	added = slices.DeleteFunc(slices.Clone(p.neighbors), func(n string) bool { return slices.Contains(oldn, n) })
	removed = slices.DeleteFunc(oldn, func(n string) bool { return slices.Contains(p.neighbors, n) })
	slices.Sort(removed)
	if len(p.neighbors) > 0 || len(removed) > 0 {
		v.setAdj(p.ref, p.neighbors)
	}
	for _, n := range added {
		a, ok := v.adjOf(n)
		if !ok {
			return nil, nil, false
		}
		v.setAdj(n, append(strings.Fields(a), p.ref))
	}
	for _, n := range removed {
		a, ok := v.adjOf(n)
		if !ok {
			return nil, nil, false
		}
		v.setAdj(n, slices.DeleteFunc(strings.Fields(a), func(m string) bool { return m == p.ref }))
	}
	return added, removed, true
}

// components returns the connected components of members over their
// edges, each in breadth-first order from its first member in members. ok
// is false when an edge list is unknown.
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
			a, ok := v.adjOf(part[i])
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
// their company values' accounts as the index holds them now: from the
// view when it knows the entry, else (no event of the batch wrote it yet)
// the value before the batch, which lookupAccounts puts in the map.
func (v *view) records(s *Store, members []string) ([]record.Record, map[string]string, error) {
	out := make([]record.Record, 0, len(members))
	var accounts map[string]string
	for _, m := range members {
		e, err := v.member(s, m)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, *e.rec)
		if e.prep.Account == "" {
			continue
		}
		if accounts == nil {
			accounts = make(map[string]string, 1)
		}
		value := v.run.rules.accountValue(e.rec)
		if _, ok := accounts[value]; ok {
			continue
		}
		f := accountHex(e.prep.Account)
		id, known := v.acct[f]
		accounts[value] = id
		if !known && !v.complete {
			v.accountLookups = append(v.accountLookups, accountLookup{field: f, value: value, into: accounts})
		}
	}
	return out, accounts, nil
}

// member returns a cluster member's decoded record; a member without a
// live one is stored state that contradicts itself.
func (v *view) member(s *Store, m string) (*cacheEntry, error) {
	e, err := s.entry(v.run, m, v.recs[m].raw)
	if err == nil && e == nil {
		err = v.inconsistent("member " + m + " without a live record")
	}
	return e, err
}

// inconsistent is the error of stored state that contradicts itself.
func (v *view) inconsistent(what string) error {
	return fmt.Errorf("%w: tenant %s: %s", errInconsistent, v.run.tenant, what)
}

// accountLookup is a company value whose account index entry (field) the
// view did not know when the change was decided: the lookup round reads it.
type accountLookup struct {
	field, value string
	into         map[string]string
}
