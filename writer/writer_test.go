package writer

import (
	"context"
	"encoding/json"
	"flag"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/events"
	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
	"github.com/leadconv/leadconv/record"
)

const (
	commandsTopic = "t.commands"
	recordsTopic  = "t.records"
	resultsTopic  = "t.results"
)

// runWriter runs the writer of group over the cluster until every command
// written so far is committed, then stops it.
func runWriter(t *testing.T, c *kafkatest.Cluster, dbURL, group string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			Brokers: c.Addrs(), Group: group, CommandsTopic: commandsTopic, RecordsTopic: recordsTopic,
			ResultsTopic: resultsTopic, PostgresURL: dbURL, Logger: zerolog.Nop(),
		})
	}()
	want := c.EndOffsets(commandsTopic)
	kafkatest.WaitFor(t, 30*time.Second, "the writer to commit every command", func() bool {
		select {
		case err := <-done:
			t.Fatalf("writer stopped early: %v", err)
		default:
		}
		return c.Committed(group, commandsTopic) >= want
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("writer: %v", err)
	}
}

// marks holds, per partition, the offset past the records read so far. The
// fetch order across partitions varies, so "what came after" is per partition.
type marks map[int32]int64

// readPast returns topic's records past m and moves m past them; a nil m
// reads everything.
func readPast(c *kafkatest.Cluster, topic string, m marks) []*kgo.Record {
	var out []*kgo.Record
	for _, r := range c.ReadAll(topic) {
		if m == nil || r.Offset >= m[r.Partition] {
			out = append(out, r)
		}
	}
	for _, r := range out {
		if m != nil && r.Offset >= m[r.Partition] {
			m[r.Partition] = r.Offset + 1
		}
	}
	return out
}

// results decodes the command.result events of the results topic past m.
func results(t *testing.T, c *kafkatest.Cluster, m marks) []Result {
	t.Helper()
	var out []Result
	for _, r := range readPast(c, resultsTopic, m) {
		if got := string(kafkatest.Header(r, "ce_type")); got != ResultType {
			t.Fatalf("result type %q", got)
		}
		checkSchema(t, "command.result", r.Value)
		var res Result
		if err := json.Unmarshal(r.Value, &res); err != nil {
			t.Fatal(err)
		}
		if got := string(kafkatest.Header(r, "ce_subject")); got != res.CommandID {
			t.Errorf("result subject %q, command %q", got, res.CommandID)
		}
		// Keyed by tenant: the pipeline routes a tenant's results, in
		// order, to the tenant's owner.
		if res.Tenant != "" && string(r.Key) != res.Tenant {
			t.Errorf("result of %s keyed %q, want the tenant %q", res.CommandID, r.Key, res.Tenant)
		}
		out = append(out, res)
	}
	return out
}

func recordEvents(t *testing.T, c *kafkatest.Cluster, m marks) []record.Event {
	t.Helper()
	var out []record.Event
	for _, r := range readPast(c, recordsTopic, m) {
		checkSchema(t, "record-event", r.Value)
		var ev record.Event
		if err := json.Unmarshal(r.Value, &ev); err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != ev.Tenant+"/"+string(ev.Object)+"/"+ev.ID {
			t.Errorf("record event key %q for %s", r.Key, ev.Ref())
		}
		if string(kafkatest.Header(r, events.HeaderEcho)) != "1" {
			t.Errorf("record event of %s not marked as leadconv's echo", ev.Ref())
		}
		out = append(out, ev)
	}
	return out
}

func outcomes(rs []Result) map[string]string {
	out := map[string]string{}
	for _, r := range rs {
		out[r.CommandID] = r.Outcome + " " + r.Reason
	}
	return out
}

// TestRunClosesTheLoop runs the writer over commands as the pipeline encodes
// them (binary and structured CloudEvents, one plain JSON, one garbage
// record) and checks the mirror, the record events fed back and the results;
// then a second consumer group redelivers everything, as a writer that
// crashed before committing any offset would see it.
func TestRunClosesTheLoop(t *testing.T) {
	t.Parallel()
	m, dbURL := newMirrorDB(t)
	c := kafkatest.New(t, 2, commandsTopic, recordsTopic, resultsTopic)

	convert := convertL1()
	convert.RequestID = "req-1" // planned by a mass-conversion request
	merge := command(engine.KindRecordsMerge, "cmd-merge-C3", 3, &engine.RecordsMerge{
		Object: record.Contact, Master: engine.Target{FromLead: "L1"}, MergedIDs: []string{"C3"},
		Fields: record.Fields{"LastName": "Smith", "Title": "CEO"},
	})
	stale := command(engine.KindLeadConvert, "cmd-stale", 2, &engine.LeadConvert{LeadID: "L2", Contact: engine.Target{ID: "C1"}})
	missing := command(engine.KindLeadConvert, "cmd-missing", 3, &engine.LeadConvert{LeadID: "L7", Contact: engine.Target{Create: true}})
	missing.ClusterID = "K2"
	binary := events.Encoder{Topic: commandsTopic}
	structured := events.Encoder{Topic: commandsTopic, Structured: true}
	var recs []*kgo.Record
	for i, cmd := range []*engine.Command{convert, merge, stale, missing} {
		enc := binary
		if i%2 == 1 {
			enc = structured
		}
		r, err := enc.Command(*cmd, t0)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	plain, err := json.Marshal(command(engine.KindReviewRequested, "cmd-plain", 3, &engine.ReviewRequested{Reason: engine.ReasonMasterTie}))
	if err != nil {
		t.Fatal(err)
	}
	recs = append(recs,
		&kgo.Record{Topic: commandsTopic, Key: events.Key(tenant, "K1"), Value: plain},
		&kgo.Record{Topic: commandsTopic, Key: events.Key(tenant, "K1"), Value: []byte("{not json")})
	c.Produce(recs...)

	runWriter(t, c, dbURL, "w1")

	resultMarks, eventMarks := marks{}, marks{}
	first := results(t, c, resultMarks)
	got := outcomes(first)
	want := map[string]string{
		convert.ID: "applied ", merge.ID: "applied ", stale.ID: "stale ",
		missing.ID: "failed " + ReasonMissingLead, "cmd-plain": "applied ", "": "failed " + ReasonInvalidCommand,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("results %v, want %v", got, want)
	}
	for _, r := range first {
		if want := map[string]string{convert.ID: "req-1"}[r.CommandID]; r.RequestID != want {
			t.Errorf("result of %s: request_id %q, want %q", r.CommandID, r.RequestID, want)
		}
	}
	lead := mustGet(t, m, record.Lead, "L1")
	contactID := lead.Fields.Str(FieldConvertedContactID)
	contact := mustGet(t, m, record.Contact, contactID)
	if contact.Fields.Str("Title") != "CEO" || contact.RelatedCount != 2 {
		t.Errorf("merge master %v, related %d (want the lead's and C3's notes)", contact.Fields, contact.RelatedCount)
	}
	if _, ok := get(t, m, record.Contact, "C3"); ok {
		t.Error("merged contact C3 still exists")
	}
	if l2 := mustGet(t, m, record.Lead, "L2"); l2.Fields[FieldIsConverted] != nil {
		t.Error("the stale plan converted L2")
	}
	evs := recordEvents(t, c, eventMarks)
	var seen []string
	for _, ev := range evs {
		seen = append(seen, string(ev.Op)+" "+ev.Ref().String())
	}
	for _, w := range []string{"upsert lead/L1", "upsert contact/" + contactID, "delete contact/C3"} {
		if !slices.Contains(seen, w) {
			t.Errorf("record events %v lack %q", seen, w)
		}
	}
	last := map[record.Ref]record.Event{}
	for _, ev := range evs {
		last[ev.Ref()] = ev
	}
	if ev := last[record.Ref{Object: record.Contact, ID: contactID}]; ev.Fields.Str("Title") != "CEO" {
		t.Errorf("the contact's last event does not carry the merged state: %v", ev.Fields)
	}
	before := snapshot(t, m)
	nResults, nEvents := len(first), len(evs)

	runWriter(t, c, dbURL, "w2")

	if after := snapshot(t, m); !reflect.DeepEqual(before, after) {
		t.Errorf("redelivery changed the mirror:\n%v\n%v", before, after)
	}
	again := results(t, c, resultMarks)
	for _, r := range again {
		if r.CommandID != "" && r.Outcome != OutcomeSkippedDuplicate {
			t.Errorf("redelivered %s: %s", r.CommandID, r.Outcome)
		}
		if r.CommandID == convert.ID && r.RequestID != "req-1" {
			t.Errorf("redelivered %s: request_id %q", r.CommandID, r.RequestID)
		}
	}
	if len(again) != nResults {
		t.Errorf("%d results on redelivery, want %d", len(again), nResults)
	}
	// The redelivered commands re-emit the touched records' current state:
	// a crash between commit and produce loses no change.
	evs = recordEvents(t, c, eventMarks)
	if len(evs) != nEvents {
		t.Errorf("%d record events on redelivery, want %d", len(evs), nEvents)
	}
	for _, ev := range evs {
		if want := last[ev.Ref()]; ev.Op != want.Op || !reflect.DeepEqual(ev.Fields, want.Fields) {
			t.Errorf("re-emitted %s %s differs from the last state", ev.Op, ev.Ref())
		}
	}
}

func TestFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want Config
		err  string
	}{
		{"defaults", []string{"--postgres", "postgres://db"}, Config{Brokers: []string{"localhost:9092"}, PostgresURL: "postgres://db",
			Group: DefaultGroup, CommandsTopic: DefaultCommandsTopic, RecordsTopic: DefaultRecordsTopic, ResultsTopic: DefaultResultsTopic}, ""},
		{"all", []string{"--postgres", "p", "--brokers", "a:1, b:2", "--group", "g", "--commands-topic", "c", "--records-topic", "r", "--results-topic", "s"},
			Config{Brokers: []string{"a:1", "b:2"}, PostgresURL: "p", Group: "g", CommandsTopic: "c", RecordsTopic: "r", ResultsTopic: "s"}, ""},
		{"no postgres", nil, Config{}, "no PostgreSQL URL"},
		{"no brokers", []string{"--postgres", "p", "--brokers", " , "}, Config{}, "no brokers"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("writer", flag.ContinueOnError)
			var f Flags
			f.Register(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			var names []string
			fs.VisitAll(func(fl *flag.Flag) { names = append(names, fl.Name) })
			if slices.Sort(names); !slices.Equal(names, slices.Sorted(slices.Values(FlagNames))) {
				t.Errorf("flags %v, FlagNames %v", names, FlagNames)
			}
			got, err := f.Config(zerolog.Nop())
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got.Logger = zerolog.Logger{}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("config %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestRunCommitsAfterOutputs holds the writer's first produce request: the
// command's transaction is committed to the mirror, but its offset is not
// committed until the record events and the result are acknowledged.
func TestRunCommitsAfterOutputs(t *testing.T) {
	t.Parallel()
	m, dbURL := newMirrorDB(t)
	c := kafkatest.New(t, 1, commandsTopic, recordsTopic, resultsTopic)
	r, err := events.Encoder{Topic: commandsTopic}.Command(*convertL1(), t0)
	if err != nil {
		t.Fatal(err)
	}
	c.Produce(r)
	release := make(chan struct{})
	var held atomic.Bool
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		if held.CompareAndSwap(false, true) {
			c.SleepControl(func() { <-release })
		}
		return nil, nil, false
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Brokers: c.Addrs(), Group: "w", CommandsTopic: commandsTopic, RecordsTopic: recordsTopic,
			ResultsTopic: resultsTopic, PostgresURL: dbURL, Logger: zerolog.Nop()})
	}()
	kafkatest.WaitFor(t, 20*time.Second, "the output to be produced", held.Load)
	if l := mustGet(t, m, record.Lead, "L1"); l.Fields[FieldIsConverted] != true {
		t.Fatal("the produce happens after the transaction committed")
	}
	time.Sleep(200 * time.Millisecond)
	if n := c.Committed("w", commandsTopic); n != 0 {
		t.Fatalf("offset committed before the output was acknowledged: %d", n)
	}
	close(release)
	kafkatest.WaitFor(t, 20*time.Second, "the commit", func() bool { return c.Committed("w", commandsTopic) == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if rs := results(t, c, nil); len(rs) != 1 || rs[0].Outcome != OutcomeApplied {
		t.Errorf("results %+v", rs)
	}
}

// A missing output topic is waited for, named in the log, instead of the
// writer consuming commands it cannot report on; once created, it runs.
func TestRunWaitsForMissingTopic(t *testing.T) {
	t.Parallel()
	_, dbURL := newMirrorDB(t)
	c := kafkatest.New(t, 1, commandsTopic, recordsTopic)
	var logs syncBuf
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Brokers: c.Addrs(), Group: "w", CommandsTopic: commandsTopic, RecordsTopic: recordsTopic,
			ResultsTopic: resultsTopic, PostgresURL: dbURL, Logger: zerolog.New(&logs)})
	}()
	kafkatest.WaitFor(t, 20*time.Second, "the waiting log naming the topic", func() bool {
		return strings.Contains(logs.String(), "topic "+resultsTopic+" (results topic, --results-topic): not found")
	})
	if strings.Contains(logs.String(), "writer started") {
		t.Fatal("the writer started without its results topic")
	}
	if _, err := kadm.NewClient(c.Client()).CreateTopic(ctx, 1, 1, nil, resultsTopic); err != nil {
		t.Fatal(err)
	}
	kafkatest.WaitFor(t, 20*time.Second, "the start", func() bool { return strings.Contains(logs.String(), "writer started") })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
