package ops

import (
	"context"
	"time"

	"github.com/rs/zerolog"
)

// Dependency is a service leadconv needs, with its address for the logs.
type Dependency struct {
	Name, Addr string
	Ping       func(context.Context) error
	// Fatal, when set, reports an error of Ping that no wait mends (refused
	// credentials, an untrusted certificate): start-up stops on it.
	Fatal func(error) bool
}

// Start-up waits: the delay between attempts doubles up to RetryMax, and a
// dependency still missing is logged every LogEvery.
const (
	RetryMax = 2 * time.Second
	LogEvery = 5 * time.Second
)

// AwaitDependencies returns once every dependency answers its ping, as an
// outage later is retried too: an orchestrator may start leadconv before
// Redis, the brokers or the database. Each one still unreachable is logged
// with its address at the first failure and then every LogEvery; /readyz
// names them meanwhile. It returns ctx's error when cancelled first.
func AwaitDependencies(ctx context.Context, log zerolog.Logger, deps ...Dependency) error {
	start := time.Now()
	lastLog := map[string]time.Time{}
	delay := 100 * time.Millisecond
	for {
		missing := 0
		for _, d := range deps {
			pctx, cancel := context.WithTimeout(ctx, RetryMax)
			err := d.Ping(pctx)
			cancel()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil && d.Fatal != nil && d.Fatal(err) {
				return err
			}
			last, failed := lastLog[d.Name]
			switch {
			case err == nil && failed:
				log.Info().Str("dependency", d.Name).Str("addr", d.Addr).Dur("waited", time.Since(start).Round(time.Millisecond)).Msg("dependency reachable")
				delete(lastLog, d.Name)
			case err != nil:
				missing++
				if !failed || time.Since(last) >= LogEvery {
					log.Warn().Str("dependency", d.Name).Str("addr", d.Addr).Err(err).Dur("waited", time.Since(start).Round(time.Millisecond)).
						Msg("waiting for a dependency at start-up; retrying")
					lastLog[d.Name] = time.Now()
				}
			}
		}
		if missing == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, RetryMax)
	}
}
