package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/leadconv/leadconv/consumer"
	"github.com/leadconv/leadconv/internal/ops"
	"github.com/leadconv/leadconv/matcher"
)

func replayCommand() *command {
	return &command{
		name:     "replay",
		synopsis: "re-read the records topic into the matcher: repairs, backfills, dry runs",
		usage:    "--from earliest|TIME|P:O,... [--to TIME|P:O,...] [--dry-run] [--output-topic T] [--namespace N] [flags]\n       leadconv replay --rebuild [--namespace N] [--output-topic T] [flags]",
		help: `Re-reads the by-tenant topic (--by-tenant-topic; the records topic itself
with --input-keyed-by-tenant) from --from up to --to (default: its end when
the replay starts) and runs every event through the pipeline as "leadconv
run" does: one owner per partition, the matcher state in Redis under
--namespace, the engine, the CloudEvents encoding. It reads partitions
directly, outside the consumer group, so the live service is not
disturbed, and stops at the end position. The replay is the single writer
of its namespace: do not replay into the namespace the service writes.

Positions:
  earliest            the start of every partition
  2026-01-05T09:00:00Z  (RFC 3339) the first record at or after that time
                      (--to: the records before it)
  0:1200,3:0          partition:offset pairs; --from replays only the
                      partitions listed, --to bounds those listed (exclusive)

Replaying the topic from the start into an empty namespace yields the same
command ids as live processing did (a tenant's order is its partition's
order, which the replay keeps); events the namespace already holds
change and plan nothing: what they planned was emitted.

Output: the commands topic, or --output-topic. --dry-run never touches the
live commands topic: commands go to --output-topic (which must differ from
the commands topic) or, without it, to stdout as CloudEvents JSON lines. A
dry run without an explicit --namespace builds its state in a throwaway
namespace, deleted at the end, so the live state is untouched either way.

--rebuild builds the namespace from scratch: marks it rebuilding, deletes
its other keys (on every master of a Redis Cluster), replays from earliest
to the end and only then marks it complete (<ns>:meta), so an interrupted
rebuild is never taken for state: the service refuses to apply until a
rebuild completes. This is the repair when Redis lost the state ("leadconv
run" stops its partitions, logs "matcher state lost" and /readyz names this
command); restart the service after it.

A plain replay into a namespace without the state marker is refused with
that hint: when it holds keys (state lost, then partly rewritten, or an
interrupted rebuild), or when it is empty while --group (the service's
group) has committed offsets of the topic (Redis came back empty, or a new
namespace): either way a replay on top would build partial records, and
--rebuild is the command.

Backfill after a rule change: replay --rebuild under a fresh --namespace
with an --output-topic beside the live one, then switch the service to
that namespace.

Records that cannot be decoded are counted and skipped (the live service
already dead-lettered them). Progress: a bar with rate and ETA on a
terminal, a structured log line every 10 seconds otherwise.

Examples:
  leadconv replay --from earliest --dry-run > commands.jsonl
  leadconv replay --from 2026-03-01T00:00:00Z --to 2026-03-02T00:00:00Z --dry-run --output-topic leadconv.commands.check
  leadconv replay --rebuild --namespace lc
  leadconv replay --rebuild --namespace lc2 --output-topic leadconv.commands.v2`,
		setup: func(fs *flagSet) func(context.Context, *env, []string) error {
			var o serviceOptions
			o.register(fs)
			from := fs.String("from", "", "start position: earliest, an RFC 3339 time or partition:offset pairs (required)")
			to := fs.String("to", "", "end position (exclusive): an RFC 3339 time or partition:offset pairs; empty is the end at start")
			dryRun := fs.Bool("dry-run", false, "never write to the commands topic: write to --output-topic or stdout, and into a throwaway namespace unless --namespace is given")
			output := fs.String("output-topic", "", "topic for the commands instead of the commands topic")
			rebuild := fs.Bool("rebuild", false, "build --namespace from scratch: delete its keys, replay from earliest, then mark it complete (the repair after Redis lost the state)")
			group := fs.String("group", "leadconv", "the service's consumer group: a plain replay into an empty namespace without state marker is refused while it has committed offsets")
			fs.fromEnv("group")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				if err := o.check(); err != nil {
					return err
				}
				if *rebuild {
					switch {
					case *from != "" && *from != "earliest":
						return usagef("--rebuild replays from earliest: --from %s is not allowed", *from)
					case *to != "":
						return usagef("--rebuild replays to the end: --to is not allowed")
					case *dryRun:
						return usagef("--rebuild writes the namespace: --dry-run is not allowed (a dry run builds a throwaway namespace from scratch already)")
					}
					*from = "earliest"
				}
				fromPos, err := parsePosition(*from, true)
				if err != nil {
					return usagef("--from: %v", err)
				}
				toPos, err := parsePosition(*to, false)
				if err != nil {
					return usagef("--to: %v", err)
				}
				nsGiven := false
				fs.Visit(func(f *flag.Flag) { nsGiven = nsGiven || f.Name == "namespace" })
				rc := replayConfig{o: o, from: fromPos, to: toPos, dryRun: *dryRun, output: *output, throwaway: *dryRun && !nsGiven,
					rebuild: *rebuild, group: *group}
				switch {
				case *dryRun && *output == o.commandsTopic:
					return usagef("--dry-run: --output-topic must not be the commands topic %s", o.commandsTopic)
				case *dryRun && *output == "":
					rc.stdout = e.stdout
				case *output == "":
					rc.output = o.commandsTopic
				}
				return runReplay(ctx, e, rc)
			}
		},
	}
}

// position is a parsed --from or --to value.
type position struct {
	earliest bool
	at       time.Time
	offsets  map[int32]int64 // nil unless partition:offset pairs
}

// parsePosition parses earliest (allowed for --from only), an RFC 3339
// time or partition:offset pairs. An empty s is the zero position.
func parsePosition(s string, from bool) (position, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		if from {
			return position{}, errors.New("required: earliest, an RFC 3339 time or partition:offset pairs")
		}
		return position{}, nil
	case s == "earliest":
		if !from {
			return position{}, errors.New("earliest is a start position; leave --to empty to replay to the end")
		}
		return position{earliest: true}, nil
	case !strings.Contains(s, ":") || strings.ContainsAny(s, "T-"):
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return position{}, fmt.Errorf("%q is neither earliest, an RFC 3339 time nor partition:offset pairs", s)
		}
		return position{at: t}, nil
	}
	offs := map[int32]int64{}
	for pair := range strings.SplitSeq(s, ",") {
		ps, os, ok := strings.Cut(strings.TrimSpace(pair), ":")
		p, perr := strconv.ParseInt(ps, 10, 32)
		o, oerr := strconv.ParseInt(os, 10, 64)
		if !ok || perr != nil || oerr != nil || p < 0 || o < 0 {
			return position{}, fmt.Errorf("%q: want partition:offset with non-negative integers", pair)
		}
		if _, dup := offs[int32(p)]; dup {
			return position{}, fmt.Errorf("partition %d given twice", p)
		}
		offs[int32(p)] = o
	}
	return position{offsets: offs}, nil
}

type replayConfig struct {
	o         serviceOptions
	from, to  position
	dryRun    bool
	output    string    // output topic; empty with stdout set
	stdout    io.Writer // dry run without an output topic
	throwaway bool
	rebuild   bool
	group     string // the service's, whose committed offsets say state existed
}

// span is the part of one partition a replay reads: [start, end).
type span struct {
	partition  int32
	start, end int64
}

// resolveSpans turns the positions into offsets of every partition to read.
func resolveSpans(ctx context.Context, adm *kadm.Client, topic string, from, to position) ([]span, error) {
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("start offsets of %s: %w", topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	var fromTime, toTime kadm.ListedOffsets
	if !from.at.IsZero() {
		if fromTime, err = adm.ListOffsetsAfterMilli(ctx, from.at.UnixMilli(), topic); err != nil {
			return nil, fmt.Errorf("offsets of %s at %s: %w", topic, from.at, err)
		}
	}
	if !to.at.IsZero() {
		if toTime, err = adm.ListOffsetsAfterMilli(ctx, to.at.UnixMilli(), topic); err != nil {
			return nil, fmt.Errorf("offsets of %s at %s: %w", topic, to.at, err)
		}
	}
	var out []span
	known := map[int32]bool{}
	ends.Each(func(end kadm.ListedOffset) {
		p := end.Partition
		known[p] = true
		first, _ := starts.Lookup(topic, p)
		s := span{partition: p, start: first.Offset, end: end.Offset}
		switch {
		case from.offsets != nil:
			o, ok := from.offsets[p]
			if !ok {
				return
			}
			s.start = max(o, first.Offset)
		case fromTime != nil:
			if lo, ok := fromTime.Lookup(topic, p); ok {
				s.start = lo.Offset
			}
		}
		switch {
		case to.offsets != nil:
			if o, ok := to.offsets[p]; ok {
				s.end = min(o, s.end)
			}
		case toTime != nil:
			if lo, ok := toTime.Lookup(topic, p); ok {
				s.end = min(lo.Offset, s.end)
			}
		}
		if s.start < s.end {
			out = append(out, s)
		}
	})
	for _, pos := range []position{from, to} {
		for p := range pos.offsets {
			if !known[p] {
				return nil, fmt.Errorf("topic %s has no partition %d", topic, p)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].partition < out[j].partition })
	return out, nil
}

func runReplay(ctx context.Context, e *env, rc replayConfig) error {
	o := rc.o
	log, cfg, rdb, closeRedis, err := o.open(e)
	if err != nil {
		return err
	}
	defer closeRedis()
	tuneGC(log)
	kopts, err := connectKafka(ctx, &o.kafka, o.brokerList())
	if err != nil {
		return err
	}
	namespace := o.namespace
	if rc.throwaway {
		namespace = "dryrun" + strconv.FormatInt(time.Now().UnixNano(), 36)
		defer func() { _ = deleteNamespace(context.WithoutCancel(ctx), rdb, namespace) }()
	}

	cl, err := kgo.NewClient(append(kopts, kgo.SeedBrokers(o.brokerList()...), kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchMaxBytes(int32(o.maxProduceBytes)))...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()
	if err := ops.AwaitDependencies(ctx, log, o.redisDep(rdb), o.kafkaDep(kopts)); err != nil {
		return err
	}
	topic := o.ownedTopic()
	adm := kadm.NewClient(cl)
	spans, err := resolveSpans(ctx, adm, topic, rc.from, rc.to)
	if err != nil {
		return err
	}
	switch {
	case rc.rebuild:
		// Marked first, so that no owner takes the namespace for state
		// from then on; the marker itself stays.
		if err := matcher.BeginRebuild(ctx, rdb, namespace); err != nil {
			return fmt.Errorf("replay --rebuild: %w", err)
		}
		if err := deleteNamespace(ctx, rdb, namespace, matcher.MarkerKey(namespace)); err != nil {
			return fmt.Errorf("replay --rebuild: %w", err)
		}
		log.Info().Str("namespace", namespace).Msg("replay --rebuild: namespace marked rebuilding, its keys deleted")
	case !rc.throwaway:
		if err := checkReplayTarget(ctx, rdb, adm, namespace, rc.group, topic); err != nil {
			return err
		}
	}
	var total int64
	for _, s := range spans {
		total += s.end - s.start
	}
	target := rc.output
	if target == "" {
		target = "stdout"
	}
	log.Info().Str("topic", topic).Str("output", target).Str("namespace", namespace).
		Bool("dry_run", rc.dryRun).Bool("rebuild", rc.rebuild).Int("partitions", len(spans)).Int64("records", total).Msg("replay starting")

	h := newHandler(handlerParts{
		rdb: rdb, cfg: cfg, namespace: namespace, residentBytes: o.cacheBytes, lifecycleBytes: o.lifecycleBytes, commandsTopic: rc.output,
		maxRecordBytes: o.maxRecordBytes, structured: rc.stdout != nil || o.contentMode == "structured",
		log: log, reg: newRegistry(), rebuild: rc.rebuild,
	})
	prog := ops.NewProgress(e.stderr, log, "records")
	prog.SetTotal(total)
	progCtx, stopProg := context.WithCancel(ctx)
	progDone := make(chan struct{})
	go func() { prog.Run(progCtx); close(progDone) }()

	r := &replayer{h: h, cl: cl, log: log, prog: prog, stdout: rc.stdout, topic: topic, namespace: namespace}
	start := time.Now()
	err = r.run(ctx, spans)
	if err == nil {
		// The settle windows still open at the end of the input close now,
		// in event time as the rest: a replay is deterministic.
		err = r.flush(ctx)
	}
	stopProg()
	<-progDone
	if err != nil {
		return err
	}
	if rc.rebuild {
		if err := matcher.EndRebuild(ctx, rdb, namespace); err != nil {
			return fmt.Errorf("replay --rebuild: %w", err)
		}
	}
	log.Info().Int64("records", prog.Done()).Int("commands", r.out).Int("skipped", r.skipped).
		Dur("elapsed", time.Since(start)).Msg("replay done")
	fmt.Fprintf(e.stderr, "replay: %d records, %d commands to %s, %d undecodable records skipped, in %s\n",
		prog.Done(), r.out, target, r.skipped, time.Since(start).Round(time.Millisecond))
	return nil
}

// checkReplayTarget refuses a plain replay into a namespace without the
// state marker that holds keys (its state was lost and partly rewritten, or
// a rebuild was interrupted) or whose topic group has committed offsets
// (Redis came back empty): events the namespace lost would be skipped as
// stale behind what was written since, or patches applied without their
// base. Both need a rebuild from scratch, which the error names.
func checkReplayTarget(ctx context.Context, rdb redis.UniversalClient, adm *kadm.Client, ns, group, topic string) error {
	m, err := matcher.ReadMarker(ctx, rdb, ns)
	if err != nil || m.Created != "" {
		return err
	}
	var why string
	switch has, err := namespaceHasKeys(ctx, rdb, ns); {
	case err != nil:
		return err
	case m.Rebuilding != "":
		why = "a rebuild started at " + m.Rebuilding + " did not complete"
	case has:
		why = "it holds keys but no state marker (" + ns + ":meta): Redis lost its state"
	default:
		committed, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return fmt.Errorf("replay: committed offsets of group %s: %w", group, err)
		}
		lost := false
		committed.Each(func(o kadm.OffsetResponse) { lost = lost || (o.Topic == topic && o.Err == nil && o.At >= 0) })
		if !lost {
			return nil // a new namespace
		}
		why = "it is empty while group " + group + " has committed offsets of " + topic + ": Redis came back empty (or it is a new namespace)"
	}
	return fmt.Errorf("replay: namespace %q: %s; a replay on top would build partial records: build it from scratch with %s", ns, why, matcher.RebuildCommand(ns))
}

// replayer feeds the records of the spans through the handler.
type replayer struct {
	h      flushHandler
	cl     *kgo.Client
	log    zerolog.Logger
	prog   *ops.Progress
	stdout io.Writer
	topic  string
	// namespace is where the replay writes, for the fenced error.
	namespace string

	mu           sync.Mutex // guards stdout and the counts
	out, skipped int
}

func (r *replayer) run(ctx context.Context, spans []span) error {
	if len(spans) == 0 {
		return nil
	}
	offsets := map[int32]kgo.Offset{}
	ends := map[int32]int64{}
	for _, s := range spans {
		offsets[s.partition] = kgo.NewOffset().At(s.start)
		ends[s.partition] = s.end
	}
	// Control records (transaction markers) are kept so that the offset
	// before a span's end is always seen, even when it is a marker.
	rd, err := kgo.NewClient(append(r.cl.Opts(), kgo.KeepControlRecords(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{r.topic: offsets}), kgo.FetchMaxBytes(32<<20))...)
	if err != nil {
		return fmt.Errorf("kafka reader: %w", err)
	}
	defer rd.Close()
	for len(ends) > 0 {
		fs := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			ferr = fmt.Errorf("fetch %s/%d: %w", t, p, err)
		})
		if ferr != nil {
			return ferr
		}
		// Partitions run concurrently, each in offset order, as in the
		// live service.
		byPart := map[int32][]*kgo.Record{}
		fs.EachRecord(func(rec *kgo.Record) {
			if end, ok := ends[rec.Partition]; ok && rec.Offset < end && !rec.Attrs.IsControl() {
				byPart[rec.Partition] = append(byPart[rec.Partition], rec)
			}
		})
		var done []int32
		fs.EachPartition(func(ftp kgo.FetchTopicPartition) {
			end, ok := ends[ftp.Partition]
			if n := len(ftp.Records); ok && n > 0 && ftp.Records[n-1].Offset >= end-1 {
				done = append(done, ftp.Partition)
			}
		})
		g, gctx := errgroup.WithContext(ctx)
		for p, recs := range byPart {
			g.Go(func() error { return r.batch(gctx, p, recs) })
		}
		if err := g.Wait(); err != nil {
			return err
		}
		if len(done) > 0 {
			rd.PauseFetchPartitions(map[string][]int32{r.topic: done})
			for _, p := range done {
				delete(ends, p)
			}
		}
	}
	return nil
}

// batch handles one partition's records, retrying transient failures with
// backoff, and writes the output.
func (r *replayer) batch(ctx context.Context, partition int32, recs []*kgo.Record) error {
	var res consumer.Result
	for attempt := 0; ; attempt++ {
		var err error
		if res, err = r.h.Handle(ctx, r.topic, partition, recs); err == nil {
			break
		}
		if errors.Is(err, matcher.ErrFenced) {
			// Another writer (the live service, or a second replay) took a
			// tenant of the namespace: retrying cannot succeed, and the two
			// would interleave their writes.
			return fmt.Errorf("replay: partition %d: another writer took a tenant of namespace %q (is leadconv run or another replay using it? stop it, or replay into another --namespace): %w", partition, r.namespace, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d := consumer.Backoff(attempt, 50*time.Millisecond, 5*time.Second, rand.Int64N)
		r.log.Warn().Err(err).Int32("partition", partition).Int64("offset", recs[0].Offset).
			Dur("retry_in", d).Msg("replay batch failed; retrying")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
	if err := r.emit(ctx, res.Out); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.skipped += len(res.Poison)
	r.prog.Add(int64(len(recs)))
	return nil
}

// flush emits the plans the settle windows still hold at the end of the
// input, then writes their marks.
func (r *replayer) flush(ctx context.Context) error {
	out, err := r.h.Flush(ctx)
	if err == nil {
		err = r.emit(ctx, out)
	}
	if err == nil {
		err = r.h.Sync(ctx)
	}
	if errors.Is(err, matcher.ErrFenced) {
		return fmt.Errorf("replay: another writer took a tenant of namespace %q (is leadconv run or another replay using it? stop it, or replay into another --namespace): %w", r.namespace, err)
	}
	return err
}

// emit produces out to the output topic or writes it to stdout.
func (r *replayer) emit(ctx context.Context, out []*kgo.Record) error {
	if r.stdout == nil && len(out) > 0 {
		if err := r.cl.ProduceSync(ctx, out...).FirstErr(); err != nil {
			return fmt.Errorf("produce commands: %w", err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stdout != nil {
		for _, o := range out {
			if _, err := r.stdout.Write(append(o.Value, '\n')); err != nil {
				return err
			}
		}
	}
	r.out += len(out)
	return nil
}
