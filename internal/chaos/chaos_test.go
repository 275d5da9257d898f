//go:build chaos

package chaos

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/consumer"
	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/events"
	"github.com/leadconv/leadconv/internal/testutil/redistest"
	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/matcher/gen"
	"github.com/leadconv/leadconv/record"
)

// Settings of every scenario: static membership with a short session, so
// a killed member's partitions come back in seconds.
const (
	partitions       = 4
	sessionTimeout   = "6s"
	rebalanceTimeout = "12s"
	drainTimeout     = 5 * time.Second
	// idHeader carries the produced record's id through routing and into
	// dead letters, the accounting's key.
	idHeader = "chaos-id"
)

var tenants = []string{"acme", "globex", "initech", "umbrella"}

// suite is what the scenarios share: the binary, a broker process and a
// redis-server with AOF.
type suite struct {
	t       *testing.T
	bin     string
	dir     string
	broker  *exec.Cmd
	brokers string
	redis   *redistest.Server
	rdb     *redis.Client
	cl      *kgo.Client
	adm     *kadm.Client
}

func TestChaos(t *testing.T) {
	s := newSuite(t)
	var results []*result
	for _, sc := range []struct {
		name string
		run  func(*scenario)
	}{
		{"kill9x3", (*scenario).killThrice},
		{"two-kill-one", (*scenario).twoKillOne},
		{"redis-aof-restart", (*scenario).redisRestartAOF},
		{"redis-empty", (*scenario).redisEmpty},
		{"broker-stop-20s", (*scenario).brokerStop},
		{"poison", (*scenario).poison},
		{"sigterm-rebalance", (*scenario).sigtermRebalance},
	} {
		if f := os.Getenv("CHAOS_ONLY"); f != "" && !strings.Contains(","+f+",", ","+sc.name+",") {
			continue
		}
		c := s.scenario(sc.name)
		sc.run(c)
		results = append(results, c.account())
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-18s %8s %8s %9s %9s %5s %8s %8s %9s %8s %7s %8s  %s\n", "scenario", "events", "ids", "accounted", "dlq", "lost", "dup_cmd", "invented", "cmds", "cmd_diff", "equal", "recover", "notes")
	for _, r := range results {
		fmt.Fprintf(&b, "%-18s %8d %8d %9d %9d %5d %8d %8d %9d %8s %7v %8s  %s\n", r.name, r.events, r.ids, r.accounted, r.dead, r.lost, r.dupCmds, r.invented,
			r.cmds, fmt.Sprintf("%d/%d", r.cmdMissing, r.cmdExtra), r.clustersEqual, r.recoverText(), strings.Join(r.notes, "; "))
	}
	fmt.Print(b.String())
	for _, r := range results {
		if r.lost > 0 || r.invented > 0 || !r.clustersEqual || r.stalled || len(r.defects) > 0 {
			t.Errorf("%s: lost %d, invented %d, clusters equal %v, stalled %v, defects %q", r.name, r.lost, r.invented, r.clustersEqual, r.stalled, r.defects)
		}
	}
}

func newSuite(t *testing.T) *suite {
	s := &suite{t: t, dir: t.TempDir()}
	s.bin = filepath.Join(s.dir, "leadconv")
	build := exec.Command("go", "build", "-o", s.bin, "github.com/leadconv/leadconv/cmd/leadconv")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	s.redis = redistest.New(t, "--appendonly", "yes")
	if s.redis.External {
		t.Fatal("the chaos suite restarts Redis: unset REDIS_ADDR")
	}
	s.rdb = s.redis.Client()
	s.startBroker()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers), kgo.ProducerBatchMaxBytes(1_040_000), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	s.cl, s.adm = cl, kadm.NewClient(cl)
	return s
}

// startBroker runs "leadconv demo --serve" as the broker process: its
// in-process kfake broker on a free port (its own sample and pipeline use
// the demo's topics, never the scenarios').
func (s *suite) startBroker() {
	port := freePort(s.t)
	cmd := exec.Command(s.bin, "demo", "--serve", "--kafka-port", strconv.Itoa(port), "--records", "20", "--partitions", "1", "--show", "0", "--log-level", "error")
	cmd.Env = cleanEnv()
	out, err := cmd.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	cmd.Stderr = s.logFile("broker")
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGCONT); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	s.broker = cmd
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if _, after, ok := strings.Cut(sc.Text(), "in-process Kafka "); ok {
			s.brokers = strings.Fields(after)[0]
			break
		}
	}
	if s.brokers == "" {
		s.t.Fatal("the broker process printed no address")
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
}

func (s *suite) logFile(name string) *os.File {
	f, err := os.Create(filepath.Join(logDir(s.t), name+".log"))
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { _ = f.Close() })
	return f
}

// logDir keeps the processes' logs: $CHAOS_LOGS, else a temporary
// directory.
func logDir(t *testing.T) string {
	if d := os.Getenv("CHAOS_LOGS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return os.TempDir()
}

func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LEADCONV_") && !strings.HasPrefix(kv, "REDIS_") {
			out = append(out, kv)
		}
	}
	return out
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// scenario is one fault run on its own topics, group and namespace.
type scenario struct {
	s     *suite
	t     *testing.T
	name  string
	ns    string
	group string
	topic map[string]string // role -> topic name
	procs map[string]*proc
	runs  int

	streamed <-chan struct{} // closed once everything is produced
	mu       sync.Mutex
	produced map[string]bool // ids
	events   int
	prodErr  error
	res      *result
}

type result struct {
	name                               string
	events, ids, accounted, dead, lost int
	dupCmds, invented, cmds            int
	cmdMissing, cmdExtra               int
	clustersEqual, stalled             bool
	defects                            []string
	recover                            []time.Duration
	notes                              []string
}

func (r *result) recoverText() string {
	if len(r.recover) == 0 {
		return "-"
	}
	parts := make([]string, len(r.recover))
	for i, d := range r.recover {
		parts[i] = strconv.FormatFloat(d.Seconds(), 'f', 1, 64)
	}
	return strings.Join(parts, ",") + "s"
}

func (r *result) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

func (s *suite) scenario(name string) *scenario {
	key := strings.ReplaceAll(name, "-", "")
	c := &scenario{s: s, t: s.t, name: name, ns: "ch" + key, group: "chaos-" + key, procs: map[string]*proc{}, produced: map[string]bool{},
		res: &result{name: name, clustersEqual: true}}
	c.topic = map[string]string{}
	for _, role := range []string{"records", "bytenant", "commands", "dlq", "requests", "results", "baseline"} {
		c.topic[role] = "chaos." + key + "." + role
	}
	topics := make([]string, 0, len(c.topic))
	for _, tp := range c.topic {
		topics = append(topics, tp)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := s.adm.CreateTopics(ctx, partitions, 1, nil, topics...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		s.t.Fatalf("%s: create topics: %v", name, err)
	}
	return c
}

// proc is one leadconv process.
type proc struct {
	name string
	cmd  *exec.Cmd
	http string
	done chan struct{}
}

func (c *scenario) serviceArgs(inst string) []string {
	return []string{"--brokers", c.s.brokers, "--redis-url", c.s.redis.URL(), "--namespace", c.ns, "--group", c.group,
		"--records-topic", c.topic["records"], "--by-tenant-topic", c.topic["bytenant"], "--commands-topic", c.topic["commands"],
		"--dlq-topic", c.topic["dlq"], "--requests-topic", c.topic["requests"], "--results-topic", c.topic["results"],
		"--instance-id", c.name + "-" + inst, "--session-timeout", sessionTimeout, "--rebalance-timeout", rebalanceTimeout,
		"--drain-timeout", drainTimeout.String(), "--log-format", "json",
		// No writer runs here: its results topic would not exist.
		"--command-results-topic", ""}
}

// start starts instance inst of the service; extra flags override the
// scenario's.
func (c *scenario) start(inst string, extra ...string) *proc {
	c.runs++
	p := &proc{name: inst, http: "127.0.0.1:" + strconv.Itoa(freePort(c.t)), done: make(chan struct{})}
	p.cmd = exec.Command(c.s.bin, slices.Concat([]string{"run", "--http-addr", p.http}, c.serviceArgs(inst), extra)...)
	p.cmd.Env = cleanEnv()
	p.cmd.Stderr = c.s.logFile(fmt.Sprintf("%s-%s-%d", c.name, inst, c.runs))
	if err := p.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	c.t.Cleanup(func() { _ = p.cmd.Process.Kill(); <-p.done })
	c.procs[inst] = p
	return p
}

func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// term sends SIGTERM and returns how long the process took to exit (at
// most a minute, then it is killed).
func (p *proc) term() time.Duration {
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		p.kill()
	}
	return time.Since(start)
}

// readyz returns /readyz's status code and body (0 when unreachable).
func (p *proc) readyz() (int, string) {
	resp, err := http.Get("http://" + p.http + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// stream is the scenario's input: every tenant's generated events, in
// tenant-interleaved stream order.
func (c *scenario) stream(records int) []record.Event {
	var per [][]record.Event
	for i, tn := range tenants {
		per = append(per, gen.New(gen.Options{Seed: 100 + uint64(i), Tenant: tn, Records: records, Updates: 0.2, Deletes: 0.02, ContactShare: 0.2}).Events())
	}
	var out []record.Event
	for i := 0; ; i++ {
		added := false
		for _, evs := range per {
			if i < len(evs) {
				out = append(out, evs[i])
				added = true
			}
		}
		if !added {
			return out
		}
	}
}

func idOf(tenant string, obj record.Object, id string) string {
	return tenant + "/" + string(obj) + "/" + id
}

// encode turns an event into a records-topic record carrying its id.
func (c *scenario) encode(ev record.Event) *kgo.Record {
	b, err := json.Marshal(&ev)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.raw(idOf(ev.Tenant, ev.Object, ev.ID), b)
}

func (c *scenario) raw(id string, value []byte) *kgo.Record {
	return &kgo.Record{Topic: c.topic["records"], Key: []byte(id), Value: value, Headers: []kgo.RecordHeader{{Key: idHeader, Value: []byte(id)}}}
}

// produce sends recs at about rate records a second in the background; the
// channel closes once every record is acknowledged.
func (c *scenario) produce(recs []*kgo.Record, rate int) <-chan struct{} {
	done := make(chan struct{})
	c.streamed = done
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		chunk := max(1, rate/10)
		for i := 0; i < len(recs); i += chunk {
			for _, r := range recs[i:min(i+chunk, len(recs))] {
				wg.Add(1)
				id := string(r.Key)
				c.s.cl.Produce(context.Background(), r, func(_ *kgo.Record, err error) {
					defer wg.Done()
					c.mu.Lock()
					defer c.mu.Unlock()
					if err != nil {
						c.prodErr = err
						return
					}
					c.produced[id] = true
					c.events++
				})
			}
			time.Sleep(100 * time.Millisecond)
		}
		wg.Wait()
	}()
	return done
}

// committed returns the group's committed offsets and the end offsets of
// the records and by-tenant topics, by "topic/partition".
func (c *scenario) offsets(ctx context.Context) (committed, ends map[string]int64, err error) {
	committed, ends = map[string]int64{}, map[string]int64{}
	resp, err := c.s.adm.FetchOffsets(ctx, c.group)
	if err != nil {
		return nil, nil, err
	}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Err == nil {
			committed[o.Topic+"/"+strconv.Itoa(int(o.Partition))] = o.At
		}
	})
	le, err := c.s.adm.ListEndOffsets(ctx, c.topic["records"], c.topic["bytenant"])
	if err != nil {
		return nil, nil, err
	}
	le.Each(func(o kadm.ListedOffset) { ends[o.Topic+"/"+strconv.Itoa(int(o.Partition))] = o.Offset })
	return committed, ends, nil
}

// recovery waits until the group committed, on every partition of both
// topics that has input, some of what arrived after the fault ended (from),
// or, once the stream ended, everything: every partition is processed
// again.
// It returns the time since from; a minute without that is a stall.
func (c *scenario) recovery(from time.Time, atEnd map[string]int64) time.Duration {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		committed, ends, err := c.offsets(ctx)
		cancel()
		if err == nil {
			streamed := false
			select {
			case <-c.streamed:
				streamed = true
			default:
			}
			ok := true
			for k, end := range atEnd {
				switch {
				case streamed:
					ok = ok && committed[k] >= ends[k]
				case end > 0: // a partition with input: it gets more while the stream lasts
					ok = ok && committed[k] > end
				}
			}
			if ok {
				return time.Since(from)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.res.stalled = true
	c.res.note("no recovery within a minute")
	return time.Since(from)
}

// ends reads the end offsets of both topics.
func (c *scenario) ends() map[string]int64 {
	for range 100 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, ends, err := c.offsets(ctx)
		cancel()
		if err == nil {
			return ends
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("%s: end offsets unreadable", c.name)
	return nil
}

// fault runs f and measures the recovery from its end.
func (c *scenario) fault(f func()) {
	f()
	from := time.Now()
	c.res.recover = append(c.res.recover, c.recovery(from, c.ends()))
}

// drain waits for the producer, then for the group to commit the end of
// both topics, then stops every instance.
func (c *scenario) drain(produced <-chan struct{}) {
	<-produced
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		committed, ends, err := c.offsets(ctx)
		cancel()
		if err == nil && len(ends) == 2*partitions {
			ok := true
			for k, end := range ends {
				ok = ok && committed[k] >= end
			}
			if ok {
				break
			}
		}
		if time.Now().After(deadline) {
			c.res.stalled = true
			c.res.note("not caught up after 2 minutes: committed %v, ends %v", committed, ends)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Offsets are committed once the pending plans they caused are
	// durable, before the settle window (the default, 2 s) lets them out:
	// give the last ones time to be produced, as a rebuild flushes them.
	time.Sleep(settleWait)
	for _, p := range c.procs {
		select {
		case <-p.done:
		default:
			p.term()
		}
	}
}

// settleWait is the default settle window and a margin for its ticks.
const settleWait = time.Duration(engine.DefaultSettle) + time.Second

// account reads back everything and compares it with what was produced.
func (c *scenario) account() *result {
	r := c.res
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if c.prodErr != nil {
		r.note("produce error: %v", c.prodErr)
	}
	r.events, r.ids = c.events, len(c.produced)

	// Dead letters: the id travels in a header; a dead letter cut to fit
	// keeps its source's coordinates instead.
	byCoord := map[string]string{}
	for _, tp := range []string{c.topic["records"], c.topic["bytenant"]} {
		for _, rec := range c.readAll(ctx, tp) {
			byCoord[fmt.Sprintf("%s/%d/%d", rec.Topic, rec.Partition, rec.Offset)] = header(rec, idHeader)
		}
	}
	dead := map[string]bool{}
	codes := map[string]int{}
	for _, rec := range c.readAll(ctx, c.topic["dlq"]) {
		id := header(rec, idHeader)
		if id == "" {
			id = byCoord[header(rec, consumer.HeaderSourceTopic)+"/"+header(rec, consumer.HeaderSourcePartition)+"/"+header(rec, consumer.HeaderSourceOffset)]
		}
		if id == "" {
			r.note("a dead letter without id (code %s)", header(rec, consumer.HeaderErrorCode))
			continue
		}
		dead[id] = true
		codes[header(rec, consumer.HeaderErrorCode)]++
	}
	r.dead = len(dead)
	if len(codes) > 0 {
		r.note("dlq codes %v", codes)
	}

	// The state: every record a tenant's owner applied, tombstones included.
	stored := map[string]bool{}
	for _, tn := range tenants {
		refs, err := c.s.rdb.HKeys(ctx, c.ns+":{"+tn+"}:r").Result()
		if err != nil {
			c.t.Fatalf("%s: read state: %v", c.name, err)
		}
		for _, ref := range refs {
			obj := map[byte]record.Object{'l': record.Lead, 'c': record.Contact, 'a': record.Account}[ref[0]]
			stored[idOf(tn, obj, ref[2:])] = true
		}
	}
	for id := range c.produced {
		if stored[id] || dead[id] {
			r.accounted++
		} else {
			r.lost++
			if r.lost <= 5 {
				r.note("lost %s", id)
			}
		}
	}
	for id := range stored {
		if !c.produced[id] {
			r.invented++
			if r.invented <= 5 {
				r.note("invented %s", id)
			}
		}
	}

	// Commands: redeliveries repeat ids (at-least-once, deterministic
	// ids); a lead.convert names a lead that was produced.
	live := c.commands(ctx, c.topic["commands"], r)
	for _, n := range live {
		r.cmds += n
		if n > 1 {
			r.dupCmds++
		}
	}

	// The baseline: the by-tenant topic rebuilt from scratch into another
	// namespace, the clusters and command ids compared.
	base := c.ns + "base"
	rebuild := exec.CommandContext(ctx, c.s.bin, append([]string{"replay", "--rebuild", "--namespace", base, "--output-topic", c.topic["baseline"]},
		c.replayArgs()...)...)
	rebuild.Env = cleanEnv()
	if out, err := rebuild.CombinedOutput(); err != nil {
		c.t.Fatalf("%s: baseline rebuild: %v\n%s", c.name, err, out)
	}
	for _, tn := range tenants {
		if !slices.Equal(c.clusters(ctx, c.ns, tn), c.clusters(ctx, base, tn)) {
			r.clustersEqual = false
			r.note("clusters of %s differ from the baseline rebuild", tn)
		}
	}
	want := c.commands(ctx, c.topic["baseline"], nil)
	for id := range want {
		if _, ok := live[id]; !ok {
			r.cmdMissing++
		}
	}
	for id := range live {
		if _, ok := want[id]; !ok {
			r.cmdExtra++
		}
	}
	return r
}

// replayArgs are the connection and topic flags of a replay of the
// scenario.
func (c *scenario) replayArgs() []string {
	return []string{"--brokers", c.s.brokers, "--redis-url", c.s.redis.URL(), "--group", c.group,
		"--records-topic", c.topic["records"], "--by-tenant-topic", c.topic["bytenant"], "--commands-topic", c.topic["commands"],
		"--dlq-topic", c.topic["dlq"], "--log-format", "json"}
}

// commands counts the command ids of a topic; with r, lead.convert
// subjects that were never produced count as invented.
func (c *scenario) commands(ctx context.Context, topic string, r *result) map[string]int {
	out := map[string]int{}
	for _, rec := range c.readAll(ctx, topic) {
		b, err := events.Payload(rec)
		var cmd engine.Command
		if err == nil {
			err = json.Unmarshal(b, &cmd)
		}
		if err != nil {
			c.t.Fatalf("%s: command at %s/%d@%d: %v", c.name, rec.Topic, rec.Partition, rec.Offset, err)
		}
		out[cmd.ID]++
		if r != nil && cmd.Kind == "lead.convert" && !c.produced[idOf(cmd.Tenant, record.Lead, cmd.Subject)] {
			r.invented++
			r.note("command %s converts unknown lead %s", cmd.ID, cmd.Subject)
		}
	}
	return out
}

// clusters is a tenant's clusters as sorted member lists, sorted.
func (c *scenario) clusters(ctx context.Context, ns, tenant string) []string {
	m, err := matcher.NewStore(c.s.rdb, matcher.StoreOptions{Namespace: ns}).Clusters(ctx, tenant)
	if err != nil {
		c.t.Fatalf("%s: clusters: %v", c.name, err)
	}
	var out []string
	for _, members := range m {
		ids := make([]string, len(members))
		for i, ref := range members {
			ids[i] = string(ref.Object) + ":" + ref.ID
		}
		slices.Sort(ids)
		out = append(out, strings.Join(ids, " "))
	}
	slices.Sort(out)
	return out
}

// readAll reads a topic from its start to its current end.
func (c *scenario) readAll(ctx context.Context, topic string) []*kgo.Record {
	ends, err := c.s.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		c.t.Fatalf("%s: end offsets of %s: %v", c.name, topic, err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	if len(want) == 0 {
		return nil
	}
	rd, err := kgo.NewClient(kgo.SeedBrokers(c.s.brokers), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(64<<20))
	if err != nil {
		c.t.Fatal(err)
	}
	defer rd.Close()
	var out []*kgo.Record
	for len(want) > 0 {
		fs := rd.PollFetches(ctx)
		if ctx.Err() != nil {
			c.t.Fatalf("%s: read %s: %v", c.name, topic, ctx.Err())
		}
		fs.EachRecord(func(rec *kgo.Record) {
			out = append(out, rec)
			if end, ok := want[rec.Partition]; ok && rec.Offset >= end-1 {
				delete(want, rec.Partition)
			}
		})
	}
	return out
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// The scenarios. Each streams about 1,500 events of four tenants at 150 a
// second (10 s) and injects its fault a few seconds in.

const (
	records = 300
	rate    = 150
)

func (c *scenario) encodeAll(evs []record.Event) []*kgo.Record {
	out := make([]*kgo.Record, len(evs))
	for i, ev := range evs {
		out[i] = c.encode(ev)
	}
	return out
}

// kill -9 the only instance three times mid-stream, restarting it at once
// (static membership: it gets its partitions back without a rebalance).
func (c *scenario) killThrice() {
	c.start("a")
	done := c.produce(c.encodeAll(c.stream(records)), rate)
	time.Sleep(2 * time.Second)
	for range 3 {
		c.fault(func() {
			c.procs["a"].kill()
			c.start("a")
		})
		time.Sleep(1500 * time.Millisecond)
	}
	c.drain(done)
}

// Two instances; one is killed and stays dead: its partitions move to the
// other once its session times out.
func (c *scenario) twoKillOne() {
	c.start("a")
	c.start("b")
	done := c.produce(c.encodeAll(c.stream(records)), rate)
	time.Sleep(3 * time.Second)
	c.fault(func() { c.procs["b"].kill() })
	c.drain(done)
}

// Redis killed and restarted 2 s later with its AOF.
func (c *scenario) redisRestartAOF() {
	c.start("a")
	done := c.produce(c.encodeAll(c.stream(records)), rate)
	time.Sleep(3 * time.Second)
	c.fault(func() {
		c.s.redis.Kill()
		time.Sleep(2 * time.Second)
		c.s.redis.Restart()
	})
	c.drain(done)
}

// Redis comes back empty: the service must stop applying and name the
// rebuild in /readyz; the rebuild it names, then a restart, must give the
// baseline.
func (c *scenario) redisEmpty() {
	a := c.start("a")
	done := c.produce(c.encodeAll(c.stream(records)), rate)
	time.Sleep(3 * time.Second)
	c.fault(func() {
		c.s.redis.RestartEmpty()
		want := matcher.RebuildCommand(c.ns)
		start := time.Now()
		var body string
		for time.Since(start) < 30*time.Second {
			var code int
			if code, body = a.readyz(); code == http.StatusServiceUnavailable && strings.Contains(body, want) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !strings.Contains(body, want) {
			c.res.stalled = true
			c.res.note("/readyz never named %q: %s", want, body)
			return
		}
		c.res.note("not ready after %.1fs naming the rebuild", time.Since(start).Seconds())
		a.term()
		args := append(strings.Fields(want)[1:], c.replayArgs()...)
		rb := exec.Command(c.s.bin, args...)
		rb.Env = cleanEnv()
		out, err := rb.CombinedOutput()
		if err != nil {
			c.t.Fatalf("%s: %s: %v\n%s", c.name, want, err, out)
		}
		c.res.note("rebuilt in %.1fs", time.Since(start).Seconds())
		c.start("a")
	})
	c.drain(done)
}

// The broker process frozen (SIGSTOP) for 20 s: kfake keeps its log in
// memory, so a stopped broker is a frozen one, as under a network
// partition.
func (c *scenario) brokerStop() {
	c.start("a")
	done := c.produce(c.encodeAll(c.stream(records)), rate)
	time.Sleep(3 * time.Second)
	c.fault(func() {
		_ = c.s.broker.Process.Signal(syscall.SIGSTOP)
		time.Sleep(20 * time.Second)
		_ = c.s.broker.Process.Signal(syscall.SIGCONT)
	})
	c.drain(done)
}

// The poison set amid the stream: an id with invalid UTF-8, a bad date, a
// record over --max-record-bytes, and a valid ~615 KB lead with a
// duplicate (its lead.convert would exceed the producer's limit).
func (c *scenario) poison() {
	c.start("a")
	recs := c.encodeAll(c.stream(records))
	lead := func(id, email, desc string) record.Event {
		at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
		return record.Event{Op: record.OpUpsert, Record: record.Record{Tenant: "acme", Object: record.Lead, ID: id, CreatedAt: at, ModifiedAt: at,
			Fields: record.Fields{"FirstName": "Paula", "LastName": "Poison", "Email": email, "Company": "Poison Inc", "Title": desc}}}
	}
	enc := func(ev record.Event) []byte {
		b, err := json.Marshal(&ev)
		if err != nil {
			c.t.Fatal(err)
		}
		return b
	}
	utf8 := bytes.Replace(enc(lead("poison-utf8-XX", "utf8@poison.example", "")), []byte("XX"), []byte{0xff, 0xfe}, 1)
	date := bytes.Replace(enc(lead("poison-date", "date@poison.example", "")), []byte(`"created_at":"2026-03-01T09:00:00Z"`), []byte(`"created_at":"2026-13-45T09:00:00Z"`), 1)
	poisons := []*kgo.Record{
		c.raw(idOf("acme", record.Lead, "poison-utf8"), utf8),
		c.raw(idOf("acme", record.Lead, "poison-date"), date),
		c.raw(idOf("acme", record.Lead, "poison-oversize"), enc(lead("poison-oversize", "big@poison.example", strings.Repeat("x", 990_000)))),
		c.raw(idOf("acme", record.Lead, "poison-615k"), enc(lead("poison-615k", "big615@poison.example", strings.Repeat("y", 615_000)))),
		c.raw(idOf("acme", record.Lead, "poison-615k-dup"), enc(lead("poison-615k-dup", "big615@poison.example", "short"))),
	}
	mid := len(recs) / 3
	recs = slices.Concat(recs[:mid], poisons, recs[mid:])
	done := c.produce(recs, rate)
	time.Sleep(time.Duration(mid/rate) * time.Second)
	c.fault(func() {}) // the recovery: the stream moving past the poison
	c.drain(done)
	c.notePoison(poisons)
}

// notePoison records where each poison record went: the state or the
// dead-letter topic (with its code).
func (c *scenario) notePoison(poisons []*kgo.Record) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	codes := map[string]string{}
	for _, rec := range c.readAll(ctx, c.topic["dlq"]) {
		codes[header(rec, idHeader)] = header(rec, consumer.HeaderErrorCode) + " " + header(rec, consumer.HeaderErrorReason)
	}
	for _, p := range poisons {
		id := string(p.Key)
		if code, ok := codes[id]; ok {
			c.res.note("%s: dead-lettered %s", id[len("acme/lead/"):], strings.TrimSpace(code))
		} else {
			c.res.note("%s: applied", id[len("acme/lead/"):])
		}
	}
	kinds := map[string]int{}
	largest := 0
	for _, rec := range c.readAll(ctx, c.topic["commands"]) {
		if b, err := events.Payload(rec); err == nil && bytes.Contains(b, []byte("poison-615k")) {
			var cmd engine.Command
			if json.Unmarshal(b, &cmd) == nil {
				kinds[cmd.Kind]++
				largest = max(largest, len(rec.Value))
			}
		}
	}
	c.res.note("commands naming the 615 KB lead: %v, the largest %d bytes", kinds, largest)
}

// SIGTERM to a member while a rebalance is pending: b (a 30 s session) is
// killed, c joins, so the group waits for b up to 30 s; a is stopped
// meanwhile and must exit within --drain-timeout all the same.
func (c *scenario) sigtermRebalance() {
	c.start("a")
	c.start("b", "--session-timeout", "30s", "--rebalance-timeout", "40s")
	done := c.produce(c.encodeAll(c.stream(records)), rate)
	time.Sleep(3 * time.Second)
	c.procs["b"].kill()
	c.start("c")
	time.Sleep(time.Second)
	took := c.procs["a"].term()
	c.res.note("SIGTERM during the pending rebalance: exit after %.1fs (--drain-timeout %s)", took.Seconds(), drainTimeout)
	if took > drainTimeout+3*time.Second {
		c.res.defects = append(c.res.defects, "shutdown not bounded by --drain-timeout")
		c.res.note("DEFECT: shutdown not bounded by --drain-timeout")
	}
	c.fault(func() { c.start("a") })
	c.drain(done)
}
