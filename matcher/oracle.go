package matcher

import (
	"cmp"
	"slices"

	"github.com/leadconv/leadconv/record"
)

// Components is the in-memory oracle of the store: the connected components
// of the match graph of recs (their current states; deleted records left
// out). Candidates are all pairs within a block, except blocks with more
// than MaxBlockSize members; a banned pair is never linked directly (it may
// still end up connected through others). The store stops using a block
// when it passes the cap but keeps the links made before, until their
// records change: the two agree exactly while no block passes the cap.
// Inactive records (converted leads, accounts) are left out; every active
// record appears, singletons included. Members are sorted by (object, id),
// components by their first member.
func Components(rs *Ruleset, recs []record.Record, bans [][2]record.Ref) [][]record.Ref {
	preps := make([]*Prepared, 0, len(recs))
	for i := range recs {
		if p := rs.Prepare(&recs[i]); p.Active {
			preps = append(preps, p)
		}
	}
	banned := make(map[[2]record.Ref]bool, len(bans))
	for _, b := range bans {
		banned[orderedPair(b[0], b[1])] = true
	}
	blocks := map[Block][]int{}
	for i, p := range preps {
		for _, b := range p.Blocks {
			blocks[b] = append(blocks[b], i)
		}
	}
	uf := newUnionFind(len(preps))
	limit := rs.MaxBlockSize()
	for _, members := range blocks {
		if len(members) > limit {
			continue
		}
		for x, i := range members {
			for _, j := range members[x+1:] {
				if uf.find(i) == uf.find(j) {
					continue
				}
				if len(banned) > 0 && banned[orderedPair(preps[i].Ref, preps[j].Ref)] {
					continue
				}
				if _, ok := rs.Match(preps[i], preps[j]); ok {
					uf.union(i, j)
				}
			}
		}
	}
	byRoot := map[int][]record.Ref{}
	for i, p := range preps {
		r := uf.find(i)
		byRoot[r] = append(byRoot[r], p.Ref)
	}
	out := make([][]record.Ref, 0, len(byRoot))
	for _, c := range byRoot {
		slices.SortFunc(c, compareRefs)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b []record.Ref) int { return compareRefs(a[0], b[0]) })
	return out
}

func compareRefs(a, b record.Ref) int {
	return cmp.Or(cmp.Compare(a.Object, b.Object), cmp.Compare(a.ID, b.ID))
}

func orderedPair(a, b record.Ref) [2]record.Ref {
	if compareRefs(a, b) > 0 {
		a, b = b, a
	}
	return [2]record.Ref{a, b}
}

type unionFind struct{ parent, size []int }

func newUnionFind(n int) *unionFind {
	u := &unionFind{parent: make([]int, n), size: make([]int, n)}
	for i := range u.parent {
		u.parent[i], u.size[i] = i, 1
	}
	return u
}

func (u *unionFind) find(i int) int {
	for u.parent[i] != i {
		u.parent[i] = u.parent[u.parent[i]]
		i = u.parent[i]
	}
	return i
}

func (u *unionFind) union(a, b int) {
	a, b = u.find(a), u.find(b)
	if a == b {
		return
	}
	if u.size[a] < u.size[b] {
		a, b = b, a
	}
	u.parent[b] = a
	u.size[a] += u.size[b]
}
