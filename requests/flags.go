package requests

import (
	"flag"
	"strings"

	"github.com/rs/zerolog"
)

// Flags binds the command-line flags of mass conversion (in `leadconv
// run`) to the requests topic, a HandlerConfig and the Policy every tenant
// gets until the service configuration carries one per tenant.
type Flags struct {
	topic      string
	cfg        HandlerConfig
	roles      string
	maxRecords int
	maxNew     int
}

// FlagNames lists the flags Register defines, for environment overrides.
var FlagNames = []string{"requests-topic", "results-topic", "progress-every",
	"mass-convert-roles", "max-records-per-request", "max-new-records-per-request"}

// Register defines the flags on fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.topic, "requests-topic", DefaultRequestsTopic, "topic of the mass-conversion requests, read by the service's group and routed to the owners of their tenants (any partition count)")
	fs.StringVar(&f.cfg.EventsTopic, "results-topic", DefaultEventsTopic, "topic receiving request.progress, request.completed, request.rejected and request.outcomes")
	fs.IntVar(&f.cfg.ProgressEvery, "progress-every", 100, "emit request.progress every so many selected leads planned")
	fs.StringVar(&f.roles, "mass-convert-roles", "", "roles allowed to mass convert, comma separated (none: every request is rejected)")
	fs.IntVar(&f.maxRecords, "max-records-per-request", DefaultMaxRecords, "most leads one request may select")
	fs.IntVar(&f.maxNew, "max-new-records-per-request", DefaultMaxNewRecords, "most contacts, accounts and opportunities one request may create")
}

// Topic is the requests topic.
func (f *Flags) Topic() string { return f.topic }

// HandlerConfig returns the handler's configuration; the commands topic and
// the content mode are the service's.
func (f *Flags) HandlerConfig(commandsTopic string, structured bool, log zerolog.Logger) HandlerConfig {
	cfg := f.cfg
	cfg.CommandsTopic, cfg.Structured, cfg.Logger = commandsTopic, structured, log
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
