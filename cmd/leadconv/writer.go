package main

import (
	"context"

	"github.com/leadconv/leadconv/writer"
)

func writerCommand() *command {
	return &command{
		name:     "writer",
		synopsis: writer.Synopsis,
		usage:    "--postgres URL [flags]",
		help: writer.Help + `

Every flag can also be set by the LEADCONV_* variable shown beside it
($LEADCONV_POSTGRES for --postgres); the command line wins. SIGINT or SIGTERM
stops it after the command in flight.

Example:
  leadconv writer --brokers localhost:9092 --postgres postgres://leadconv@localhost:5432/crm`,
		setup: func(fs *flagSet) func(context.Context, *env, []string) error {
			var f writer.Flags
			f.Register(fs.FlagSet)
			for _, n := range writer.FlagNames {
				fs.fromEnv(n)
			}
			// LEADCONV_GROUP is the pipeline's: one environment file for
			// both must not put the writer in the pipeline's group.
			fs.fromEnvAs("group", "LEADCONV_WRITER_GROUP")
			var gro groupOptions
			gro.register(fs)
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
				cfg.ClientOpts = append(cfg.ClientOpts, gro.kgoOpts()...)
				return writer.Run(ctx, cfg)
			}
		},
	}
}
