package main

import (
	"context"
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/leadconv/leadconv/internal/redisconn"
)

// registerRedis defines --redis-url (with def as its default) and the Redis
// TLS and password-file flags, and their LEADCONV_* variables.
func registerRedis(fs *flagSet, o *redisconn.Options, def string) {
	fs.StringVar(&o.URL, "redis-url", def, "Redis URL: "+redisconn.URLForms)
	fs.fromEnv("redis-url", "REDIS_URL")
	o.Register(fs.FlagSet)
	for _, n := range redisconn.FlagNames {
		fs.fromEnv(n)
	}
}

// openRedis connects as o says. With embedded set and no URL it starts an
// in-process miniredis instead: the demo, simulate and eval run on a machine
// with nothing installed. The returned close function releases both.
func openRedis(ctx context.Context, o redisconn.Options, embedded bool) (redis.UniversalClient, func(), error) {
	if o.URL == "" && embedded {
		mr := miniredis.NewMiniRedis()
		if err := mr.Start(); err != nil {
			return nil, nil, fmt.Errorf("start embedded redis: %w", err)
		}
		rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
		return rdb, func() { _ = rdb.Close(); mr.Close() }, nil
	}
	if err := o.Check(); err != nil {
		return nil, nil, usagef("%v", err)
	}
	rdb, _, err := o.Open(ctx)
	if err != nil {
		return nil, nil, err
	}
	return rdb, func() { _ = rdb.Close() }, nil
}
