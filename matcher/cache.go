package matcher

import (
	"sync"

	"github.com/leadconv/leadconv/record"
)

// cacheEntry is a stored record decoded and prepared once. It is valid for
// exactly the stored value raw: any write changes the value's seq.
type cacheEntry struct {
	raw  string
	rec  *record.Record
	prep *Prepared
}

// prepCache keeps the prepared form of recently seen records, so the
// candidates of a busy block are not decoded and normalised on every event.
// Entries are checked against the value read from Redis, never trusted alone.
type prepCache struct {
	mu  sync.Mutex
	max int
	m   map[string]*cacheEntry
}

func newPrepCache(max int) *prepCache {
	return &prepCache{max: max, m: make(map[string]*cacheEntry)}
}

func (c *prepCache) get(key, raw string) *cacheEntry {
	c.mu.Lock()
	e := c.m[key]
	c.mu.Unlock()
	if e == nil || e.raw != raw {
		return nil
	}
	return e
}

func (c *prepCache) put(key string, e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		// Evict about a tenth, in map order: cheap, and good enough for a
		// cache whose misses cost one decode.
		n := c.max/10 + 1
		for k := range c.m {
			delete(c.m, k)
			if n--; n == 0 {
				break
			}
		}
	}
	c.m[key] = e
}
