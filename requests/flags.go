package requests

import (
	"flag"
	"strings"

	"github.com/rs/zerolog"
)

// Flags binds the command-line flags of a requests consumer (in `leadconv
// run` or a command of its own) to a Config and the Policy every tenant
// gets until the service configuration carries one per tenant.
type Flags struct {
	cfg        Config
	roles      string
	maxRecords int
	maxNew     int
}

// FlagNames lists the flags Register defines, for environment overrides.
var FlagNames = []string{"requests-topic", "requests-group", "results-topic", "progress-every",
	"mass-convert-roles", "max-records-per-request", "max-new-records-per-request"}

// Register defines the flags on fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.cfg.RequestsTopic, "requests-topic", DefaultRequestsTopic, "topic of the mass-conversion requests")
	fs.StringVar(&f.cfg.Group, "requests-group", "", "consumer group of the requests topic; empty derives it from the service's group (<group>-requests), so a backfill beside the live service under its own --group never shares requests with it")
	fs.StringVar(&f.cfg.EventsTopic, "results-topic", DefaultEventsTopic, "topic receiving request.progress, request.completed and request.rejected")
	fs.IntVar(&f.cfg.ProgressEvery, "progress-every", 100, "emit request.progress every so many selected leads planned")
	fs.StringVar(&f.roles, "mass-convert-roles", "", "roles allowed to mass convert, comma separated (none: every request is rejected)")
	fs.IntVar(&f.maxRecords, "max-records-per-request", DefaultMaxRecords, "most leads one request may select")
	fs.IntVar(&f.maxNew, "max-new-records-per-request", DefaultMaxNewRecords, "most contacts, accounts and opportunities one request may create")
}

// Config returns the consumer configuration; brokers, the commands and
// dead-letter topics are the service's.
func (f *Flags) Config(brokers []string, commandsTopic, dlqTopic string, log zerolog.Logger) Config {
	cfg := f.cfg
	cfg.Brokers, cfg.CommandsTopic, cfg.DLQTopic, cfg.Logger = brokers, commandsTopic, dlqTopic, log
	return cfg
}

// Policy returns the policy the flags give.
func (f *Flags) Policy() Policy {
	p := Policy{MaxRecords: f.maxRecords, MaxNewRecords: f.maxNew}
	for r := range strings.SplitSeq(f.roles, ",") {
		if r = strings.TrimSpace(r); r != "" {
			p.Roles = append(p.Roles, r)
		}
	}
	return p
}
