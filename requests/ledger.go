package requests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/leadconv/leadconv/internal/redisconn"
)

// Entry is what the ledger keeps of a request that went ahead: the leads it
// selected and the request.completed data emitted for it.
type Entry struct {
	Selection []string `json:"selection"`
	Summary   Summary  `json:"summary"`
}

// Ledger remembers the requests that went ahead, so that a re-submitted or
// redelivered request_id never selects again: it re-plans the same leads
// (leads already converted are skipped, commands already applied carry the
// same ids) and reports the first summary.
type Ledger interface {
	// Get returns the entry of a request, nil when there is none.
	Get(ctx context.Context, tenant, requestID string) (*Entry, error)
	// Put stores e unless the request has an entry, and returns the entry
	// stored.
	Put(ctx context.Context, tenant, requestID string, e Entry) (*Entry, error)
	// Await records the commands a request emits, by command id, as
	// awaiting their writer results, in place of any left by an attempt
	// that never went ahead (no entry was put: none was produced, none has
	// a result). Call it before Put: an entry means its commands are
	// stored.
	Await(ctx context.Context, tenant, requestID string, cmds map[string]Awaited) error
	// Commands returns the commands Await stored, with the outcomes known.
	Commands(ctx context.Context, tenant, requestID string) (map[string]Awaited, error)
	// Result records the writer outcome of one command of the request
	// (the first outcome of a command stays). done reports whether every
	// awaited command has its outcome; all is then every command.
	Result(ctx context.Context, tenant, requestID, commandID, outcome, reason string) (all map[string]Awaited, done bool, err error)
}

// RedisLedger keeps entries in one hash per tenant,
// <namespace>:{tenant}:requests (request id -> entry JSON), beside the
// matcher's keys and with the same hash tag; a request's commands and
// their writer outcomes in <namespace>:{tenant}:request:<id>:commands
// (command id -> Awaited JSON) with the count of outcomes known in
// <namespace>:{tenant}:request:<id>:done. The tenant's owner is their only
// writer, so plain commands suffice.
type RedisLedger struct {
	rdb       redis.UniversalClient
	namespace string
}

var _ Ledger = (*RedisLedger)(nil)

// NewRedisLedger returns a ledger on rdb; namespace defaults to "lc".
func NewRedisLedger(rdb redis.UniversalClient, namespace string) *RedisLedger {
	if namespace == "" {
		namespace = "lc"
	}
	return &RedisLedger{rdb: rdb, namespace: namespace}
}

func (l *RedisLedger) key(tenant string) string { return l.namespace + ":{" + tenant + "}:requests" }

// Get implements Ledger.
func (l *RedisLedger) Get(ctx context.Context, tenant, requestID string) (*Entry, error) {
	b, err := l.rdb.HGet(ctx, l.key(tenant), requestID).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, redisconn.Classify(fmt.Errorf("requests: ledger get: %w", err))
	}
	e := new(Entry)
	if err := json.Unmarshal(b, e); err != nil {
		return nil, fmt.Errorf("requests: ledger entry %s: %w", requestID, err)
	}
	return e, nil
}

// Put implements Ledger.
func (l *RedisLedger) Put(ctx context.Context, tenant, requestID string, e Entry) (*Entry, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("requests: ledger entry: %w", err)
	}
	set, err := l.rdb.HSetNX(ctx, l.key(tenant), requestID, b).Result()
	if err != nil {
		return nil, redisconn.Classify(fmt.Errorf("requests: ledger put: %w", err))
	}
	if set {
		return &e, nil
	}
	return l.Get(ctx, tenant, requestID)
}

func (l *RedisLedger) commandsKey(tenant, requestID string) string {
	return l.namespace + ":{" + tenant + "}:request:" + requestID + ":commands"
}

func (l *RedisLedger) doneKey(tenant, requestID string) string {
	return l.namespace + ":{" + tenant + "}:request:" + requestID + ":done"
}

// Await implements Ledger. It uses only hash commands (no DEL, no
// MULTI): the tenant's owner is the only writer, and an attempt cut short
// is redone whole, its leftovers removed.
func (l *RedisLedger) Await(ctx context.Context, tenant, requestID string, cmds map[string]Awaited) error {
	key := l.commandsKey(tenant, requestID)
	n, err := l.rdb.HLen(ctx, key).Result()
	if err != nil {
		return fmt.Errorf("requests: ledger await: %w", err)
	}
	var stale []string
	if n > 0 {
		old, err := l.Commands(ctx, tenant, requestID)
		if err != nil {
			return err
		}
		for id := range old {
			if _, ok := cmds[id]; !ok {
				stale = append(stale, id)
			}
		}
	}
	fields := make([]any, 0, 2*len(cmds))
	for id, a := range cmds {
		b, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("requests: ledger command: %w", err)
		}
		fields = append(fields, id, b)
	}
	_, err = l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		if len(stale) > 0 {
			p.HDel(ctx, key, stale...)
		}
		if len(fields) > 0 {
			p.HSet(ctx, key, fields...)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("requests: ledger await: %w", err)
	}
	return nil
}

// Commands implements Ledger.
func (l *RedisLedger) Commands(ctx context.Context, tenant, requestID string) (map[string]Awaited, error) {
	raw, err := l.rdb.HGetAll(ctx, l.commandsKey(tenant, requestID)).Result()
	if err != nil {
		return nil, fmt.Errorf("requests: ledger commands: %w", err)
	}
	all := make(map[string]Awaited, len(raw))
	for id, v := range raw {
		var a Awaited
		if err := json.Unmarshal([]byte(v), &a); err != nil {
			return nil, fmt.Errorf("requests: ledger command %s: %w", id, err)
		}
		all[id] = a
	}
	return all, nil
}

// Result implements Ledger.
func (l *RedisLedger) Result(ctx context.Context, tenant, requestID, commandID, outcome, reason string) (map[string]Awaited, bool, error) {
	key, doneKey := l.commandsKey(tenant, requestID), l.doneKey(tenant, requestID)
	b, err := l.rdb.HGet(ctx, key, commandID).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("requests: ledger result: %w", err)
	}
	var a Awaited
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, false, fmt.Errorf("requests: ledger command %s: %w", commandID, err)
	}
	var total, done *redis.IntCmd
	var doneGet *redis.StringCmd
	_, err = l.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		if a.Outcome == "" {
			a.Outcome, a.Reason = outcome, reason
			nb, err := json.Marshal(a)
			if err != nil {
				return fmt.Errorf("requests: ledger command: %w", err)
			}
			p.HSet(ctx, key, commandID, nb)
			done = p.Incr(ctx, doneKey)
		} else {
			doneGet = p.Get(ctx, doneKey)
		}
		total = p.HLen(ctx, key)
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("requests: ledger result: %w", err)
	}
	n := int64(0)
	if done != nil {
		n = done.Val()
	} else if n, err = doneGet.Int64(); err != nil {
		return nil, false, fmt.Errorf("requests: ledger result count: %w", err)
	}
	if n < total.Val() {
		return nil, false, nil
	}
	all, err := l.Commands(ctx, tenant, requestID)
	return all, err == nil, err
}
