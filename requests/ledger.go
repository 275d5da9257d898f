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
}

// RedisLedger keeps entries in one hash per tenant,
// <namespace>:{tenant}:requests (request id -> entry JSON), beside the
// matcher's keys and with the same hash tag.
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
