package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/internal/pipeline"
	"github.com/leadconv/leadconv/internal/redisconn"
	"github.com/leadconv/leadconv/matcher/gen"
	"github.com/leadconv/leadconv/record"
)

const demoGroup = "leadconv-demo"

func demoCommand() *command {
	return &command{
		name:     "demo",
		synopsis: "run the whole pipeline on an in-process Kafka and Redis with generated leads",
		usage:    "[flags]",
		help: `Runs leadconv's main job on its embedded default, with nothing installed:
an in-process Kafka broker (kfake) with the records, commands, requests and
dead-letter topics, and an in-process Redis (miniredis) unless --redis-url or
$REDIS_URL names a real one. It produces generated sample leads (and some
contacts) with known duplicates to the records topic, runs the real pipeline
(the same consumer, matcher, engine and CloudEvents encoding as "leadconv
run") and, once every sample event is processed and committed, prints what it
converts and merges: totals by command type, then the latest plan of the
--show largest duplicate clusters with the records' names.

On a real Redis the demo works under a fresh key namespace, deleted at the
end. Logs (warnings only, by default) go to stderr and carry ids only; names
appear on stdout because they are the demo's sample data.

--crm shapes the sample as that CRM's API shows it (Salesforce FirstName,
MailingCity, CreatedDate ...; "leadconv gen --crm") and plans with that crm
profile's field model: each conversion lists the fields it writes on the
contact and the created account, in the CRM's names.

--serve keeps everything running after the sample: it prints the broker
address, so other clients can produce record events to leadconv.records and
read leadconv.commands, and prints each further command as it is published,
until SIGINT or SIGTERM.

Examples:
  leadconv demo
  leadconv demo --records 2000 --show 20
  leadconv demo --serve --kafka-port 9092
  leadconv demo --crm salesforce`,
		setup: func(fs *flagSet) func(context.Context, *env, []string) error {
			var o demoOptions
			fs.IntVar(&o.records, "records", 300, "number of sample records generated")
			fs.Uint64Var(&o.seed, "seed", 1, "random seed of the sample: the same seed gives the same sample and commands")
			fs.StringVar(&o.tenant, "tenant", "acme", "tenant of the sample records")
			fs.Float64Var(&o.contacts, "contacts", 0.2, "share of sample records created as contacts (0 to 1)")
			fs.Float64Var(&o.updates, "updates", 0.1, "share of sample records updated later in the stream (0 to 1)")
			fs.IntVar(&o.partitions, "partitions", 3, "partitions of the in-process topics (one pipeline worker each)")
			fs.IntVar(&o.show, "show", 8, "clusters shown in detail; the totals cover all")
			fs.StringVar(&o.configPath, "config", "", "service config file; empty uses the shipped defaults")
			fs.StringVar(&o.crm, "crm", "", "sample records shaped as a CRM's (salesforce, zoho, hubspot, dynamics): its field names in, its field model out; without --config the shipped defaults of that crm profile")
			fs.StringVar(&o.redisURL, "redis-url", "", "Redis URL; empty uses an in-process Redis")
			fs.BoolVar(&o.serve, "serve", false, "keep running after the sample, for other clients, until interrupted")
			fs.IntVar(&o.kafkaPort, "kafka-port", 0, "port of the in-process broker (0 picks a free one)")
			fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "give up when the sample is not processed within this time")
			fs.StringVar(&o.log.level, "log-level", "warn", "log level: trace, debug, info, warn or error")
			fs.StringVar(&o.log.format, "log-format", "auto", "log format: auto (console on a terminal, JSON otherwise), json or console")
			fs.fromEnv("redis-url", "REDIS_URL")
			fs.fromEnv("config")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				if err := o.check(); err != nil {
					return err
				}
				return runDemo(ctx, e, o)
			}
		},
	}
}

type demoOptions struct {
	records, partitions, show, kafkaPort int
	seed                                 uint64
	tenant, configPath, redisURL, crm    string
	contacts, updates                    float64
	serve                                bool
	timeout                              time.Duration
	log                                  logOptions
}

func (o *demoOptions) check() error {
	switch {
	case o.records <= 0:
		return usagef("--records %d: must be positive", o.records)
	case o.partitions <= 0:
		return usagef("--partitions %d: must be positive", o.partitions)
	case o.show < 0:
		return usagef("--show %d: must not be negative", o.show)
	case o.kafkaPort < 0 || o.kafkaPort > 65535:
		return usagef("--kafka-port %d: must be a port number", o.kafkaPort)
	case o.timeout <= 0:
		return usagef("--timeout %s: must be positive", o.timeout)
	case o.tenant == "":
		return usagef("--tenant: must not be empty")
	}
	if _, ok := engine.Model(o.crm); o.crm != "" && !ok {
		return usagef("--crm %q: allowed values are salesforce, zoho, hubspot, dynamics", o.crm)
	}
	for name, v := range map[string]float64{"--contacts": o.contacts, "--updates": o.updates} {
		if v < 0 || v > 1 {
			return usagef("%s %g: must be between 0 and 1", name, v)
		}
	}
	return nil
}

func runDemo(ctx context.Context, e *env, o demoOptions) error {
	log, err := o.log.logger(e)
	if err != nil {
		return err
	}
	cfg, err := demoConfig(o)
	if err != nil {
		return err
	}
	rdb, closeRedis, err := openRedis(ctx, redisconn.Options{URL: o.redisURL}, true)
	if err != nil {
		return err
	}
	defer closeRedis()
	redisDesc, namespace := "in-process Redis (miniredis)", "lc"
	if o.redisURL != "" {
		// A real Redis may hold live state: work beside it and clean up.
		namespace = "demo" + strconv.FormatInt(time.Now().UnixNano(), 36)
		redisDesc = "Redis " + redactURL(o.redisURL) + ", namespace " + namespace
		defer deleteNamespace(context.WithoutCancel(ctx), rdb, namespace)
	}

	topics := slices.Concat([]string{defaultRecordsTopic, defaultCommandsTopic, defaultDLQTopic, defaultRequestsTopic}, inputTopicsOf(cfg.Inputs()))
	slices.Sort(topics)
	kopts := []kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(int32(o.partitions), slices.Compact(topics)...)}
	if o.kafkaPort != 0 {
		kopts = append(kopts, kfake.Ports(o.kafkaPort))
	}
	broker, err := kfake.NewCluster(kopts...)
	if err != nil {
		return fmt.Errorf("start in-process kafka: %w", err)
	}
	defer broker.Close()
	brokers := broker.ListenAddrs()

	set := gen.New(gen.Options{Seed: o.seed, Tenant: o.tenant, Records: o.records, ContactShare: o.contacts, Updates: o.updates, CRM: o.crm})
	evs := set.Events()
	fmt.Fprintf(e.stdout, "leadconv demo: %d sample record events (tenant %s, seed %d)\n", len(evs), o.tenant, o.seed)
	fmt.Fprintf(e.stdout, "  in-process Kafka %s (%d partitions), %s\n\n", brokers[0], o.partitions, redisDesc)

	reg := prometheus.NewRegistry()
	parts := handlerParts{rdb: rdb, cfg: cfg, namespace: namespace, log: log, reg: reg}
	store := newReader(parts)
	p, err := pipeline.New(pipeline.Config{
		Brokers: brokers, Group: demoGroup, CommitInterval: 100 * time.Millisecond,
		Inputs: cfg.Inputs(), Logger: log, Registerer: reg,
	}, newOwners(parts), cfg)
	if err != nil {
		return err
	}
	runCtx, stopPipeline := context.WithCancel(ctx)
	defer stopPipeline()
	var runErr error
	runDone := make(chan struct{})
	go func() { runErr = p.Run(runCtx); close(runDone) }()
	// The pipeline must have drained and committed before the broker closes.
	stop := func() error {
		stopPipeline()
		<-runDone
		return runErr
	}
	defer func() { _ = stop() }()

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0))
	if err != nil {
		return err
	}
	defer cl.Close()
	start := time.Now()
	if err := produceEvents(ctx, cl, defaultRecordsTopic, evs); err != nil {
		return err
	}

	waitCtx, cancelWait := context.WithTimeout(ctx, o.timeout)
	defer cancelWait()
	// The input committed means every event was routed; then the by-tenant
	// topic committed means every event was applied and its commands acked.
	err = waitCommitted(waitCtx, kadm.NewClient(cl), demoGroup, defaultRecordsTopic, runDone)
	if err == nil {
		err = waitCommitted(waitCtx, kadm.NewClient(cl), demoGroup, pipeline.DefaultByTenantTopic, runDone)
	}
	if err == nil {
		err = waitSettled(waitCtx, p.Handler(), runDone)
	}
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, errStopped):
			return fmt.Errorf("pipeline stopped before the sample was processed: %w", stop())
		}
		return fmt.Errorf("waiting for the sample to be processed: %w", err)
	}
	elapsed := time.Since(start)

	cmds, next, err := readTopic(ctx, cl, defaultCommandsTopic, nil)
	if err != nil {
		return err
	}
	dead, _, err := readTopic(ctx, cl, defaultDLQTopic, nil)
	if err != nil {
		return err
	}
	final, err := store.Clusters(ctx, o.tenant)
	if err != nil {
		return fmt.Errorf("read clusters: %w", err)
	}
	rep := newDemoReport(set, final, o.crm)
	for _, r := range cmds {
		if err := rep.add(r); err != nil {
			return err
		}
	}
	rep.print(e.stdout, len(evs), len(dead), elapsed, o.show)

	if !o.serve {
		return stop()
	}
	fmt.Fprintf(e.stdout, "\nServing: Kafka broker at %s\n", brokers[0])
	fmt.Fprintf(e.stdout, "  produce record events to %s, read commands from %s; Ctrl-C stops\n", defaultRecordsTopic, defaultCommandsTopic)
	err = followCommands(ctx, cl, defaultCommandsTopic, next, rep, e)
	if serr := stop(); err == nil {
		err = serr
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// produceEvents writes evs to topic keyed tenant/object/id, as a CRM's
// change stream does: every event of one record lands on one partition, in
// order.
func produceEvents(ctx context.Context, cl *kgo.Client, topic string, evs []record.Event) error {
	recs := make([]*kgo.Record, len(evs))
	for i := range evs {
		b, err := json.Marshal(&evs[i])
		if err != nil {
			return fmt.Errorf("encode event %d: %w", i, err)
		}
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(evs[i].Tenant + "/" + string(evs[i].Object) + "/" + evs[i].ID), Value: b}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("produce sample: %w", err)
	}
	return nil
}

// errStopped: the pipeline stopped while waitCommitted waited for it.
var errStopped = errors.New("pipeline stopped")

// waitCommitted returns once group has committed the end offset of every
// partition of topic: the pipeline commits a batch only after its commands
// were acknowledged, so everything produced so far is then processed and
// its commands are on the commands topic. It returns errStopped when
// stopped is closed first.
func waitCommitted(ctx context.Context, adm *kadm.Client, group, topic string, stopped <-chan struct{}) error {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	return pollUntil(ctx, stopped, func() bool {
		committed, err := adm.FetchOffsets(ctx, group)
		return err == nil && caughtUp(ends, committed)
	})
}

// waitSettled waits until the pipeline holds no plan back: the settle
// windows the input opened closed on the wall clock, their commands
// acknowledged and their marks written.
func waitSettled(ctx context.Context, h *pipeline.Handler, stopped <-chan struct{}) error {
	return pollUntil(ctx, stopped, func() bool {
		unplanned, unwritten := h.Pending()
		return unplanned+unwritten == 0
	})
}

// pollUntil checks done every 50ms until it holds; errStopped when stopped
// is closed first.
func pollUntil(ctx context.Context, stopped <-chan struct{}, done func() bool) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !done() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-stopped:
			return errStopped
		case <-tick.C:
		}
	}
	return nil
}

func caughtUp(ends kadm.ListedOffsets, committed kadm.OffsetResponses) bool {
	ok := true
	ends.Each(func(end kadm.ListedOffset) {
		if end.Offset == 0 {
			return
		}
		c, found := committed.Lookup(end.Topic, end.Partition)
		if !found || c.Err != nil || c.At < end.Offset {
			ok = false
		}
	})
	return ok
}

// readTopic reads topic from the offsets in from (nil: the start) to its
// current end and returns the records and the offsets after them.
func readTopic(ctx context.Context, cl *kgo.Client, topic string, from map[int32]int64) ([]*kgo.Record, map[int32]int64, error) {
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	next := map[int32]int64{}
	offsets := map[int32]kgo.Offset{}
	var want int64
	ends.Each(func(o kadm.ListedOffset) {
		next[o.Partition] = o.Offset
		at := from[o.Partition]
		if o.Offset > at {
			offsets[o.Partition] = kgo.NewOffset().At(at)
			want += o.Offset - at
		}
	})
	if want == 0 {
		return nil, next, nil
	}
	rd, err := kgo.NewClient(kgo.SeedBrokers(cl.OptValue(kgo.SeedBrokers).([]string)...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}))
	if err != nil {
		return nil, nil, err
	}
	defer rd.Close()
	var out []*kgo.Record
	for {
		fs := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return nil, nil, fmt.Errorf("read %s: %w", topic, ferr)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < next[r.Partition] {
				out = append(out, r)
			}
		})
		if int64(len(out)) >= want {
			return out, next, nil
		}
	}
}

// followCommands prints every command published after the offsets in from
// until ctx is cancelled.
func followCommands(ctx context.Context, cl *kgo.Client, topic string, from map[int32]int64, rep *demoReport, e *env) error {
	offsets := map[int32]kgo.Offset{}
	for p, o := range from {
		offsets[p] = kgo.NewOffset().At(o)
	}
	rd, err := kgo.NewClient(kgo.SeedBrokers(cl.OptValue(kgo.SeedBrokers).([]string)...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}))
	if err != nil {
		return err
	}
	defer rd.Close()
	for {
		fs := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		for it := fs.RecordIter(); !it.Done(); {
			line, err := rep.line(it.Next())
			if err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, line)
		}
	}
}

// redactURL drops the password of a Redis URL for display.
func redactURL(u string) string {
	opts, err := redis.ParseURL(u)
	if err != nil {
		return "(invalid URL)"
	}
	return opts.Addr
}

// demoConfig is the service config of the demo: --config, else the shipped
// defaults of --crm's profile (or of the default profile). With both, the
// config must give the sample's tenant that crm.
func demoConfig(o demoOptions) (*config.File, error) {
	if o.configPath == "" && o.crm != "" {
		return config.Parse([]byte("defaults:\n  engine:\n    crm: " + o.crm + "\n"))
	}
	cfg, err := loadConfig(o.configPath)
	if err != nil || o.crm == "" {
		return cfg, err
	}
	t, err := cfg.Tenant(o.tenant)
	if err != nil {
		return nil, err
	}
	if t.Engine.CRM != o.crm {
		return nil, usagef("--crm %s: %s gives tenant %s crm %q", o.crm, o.configPath, o.tenant, t.Engine.CRM)
	}
	return cfg, nil
}
