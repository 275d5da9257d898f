// Command leadconv converts and merges duplicate CRM leads in real time.
//
// Subcommands: run (the service), replay (re-read the records topic, for
// backfills), simulate (offline dry run of a JSON lines file), demo (the
// whole pipeline on embedded Kafka and Redis), validate-config, gen, eval,
// bench and version. "leadconv <command> --help" documents each.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// The first SIGINT or SIGTERM cancels ctx: commands stop fetching, drain
	// and commit. A second signal kills the process the default way.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := Main(ctx, os.Args[1:], osEnv())
	stop()
	os.Exit(code)
}
