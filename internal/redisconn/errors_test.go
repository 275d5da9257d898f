package redisconn_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/leadconv/leadconv/consumer"
	"github.com/leadconv/leadconv/internal/redisconn"
	"github.com/leadconv/leadconv/internal/testutil/redistest"
)

// What a real server answers is classified: its outage is transient
// (redis_unavailable), a refused command or a missing key is not.
func TestClassify(t *testing.T) {
	srv := redistest.New(t)
	rdb := srv.Client()
	ctx := t.Context()
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	wrongType := rdb.HGet(ctx, "k", "f").Err()
	missing := rdb.Get(ctx, "absent").Err()
	script := rdb.Eval(ctx, "return redis.error_reply('BAD input')", nil).Err()
	oom := rdb.Eval(ctx, "return redis.error_reply('OOM command not allowed when used memory > maxmemory')", nil).Err()
	short, cancel := context.WithTimeout(ctx, time.Nanosecond)
	defer cancel()
	<-short.Done()
	deadline := rdb.Get(short, "k").Err()

	opts := srv.Options()
	opts.MaxRetries, opts.DialerRetries = -1, 1
	down := redis.NewClient(opts)
	t.Cleanup(func() { _ = down.Close() })
	srv.Kill()
	refused := down.Get(ctx, "k").Err()

	for _, tc := range []struct {
		name      string
		err       error
		transient bool
	}{
		{"server down", refused, true},
		{"deadline", deadline, true},
		{"out of memory", oom, true},
		{"wrong type", wrongType, false},
		{"script error", script, false},
		{"missing key", missing, false},
	} {
		if tc.err == nil {
			t.Fatalf("%s: no error", tc.name)
		}
		got := redisconn.Classify(tc.err)
		if !errors.Is(got, tc.err) {
			t.Errorf("%s: %v does not wrap %v", tc.name, got, tc.err)
		}
		code, transient := consumer.Classify(got)
		if transient != tc.transient || (transient && code != redisconn.CodeUnavailable) {
			t.Errorf("%s (%v): Classify = %q %v, want transient %v", tc.name, tc.err, code, transient, tc.transient)
		}
	}
	if redisconn.Classify(nil) != nil {
		t.Error("Classify(nil) is not nil")
	}
}
