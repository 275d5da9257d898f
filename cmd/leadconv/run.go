package main

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/ingest"
	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/internal/ops"
	"github.com/leadconv/leadconv/internal/pipeline"
	"github.com/leadconv/leadconv/requests"
	"github.com/leadconv/leadconv/writer"
)

func runCommand() *command {
	return &command{
		name:     "run",
		synopsis: "run the service: consume record events, keep clusters, publish commands",
		usage:    "[flags]",
		help: `Runs leadconv as a member of a Kafka consumer group: routes record events
from the records topic to --by-tenant-topic, keyed by tenant (skipped with
--input-keyed-by-tenant), and owns partitions of that topic: the worker of a
partition is the only writer of its tenants' duplicate clusters, kept
resident in memory (--matcher-cache-bytes) and written through to Redis. It
applies each batch, plans every changed cluster with the tenant's
configuration and publishes the commands as CloudEvents, keyed
tenant/cluster_id, to the commands topic. Every topic run reads or writes
must exist (checked at start-up; a missing one is waited for). Offsets are
committed only after
the broker acknowledged every command the batch produced (at-least-once,
with deterministic command ids). Input that can never be processed goes to
the dead-letter topic with error-code headers; Redis or broker outages are
retried with backoff. The config file's inputs: list adds topics in a CRM's
own format (Salesforce Change Data Capture, Debezium), read by the same
group; Salesforce gap events publish resync requests to their resync_topic.
The CRM writer's command.result events (--command-results-topic, the
writer's --results-topic) are routed the same way, keyed by tenant, to the
tenant's owner, which reconciles its pending conversions with them.

The same group reads mass-conversion requests from --requests-topic and
routes them, like record events, to the by-tenant topic keyed by tenant:
the tenant's owner runs each in order with the tenant's record events. The
selected leads (by id or filter, over the leads stored in Redis) are
converted with their duplicates, planned relative to what the pipeline
already emitted (a lead whose conversion is pending is reported so, never
converted twice), and request.progress, request.completed or
request.rejected go to --results-topic. Each request record carries a JWT in
its authorization header, signed with the tenant's key (config file:
mass_conversion.token), naming the tenant, the user (sub), the roles, an
expiry and the SHA-256 of the request body; roles written in the body are
ignored. Only tokens holding one of the tenant's mass_conversion.roles or,
where the file sets none, of --mass-convert-roles may mass convert; without
any, every request is rejected (role_not_allowed). The limits fall back the
same way.

Every flag can also be set by the LEADCONV_* variable shown beside it; the
command line wins. An invalid --config stops start-up with the YAML path of
the field and the allowed values (check a file with "leadconv
validate-config").

Operations: --http-addr serves /metrics (Prometheus), /healthz (liveness) and
/readyz (Redis and Kafka reachable, not draining; otherwise 503 naming what
is missing). Redis or Kafka unreachable at start is waited for, retried
with backoff and logged with the address every few seconds, as outages later
are retried. SIGINT or SIGTERM starts a
graceful shutdown: stop fetching, finish in-flight batches (within
--drain-timeout), commit, leave the group; all of it within --drain-timeout
and 2s, even while a rebalance is pending (then without leaving the group).`,
		setup: func(fs *flagSet) func(context.Context, *env, []string) error {
			var o serviceOptions
			o.register(fs)
			group := fs.String("group", "leadconv", "Kafka consumer group")
			httpAddr := fs.String("http-addr", ":8080", "listen address of /metrics, /healthz and /readyz")
			changesTopic := fs.String("changes-topic", "", "when set, also publish a cluster.changed CloudEvent per cluster change to this topic")
			// Not --results-topic: that is where run writes request events,
			// and the writer's flag of that name sets where it writes.
			commandResults := fs.String("command-results-topic", writer.DefaultResultsTopic, "topic of the CRM writer's command.result events (the writer's --results-topic), routed to each tenant's owner to reconcile pending conversions; empty: no writer feedback (required with --input-keyed-by-tenant)")
			drain := fs.Duration("drain-timeout", 10*time.Second, "how long a stopping or revoked partition worker may take to finish its batch (Go duration)")
			var gro groupOptions
			gro.register(fs)
			var rf requests.Flags
			rf.Register(fs.FlagSet)
			for _, n := range append([]string{"group", "http-addr", "changes-topic", "command-results-topic", "drain-timeout"}, requests.FlagNames...) {
				fs.fromEnv(n)
			}
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				if err := o.check(); err != nil {
					return err
				}
				if *group == "" {
					return usagef("--group: must not be empty")
				}
				if *drain <= 0 {
					return usagef("--drain-timeout %s: must be positive", *drain)
				}
				if err := gro.check(*drain); err != nil {
					return err
				}
				if o.inputByTenant && *commandResults != "" {
					return usagef("--command-results-topic %s: results reach their tenant's owner through --by-tenant-topic, which --input-keyed-by-tenant skips; set --command-results-topic '' to run without the writer's feedback", *commandResults)
				}
				log, cfg, rdb, closeRedis, err := o.open(e)
				if err != nil {
					return err
				}
				defer closeRedis()
				tuneGC(log)
				vers, err := loadVerifiers(cfg, e.getenv)
				if err != nil {
					return err
				}
				kopts, err := connectKafka(ctx, &o.kafka, o.brokerList())
				if err != nil {
					return err
				}

				reg := newRegistry()
				parts := handlerParts{rdb: rdb, cfg: cfg, namespace: o.namespace, residentBytes: o.cacheBytes, lifecycleBytes: o.lifecycleBytes, log: log, reg: reg}
				store := newReader(parts)
				policy := rf.Policy()
				tenants := func(name string) (requests.Tenant, error) {
					t, err := cfg.Tenant(name)
					if err != nil {
						return requests.Tenant{}, err
					}
					ver, err := vers.of(t.MassConversion.Token)
					if err != nil {
						// Without its key the tenant's requests are rejected
						// (bad_signature); the log says why.
						log.Error().Str("tenant", name).Err(err).Msg("request token key cannot be loaded")
					}
					return requests.Tenant{Engine: t.Engine, Policy: tenantPolicy(policy, t.MassConversion), Verifier: ver}, nil
				}
				src := &requests.Source{Graph: store, Records: store}
				ledger := requests.NewRedisLedger(rdb, o.namespace)
				rc := rf.HandlerConfig(o.commandsTopic, o.contentMode == "structured", log)
				var client *kgo.Client
				rc.Progress = func(r *kgo.Record) {
					// Progress is informative: a lost one is logged, not
					// retried.
					client.Produce(ctx, r, func(_ *kgo.Record, err error) {
						if err != nil && ctx.Err() == nil {
							log.Warn().Err(err).Msg("progress event not produced")
						}
					})
				}
				c, err := pipeline.New(pipeline.Config{
					Brokers: o.brokerList(), Group: *group, RecordsTopic: o.recordsTopic,
					ByTenantTopic: o.byTenantTopic, InputByTenant: o.inputByTenant,
					Requests: func(lc *pipeline.Handler) pipeline.RequestHandler {
						rc.Lifecycle = lc
						return requests.NewHandler(rc, src, tenants, ledger)
					},
					RequestsTopic: rf.Topic(), Topics: runTopics(rc.EventsTopic),
					ResultsTopic:  *commandResults,
					CommandsTopic: o.commandsTopic, DLQTopic: o.dlqTopic, ChangesTopic: *changesTopic,
					MaxRecordBytes: o.maxRecordBytes, MaxProduceBytes: o.maxProduceBytes, Structured: o.contentMode == "structured",
					ShutdownGrace: *drain, Logger: log, Registerer: reg,
					FetchMinBytes: int32(o.fetch.minBytes), FetchMaxWait: o.fetch.maxWait,
					Opts: append(slices.Clone(kopts), append(gro.kgoOpts(), kafkaMetrics(reg))...), Inputs: cfg.Inputs(),
				}, newOwners(parts), cfg)
				if err != nil {
					return err
				}
				client = c.Client()
				// Run closes the pipeline's client; a stop while waiting for
				// Redis or Kafka at start never runs it.
				ran := false
				defer func() {
					if !ran {
						c.Client().Close()
					}
				}()
				runPipeline := func(ctx context.Context) error {
					ran = true
					return c.Run(ctx)
				}
				srv := ops.NewServer(reg)
				srv.AddCheck("redis", func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
				srv.AddCheck("kafka", func(ctx context.Context) error { return c.Client().Ping(ctx) })
				srv.AddCheck("state", func(context.Context) error { return c.Handler().StateLost() })
				srv.AddCheck("partitions", func(context.Context) error { return c.Retrying() })
				topicsChecked := newStartupCheck()
				srv.AddCheck("topics", topicsChecked.check)

				log.Info().Str("version", readBuildInfo().Version).Strs("brokers", o.brokerList()).
					Str("group", *group).Str("instance_id", gro.instanceID).Dur("session_timeout", gro.sessionTimeout).Str("records_topic", o.recordsTopic).Str("by_tenant_topic", o.ownedTopic()).Str("commands_topic", o.commandsTopic).Str("command_results_topic", *commandResults).
					Str("dlq_topic", o.dlqTopic).Str("namespace", o.namespace).Strs("tenants", cfg.Tenants()).
					Strs("input_topics", inputTopics(cfg.Inputs())).
					Msg("leadconv starting")
				await := func(ctx context.Context) error {
					if err := ops.AwaitDependencies(ctx, log, o.redisDep(rdb), o.kafkaDep(kopts)); err != nil {
						return err
					}
					return ops.AwaitDependencies(ctx, log, topicsDep(strings.Join(o.brokerList(), ","), c.Prepare, topicsChecked))
				}
				err = serveWhile(ctx, log, srv, *httpAddr, await, runPipeline)
				if err != nil {
					return err
				}
				log.Info().Msg("leadconv stopped")
				return nil
			}
		},
	}
}

// tenantPolicy is the flags' policy with what the tenant's mass_conversion
// block sets laid over it.
func tenantPolicy(flags requests.Policy, mc config.MassConversion) requests.Policy {
	p := flags
	if mc.Roles != nil {
		p.Roles = mc.Roles
	}
	if mc.MaxRecordsPerRequest > 0 {
		p.MaxRecords = mc.MaxRecordsPerRequest
	}
	if mc.MaxNewRecordsPerRequest > 0 {
		p.MaxNewRecords = mc.MaxNewRecordsPerRequest
	}
	return p
}

// inputTopics lists the configured input topics with their formats
// ("sf.leads=salesforce_cdc"), for the start-up log.
func inputTopics(in []ingest.Config) []string {
	out := make([]string, len(in))
	for i, c := range in {
		out[i] = c.Topic + "=" + string(c.Format)
	}
	return out
}

// inputTopicsOf lists the topics the inputs read and write (resync
// requests), for the demo's in-process broker.
func inputTopicsOf(in []ingest.Config) []string {
	var out []string
	for _, c := range in {
		out = append(out, c.Topic)
		if c.Format == ingest.SalesforceCDC {
			out = append(out, cmp.Or(c.ResyncTopic, ingest.DefaultResyncTopic))
		}
	}
	return out
}
