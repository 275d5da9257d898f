package matcher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// maxFences bounds the connections a store pins, one per tenant it wrote
// lately: a batch of more tenants writes in waves of this many.
const maxFences = 32

// fence is one tenant's dedicated connection. Between batches it WATCHes the
// tenant's epoch, and a GET on it, sent after the WATCH, found the store's
// own epoch there: the next MULTI/EXEC on the connection then runs only if
// nobody touched the epoch since (README.md, The fenced write). A Lua script would
// do the same check, at twice the server's CPU per field written: Redis
// copies every argument of a script call into Lua and back.
type fence struct {
	client redis.UniversalClient // the store's fence client
	conn   *redis.Conn           // nil until dialled, and after it broke
	armed  bool
	used   uint64 // the store's batch counter at its last write
}

// errFenceBroken marks a fence connection that failed below Redis (closed,
// reset, timed out): its state is unknown, so it is discarded.
var errFenceBroken = errors.New("matcher: fence connection broken")

// fenceClientName names the fence connections in CLIENT LIST.
const fenceClientName = "leadconv-fence"

// fenceClient returns a client of the same servers as rdb, with a pool of
// its own: a watching connection must never serve another caller, nor hold
// a turn of the shared pool. Push-driven connection handoffs are off: a
// connection swapped under a WATCH would lose it. So are go-redis's
// retries: a MULTI sent again after its EXEC ended the WATCH would run
// unguarded; the fence retries itself, arming first.
func fenceClient(rdb redis.UniversalClient) (redis.UniversalClient, error) {
	off := &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	switch c := rdb.(type) {
	case *redis.Client:
		o := *c.Options()
		o.PoolSize, o.MinIdleConns, o.MaxIdleConns, o.MaxRetries, o.MaintNotificationsConfig, o.ClientName = maxFences, 0, 0, -1, off, fenceClientName
		return redis.NewClient(&o), nil
	case *redis.ClusterClient:
		o := *c.Options()
		o.PoolSize, o.MinIdleConns, o.MaxIdleConns, o.MaxRetries, o.MaintNotificationsConfig, o.ClientName = maxFences, 0, 0, -1, off, fenceClientName
		return redis.NewClusterClient(&o), nil
	}
	return nil, fmt.Errorf("matcher: fencing needs a single-server, sentinel or cluster client, not %T", rdb)
}

// errEpochMoved and errEpochGone are what a fence found at the tenant's
// epoch instead of the store's: another owner's, or nothing.
var (
	errEpochMoved = errors.New("matcher: epoch moved")
	errEpochGone  = errors.New("matcher: epoch gone")
)

// fenceOf returns the tenant's fence, a new one (not armed yet) if it has
// none.
func (s *Store) fenceOf(tenant string) (*fence, error) {
	if f := s.fences[tenant]; f != nil {
		return f, nil
	}
	if s.fencer == nil {
		c, err := fenceClient(s.rdb)
		if err != nil {
			return nil, err
		}
		s.fencer = c
	}
	f := &fence{client: s.fencer}
	s.fences[tenant] = f
	return f, nil
}

// dial gives the fence a connection of its own to the master of the
// tenant's slot.
func (f *fence) dial(ctx context.Context, epochKey string) error {
	switch c := f.client.(type) {
	case *redis.Client:
		f.conn = c.EphemeralConn()
	case *redis.ClusterClient:
		node, err := c.MasterForKey(ctx, epochKey)
		if err != nil {
			return err
		}
		f.conn = node.EphemeralConn()
	}
	return nil
}

// arm makes the fence watch the tenant's epoch: [UNWATCH, WATCH epoch, GET
// epoch] in one round trip, which must read the store's epoch back.
func (f *fence) arm(ctx context.Context, res *Resident, epochKey, epoch string) error {
	if f.conn == nil {
		if err := f.dial(ctx, epochKey); err != nil {
			return err
		}
	}
	res.arms.Inc()
	start := time.Now()
	pipe := f.conn.Pipeline()
	pipe.Do(ctx, "UNWATCH")
	pipe.Do(ctx, "WATCH", epochKey)
	get := pipe.Get(ctx, epochKey)
	_, err := pipe.Exec(ctx)
	res.rtDur.WithLabelValues("arm").Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, redis.Nil) {
		return brokenOr(err)
	}
	if err := epochIs(get, epoch); err != nil {
		return err
	}
	f.armed = true
	return nil
}

// epochIs compares the epoch a fence read with the store's.
func epochIs(get *redis.StringCmd, epoch string) error {
	switch v, err := get.Result(); {
	case errors.Is(err, redis.Nil):
		return errEpochGone
	case err != nil:
		return err
	case v != epoch:
		return errEpochMoved
	}
	return nil
}

// write writes one tenant's share of a batch, in one round trip when the
// fence is armed: [MULTI, the writes, EXEC, WATCH epoch, GET epoch]. The
// WATCH and GET after EXEC arm the fence for the next batch. A connection
// that broke is replaced and the write sent once more: the writes set final
// values, and arming checks the epoch first.
func (f *fence) write(ctx context.Context, res *Resident, w *tenantWrite, epoch string) error {
	err := f.writeOnce(ctx, res, w, epoch)
	if errors.Is(err, errFenceBroken) && ctx.Err() == nil {
		res.broken.Inc()
		f.close()
		err = f.writeOnce(ctx, res, w, epoch)
	}
	return err
}

func (f *fence) writeOnce(ctx context.Context, res *Resident, w *tenantWrite, epoch string) error {
	if !f.armed {
		if err := f.arm(ctx, res, w.keys.epoch, epoch); err != nil {
			return err
		}
	}
	f.armed = false // whatever happens, the EXEC ends the WATCH
	start := time.Now()
	pipe := f.conn.Pipeline()
	pipe.Do(ctx, "MULTI")
	w.queue(ctx, pipe)
	exec := pipe.Do(ctx, "EXEC")
	pipe.Do(ctx, "WATCH", w.keys.epoch)
	get := pipe.Get(ctx, w.keys.epoch)
	_, err := pipe.Exec(ctx)
	res.rtDur.WithLabelValues("write").Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, redis.Nil) {
		return brokenOr(err)
	}
	if errors.Is(exec.Err(), redis.Nil) {
		// The epoch was touched since the WATCH: nothing was written.
		if err := epochIs(get, epoch); err != nil {
			return err
		}
		return errors.New("matcher: the epoch was touched but not moved; nothing written")
	}
	// Armed again, unless taken by another owner after this EXEC: then the
	// next write finds out.
	f.armed = epochIs(get, epoch) == nil
	// A command that failed inside the transaction (a key of another type,
	// written by something else than an owner) left the others applied:
	// the batch fails, and its retry writes the same values again.
	replies, _ := exec.Val().([]any)
	for _, r := range replies {
		if err, ok := r.(error); ok {
			return fmt.Errorf("matcher: write: %w", err)
		}
	}
	return nil
}

// brokenOr is err, marked errFenceBroken unless Redis itself replied it.
func brokenOr(err error) error {
	var re redis.Error
	if errors.As(err, &re) {
		return err
	}
	return fmt.Errorf("%w: %w", errFenceBroken, err)
}

func (f *fence) close() {
	if f.conn != nil {
		_ = f.conn.Close()
		f.conn, f.armed = nil, false
	}
}

// makeRoom closes the least recently written fences of tenants outside
// keep until n more fit within maxFences.
func (s *Store) makeRoom(keep map[string]bool, n int) {
	for len(s.fences)+n > maxFences {
		oldest := ""
		for t, f := range s.fences {
			if !keep[t] && (oldest == "" || f.used < s.fences[oldest].used) {
				oldest = t
			}
		}
		if oldest == "" {
			return
		}
		s.fences[oldest].close()
		delete(s.fences, oldest)
	}
}

// closeFences gives every pinned connection back.
func (s *Store) closeFences() {
	for t, f := range s.fences {
		f.close()
		delete(s.fences, t)
	}
	if s.fencer != nil {
		_ = s.fencer.Close()
		s.fencer = nil
	}
}
