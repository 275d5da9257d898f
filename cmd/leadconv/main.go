// Command leadconv converts and merges duplicate CRM leads in real time.
//
// Subcommands: run (the service), replay (re-read the records topic, for
// backfills), simulate (offline dry run of a JSON lines file), demo (the
// whole pipeline on embedded Kafka and Redis), validate-config, gen, eval,
// writer, bench and version. "leadconv <command> --help" documents each.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/leadconv/leadconv/internal/ops"
)

func main() {
	// The first SIGINT or SIGTERM cancels ctx: commands stop fetching, drain
	// and commit. A second signal kills the process the default way.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	// go-redis reports connection trouble through its own logger; route it
	// into the log stream so JSON logs stay JSON.
	format := os.Getenv(envName("log-format"))
	if format == "" {
		format = ops.FormatAuto
	}
	if log, err := ops.NewLogger(os.Stderr, "warn", format); err == nil {
		redis.SetLogger(&redisLog{log: log.With().Str("component", "redis").Logger(), last: map[string]time.Time{}})
	}
	code := Main(ctx, os.Args[1:], osEnv())
	stop()
	os.Exit(code)
}

// redisLog adapts a zerolog logger to go-redis's logging interface. The
// pool logs every failed dial; during an outage that is a line per attempt,
// so each message (by format) is logged at most every redisLogEvery.
type redisLog struct {
	log  zerolog.Logger
	mu   sync.Mutex
	last map[string]time.Time
}

const redisLogEvery = 5 * time.Second

func (l *redisLog) Printf(_ context.Context, format string, v ...any) {
	l.mu.Lock()
	now := time.Now()
	if now.Sub(l.last[format]) < redisLogEvery {
		l.mu.Unlock()
		return
	}
	l.last[format] = now
	l.mu.Unlock()
	l.log.Warn().Msg(fmt.Sprintf(format, v...))
}
