package main

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/internal/kafkaconn"
	"github.com/leadconv/leadconv/internal/ops"
	"github.com/leadconv/leadconv/writer"
)

func writerCommand() *command {
	return &command{
		name:     "writer",
		synopsis: writer.Synopsis,
		usage:    "--postgres URL [flags]",
		help: writer.Help + `

Every flag can also be set by the LEADCONV_* variable shown beside it
($LEADCONV_POSTGRES for --postgres; the group and the listen address have
LEADCONV_WRITER_* names, so one environment file can serve run and writer);
the command line wins. SIGINT or SIGTERM stops it after the command in
flight.

Operations, as "leadconv run": PostgreSQL or Kafka unreachable at start is
waited for and logged with the address every few seconds; --http-addr serves /metrics (Prometheus, with
franz-go's client metrics), /healthz (liveness) and /readyz (schema migrated,
PostgreSQL and Kafka reachable, not stopping; otherwise 503 naming what is
missing).

Example:
  leadconv writer --brokers localhost:9092 --postgres postgres://leadconv@localhost:5432/crm`,
		setup: func(fs *flagSet) func(context.Context, *env, []string) error {
			var f writer.Flags
			f.Register(fs.FlagSet)
			for _, n := range writer.FlagNames {
				fs.fromEnv(n)
			}
			var ko kafkaconn.Options
			registerKafkaSecurity(fs, &ko)
			// LEADCONV_GROUP is the pipeline's: one environment file for
			// both must not put the writer in the pipeline's group.
			fs.fromEnvAs("group", "LEADCONV_WRITER_GROUP")
			var gro groupOptions
			gro.register(fs)
			httpAddr := fs.String("http-addr", ":8081", "listen address of /metrics, /healthz and /readyz (beside run's :8080)")
			fs.fromEnvAs("http-addr", "LEADCONV_WRITER_HTTP_ADDR")
			var lo logOptions
			lo.register(fs)
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				if err := gro.check(0); err != nil {
					return err
				}
				log, err := lo.logger(e)
				if err != nil {
					return err
				}
				cfg, err := f.Config(log)
				if err != nil {
					return usagef("%v", err)
				}
				kopts, err := connectKafka(ctx, &ko, cfg.Brokers)
				if err != nil {
					return err
				}
				reg := newRegistry()
				cfg.ClientOpts = append(cfg.ClientOpts, kopts...)
				cfg.ClientOpts = append(cfg.ClientOpts, gro.kgoOpts()...)
				cfg.ClientOpts = append(cfg.ClientOpts, kgo.ClientID("leadconv-writer"), kafkaMetrics(reg))
				srv := ops.NewServer(reg)
				var started atomic.Bool
				srv.AddCheck("writer", func(context.Context) error {
					if !started.Load() {
						return errors.New("starting: waiting for PostgreSQL, Kafka and the topics (the log names a missing one), then migrating the schema")
					}
					return nil
				})
				cfg.Ready = func(checks map[string]func(context.Context) error) {
					for n, c := range checks {
						srv.AddCheck(n, c)
					}
					started.Store(true)
				}
				run := func(ctx context.Context) error { return writer.Run(ctx, cfg) }
				return serveWhile(ctx, log, srv, *httpAddr, func(context.Context) error { return nil }, run)
			}
		},
	}
}
