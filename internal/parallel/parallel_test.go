package parallel

import (
	"sync/atomic"
	"testing"
)

func TestChunksCoverEveryItemOnce(t *testing.T) {
	for _, n := range []int{0, 1, 63, 64, 127, 128, 1000, 4097} {
		seen := make([]atomic.Int32, n)
		Chunks(n, 64, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				seen[i].Add(1)
			}
		})
		for i := range seen {
			if c := seen[i].Load(); c != 1 {
				t.Fatalf("n=%d: item %d done %d times", n, i, c)
			}
		}
	}
}
