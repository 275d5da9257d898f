package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/leadconv/leadconv/internal/redisconn"
	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/matcher/eval"
	"github.com/leadconv/leadconv/record"
)

func evalCommand() *command {
	return &command{
		name:     "eval",
		synopsis: "measure matching accuracy on a data set with ground truth",
		usage:    "--input FILE[,FILE...] --format febrl|csv|jsonl [flags]",
		help: `Streams a data set's records through the matcher (the Redis store, as the
service runs it) and prints pairwise precision, recall and F1 with cluster
counts. Several --input files of one format are read as one data set (Febrl
4a and 4b as their union).

--config is the service config (examples/leadconv.yaml: the rules of the
defaults block, or of --tenant's block, with the tenant's contact field map)
or a bare matching rules file (the "matching:" block alone, as in
examples/eval/*.yaml); without it the shipped default rules apply.

Redis: --redis-url, else $REDIS_URL, else an in-process Redis. The state is
built under a fresh namespace, deleted afterwards unless --keep.

--clusters writes every record's final cluster as {"id","cluster_id"} lines
and --truth the ground truth as {"id","entity"} lines, the two inputs of
shared/eval/score.py.

Examples:
  leadconv eval --config examples/eval/febrl1.yaml --format febrl --input ../shared/eval/febrl/dataset1.csv
  leadconv gen --crm salesforce --format eval --output sf.jsonl
  leadconv eval --config examples/salesforce.yaml --format jsonl --input sf.jsonl`,
		setup: func(fs *flagSet) func(context.Context, *env, []string) error {
			cfgPath := fs.String("config", "", "service config or matching rules file; empty uses the shipped default rules")
			tenant := fs.String("tenant", "", "with a service config: the tenant whose rules apply (default: the defaults block)")
			input := fs.String("input", "", "data set file(s), comma separated")
			format := fs.String("format", "", "input format: "+strings.Join(eval.Formats, ", "))
			idCol := fs.String("id-column", "", "CSV: the id column (default: id or unique_id)")
			entityCol := fs.String("entity-column", "", "CSV: the ground-truth column (default: entity, cluster or true id)")
			redisURL := fs.String("redis-url", "", "Redis URL; empty uses $REDIS_URL or an in-process Redis")
			clustersOut := fs.String("clusters", "", "write {\"id\",\"cluster_id\"} lines to this file")
			truthOut := fs.String("truth", "", "write {\"id\",\"entity\"} lines to this file")
			oracle := fs.Bool("oracle", false, "cluster with the in-memory oracle (connected components) instead of the Redis store")
			batch := fs.Int("batch", 1000, "events per store batch")
			keep := fs.Bool("keep", false, "keep the state in Redis after the run")
			fs.fromEnv("redis-url", "REDIS_URL")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				if *input == "" {
					return usagef("--input is required")
				}
				if *format == "" {
					return usagef("--format is required (%s)", strings.Join(eval.Formats, ", "))
				}
				if *batch <= 0 {
					return usagef("--batch %d: must be positive", *batch)
				}
				mf := &matchingFile{rules: matcher.DefaultConfig()}
				if *cfgPath != "" {
					var err error
					if mf, err = loadMatching(*cfgPath); err != nil {
						return err
					}
				} else if *tenant != "" {
					return usagef("--tenant needs --config (a service config)")
				}
				rs, err := mf.ruleset(*tenant)
				if err != nil {
					return err
				}
				ds, err := eval.Load(*format, eval.CSVOptions{ID: *idCol, Entity: *entityCol}, strings.Split(*input, ",")...)
				if err != nil {
					return err
				}

				var c eval.Clusterer = eval.Oracle{Rules: rs}
				var memory func() (int64, bool)
				if !*oracle {
					rdb, closeRedis, err := openRedis(ctx, redisconn.Options{URL: *redisURL}, true)
					if err != nil {
						return err
					}
					defer closeRedis()
					ns := "eval" + strconv.FormatInt(time.Now().UnixNano(), 36)
					if !*keep {
						defer func() { _ = deleteNamespace(context.WithoutCancel(ctx), rdb, ns) }()
					}
					sc := &storeClusterer{
						store: matcher.NewStore(rdb, matcher.StoreOptions{Namespace: ns, Rules: func(string) (*matcher.Ruleset, error) { return rs, nil }}),
						batch: *batch,
					}
					c = sc
					before, known := usedMemory(ctx, rdb)
					memory = func() (int64, bool) {
						after, ok := usedMemory(ctx, rdb)
						return after - before, known && ok
					}
				}

				start := time.Now()
				scores, assign, err := eval.Run(ctx, c, ds)
				if err != nil {
					return err
				}
				elapsed := time.Since(start)
				fmt.Fprintln(e.stdout, scores)
				fmt.Fprintf(e.stdout, "elapsed=%s records_per_second=%.0f", elapsed.Round(time.Millisecond), float64(len(ds.Records))/elapsed.Seconds())
				if memory != nil {
					if d, ok := memory(); ok && len(ds.Records) > 0 {
						fmt.Fprintf(e.stdout, " redis_bytes_per_record=%d", d/int64(len(ds.Records)))
					}
				}
				fmt.Fprintln(e.stdout)
				if *clustersOut != "" {
					if err := writeOutput(e.stdout, *clustersOut, func(w io.Writer) error { return eval.WriteClusters(w, assign) }); err != nil {
						return err
					}
				}
				if *truthOut != "" {
					if err := writeOutput(e.stdout, *truthOut, func(w io.Writer) error { return eval.WriteTruth(w, ds) }); err != nil {
						return err
					}
				}
				return nil
			}
		},
	}
}

// storeClusterer clusters through the Redis store: records applied as
// upserts in batches, then the tenant's clusters listed.
type storeClusterer struct {
	store *matcher.Store
	batch int
}

func (c *storeClusterer) Cluster(ctx context.Context, recs []record.Record) ([][]record.Ref, error) {
	events := make([]record.Event, 0, c.batch)
	for i := 0; i < len(recs); i += c.batch {
		events = events[:0]
		for _, r := range recs[i:min(i+c.batch, len(recs))] {
			events = append(events, record.Event{Record: r, Op: record.OpUpsert})
		}
		if _, err := c.store.Apply(ctx, events); err != nil {
			return nil, fmt.Errorf("apply records %d..%d: %w", i, i+len(events)-1, err)
		}
	}
	m, err := c.store.Clusters(ctx, eval.Tenant)
	if err != nil {
		return nil, err
	}
	out := make([][]record.Ref, 0, len(m))
	for _, members := range m {
		out = append(out, members)
	}
	return out, nil
}

// usedMemory reads used_memory from INFO memory; false when the server does
// not report it (the in-process Redis).
func usedMemory(ctx context.Context, rdb redis.UniversalClient) (int64, bool) {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// deleteNamespace removes every key of a namespace but keep; on a Redis
// Cluster from every master, as SCAN sees one node only.
func deleteNamespace(ctx context.Context, rdb redis.UniversalClient, ns string, keep ...string) error {
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return deleteNamespace(ctx, c, ns, keep...)
		})
	}
	// One UNLINK per key: on a cluster master the namespace's keys lie in
	// several slots (each tenant's, and the namespace marker's), and one
	// command may not span slots.
	iter := rdb.Scan(ctx, 0, ns+":*", 1000).Iterator()
	pipe := rdb.Pipeline()
	for iter.Next(ctx) {
		if slices.Contains(keep, iter.Val()) {
			continue
		}
		pipe.Unlink(ctx, iter.Val())
		if pipe.Len() == 1000 {
			if _, err := pipe.Exec(ctx); err != nil {
				return fmt.Errorf("delete the keys of namespace %q: %w", ns, err)
			}
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("scan the keys of namespace %q: %w", ns, err)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("delete the keys of namespace %q: %w", ns, err)
	}
	return nil
}

// namespaceHasKeys says whether any key of the namespace exists, on a
// Redis Cluster on any master.
func namespaceHasKeys(ctx context.Context, rdb redis.UniversalClient, ns string) (bool, error) {
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		var found atomic.Bool
		err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			has, err := namespaceHasKeys(ctx, c, ns)
			if has {
				found.Store(true)
			}
			return err
		})
		return found.Load(), err
	}
	iter := rdb.Scan(ctx, 0, ns+":*", 1000).Iterator()
	has := iter.Next(ctx)
	if err := iter.Err(); err != nil {
		return false, fmt.Errorf("scan the keys of namespace %q: %w", ns, err)
	}
	return has, nil
}
