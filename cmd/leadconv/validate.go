package main

import (
	"context"
	"fmt"
	"strings"
)

func validateConfigCommand() *command {
	return &command{
		name:     "validate-config",
		synopsis: "check a service config file and report every error with its YAML path",
		usage:    "[--config] FILE",
		help: `Loads the service config file exactly as "leadconv run" does at start-up:
strict YAML (unknown keys fail), every tenant resolved over the defaults,
every strategy, normaliser and comparator checked, every tenant's match rules
compiled. Errors name the YAML path and the allowed values, for example:

  tenants.acme.engine.master.strategy: "newest" is not a master strategy (allowed: ...)

A bare matching rules file (the "matching:" block alone, as "leadconv eval
--config" takes it) is checked as such: keys, rules, normalisers and
comparators.

Exit status 0 when the file is valid, 1 when it is not, 2 on a usage error.`,
		setup: func(fs *flagSet) func(context.Context, *env, []string) error {
			path := fs.String("config", "", "the config file (or give it as the argument)")
			fs.fromEnv("config")
			return func(_ context.Context, e *env, args []string) error {
				switch {
				case len(args) > 1:
					return usagef("one config file expected, got %d arguments", len(args))
				case len(args) == 1:
					*path = args[0]
				case *path == "":
					return usagef("no config file: give it as the argument or with --config")
				}
				m, err := loadMatching(*path)
				if err != nil {
					return err
				}
				if m.service == nil {
					_, err = fmt.Fprintf(e.stdout, "%s: valid matching rules file; %d rule(s)\n", *path, len(m.rules.Rules))
					return err
				}
				tenants := m.service.Tenants()
				msg := "no tenant overrides: every tenant gets the defaults block"
				if len(tenants) > 0 {
					msg = fmt.Sprintf("%d tenant(s) configured: %s; other tenants get the defaults", len(tenants), strings.Join(tenants, ", "))
				}
				_, err = fmt.Fprintf(e.stdout, "%s: valid; %s\n", *path, msg)
				return err
			}
		},
	}
}
