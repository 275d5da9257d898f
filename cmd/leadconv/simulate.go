package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/consumer"
	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/internal/pipeline"
	"github.com/leadconv/leadconv/internal/redisconn"
	"github.com/leadconv/leadconv/record"
)

func simulateCommand() *command {
	return &command{
		name:     "simulate",
		synopsis: "dry-run a JSON-lines file of record events offline and print the commands",
		usage:    "--input FILE [--config FILE] [flags]",
		help: `Runs record events from a file through the same pipeline as "leadconv run"
(decoding, the matcher on an in-process Redis, the engine, the CloudEvents
encoding), with no Kafka and nothing installed, and prints every command as
a CloudEvent in JSON (structured content mode), one per line, on stdout. A
summary goes to stderr: events read, commands by type, and each rejected
line with its dead-letter code and the failing JSON path and rule (never
the value), as the service writes them to the dead-letter topic:

  line 17: schema_violation /created_at: format date-time

The exit status is 1 when any line was rejected (after printing every
command), unless --allow-rejected is given.

--input holds one record event per line, as on the records topic (plain
JSON or a structured-mode CloudEvent): the output of "leadconv gen". Without
--config the shipped defaults apply. Lines are applied in batches of
--batch, as the service applies a fetched batch; a state is built from
nothing on each run. Plans compose as in the service: a cluster is planned
once its tenant's settle window passed without a change, measured in event
time (the records' modified_at), so the output does not depend on the
machine; whatever is still pending at the end of the input is planned then.
The summary counts what a writer would do: distinct leads converted,
contacts merged away, reviews. --report writes each cluster's plans in
words.

Examples:
  leadconv gen --records 1000 --updates 0.1 --output events.jsonl
  leadconv simulate --input events.jsonl > commands.jsonl
  leadconv simulate --config examples/leadconv.yaml --input events.jsonl | jq -c '{type, subject}'`,
		setup: func(fs *flagSet) func(context.Context, *env, []string) error {
			input := fs.String("input", "", "JSON-lines file of record events; - reads stdin")
			cfgPath := fs.String("config", "", "service config file; empty uses the shipped defaults")
			output := fs.String("output", "-", "output file of the CloudEvents JSON lines; - is stdout")
			batch := fs.Int("batch", 500, "events per batch")
			changes := fs.Bool("changes", false, "also print a cluster.changed event per cluster change")
			report := fs.String("report", "", "also write what each cluster's commands do, in words, to this file (- is stderr)")
			maxBytes := fs.Int("max-record-bytes", pipeline.DefaultMaxRecordBytes, "longest accepted line; longer ones are rejected as oversize")
			allowRejected := fs.Bool("allow-rejected", false, "exit 0 even when lines were rejected")
			var lo logOptions
			fs.StringVar(&lo.level, "log-level", "warn", "log level: trace, debug, info, warn or error")
			fs.StringVar(&lo.format, "log-format", "auto", "log format: auto (console on a terminal, JSON otherwise), json or console")
			fs.fromEnv("config")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				if *input == "" {
					return usagef("--input is required")
				}
				if *batch <= 0 {
					return usagef("--batch %d: must be positive", *batch)
				}
				if *maxBytes <= 0 {
					return usagef("--max-record-bytes %d: must be positive", *maxBytes)
				}
				log, err := lo.logger(e)
				if err != nil {
					return err
				}
				cfg, err := loadConfig(*cfgPath)
				if err != nil {
					return err
				}
				in := e.stdin
				if *input != "-" {
					f, err := os.Open(*input)
					if err != nil {
						return err
					}
					defer f.Close()
					in = f
				}
				rdb, closeRedis, err := openRedis(ctx, redisconn.Options{}, true)
				if err != nil {
					return err
				}
				defer closeRedis()
				changesTopic := ""
				if *changes {
					changesTopic = "leadconv.changes"
				}
				h := newHandler(handlerParts{
					rdb: rdb, cfg: cfg, namespace: "lc", commandsTopic: defaultCommandsTopic, changesTopic: changesTopic,
					maxRecordBytes: *maxBytes, structured: true, log: log, reg: prometheus.NewRegistry(),
				})
				var sum simSummary
				err = writeOutput(e.stdout, *output, func(w io.Writer) error {
					return simulate(ctx, in, *batch, *maxBytes, h, w, &sum)
				})
				sum.print(e.stderr)
				if err == nil && *report != "" {
					err = writeOutput(e.stderr, *report, sum.report)
				}
				if err == nil && len(sum.rejected) > 0 && !*allowRejected {
					return fmt.Errorf("%d line(s) rejected (--allow-rejected to accept that)", len(sum.rejected))
				}
				return err
			}
		},
	}
}

// simSummary counts what a simulation did.
type simSummary struct {
	lines, events, out int
	byType             map[string]int
	rejected           []simRejection
	converted          map[string]bool // leads
	merged             int             // contacts merged away
	reviews            int
	names              map[record.Ref]string
	clusters           map[string][]engine.Command // every command, by cluster, in order
}

// simRejection is a rejected line: its number, code and reason.
type simRejection struct {
	line         int
	code, reason string
}

// flushHandler is a handler holding plans back until the end of the input.
type flushHandler interface {
	consumer.Handler
	Flush(ctx context.Context) ([]*kgo.Record, error)
	Sync(ctx context.Context) error
}

// simulate feeds the lines of in to h in batches as records of one
// partition, the line number as offset, and writes the values of the
// produced records as lines to w; at the end it flushes the plans h still
// holds back.
func simulate(ctx context.Context, in io.Reader, batch, maxBytes int, h flushHandler, w io.Writer, sum *simSummary) error {
	sum.byType, sum.converted = map[string]int{}, map[string]bool{}
	sum.names, sum.clusters = map[record.Ref]string{}, map[string][]engine.Command{}
	emit := func(out []*kgo.Record) error {
		for _, r := range out {
			if t := ceType(r); t != "" {
				sum.byType[t]++
			}
			sum.out++
			sum.count(r)
			if _, err := w.Write(append(bytes.TrimSpace(r.Value), '\n')); err != nil {
				return err
			}
		}
		return nil
	}
	sc := bufio.NewScanner(in)
	// One byte over the limit still scans, so the handler rejects the line
	// as oversize instead of the scanner stopping the run.
	sc.Buffer(make([]byte, 0, 64<<10), maxBytes+2)
	recs := make([]*kgo.Record, 0, batch)
	flush := func() error {
		if len(recs) == 0 {
			return nil
		}
		res, err := h.Handle(ctx, defaultRecordsTopic, 0, recs)
		if err != nil {
			return fmt.Errorf("lines %d..%d: %w", recs[0].Offset+1, recs[len(recs)-1].Offset+1, err)
		}
		sum.events += len(recs) - len(res.Poison)
		for _, p := range res.Poison {
			sum.rejected = append(sum.rejected, simRejection{int(p.Record.Offset) + 1, p.Code, p.Reason})
		}
		for _, r := range recs {
			sum.name(r.Value)
		}
		if err := emit(res.Out); err != nil {
			return err
		}
		recs = recs[:0]
		return nil
	}
	for sc.Scan() {
		sum.lines++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		recs = append(recs, &kgo.Record{Topic: defaultRecordsTopic, Offset: int64(sum.lines - 1), Value: bytes.Clone(line)})
		if len(recs) == batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read line %d: %w", sum.lines+1, err)
	}
	if err := flush(); err != nil {
		return err
	}
	out, err := h.Flush(ctx)
	if err != nil {
		return fmt.Errorf("end of input: %w", err)
	}
	if err := emit(out); err != nil {
		return err
	}
	return h.Sync(ctx)
}

// canonicalName names a person under leadconv's canonical field names.
var canonicalName = personNamer("")

// name remembers the person name of an input record, for the report.
func (s *simSummary) name(line []byte) {
	var ev record.Event
	if json.Unmarshal(line, &ev) != nil {
		return
	}
	if n := canonicalName(ev.Fields); n != "" {
		s.names[ev.Ref()] = n
	}
}

// count tallies what a writer would do with a produced command.
func (s *simSummary) count(r *kgo.Record) {
	cmd, err := decodeCommand(r)
	if err != nil {
		return // a cluster.changed event
	}
	s.clusters[cmd.ClusterID] = append(s.clusters[cmd.ClusterID], cmd)
	switch d := cmd.Data.(type) {
	case *engine.LeadConvert:
		s.converted[d.LeadID] = true
	case *engine.RecordsMerge:
		s.merged += len(d.MergedIDs) + len(d.MergedFromLeads)
	case *engine.ReviewRequested:
		s.reviews++
	}
}

// report writes every cluster's commands in words, the demo's format,
// clusters by id.
func (s *simSummary) report(w io.Writer) error {
	rep := &demoReport{names: s.names}
	for _, id := range slices.Sorted(maps.Keys(s.clusters)) {
		cmds := s.clusters[id]
		last := cmds[len(cmds)-1].ClusterVersion
		if _, err := fmt.Fprintf(w, "cluster %s (version %d, %s)\n", id, last, plural(len(cmds), "command")); err != nil {
			return err
		}
		for _, cmd := range cmds {
			if _, err := fmt.Fprintf(w, "  v%d %s\n", cmd.ClusterVersion, rep.describe(cmd)); err != nil {
				return err
			}
		}
	}
	return nil
}

// ceType is the CloudEvents type of a produced record: the ce_type header
// in binary mode, the "type" attribute in structured mode.
func ceType(r *kgo.Record) string {
	for _, h := range r.Headers {
		if h.Key == "ce_type" {
			return string(h.Value)
		}
	}
	var ev struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(r.Value, &ev)
	return ev.Type
}

func (s *simSummary) print(w io.Writer) {
	var types []string
	for _, k := range engine.Kinds {
		t := engine.Command{Kind: k}.Type()
		if n := s.byType[t]; n > 0 {
			types = append(types, fmt.Sprintf("%d %s", n, k))
		}
	}
	fmt.Fprintf(w, "simulate: %d lines, %d events applied, %d rejected; %d events out", s.lines, s.events, len(s.rejected), s.out)
	if len(types) > 0 {
		fmt.Fprintf(w, " (commands: %s)", strings.Join(types, ", "))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  a writer would convert %s, merge away %s and file %s\n",
		plural(len(s.converted), "distinct lead"), plural(s.merged, "contact"), plural(s.reviews, "review"))
	const most = 100
	sort.SliceStable(s.rejected, func(i, j int) bool { return s.rejected[i].line < s.rejected[j].line })
	for _, r := range s.rejected[:min(len(s.rejected), most)] {
		fmt.Fprintf(w, "  line %d: %s", r.line, r.code)
		if r.reason != "" {
			fmt.Fprintf(w, " %s", r.reason)
		}
		fmt.Fprintln(w)
	}
	if n := len(s.rejected) - most; n > 0 {
		fmt.Fprintf(w, "  and %d more rejected lines\n", n)
	}
}
