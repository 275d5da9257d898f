package main

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/leadconv/leadconv/ingest"
	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/internal/ops"
	"github.com/leadconv/leadconv/internal/pipeline"
	"github.com/leadconv/leadconv/requests"
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
tenant/cluster_id, to the commands topic. --requests-topic must have as many
partitions as the by-tenant topic (checked at start-up; every topic run
reads or writes must exist, a missing one is waited for). Offsets are committed only after
the broker acknowledged every command the batch produced (at-least-once,
with deterministic command ids). Input that can never be processed goes to
the dead-letter topic with error-code headers; Redis or broker outages are
retried with backoff. The config file's inputs: list adds topics in a CRM's
own format (Salesforce Change Data Capture, Debezium), read by the same
group; Salesforce gap events publish resync requests to their resync_topic.

Beside it, run consumes mass-conversion requests from --requests-topic: the
selected leads (by id or filter, over the leads stored in Redis) are
converted with their duplicates, and request.progress, request.completed or
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
			drain := fs.Duration("drain-timeout", 10*time.Second, "how long a stopping or revoked partition worker may take to finish its batch (Go duration)")
			var gro groupOptions
			gro.register(fs)
			var rf requests.Flags
			rf.Register(fs.FlagSet)
			for _, n := range append([]string{"group", "http-addr", "changes-topic", "drain-timeout"}, requests.FlagNames...) {
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
				log, cfg, rdb, closeRedis, err := o.open(e)
				if err != nil {
					return err
				}
				defer closeRedis()
				vers, err := loadVerifiers(cfg, e.getenv)
				if err != nil {
					return err
				}
				kopts, err := connectKafka(ctx, &o.kafka, o.brokerList())
				if err != nil {
					return err
				}

				reg := newRegistry()
				parts := handlerParts{rdb: rdb, cfg: cfg, namespace: o.namespace, residentBytes: o.cacheBytes, log: log, reg: reg}
				store := newReader(parts)
				rc := rf.Config(o.brokerList(), o.commandsTopic, o.dlqTopic, log)
				rc.Structured = o.contentMode == "structured"
				c, err := pipeline.New(pipeline.Config{
					Brokers: o.brokerList(), Group: *group, RecordsTopic: o.recordsTopic,
					ByTenantTopic: o.byTenantTopic, InputByTenant: o.inputByTenant, Topics: runTopics(rc),
					CommandsTopic: o.commandsTopic, DLQTopic: o.dlqTopic, ChangesTopic: *changesTopic,
					MaxRecordBytes: o.maxRecordBytes, MaxProduceBytes: o.maxProduceBytes, Structured: o.contentMode == "structured",
					ShutdownGrace: *drain, Logger: log, Registerer: reg,
					FetchMinBytes: int32(o.fetch.minBytes), FetchMaxWait: o.fetch.maxWait,
					Opts: append(slices.Clone(kopts), append(gro.kgoOpts(), kafkaMetrics(reg))...), Inputs: cfg.Inputs(),
				}, newOwners(parts), cfg)
				if err != nil {
					return err
				}
				rc.Group = requestsGroup(rc.Group, *group)
				// The requests group is another group: the same instance id
				// does not collide there.
				rc.Opts = append(append(slices.Clone(kopts), rc.Opts...), append(gro.kgoOpts(), kafkaMetrics(reg))...)
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
				// Run closes the pipeline's client; a stop while waiting for
				// Redis or Kafka at start never runs it.
				ran := false
				defer func() {
					if !ran {
						c.Client().Close()
					}
				}()
				// Either consumer failing stops both: the service is one unit.
				runBoth := func(ctx context.Context) error {
					ran = true
					// Its producer takes what its smallest output does.
					rc.MaxProduceBytes = min(c.Limit(rc.CommandsTopic), c.Limit(rc.EventsTopic), c.Limit(rc.DLQTopic))
					rc.ShutdownGrace = *drain
					g, ctx := errgroup.WithContext(ctx)
					g.Go(func() error { return c.Run(ctx) })
					g.Go(func() error { return requests.Run(ctx, rc, src, tenants, ledger) })
					return g.Wait()
				}
				srv := ops.NewServer(reg)
				srv.AddCheck("redis", func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
				srv.AddCheck("kafka", func(ctx context.Context) error { return c.Client().Ping(ctx) })
				srv.AddCheck("state", func(context.Context) error { return c.Handler().StateLost() })
				topicsChecked := newStartupCheck()
				srv.AddCheck("topics", topicsChecked.check)

				log.Info().Str("version", readBuildInfo().Version).Strs("brokers", o.brokerList()).
					Str("group", *group).Str("instance_id", gro.instanceID).Dur("session_timeout", gro.sessionTimeout).Str("records_topic", o.recordsTopic).Str("by_tenant_topic", o.ownedTopic()).Str("commands_topic", o.commandsTopic).
					Str("dlq_topic", o.dlqTopic).Str("namespace", o.namespace).Strs("tenants", cfg.Tenants()).
					Strs("input_topics", inputTopics(cfg.Inputs())).
					Msg("leadconv starting")
				await := func(ctx context.Context) error {
					if err := ops.AwaitDependencies(ctx, log, o.redisDep(rdb), o.kafkaDep(kopts)); err != nil {
						return err
					}
					return ops.AwaitDependencies(ctx, log, topicsDep(strings.Join(o.brokerList(), ","), c.Prepare, topicsChecked))
				}
				err = serveWhile(ctx, log, srv, *httpAddr, await, runBoth)
				if err != nil {
					return err
				}
				log.Info().Msg("leadconv stopped")
				return nil
			}
		},
	}
}

// requestsGroup is the consumer group of the requests topic: the flag's, or
// one derived from the pipeline's group, so that deployments under
// different groups (live and backfill) each get their own.
func requestsGroup(flag, group string) string {
	if flag != "" {
		return flag
	}
	return group + "-requests"
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
