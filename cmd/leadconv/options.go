package main

import (
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/consumer"
	"github.com/leadconv/leadconv/internal/kafkaconn"
	"github.com/leadconv/leadconv/internal/ops"
	"github.com/leadconv/leadconv/internal/pipeline"
	"github.com/leadconv/leadconv/internal/redisconn"
	"github.com/leadconv/leadconv/matcher"
)

// Topic defaults: the contract with producers and CRM writers.
const (
	defaultRecordsTopic  = "leadconv.records"
	defaultCommandsTopic = "leadconv.commands"
	defaultDLQTopic      = "leadconv.dlq"
	defaultRequestsTopic = "leadconv.requests" // mass-conversion requests
)

// logOptions are the logging flags every command that logs shares.
type logOptions struct {
	level, format string
}

func (o *logOptions) register(fs *flagSet) {
	fs.StringVar(&o.level, "log-level", "info", "log level: trace, debug, info, warn or error")
	fs.StringVar(&o.format, "log-format", ops.FormatAuto, "log format: auto (console on a terminal, JSON otherwise), json or console")
	fs.fromEnv("log-level")
	fs.fromEnv("log-format")
}

func (o *logOptions) logger(e *env) (zerolog.Logger, error) {
	log, err := ops.NewLogger(e.stderr, o.level, o.format)
	if err != nil {
		return log, &usageError{msg: err.Error()}
	}
	return log, nil
}

// serviceOptions are the connection, config and topic flags of run and
// replay.
type serviceOptions struct {
	brokers        string
	redis          redisconn.Options
	configPath     string
	namespace      string
	recordsTopic   string
	byTenantTopic  string
	inputByTenant  bool
	cacheBytes     int64
	lifecycleBytes int64
	commandsTopic  string
	dlqTopic       string
	maxRecordBytes int
	// maxProduceBytes is the producer's record limit: at most the output
	// topics' max.message.bytes.
	maxProduceBytes int
	contentMode     string
	fetch           fetchOptions
	kafka           kafkaconn.Options
	logOptions
}

func (o *serviceOptions) register(fs *flagSet) {
	fs.StringVar(&o.brokers, "brokers", "localhost:9092", "Kafka bootstrap brokers, comma separated")
	registerRedis(fs, &o.redis, "redis://localhost:6379/0")
	fs.StringVar(&o.configPath, "config", "", "service config file (YAML: defaults and per-tenant engine and matching settings); empty uses the shipped defaults")
	fs.StringVar(&o.namespace, "namespace", "lc", "Redis key namespace of the matcher state; a backfill under a fresh namespace runs beside the live one")
	fs.StringVar(&o.recordsTopic, "records-topic", defaultRecordsTopic, "input topic of record events")
	fs.StringVar(&o.byTenantTopic, "by-tenant-topic", pipeline.DefaultByTenantTopic, "internal topic the input is routed to, keyed by tenant: its partitions bound the parallelism, one owner (the only writer of its tenants) each; created with the input's partition count when missing")
	fs.BoolVar(&o.inputByTenant, "input-keyed-by-tenant", false, "the records topic is already keyed by tenant (Kafka's default partitioner): skip the routing hop and own its partitions directly")
	fs.Int64Var(&o.cacheBytes, "matcher-cache-bytes", matcher.DefaultResidentBytes, "memory bound of the matcher state kept resident by the partitions' owners (bytes); past it, the least recently used tenants are read again from Redis")
	fs.Int64Var(&o.lifecycleBytes, "lifecycle-cache-bytes", pipeline.DefaultLifecycleBytes, "memory bound of the settled lifecycle entries (what was emitted per cluster) kept resident by the partitions' owners (bytes); past it, the longest settled are read again from Redis when a change needs them")
	fs.StringVar(&o.commandsTopic, "commands-topic", defaultCommandsTopic, "output topic of the commands (CloudEvents)")
	fs.StringVar(&o.dlqTopic, "dlq-topic", defaultDLQTopic, "dead-letter topic for input that can never be processed")
	fs.IntVar(&o.maxRecordBytes, "max-record-bytes", pipeline.DefaultMaxRecordBytes, "largest accepted input record; larger ones go to the dead-letter topic (value cut to a prefix when too large for it)")
	fs.IntVar(&o.maxProduceBytes, "max-produce-bytes", consumer.DefaultMaxProduceBytes, "largest record batch the producer sends; capped per topic at start-up by the topic's max.message.bytes; --max-record-bytes must leave room in it (and in the dead-letter and by-tenant topics' limits) for the dead-letter headers")
	fs.StringVar(&o.contentMode, "content-mode", "binary", "CloudEvents content mode on Kafka: binary (ce_ headers) or structured (JSON envelope)")
	for _, n := range []string{"brokers", "config", "namespace", "records-topic", "by-tenant-topic", "input-keyed-by-tenant",
		"matcher-cache-bytes", "lifecycle-cache-bytes", "commands-topic", "dlq-topic", "max-record-bytes", "max-produce-bytes", "content-mode"} {
		fs.fromEnv(n)
	}
	o.fetch.register(fs)
	registerKafkaSecurity(fs, &o.kafka)
	o.logOptions.register(fs)
}

// Group membership defaults. A member that dies without leaving (kill -9,
// a lost node) holds its partitions until its session times out: franz-go's
// 45s default left them unprocessed that long after every crash. 10s
// (heartbeats every 3s) brings them back within seconds and stays above
// Kafka's default group.min.session.timeout.ms of 6s. With --instance-id a
// restarted member gets its partitions back at once, without a rebalance.
const (
	defaultSessionTimeout   = 10 * time.Second
	defaultRebalanceTimeout = 30 * time.Second
)

// groupOptions are the consumer-group membership flags of run and writer.
type groupOptions struct {
	sessionTimeout, rebalanceTimeout time.Duration
	instanceID                       string
}

func (o *groupOptions) register(fs *flagSet) {
	fs.DurationVar(&o.sessionTimeout, "session-timeout", defaultSessionTimeout, "how long the group waits for a silent member (killed, partitioned) before its partitions move; the broker bounds it (group.min/max.session.timeout.ms, 6s..30m by default)")
	fs.DurationVar(&o.rebalanceTimeout, "rebalance-timeout", defaultRebalanceTimeout, "how long members may take to finish their batches and rejoin once a rebalance started; members slower than that are removed from the group")
	fs.StringVar(&o.instanceID, "instance-id", "", "static group membership: a name unique and stable per instance (a StatefulSet pod name); a restart within --session-timeout gets the same partitions back without a rebalance. Empty: dynamic membership")
	for _, n := range []string{"session-timeout", "rebalance-timeout", "instance-id"} {
		fs.fromEnv(n)
	}
}

// check validates the values; a member's revocation may take up to drain
// (0 when the command has no such bound), so a rebalance must allow more.
func (o *groupOptions) check(drain time.Duration) error {
	if o.sessionTimeout < time.Second || o.sessionTimeout > 30*time.Minute {
		return usagef("--session-timeout %s: allowed values are 1s to 30m0s (and what the broker's group.min/max.session.timeout.ms allow)", o.sessionTimeout)
	}
	if o.rebalanceTimeout < time.Second || o.rebalanceTimeout > 30*time.Minute {
		return usagef("--rebalance-timeout %s: allowed values are 1s to 30m0s", o.rebalanceTimeout)
	}
	if drain > 0 && o.rebalanceTimeout <= drain {
		return usagef("--rebalance-timeout %s: must exceed --drain-timeout %s, the time a revoked partition may take to finish its batch", o.rebalanceTimeout, drain)
	}
	if strings.TrimSpace(o.instanceID) != o.instanceID || len(o.instanceID) > 249 || strings.ContainsFunc(o.instanceID, func(r rune) bool { return r < ' ' }) {
		return usagef("--instance-id %q: at most 249 characters, without surrounding spaces or control characters", o.instanceID)
	}
	return nil
}

// kgoOpts are the client options of the flags.
func (o *groupOptions) kgoOpts() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SessionTimeout(o.sessionTimeout),
		kgo.RebalanceTimeout(o.rebalanceTimeout),
		// Kafka's advice: at most a third of the session timeout.
		kgo.HeartbeatInterval(min(3*time.Second, o.sessionTimeout/3)),
	}
	if o.instanceID != "" {
		opts = append(opts, kgo.InstanceID(o.instanceID))
	}
	return opts
}

// fetchOptions tune how the consumer fetches (consumer.Config).
type fetchOptions struct {
	minBytes int
	maxWait  time.Duration
}

func (o *fetchOptions) register(fs *flagSet) {
	fs.IntVar(&o.minBytes, "fetch-min-bytes", consumer.DefaultFetchMinBytes, "bytes of records a fetch waits for, up to --fetch-max-wait: fewer, larger batches at low rates, for less CPU per event and a few ms more median latency; 1 answers at the first record")
	fs.DurationVar(&o.maxWait, "fetch-max-wait", consumer.DefaultFetchMaxWait, "longest a fetch waits for --fetch-min-bytes, or for any record when idle (at least 10ms)")
	fs.fromEnv("fetch-min-bytes")
	fs.fromEnv("fetch-max-wait")
}

func (o *fetchOptions) check() error {
	if o.minBytes < 1 || o.minBytes > 1<<30 {
		return usagef("--fetch-min-bytes %d: allowed values are 1 to %d", o.minBytes, 1<<30)
	}
	if o.maxWait < consumer.MinFetchMaxWait || o.maxWait > time.Minute {
		return usagef("--fetch-max-wait %s: allowed values are %s to 1m0s", o.maxWait, consumer.MinFetchMaxWait)
	}
	return nil
}

// check validates the flag values that need no I/O.
func (o *serviceOptions) check() error {
	if len(o.brokerList()) == 0 {
		return usagef("--brokers: at least one broker address is required")
	}
	if o.namespace == "" || strings.ContainsAny(o.namespace, "{}: ") {
		return usagef("--namespace %q: must be non-empty, without braces, colons or spaces", o.namespace)
	}
	if o.cacheBytes < 1<<20 {
		return usagef("--matcher-cache-bytes %d: allowed values are at least 1048576 (1 MiB)", o.cacheBytes)
	}
	if o.lifecycleBytes < 1<<20 {
		return usagef("--lifecycle-cache-bytes %d: allowed values are at least 1048576 (1 MiB)", o.lifecycleBytes)
	}
	if o.maxRecordBytes <= 0 {
		return usagef("--max-record-bytes %d: must be positive", o.maxRecordBytes)
	}
	if o.maxProduceBytes < 64<<10 || o.maxProduceBytes > 1<<30 {
		return usagef("--max-produce-bytes %d: allowed values are 65536 to 1073741824", o.maxProduceBytes)
	}
	if limit := pipeline.MaxRecordBytesFor(o.maxProduceBytes); o.maxRecordBytes > limit {
		return usagef("--max-record-bytes %d exceeds what --max-produce-bytes %d lets the dead-letter topic take: at most %d (%d bytes go to its headers)",
			o.maxRecordBytes, o.maxProduceBytes, limit, consumer.DeadLetterOverhead)
	}
	switch o.contentMode {
	case "binary", "structured":
	default:
		return usagef("--content-mode %q: allowed values are binary, structured", o.contentMode)
	}
	if err := o.fetch.check(); err != nil {
		return err
	}
	if _, err := o.kafka.ClientOpts(); err != nil {
		return usagef("%v", err)
	}
	if err := o.redis.Check(); err != nil {
		return usagef("%v", err)
	}
	for flag, v := range map[string]string{"--records-topic": o.recordsTopic, "--by-tenant-topic": o.byTenantTopic, "--commands-topic": o.commandsTopic, "--dlq-topic": o.dlqTopic} {
		if v == "" {
			return usagef("%s: must not be empty", flag)
		}
	}
	if !o.inputByTenant && o.byTenantTopic == o.recordsTopic {
		return usagef("--by-tenant-topic %s: must differ from --records-topic (or set --input-keyed-by-tenant)", o.byTenantTopic)
	}
	return nil
}

func (o *serviceOptions) brokerList() []string {
	var out []string
	for b := range strings.SplitSeq(o.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// ownedTopic is the topic whose partitions have owners: the by-tenant
// topic, or the input when it is keyed by tenant already. Replay reads it:
// its per-partition order is the order the live owners applied.
func (o *serviceOptions) ownedTopic() string {
	if o.inputByTenant {
		return o.recordsTopic
	}
	return o.byTenantTopic
}
