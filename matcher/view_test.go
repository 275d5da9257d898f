package matcher

import (
	"fmt"
	"slices"
	"testing"
)

func TestClusterValue(t *testing.T) {
	for _, tc := range []struct {
		name    string
		raw     string
		cluster *clusterVal
		version int64
		folded  bool
	}{
		{"with its version", "v7\t1700\tl:a l:b", &clusterVal{oldest: 1700, members: []string{"l:a", "l:b"}}, 7, true},
		{"gone, its version kept", "v3", nil, 3, true},
		{"written before the version moved in", "1700\tl:a c:b", &clusterVal{oldest: 1700, members: []string{"l:a", "c:b"}}, 0, false},
		{"absent", "", nil, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ver, folded := parseCluster(tc.raw)
			if ver != tc.version || folded != tc.folded || (c == nil) != (tc.cluster == nil) ||
				c != nil && (c.oldest != tc.cluster.oldest || !slices.Equal(c.members, tc.cluster.members)) {
				t.Fatalf("parseCluster(%q) = %+v v%d folded %v", tc.raw, c, ver, folded)
			}
			if tc.folded {
				if got := clusterValue(ver, c); got != tc.raw {
					t.Fatalf("clusterValue = %q, want %q", got, tc.raw)
				}
			}
		})
	}
}

// A version is never known without its cluster: read alone, it would come
// from the cv hash, which is stale for a cluster written since its field
// held the version.
func TestShedDropsVersionsWithTheirClusters(t *testing.T) {
	v := newView()
	for i := range 200 {
		id := fmt.Sprintf("%016x", i)
		v.see(hCL, id, fmt.Sprintf("v%d\t1\tl:%d", i+1, i))
	}
	v.shed(3)
	if len(v.cl) == 0 || len(v.cl) == 200 {
		t.Fatalf("shed kept %d of 200 clusters", len(v.cl))
	}
	for id := range v.cv {
		if _, ok := v.cl[id]; !ok {
			t.Fatalf("version of %s kept without its cluster", id)
		}
	}
	for id := range v.cl {
		if _, ok := v.cv[id]; !ok {
			t.Fatalf("cluster %s kept without its version", id)
		}
	}
}
