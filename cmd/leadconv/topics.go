package main

import (
	"context"
	"errors"
	"sync"

	"github.com/leadconv/leadconv/internal/ops"
	"github.com/leadconv/leadconv/internal/topics"
)

// runTopics are the topics of run beside the pipeline's own (records,
// config inputs and resync topics, by-tenant, commands, dead-letter,
// changes, requests, the writer's results): each topic run reads or writes
// is listed here or there, so that start-up checks it.
func runTopics(requestEvents string) []topics.Topic {
	return []topics.Topic{{Name: requestEvents, Role: "mass-conversion results, --results-topic", Output: true}}
}

// startupCheck keeps the last result of a start-up check for /readyz.
type startupCheck struct {
	mu  sync.Mutex
	err error
}

func newStartupCheck() *startupCheck { return &startupCheck{err: errors.New("not checked yet")} }

func (c *startupCheck) set(err error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err = err
	return err
}

func (c *startupCheck) check(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// topicsDep is the start-up dependency on the topics, checked by prepare.
// A missing topic is waited for as a broker not up yet is (a deployment
// may create its topics beside the service); a wrong partition count or a
// size limit that does not fit the settings stops start-up. last answers
// /readyz's check "topics" meanwhile.
func topicsDep(addr string, prepare func(context.Context) error, last *startupCheck) ops.Dependency {
	return ops.Dependency{Name: "topics", Addr: addr, Fatal: topics.Fatal,
		Ping: func(ctx context.Context) error { return last.set(prepare(ctx)) }}
}
