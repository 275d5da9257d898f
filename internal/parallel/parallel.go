// Package parallel splits pure per-item work (decoding, normalising,
// planning, encoding) over the cores, so one tenant, whose state decisions
// are serial, still uses the machine around them.
package parallel

import (
	"runtime"
	"sync"
)

// Chunks runs work over [0, n) in up to GOMAXPROCS chunks of at least
// least items each, and waits for all of them. Small inputs run inline.
func Chunks(n, least int, work func(lo, hi int)) {
	procs := runtime.GOMAXPROCS(0)
	if procs < 2 || n < 2*least {
		work(0, n)
		return
	}
	chunk := max(least, (n+procs-1)/procs)
	var wg sync.WaitGroup
	for lo := 0; lo < n; lo += chunk {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work(lo, min(lo+chunk, n))
		}()
	}
	wg.Wait()
}
