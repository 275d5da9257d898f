package writer

import (
	"flag"
	"strings"

	"github.com/rs/zerolog"
)

// Synopsis and Help describe `leadconv writer` in the command list and its --help.
const (
	Synopsis = "apply commands to a PostgreSQL CRM mirror and feed the changes back (reference CRM writer)"
	Help     = `Consumes the commands topic and applies each command in one PostgreSQL
transaction to a CRM mirror (leads, contacts, accounts, opportunities,
related notes), migrating its schema at start. A command id is applied at
most once; a command older than the newest cluster_version applied for its
cluster is dropped as stale. After each command the touched records go to
the records topic as record events (the loop closes: the pipeline sees the
converted leads and merged contacts) and a command.result CloudEvent goes to
the results topic.`
)

// Flags binds the command-line flags of `leadconv writer` to a Config.
type Flags struct {
	brokers string
	cfg     Config
}

// FlagNames lists the flags Register defines, for environment overrides.
var FlagNames = []string{"brokers", "postgres", "group", "commands-topic", "records-topic", "results-topic"}

// Register defines the writer's flags on fs.
func (f *Flags) Register(fs *flag.FlagSet) {
	fs.StringVar(&f.brokers, "brokers", "localhost:9092", "Kafka bootstrap brokers, comma separated")
	fs.StringVar(&f.cfg.PostgresURL, "postgres", "", "PostgreSQL URL of the CRM mirror (postgres://user:password@host:port/db); required")
	fs.StringVar(&f.cfg.Group, "group", DefaultGroup, "consumer group")
	fs.StringVar(&f.cfg.CommandsTopic, "commands-topic", DefaultCommandsTopic, "topic of the commands to apply")
	fs.StringVar(&f.cfg.RecordsTopic, "records-topic", DefaultRecordsTopic, "topic receiving the record events of changed records")
	fs.StringVar(&f.cfg.ResultsTopic, "results-topic", DefaultResultsTopic, "topic receiving a command.result CloudEvent per command")
}

// Config returns the configuration the parsed flags give, logging to log.
// It fails on a missing --postgres or --brokers.
func (f *Flags) Config(log zerolog.Logger) (Config, error) {
	cfg := f.cfg
	for b := range strings.SplitSeq(f.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			cfg.Brokers = append(cfg.Brokers, b)
		}
	}
	cfg.Logger = log
	if err := cfg.defaults(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}
