package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/internal/ops"
	"github.com/leadconv/leadconv/internal/pipeline"
	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
	"github.com/leadconv/leadconv/internal/testutil/redistest"
	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/matcher/gen"
	"github.com/leadconv/leadconv/record"
)

func TestParsePosition(t *testing.T) {
	at := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in      string
		from    bool
		want    position
		wantErr string
	}{
		{"earliest", true, position{earliest: true}, ""},
		{"2026-01-05T09:00:00Z", true, position{at: at}, ""},
		{"2026-01-05T10:00:00+01:00", false, position{at: at.In(time.FixedZone("", 3600))}, ""},
		{"0:12, 3:0", true, position{offsets: map[int32]int64{0: 12, 3: 0}}, ""},
		{"", false, position{}, ""},
		{"", true, position{}, "required"},
		{"earliest", false, position{}, "start position"},
		{"yesterday", true, position{}, "neither earliest"},
		{"0:1,0:2", true, position{}, "partition 0 given twice"},
		{"0:-1", true, position{}, "neither earliest"},
		{"a:1", true, position{}, "want partition:offset"},
		{"1:", true, position{}, "want partition:offset"},
	} {
		got, err := parsePosition(tc.in, tc.from)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parsePosition(%q, %v) error = %v, want %q", tc.in, tc.from, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !got.at.Equal(tc.want.at) || got.earliest != tc.want.earliest || !maps.Equal(got.offsets, tc.want.offsets) {
			t.Errorf("parsePosition(%q, %v) = %+v, %v; want %+v", tc.in, tc.from, got, err, tc.want)
		}
	}
}

// replayEnv is a records topic the live pipeline processed: kfake, a real
// redis-server and the command ids the pipeline published.
type replayEnv struct {
	kafka   *kafkatest.Cluster
	redis   *redistest.Server
	liveNS  string
	liveIDs []string
	// liveEffects are what the live commands do to the CRM's records.
	liveEffects []string
	records     int
	// config is the configuration file of the live run, if not the defaults.
	config string
}

func newReplayEnv(t *testing.T, partitions int32) *replayEnv {
	t.Helper()
	return newReplayEnvConfig(t, partitions, "")
}

// newReplayEnvConfig is newReplayEnv with the live run and the replays on
// the configuration yml (empty: the defaults).
func newReplayEnvConfig(t *testing.T, partitions int32, yml string) *replayEnv {
	t.Helper()
	k := kafkatest.New(t, partitions, defaultRecordsTopic, pipeline.DefaultByTenantTopic, defaultCommandsTopic, defaultDLQTopic, "replay.out", "replay.again")
	env := &replayEnv{kafka: k, redis: redistest.New(t), liveNS: "live"}
	// Several tenants, so that several by-tenant partitions are owned.
	var evs []record.Event
	for i, tenant := range []string{"acme", "globex", "initech", "umbrella", "hooli", "stark"} {
		evs = append(evs, gen.New(gen.Options{Seed: 7 + uint64(i), Tenant: tenant, Records: 60, Updates: 0.1, ContactShare: 0.2, Deletes: 0.02}).Events()...)
	}
	cl := k.Client()
	if err := produceEvents(t.Context(), cl, defaultRecordsTopic, evs); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	if yml != "" {
		env.config = filepath.Join(t.TempDir(), "leadconv.yaml")
		if err := os.WriteFile(env.config, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		var err error
		if cfg, err = config.Load(env.config); err != nil {
			t.Fatal(err)
		}
	}
	parts := handlerParts{rdb: env.redis.Client(), cfg: cfg, namespace: env.liveNS, log: zerolog.Nop(), reg: prometheus.NewRegistry()}
	p, err := pipeline.New(pipeline.Config{Brokers: k.Addrs(), Group: "live", CommitInterval: 100 * time.Millisecond,
		Logger: zerolog.Nop(), Registerer: prometheus.NewRegistry()}, newOwners(parts), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := runUntil(t, p, func(ctx context.Context, stopped <-chan struct{}) error {
		err := waitCommitted(ctx, kadm.NewClient(cl), "live", defaultRecordsTopic, stopped)
		if err == nil {
			err = waitCommitted(ctx, kadm.NewClient(cl), "live", pipeline.DefaultByTenantTopic, stopped)
		}
		if err == nil {
			// The settle windows still open close on the wall clock.
			err = waitSettled(ctx, p.Handler(), stopped)
		}
		return err
	}); err != nil {
		t.Fatalf("live pipeline: %v", err)
	}
	// The records the replay reads: the routed events and the ticks.
	env.records = int(k.EndOffsets(pipeline.DefaultByTenantTopic))
	env.liveIDs = commandIDs(t, k.ReadAll(defaultCommandsTopic))
	env.liveEffects = commandEffects(t, k.ReadAll(defaultCommandsTopic))
	if len(env.liveIDs) == 0 {
		t.Fatal("the live pipeline published no commands")
	}
	return env
}

// commandEffects are what the commands do to the CRM's records, sorted:
// the leads converted, the existing records merged away, the records
// handed to a person.
func commandEffects(t *testing.T, recs []*kgo.Record) []string {
	t.Helper()
	var out []string
	for _, r := range recs {
		cmd, err := decodeCommand(r)
		if err != nil {
			t.Fatal(err)
		}
		switch d := cmd.Data.(type) {
		case *engine.LeadConvert:
			out = append(out, "convert lead "+d.LeadID)
		case *engine.RecordsMerge:
			for _, id := range d.MergedIDs {
				out = append(out, "merge away "+string(d.Object)+" "+id)
			}
		default:
			out = append(out, cmd.Kind+" "+cmd.Subject)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func commandIDs(t *testing.T, recs []*kgo.Record) []string {
	t.Helper()
	ids := make([]string, 0, len(recs))
	for _, r := range recs {
		cmd, err := decodeCommand(r)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, cmd.ID)
	}
	slices.Sort(ids)
	return ids
}

func (env *replayEnv) args(more ...string) []string {
	args := []string{"replay", "--brokers", strings.Join(env.kafka.Addrs(), ","), "--redis-url", env.redis.URL(), "--log-format", "json"}
	if env.config != "" {
		args = append(args, "--config", env.config)
	}
	return append(args, more...)
}

func keyCount(t *testing.T, s *redistest.Server) int64 {
	n, err := s.Client().DBSize(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Replaying the by-tenant topic from the start into an empty namespace
// reproduces the live command ids, across several partitions and tenants
// (a tenant's order is its partition's); replaying into the live namespace
// changes nothing and re-emits only ids the live run published.
func TestReplayReproducesLiveCommandIDs(t *testing.T) {
	t.Parallel()
	env := newReplayEnv(t, 3)
	ctx := context.Background()
	store := matcher.NewStore(env.redis.Client(), matcher.StoreOptions{Namespace: env.liveNS, Rules: config.Default().Rules})
	before, err := store.Clusters(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	keys := keyCount(t, env.redis)

	// A dry run to a topic, in a throwaway namespace.
	code, _, stderr := runMain(t, nil, env.args("--from", "earliest", "--dry-run", "--output-topic", "replay.out")...)
	if code != exitOK {
		t.Fatalf("dry run: code %d\n%s", code, stderr)
	}
	// The live ids, exactly: a live settle window closed on the wall clock
	// closed at its tick's place in the log, which the replay reads too.
	dry := env.kafka.ReadAll("replay.out")
	if got := commandEffects(t, dry); !reflect.DeepEqual(got, env.liveEffects) {
		t.Fatalf("dry-run replay: %d command effects, live %d; they differ", len(got), len(env.liveEffects))
	}
	dryIDs := commandIDs(t, dry)
	if !slices.Equal(dryIDs, env.liveIDs) {
		t.Fatalf("dry-run replay: %d command ids, live %d; they differ", len(dryIDs), len(env.liveIDs))
	}
	if n := keyCount(t, env.redis); n != keys {
		t.Fatalf("dry run left %d keys behind (before %d)", n, keys)
	}
	if env.kafka.EndOffsets(defaultCommandsTopic) != int64(len(env.liveIDs)) {
		t.Fatal("the dry run wrote to the live commands topic")
	}
	// Structured progress logs on a non-terminal, ending at the total.
	var final map[string]any
	for line := range strings.Lines(stderr) {
		if strings.Contains(line, `"progress final"`) {
			_ = json.Unmarshal([]byte(line), &final)
		}
	}
	if final == nil || final["done"] != float64(env.records) || final["total"] != float64(env.records) {
		t.Fatalf("final progress log = %v, want done = total = %d\n%s", final, env.records, stderr)
	}

	// Into the live namespace: a no-op for the state.
	code, _, stderr = runMain(t, nil, env.args("--from", "earliest", "--namespace", env.liveNS, "--output-topic", "replay.again")...)
	if code != exitOK {
		t.Fatalf("replay into live namespace: code %d\n%s", code, stderr)
	}
	after, err := store.Clusters(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, after) {
		t.Fatal("replaying applied events changed the clusters")
	}
	for _, id := range commandIDs(t, env.kafka.ReadAll("replay.again")) {
		if _, ok := slices.BinarySearch(dryIDs, id); !ok {
			t.Fatalf("replay of applied events invented command %s", id)
		}
	}
}

// With settle 0 every instant is planned once a later one is read: the
// live run (windows closed by later changes and by ticks) and the replay
// (the same log, its own batches) plan the same states to the same ids.
func TestReplayReproducesLiveCommandIDsSettleZero(t *testing.T) {
	t.Parallel()
	env := newReplayEnvConfig(t, 3, "defaults:\n  engine:\n    settle: 0s\n")
	code, _, stderr := runMain(t, nil, env.args("--from", "earliest", "--dry-run", "--output-topic", "replay.out")...)
	if code != exitOK {
		t.Fatalf("dry run: code %d\n%s", code, stderr)
	}
	if got := commandIDs(t, env.kafka.ReadAll("replay.out")); !slices.Equal(got, env.liveIDs) {
		t.Fatalf("dry-run replay: %d command ids, live %d; they differ", len(got), len(env.liveIDs))
	}
}

// Dry run to stdout, and bounded replays by partition offsets and time.
func TestReplayPositionsAndStdout(t *testing.T) {
	t.Parallel()
	env := newReplayEnv(t, 3)
	code, stdout, stderr := runMain(t, nil, env.args("--from", "earliest", "--dry-run")...)
	if code != exitOK {
		t.Fatalf("code %d\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) == 0 || len(lines) > 2*len(env.liveIDs) {
		t.Fatalf("stdout dry run printed %d lines, live %d commands", len(lines), len(env.liveIDs))
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, `{"specversion":"1.0"`) || !json.Valid([]byte(l)) {
			t.Fatalf("line %d is not a structured CloudEvent: %.200s", i+1, l)
		}
	}
	if !strings.Contains(stderr, "replay: "+strconv.Itoa(env.records)+" records") {
		t.Errorf("summary: %s", stderr)
	}

	// Partition 1 only, its first five records.
	code, _, stderr = runMain(t, nil, env.args("--from", "1:0", "--to", "1:5", "--dry-run", "--output-topic", "replay.out")...)
	if code != exitOK || !strings.Contains(stderr, "replay: 5 records") {
		t.Fatalf("offset range: code %d\n%s", code, stderr)
	}
	// A time after every record: nothing to do.
	code, _, stderr = runMain(t, nil, env.args("--from", time.Now().Add(time.Hour).Format(time.RFC3339), "--dry-run")...)
	if code != exitOK || !strings.Contains(stderr, "replay: 0 records") {
		t.Fatalf("future --from: code %d\n%s", code, stderr)
	}
	// A time before every record up to a time after them: all of them.
	code, _, stderr = runMain(t, nil, env.args("--from", "2000-01-01T00:00:00Z", "--to", time.Now().Add(time.Hour).Format(time.RFC3339), "--dry-run", "--output-topic", "replay.out")...)
	if code != exitOK || !strings.Contains(stderr, "replay: "+strconv.Itoa(env.records)+" records") {
		t.Fatalf("time range: code %d\n%s", code, stderr)
	}
	code, _, stderr = runMain(t, nil, env.args("--from", "7:0", "--dry-run")...)
	if code != exitError || !strings.Contains(stderr, "no partition 7") {
		t.Fatalf("unknown partition: code %d\n%s", code, stderr)
	}
}

func TestReplayUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "--from: required"},
		{[]string{"--from", "earliest", "--to", "earliest"}, "--to: earliest is a start position"},
		{[]string{"--from", "earliest", "--dry-run", "--output-topic", defaultCommandsTopic}, "must not be the commands topic"},
		{[]string{"--from", "soon"}, "neither earliest"},
	} {
		code, _, stderr := runMain(t, nil, append([]string{"replay"}, tc.args...)...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("replay %v: code %d, stderr %q", tc.args, code, stderr)
		}
	}
}

// A records topic written in transactions ends in a commit marker, which a
// replay must step over instead of waiting for a record at that offset.
func TestReplayStopsAtTransactionMarker(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t, 1, defaultRecordsTopic, defaultCommandsTopic)
	rs := redistest.New(t)
	evs := gen.New(gen.Options{Seed: 2, Records: 20}).Events()
	cl := k.Client(kgo.TransactionalID("crm-connector"))
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := produceEvents(t.Context(), cl, defaultRecordsTopic, evs); err != nil {
		t.Fatal(err)
	}
	if err := cl.EndTransaction(t.Context(), kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	type result struct {
		code   int
		stderr string
	}
	done := make(chan result, 1)
	go func() {
		code, _, stderr := runMain(t, nil, "replay", "--brokers", strings.Join(k.Addrs(), ","), "--redis-url", rs.URL(),
			"--log-format", "json", "--from", "earliest", "--dry-run", "--input-keyed-by-tenant")
		done <- result{code, stderr}
	}()
	select {
	case r := <-done:
		if r.code != exitOK || !strings.Contains(r.stderr, "replay: "+strconv.Itoa(len(evs))+" records") {
			t.Fatalf("code %d\n%s", r.code, r.stderr)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("replay did not stop at the end of a transactional topic")
	}
}

// A replay whose tenants another writer takes midway (the live service, a
// second replay) fails at once, saying so, instead of retrying forever.
func TestReplayFencedFails(t *testing.T) {
	t.Parallel()
	env := newReplayEnv(t, 1)
	recs := env.kafka.ReadAll(pipeline.DefaultByTenantTopic)
	half := len(recs) / 2
	parts := handlerParts{rdb: env.redis.Client(), cfg: config.Default(), namespace: "rebuild", log: zerolog.Nop(), reg: prometheus.NewRegistry()}
	r := &replayer{h: newHandler(parts), cl: env.kafka.Client(), log: zerolog.Nop(), prog: ops.NewProgress(io.Discard, zerolog.Nop(), "events"),
		stdout: io.Discard, topic: pipeline.DefaultByTenantTopic, namespace: "rebuild"}
	if err := r.batch(t.Context(), 0, recs[:half]); err != nil {
		t.Fatal(err)
	}
	parts.reg = prometheus.NewRegistry()
	if _, err := newHandler(parts).Handle(t.Context(), pipeline.DefaultByTenantTopic, 0, recs[:half]); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := r.batch(ctx, 0, recs[half:])
	if !errors.Is(err, matcher.ErrFenced) || !strings.Contains(err.Error(), `another writer took a tenant of namespace "rebuild"`) {
		t.Fatalf("replay batch after another writer took its tenants: %v", err)
	}
}

// runLive runs the pipeline under group into namespace ns (the records
// topic owned directly) until it committed the end of the topic.
func runLive(t *testing.T, k *kafkatest.Cluster, rs *redistest.Server, group, ns string) {
	t.Helper()
	cfg := config.Default()
	parts := handlerParts{rdb: rs.Client(), cfg: cfg, namespace: ns, log: zerolog.Nop(), reg: prometheus.NewRegistry()}
	p, err := pipeline.New(pipeline.Config{Brokers: k.Addrs(), Group: group, InputByTenant: true, CommitInterval: 100 * time.Millisecond,
		Logger: zerolog.Nop(), Registerer: prometheus.NewRegistry()}, newOwners(parts), cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = runUntil(t, p, func(ctx context.Context, stopped <-chan struct{}) error {
		return waitCommitted(ctx, kadm.NewClient(k.Client()), group, defaultRecordsTopic, stopped)
	})
	if lost := p.Handler().StateLost(); err != nil || lost != nil {
		t.Fatalf("pipeline %s: %v, state %v", group, err, lost)
	}
}

// runUntil runs p until wait returns (within a minute), then stops it;
// the error is wait's or the run's.
func runUntil(t *testing.T, p *pipeline.Pipeline, wait func(ctx context.Context, stopped <-chan struct{}) error) error {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	var runErr error
	runDone := make(chan struct{})
	go func() { runErr = p.Run(ctx); close(runDone) }()
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	err := wait(wctx, runDone)
	cancel()
	<-runDone
	return errors.Join(err, runErr)
}

// partition is a tenant's clusters as sorted member lists, sorted: what
// the clusters are, whatever ids the order of batches gave them.
func partition(t *testing.T, rs *redistest.Server, ns, tenant string) []string {
	t.Helper()
	m, err := matcher.NewStore(rs.Client(), matcher.StoreOptions{Namespace: ns, Rules: config.Default().Rules}).Clusters(context.Background(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, members := range m {
		ids := make([]string, len(members))
		for i, r := range members {
			ids[i] = string(r.Object) + ":" + r.ID
		}
		slices.Sort(ids)
		out = append(out, strings.Join(ids, " "))
	}
	slices.Sort(out)
	return out
}

// The scenario: Redis lost the namespace, then patches were
// applied on top (a leadconv without the marker built partial records). A
// plain replay from earliest into it is refused naming the rebuild, as is
// one into an empty namespace while the group has committed offsets, and
// one after an interrupted rebuild; replay --rebuild yields the clusters
// of a run on an intact namespace, and the restarted service applies on
// top of it.
func TestReplayRebuildAfterStateLoss(t *testing.T) {
	t.Parallel()
	k := kafkatest.New(t, 1, defaultRecordsTopic, defaultCommandsTopic, defaultDLQTopic, "replay.out")
	rs := redistest.New(t)
	ctx := t.Context()
	evs := gen.New(gen.Options{Seed: 11, Records: 150, Updates: 0.4, Deletes: 0.03, ContactShare: 0.2}).Events()
	before, after := evs[:len(evs)/2], evs[len(evs)/2:]
	if err := produceEvents(ctx, k.Client(), defaultRecordsTopic, before); err != nil {
		t.Fatal(err)
	}
	runLive(t, k, rs, "svc", "lc")
	if err := deleteNamespace(ctx, rs.Client(), "lc"); err != nil { // the loss
		t.Fatal(err)
	}
	if err := produceEvents(ctx, k.Client(), defaultRecordsTopic, after); err != nil {
		t.Fatal(err)
	}
	if _, err := matcher.NewStore(rs.Client(), matcher.StoreOptions{Namespace: "lc", Rules: config.Default().Rules}).Apply(ctx, after); err != nil {
		t.Fatal(err)
	}
	if err := rs.Client().Del(ctx, "lc:meta").Err(); err != nil {
		t.Fatal(err)
	}
	runLive(t, k, rs, "intact", "intact")
	baseline := partition(t, rs, "intact", "acme")
	if reflect.DeepEqual(partition(t, rs, "lc", "acme"), baseline) {
		t.Fatal("the partial state equals the baseline: the scenario proves nothing")
	}

	replay := func(more ...string) (int, string) {
		code, _, stderr := runMain(t, nil, append([]string{"replay", "--brokers", strings.Join(k.Addrs(), ","), "--redis-url", rs.URL(),
			"--log-format", "json", "--input-keyed-by-tenant", "--group", "svc", "--output-topic", "replay.out"}, more...)...)
		return code, stderr
	}
	for _, tc := range []struct {
		name, ns, why string
		setup         func() error
	}{
		{"partial state", "lc", "holds keys but no state marker", nil},
		{"empty, group committed", "fresh", "empty while group svc has committed offsets", nil},
		{"interrupted rebuild", "lc", "did not complete", func() error { return matcher.BeginRebuild(ctx, rs.Client(), "lc") }},
	} {
		if tc.setup != nil {
			if err := tc.setup(); err != nil {
				t.Fatal(err)
			}
		}
		code, stderr := replay("--from", "earliest", "--namespace", tc.ns)
		if code != exitError || !strings.Contains(stderr, tc.why) || !strings.Contains(stderr, matcher.RebuildCommand(tc.ns)) {
			t.Fatalf("%s: plain replay: code %d\n%s", tc.name, code, stderr)
		}
	}
	if code, stderr := replay("--rebuild", "--namespace", "lc"); code != exitOK {
		t.Fatalf("rebuild: code %d\n%s", code, stderr)
	}
	if got := partition(t, rs, "lc", "acme"); !reflect.DeepEqual(got, baseline) {
		t.Fatalf("rebuilt clusters differ from the intact run's: %d clusters, baseline %d", len(got), len(baseline))
	}
	if m, err := matcher.ReadMarker(ctx, rs.Client(), "lc"); err != nil || m.Created == "" || m.Rebuilding != "" {
		t.Fatalf("marker after the rebuild: %+v, %v", m, err)
	}
	runLive(t, k, rs, "svc", "lc") // resumes after its commits: replays of what the rebuild applied
	if got := partition(t, rs, "lc", "acme"); !reflect.DeepEqual(got, baseline) {
		t.Fatal("the service changed the rebuilt clusters")
	}
}

func TestReplayRebuildUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--rebuild", "--from", "0:5"}, "--rebuild replays from earliest"},
		{[]string{"--rebuild", "--to", "0:5"}, "--to is not allowed"},
		{[]string{"--rebuild", "--dry-run"}, "--dry-run is not allowed"},
	} {
		code, _, stderr := runMain(t, nil, append([]string{"replay"}, tc.args...)...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("replay %v: code %d, stderr %q", tc.args, code, stderr)
		}
	}
}
