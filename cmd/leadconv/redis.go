package main

import (
	"context"
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// openRedis connects to url. With embedded set and url empty it starts an
// in-process miniredis instead: the demo, simulate and eval run on a machine
// with nothing installed. The returned close function releases both.
func openRedis(ctx context.Context, url string, embedded bool) (redis.UniversalClient, func(), error) {
	if url == "" && embedded {
		mr := miniredis.NewMiniRedis()
		if err := mr.Start(); err != nil {
			return nil, nil, fmt.Errorf("start embedded redis: %w", err)
		}
		rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		return rdb, func() { _ = rdb.Close(); mr.Close() }, nil
	}
	rdb, err := newRedis(url)
	if err != nil {
		return nil, nil, err
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		return nil, nil, fmt.Errorf("redis %s: %w", rdb.Options().Addr, err)
	}
	return rdb, func() { _ = rdb.Close() }, nil
}

// newRedis is a client of url; it connects on first use.
func newRedis(url string) (*redis.Client, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, usagef("redis URL: %v", err)
	}
	return redis.NewClient(opts), nil
}
