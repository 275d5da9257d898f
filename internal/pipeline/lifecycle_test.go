package pipeline_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/consumer"
	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/internal/pipeline"
	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
	"github.com/leadconv/leadconv/internal/testutil/redistest"
	"github.com/leadconv/leadconv/lifecycle"
	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/matcher/gen"
)

// settleConfig is the generated data's configuration with the given
// settle window.
func settleConfig(t *testing.T, settle string) *config.File {
	t.Helper()
	var yml strings.Builder
	yml.WriteString("defaults:\n  engine:\n    settle: " + settle + "\n    max_settle: 60s\n  contact_fields:\n")
	fields := gen.ContactFields()
	for _, c := range slices.Sorted(maps.Keys(fields)) {
		fmt.Fprintf(&yml, "    %s: %s\n", c, fields[c])
	}
	cfg, err := config.Parse([]byte(yml.String()))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// ids returns the command ids of records.
func ids(recs []*kgo.Record) []string {
	var out []string
	for _, r := range recs {
		if id := string(kafkatest.Header(r, "ce_id")); id != "" {
			out = append(out, id)
		}
	}
	return out
}

// handleAll runs recs through h in chunks of n, then flushes, and returns
// the command ids in order.
func handleAll(t *testing.T, h *pipeline.Handler, recs []*kgo.Record, n int) []string {
	t.Helper()
	var out []string
	for chunk := range slices.Chunk(recs, n) {
		res, err := h.Handle(t.Context(), byTenantTopic, 0, chunk)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ids(res.Out)...)
	}
	rest, err := h.Flush(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	return append(out, ids(rest)...)
}

// takeOver gives h its owner of partition 0 with a first batch of another
// tenant's record: the owner then takes the tenants its predecessors left
// lifecycle state for.
func takeOver(t *testing.T, h *pipeline.Handler) []string {
	t.Helper()
	r := &kgo.Record{Topic: byTenantTopic, Offset: 1000, Value: []byte(`{"tenant":"zeta","object":"lead","id":"Z1","op":"upsert",` +
		`"created_at":"2026-01-02T03:04:05Z","modified_at":"2026-01-02T03:04:05Z","fields":{"FirstName":"Zoe","LastName":"Zed","Email":"z@z.example"}}`)}
	res, err := h.Handle(t.Context(), byTenantTopic, 0, []*kgo.Record{r})
	if err != nil || len(res.Poison) > 0 {
		t.Fatalf("take over: %v, poison %v", err, res.Poison)
	}
	return ids(res.Out)
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

// trio is three duplicate leads of one person at one event time, after
// the generated data: their cluster's plan waits for its settle window.
func trio(topic string) []*kgo.Record {
	var out []*kgo.Record
	for i := range 3 {
		v := fmt.Sprintf(`{"tenant":"acme","object":"lead","id":"T%d","op":"upsert","created_at":"2026-02-01T10:00:00Z","modified_at":"2026-02-01T10:00:00Z",`+
			`"fields":{"FirstName":"Tess","LastName":"Trio","Email":"tess@trio.example","Company":"Trio Ltd"}}`, i)
		out = append(out, &kgo.Record{Topic: topic, Key: []byte("acme/tess"), Value: []byte(v)})
	}
	return out
}

func offsets(recs []*kgo.Record) []*kgo.Record {
	for i, r := range recs {
		r.Topic, r.Offset = byTenantTopic, int64(i)
	}
	return recs
}

// Which cluster states are planned depends on the records' event time,
// not on how they are batched: one record per batch, a few, or all in one
// give the same commands (clusters planned several times in one batch
// compose; a window closes only once a later instant is read, never at a
// batch's end), so a replay reproduces the live ids whatever its batches,
// with the default settle window and with none; and so do owners that
// evict every settled lifecycle entry after each call (a bound of one
// byte) and read back what each batch needs.
func TestPlansDoNotDependOnBatches(t *testing.T) {
	e := newEnv(t, 1)
	recs := offsets(data(150))
	for name, lc := range map[string]func(*config.Tenant) lifecycle.Options{"default": pipeline.Settled, "settle 0": pipeline.Immediate} {
		var want []string
		var loads, evictions float64
		for _, bound := range []int64{0, 1} {
			for _, n := range []int{1, 7, 64, len(recs)} {
				reg := prometheus.NewRegistry()
				h := pipeline.NewHandler(pipeline.HandlerConfig{CommandsTopic: commandsTopic, MaxRecordBytes: maxBytes, Lifecycle: lc,
					LifecycleBytes: bound, Metrics: pipeline.NewMetrics(reg)}, e.owners(redistest.Namespace(t)), e.cfg)
				got := handleAll(t, h, recs, n)
				slices.Sort(got)
				if bound == 1 {
					loads += counterValue(t, reg, "leadconv_lifecycle_loads_total")
					evictions += counterValue(t, reg, "leadconv_lifecycle_evictions_total")
				}
				if n == 1 && bound == 0 {
					want = got
					if len(want) == 0 {
						t.Fatalf("%s: no commands", name)
					}
					continue
				}
				if !slices.Equal(got, want) {
					t.Fatalf("%s: bound %d, batches of %d: %d commands, batches of 1: %d; they differ", name, bound, n, len(got), len(want))
				}
			}
		}
		if loads == 0 || evictions == 0 {
			t.Fatalf("%s: bound of one byte: %v entries evicted, %v read back: nothing exercised", name, evictions, loads)
		}
	}
}

// The process dies after producing a batch's commands and before the next
// call wrote their release: the partition's next owner finds the plans held
// with the tenant's lifecycle and emits them again, under the same ids, and
// plans nothing else from the changed state; a redelivery of the batch
// (the offsets were not committed) yields the same ids again.
func TestHeldPlansEmittedAgainUnderTheSameIDs(t *testing.T) {
	e := newEnv(t, 1)
	ns := redistest.Namespace(t)
	recs := offsets(data(80))
	immediate := pipeline.HandlerConfig{CommandsTopic: commandsTopic, MaxRecordBytes: maxBytes, Lifecycle: pipeline.Immediate}
	first := pipeline.NewHandler(immediate, e.owners(ns), e.cfg)
	res, err := first.Handle(t.Context(), byTenantTopic, 0, recs)
	if err != nil {
		t.Fatal(err)
	}
	emitted := ids(res.Out)
	if len(emitted) == 0 {
		t.Fatal("no commands")
	}
	// first dies: no further call. Its successor, its first batch another
	// tenant's:
	next := pipeline.NewHandler(immediate, e.owners(ns), e.cfg)
	if got := takeOver(t, next); !slices.Equal(sorted(got), sorted(emitted)) {
		t.Fatalf("the next owner emitted %d commands, the dead one %d; they differ", len(got), len(emitted))
	}
	// The batch, redelivered: the same ids, nothing new.
	res, err = next.Handle(t.Context(), byTenantTopic, 0, recs)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids(res.Out) {
		if !slices.Contains(emitted, id) {
			t.Fatalf("the redelivered batch emitted a new command %s", id)
		}
	}
	// Released once acknowledged: a third owner emits nothing.
	if err := next.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	last := pipeline.NewHandler(immediate, e.owners(ns), e.cfg)
	if got := takeOver(t, last); len(got) != 0 {
		t.Fatalf("after the release: %d commands", len(got))
	}
}

// A rebalance: the partition's second owner restores the tenant's
// lifecycle from Redis, pending clusters included, and plans them as the
// first would have; the first, now a zombie, is refused its next writes,
// the side-state-only write of a flush as well as a batch.
func TestRebalanceRestoresLifecycle(t *testing.T) {
	e := newEnv(t, 1)
	ns := redistest.Namespace(t)
	recs := offsets(append(data(120), trio(byTenantTopic)...))
	settled := pipeline.HandlerConfig{CommandsTopic: commandsTopic, MaxRecordBytes: maxBytes}
	want := handleAll(t, pipeline.NewHandler(settled, e.owners(redistest.Namespace(t)), e.cfg), recs, 40)

	first := pipeline.NewHandler(settled, e.owners(ns), e.cfg)
	var got []string
	res, err := first.Handle(t.Context(), byTenantTopic, 0, recs)
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, ids(res.Out)...)
	if unplanned, _ := first.Pending(); unplanned == 0 {
		t.Fatal("nothing pending at the rebalance")
	}
	if err := first.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The open entries refer to the store's records of their clusters,
	// not copies: the second owner restores them from there.
	if byRef, whole := seenStored(t, e.srv, ns); len(byRef) == 0 || whole > 0 {
		t.Fatalf("%d clusters seen stored by reference, %d whole", len(byRef), whole)
	}
	second := pipeline.NewHandler(settled, e.owners(ns), e.cfg)
	got = append(got, takeOver(t, second)...)
	out, err := second.Flush(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("the second owner emitted none of the pending plans")
	}
	got = append(got, ids(out)...)
	if !slices.Equal(got, want) {
		t.Fatalf("across the rebalance %d commands, one owner %d; they differ", len(got), len(want))
	}
	if _, err := first.Flush(t.Context()); !errors.Is(err, matcher.ErrFenced) || !errors.Is(err, consumer.ErrPartitionLost) {
		t.Fatalf("the zombie's side-state write: %v, want fenced", err)
	}
	if _, err := first.Handle(t.Context(), byTenantTopic, 0, recs[:1]); !errors.Is(err, matcher.ErrFenced) {
		t.Fatalf("the zombie's batch: %v, want fenced", err)
	}
}

// The live pipeline is stopped while clusters wait for their settle
// window, their input committed; a new one takes the partition with no
// new input, restores the pending clusters and emits their plans when the
// window closes on the wall clock: every plan emitted once, doing what one
// owner's plans over the whole input do (the ids themselves are checked
// against one owner's by TestRebalanceRestoresLifecycle, without a wall
// clock).
func TestRestartMidSettle(t *testing.T) {
	e := newEnv(t, 2)
	e.cfg = settleConfig(t, "3s")
	ns := redistest.Namespace(t)
	recs := append(data(120), trio(recordsTopic)...)
	e.kc.Produce(recs...)
	p := e.pipeline(e.owners(ns), nil)
	stop := e.start(p)
	kafkatest.WaitFor(t, 30*time.Second, "the input committed, clusters pending", func() bool {
		unplanned, unwritten := p.Handler().Pending()
		return e.done(int64(len(recs))) && unplanned > 0 && unwritten == 0
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	before := len(e.kc.ReadAll(commandsTopic))
	stop = e.start(e.pipeline(e.owners(ns), nil))
	kafkatest.WaitFor(t, 30*time.Second, "the pending plans emitted", func() bool {
		return e.kc.EndOffsets(commandsTopic) > int64(before) && e.settled()
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got := e.commandIDs()
	for id, n := range got {
		if n != 1 {
			t.Fatalf("command %s emitted %d times", id, n)
		}
	}
	_, want := e.reference()
	e.sameOutcome(want)
}

// A settle window closes with no input after it: the partition's worker
// ticks when the window is due, and the plan comes then.
func TestTimersFireWithoutInput(t *testing.T) {
	e := newEnv(t, 1)
	e.cfg = settleConfig(t, "1s")
	at := time.Now().UTC()
	var recs []*kgo.Record
	for i := range 3 {
		v := fmt.Sprintf(`{"tenant":"acme","object":"lead","id":"L%d","op":"upsert","created_at":%q,"modified_at":%q,
			"fields":{"FirstName":"Ann","LastName":"Lee","Email":"ann@lee.example","Company":"Lee Holdings"}}`, i, at.Format(time.RFC3339Nano), at.Format(time.RFC3339Nano))
		recs = append(recs, &kgo.Record{Topic: recordsTopic, Key: []byte("acme/ann"), Value: []byte(v)})
	}
	e.kc.Produce(recs...)
	p := e.pipeline(e.owners(redistest.Namespace(t)), nil)
	stop := e.start(p)
	kafkatest.WaitFor(t, 30*time.Second, "the input committed", func() bool { return e.done(int64(len(recs))) })
	// Every input record was one batch's at one event time: only a timer
	// can plan the cluster.
	kafkatest.WaitFor(t, 30*time.Second, "the conversions", func() bool {
		n := 0
		for _, r := range e.kc.ReadAll(commandsTopic) {
			if string(kafkatest.Header(r, "ce_type")) == "io.leadconv.lead.convert.v1" {
				n++
			}
		}
		return n == 3
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// converts decodes the lead conversions among records.
func converts(t *testing.T, recs []*kgo.Record) []*engine.LeadConvert {
	t.Helper()
	var out []*engine.LeadConvert
	for _, r := range recs {
		ce, err := kafkatest.CloudEvent(r)
		if err != nil {
			t.Fatal(err)
		}
		var cmd engine.Command
		if err := ce.DataAs(&cmd); err != nil {
			t.Fatal(err)
		}
		if lc, ok := cmd.Data.(*engine.LeadConvert); ok {
			out = append(out, lc)
		}
	}
	return out
}

// The CRM's echo of a conversion reconciles the pending master with the
// contact's id, written at once: the partition's next owner restores it,
// and a later duplicate converts into that contact by id.
func TestEchoReconciledDurably(t *testing.T) {
	e := newEnv(t, 1)
	ns := redistest.Namespace(t)
	immediate := pipeline.HandlerConfig{CommandsTopic: commandsTopic, MaxRecordBytes: maxBytes, Lifecycle: pipeline.Immediate}
	h := pipeline.NewHandler(immediate, e.owners(ns), e.cfg)
	three := offsets(trio(byTenantTopic))
	res := handleIdle(t, h, byTenantTopic, 0, three[:2])
	master := ""
	for _, lc := range converts(t, res.Out) {
		if lc.Contact.Create {
			master = lc.LeadID
		}
	}
	if master == "" {
		t.Fatalf("no conversion creates the contact: %d commands", len(res.Out))
	}
	// The CRM reports the master converted, as the writer did it (its
	// change event, unmarked): an echo, which plans nothing.
	echo := &kgo.Record{Topic: byTenantTopic, Offset: 2, Value: []byte(`{"tenant":"acme","object":"lead","id":"` + master + `","op":"upsert",` +
		`"created_at":"2026-02-01T10:00:00Z","modified_at":"2026-02-01T10:00:01Z","fields":{"FirstName":"Tess","LastName":"Trio",` +
		`"Email":"tess@trio.example","Company":"Trio Ltd","IsConverted":true,"ConvertedContactId":"003ECHO","ConvertedAccountId":"001ECHO"}}`)}
	res = handleIdle(t, h, byTenantTopic, 0, []*kgo.Record{echo})
	if cmds := converts(t, res.Out); len(cmds) != 0 {
		t.Fatalf("the echo planned %d conversions", len(cmds))
	}
	next := pipeline.NewHandler(immediate, e.owners(ns), e.cfg)
	three[2].Offset = 3
	res = handleIdle(t, next, byTenantTopic, 0, three[2:])
	// The third, into the echoed contact.
	var third []*engine.LeadConvert
	for _, lc := range converts(t, res.Out) {
		if lc.LeadID == "T2" {
			third = append(third, lc)
		}
	}
	if len(third) != 1 || third[0].Contact.ID != "003ECHO" || third[0].Account.ID != "001ECHO" {
		t.Fatalf("the third lead's conversion: %+v, want into 003ECHO / 001ECHO", third)
	}
}

// The lifecycle is written in the batch's fenced call: a warm tenant's
// batch, its plans and pending state included, still costs one Redis
// round trip.
func TestWarmBatchWithLifecycleIsOneRoundTrip(t *testing.T) {
	e := newEnv(t, 1)
	ns := redistest.Namespace(t)
	res := matcher.NewResident(matcher.ResidentOptions{})
	owners := func() pipeline.Owner {
		return matcher.NewStore(e.srv.Client(), matcher.StoreOptions{Namespace: ns, Rules: e.cfg.Rules, Resident: res})
	}
	h := pipeline.NewHandler(pipeline.HandlerConfig{CommandsTopic: commandsTopic, MaxRecordBytes: maxBytes}, owners, e.cfg)
	recs := offsets(data(300))
	var before matcher.Stats
	cmds := 0
	for i, chunk := range slices.Collect(slices.Chunk(recs, 30)) {
		if i == 2 {
			before = res.Stats()
		}
		out, err := h.Handle(t.Context(), byTenantTopic, 0, chunk)
		if err != nil {
			t.Fatal(err)
		}
		if i >= 2 {
			cmds += len(out.Out)
		}
	}
	got := res.Stats().Sub(before)
	if got.Batches == 0 || got.RoundTrips != got.Batches || cmds == 0 {
		t.Fatalf("warm batches: %v round trips over %v batches (%d commands), want one each", got.RoundTrips, got.Batches, cmds)
	}
}

// handleIdle is Handle followed by what the live loop does once the
// partition's input pauses: the handler's ticks for it (Tick), read back
// from the partition, until none is due. Its Result's Out holds the
// batch's records and the ticks' commands, not the ticks.
func handleIdle(t *testing.T, h *pipeline.Handler, topic string, partition int32, recs []*kgo.Record) consumer.Result {
	t.Helper()
	res, err := h.Handle(t.Context(), topic, partition, recs)
	if err != nil {
		t.Fatal(err)
	}
	next := int64(0)
	if len(recs) > 0 {
		next = recs[len(recs)-1].Offset + 1
	}
	for range 10 {
		tr, err := h.Tick(t.Context(), topic, partition)
		if err != nil {
			t.Fatal(err)
		}
		var ticks []*kgo.Record
		for _, r := range tr.Out {
			if !isTickRecord(r) {
				res.Out = append(res.Out, r)
				continue
			}
			if r.Topic != topic {
				t.Fatalf("a tick for %s produced to %s", topic, r.Topic)
			}
			r.Partition, r.Offset = partition, next
			next++
			ticks = append(ticks, r)
		}
		if len(ticks) == 0 {
			return res
		}
		tres, err := h.Handle(t.Context(), topic, partition, ticks)
		if err != nil {
			t.Fatal(err)
		}
		res.Out = append(res.Out, tres.Out...)
		res.Poison = append(res.Poison, tres.Poison...)
	}
	t.Fatal("still ticking after 10 ticks")
	return res
}

func isTickRecord(r *kgo.Record) bool {
	return slices.ContainsFunc(r.Headers, func(hd kgo.RecordHeader) bool { return hd.Key == pipeline.HeaderTick })
}

// tickAt returns the time of the one tick among out, false with none.
func tickAt(t *testing.T, out []*kgo.Record) (time.Time, bool) {
	t.Helper()
	var ticks []time.Time
	for _, r := range out {
		if isTickRecord(r) {
			var v struct{ At time.Time }
			if err := json.Unmarshal(r.Value, &v); err != nil {
				t.Fatal(err)
			}
			ticks = append(ticks, v.At)
		}
	}
	if len(ticks) > 1 {
		t.Fatalf("%d ticks, want one at most", len(ticks))
	}
	return append(ticks, time.Time{})[0], len(ticks) == 1
}

// An idle tenant's clock runs with the wall clock from its last input,
// ticks or not: reading a tick back some time after it was produced moves
// the clock to the tick's time without restarting its idle time there, so
// the next window closes when the wall clock says, not a round trip later
// per tick.
func TestTicksKeepTheClockWithTheWallClock(t *testing.T) {
	srv := redistest.New(t)
	cfg, err := pipeline.GeneratedConfig()
	if err != nil {
		t.Fatal(err)
	}
	wall := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	now := wall
	h := pipeline.NewHandler(pipeline.HandlerConfig{CommandsTopic: commandsTopic, MaxRecordBytes: maxBytes, Clock: func() time.Time { return now },
		Lifecycle: func(*config.Tenant) lifecycle.Options { return lifecycle.Options{Settle: 2 * time.Second} }},
		ownersFor(srv, cfg), cfg)
	// Two clusters changed at event times 0 and 2 s, read at wall: due at
	// 2 and 4 s.
	in := []*kgo.Record{rec(leadEvent("acme", "L1", "ann@acme.io", 0, nil)), rec(leadEvent("acme", "L2", "bob@other.io", 2, nil))}
	if _, err := h.Handle(t.Context(), byTenantTopic, 0, offsets(in)); err != nil {
		t.Fatal(err)
	}
	tick := func(at time.Duration) (time.Time, bool, []*kgo.Record) {
		now = wall.Add(at)
		res, err := h.Tick(t.Context(), byTenantTopic, 0)
		if err != nil {
			t.Fatal(err)
		}
		c, ok := tickAt(t, res.Out)
		return c, ok, res.Out
	}
	c1, ok, out := tick(500 * time.Millisecond)
	if !ok || !c1.Equal(rsec(2).Add(500*time.Millisecond)) {
		t.Fatalf("first tick %v (%v), want at 2.5 s", c1, ok)
	}
	// Read back 100 ms after it was produced.
	now = wall.Add(600 * time.Millisecond)
	for _, r := range out {
		r.Offset = 2
	}
	if _, err := h.Handle(t.Context(), byTenantTopic, 0, out); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := tick(1900 * time.Millisecond); ok {
		t.Fatal("a tick at 3.9 s, before the second window closed")
	}
	if c2, ok, _ := tick(2 * time.Second); !ok || !c2.Equal(rsec(4)) {
		t.Fatalf("second tick %v (%v), want at 4 s: the wall clock's 2 s after the last input", c2, ok)
	}
}

// An idle tenant's clock runs from when its last input was logged (its
// Kafka timestamp), not from when it was processed, a batch later; a log
// time more than 100 ms back (a backlog, a producer's clock) counts as 100
// ms, and one ahead of the wall clock as none.
func TestIdleClockRunsFromTheLogTime(t *testing.T) {
	cfg, err := pipeline.GeneratedConfig()
	if err != nil {
		t.Fatal(err)
	}
	wall := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name   string
		logged time.Time
		ahead  time.Duration // of the processing time, the clock at the tick
	}{
		{"logged 30 ms before", wall.Add(-30 * time.Millisecond), 30 * time.Millisecond},
		{"logged a minute before", wall.Add(-time.Minute), 100 * time.Millisecond},
		{"logged ahead of the wall clock", wall.Add(time.Second), 0},
		{"no log time", time.Time{}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			now := wall
			h := pipeline.NewHandler(pipeline.HandlerConfig{CommandsTopic: commandsTopic, MaxRecordBytes: maxBytes, Clock: func() time.Time { return now },
				Lifecycle: func(*config.Tenant) lifecycle.Options { return lifecycle.Options{Settle: 2 * time.Second} }},
				ownersFor(redistest.New(t), cfg), cfg)
			r := rec(leadEvent("acme", "L1", "ann@acme.io", 0, nil))
			r.Timestamp = tt.logged
			if _, err := h.Handle(t.Context(), byTenantTopic, 0, offsets([]*kgo.Record{r})); err != nil {
				t.Fatal(err)
			}
			tick := ticker(t, h, &now, wall)
			due := 2*time.Second - tt.ahead
			if c, ok := tick(due - time.Millisecond); ok {
				t.Fatalf("a tick at %v, %v of wall time after the input was processed: want none before %v", c, due-time.Millisecond, due)
			}
			if c, ok := tick(due); !ok || !c.Equal(rsec(2)) {
				t.Fatalf("tick %v (%v), want one at 2 s, %v of wall time after the input was processed", c, ok, due)
			}
		})
	}
}

// An input older than the tenant's clock (from an input partition that
// lags, reordered by the routing hop) restarts its idle time without
// moving the clock ahead of the wall clock: only a later log time than
// the clock's runs it from there. (It ran ahead by the two inputs' gap, so
// windows closed that much before their settle had passed.)
func TestOlderInputDoesNotRunTheClockAhead(t *testing.T) {
	cfg, err := pipeline.GeneratedConfig()
	if err != nil {
		t.Fatal(err)
	}
	wall := rsec(10)
	now := wall
	h := pipeline.NewHandler(pipeline.HandlerConfig{CommandsTopic: commandsTopic, MaxRecordBytes: maxBytes, Clock: func() time.Time { return now },
		Lifecycle: func(*config.Tenant) lifecycle.Options { return lifecycle.Options{Settle: 2 * time.Second} }},
		ownersFor(redistest.New(t), cfg), cfg)
	at := func(id, email string, t time.Time) *kgo.Record {
		p := people[email]
		v, _ := json.Marshal(map[string]any{"tenant": "acme", "object": "lead", "id": id, "op": "upsert", "created_at": rsec(0), "modified_at": t,
			"fields": map[string]any{"FirstName": p[0], "LastName": p[1], "Email": email, "Company": p[2], "Phone": p[3]}})
		return &kgo.Record{Value: v, Timestamp: t}
	}
	// Bob's lead logged 7 ms before the batch, then Ann's, logged 10 ms
	// before it.
	newer, older := wall.Add(-7*time.Millisecond), wall.Add(-10*time.Millisecond)
	in := offsets([]*kgo.Record{at("L2", "bob@other.io", newer), at("L1", "ann@acme.io", older)})
	if _, err := h.Handle(t.Context(), byTenantTopic, 0, in); err != nil {
		t.Fatal(err)
	}
	tick := ticker(t, h, &now, wall)
	// Both changes stand at the clock, Bob's lead's time: their windows
	// close 2 s after it was logged, 1.993 s of wall time after the batch.
	if c, ok := tick(1992 * time.Millisecond); ok {
		t.Fatalf("a tick at %v, 1.992 s after the batch: the clock ran ahead of the wall clock", c)
	}
	if c, ok := tick(1993 * time.Millisecond); !ok || !c.Equal(newer.Add(2*time.Second)) {
		t.Fatalf("tick %v (%v), want one at %v", c, ok, newer.Add(2*time.Second))
	}
}

// ticker returns a Tick of h's partition 0 after some wall time from
// wall, with h's clock (*now) set there, and the tick it produced.
func ticker(t *testing.T, h *pipeline.Handler, now *time.Time, wall time.Time) func(after time.Duration) (time.Time, bool) {
	return func(after time.Duration) (time.Time, bool) {
		*now = wall.Add(after)
		res, err := h.Tick(t.Context(), byTenantTopic, 0)
		if err != nil {
			t.Fatal(err)
		}
		return tickAt(t, res.Out)
	}
}

// A taken entry refers to its cluster at a version the store no longer
// holds (state changed behind the owners' back): the next owner's take
// fails naming the tenant and cluster, rather than plan other records.
func TestStoredByReferenceToAnotherVersion(t *testing.T) {
	e := newEnv(t, 1)
	ns := redistest.Namespace(t)
	settled := pipeline.HandlerConfig{CommandsTopic: commandsTopic, MaxRecordBytes: maxBytes}
	first := pipeline.NewHandler(settled, e.owners(ns), e.cfg)
	if _, err := first.Handle(t.Context(), byTenantTopic, 0, offsets(trio(byTenantTopic))); err != nil {
		t.Fatal(err)
	}
	if err := first.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	byRef, _ := seenStored(t, e.srv, ns)
	if len(byRef) != 1 {
		t.Fatalf("%d clusters stored by reference, want the trio's", len(byRef))
	}
	// The cluster's field holds its version: "v<version>\t...".
	cl := strings.TrimSuffix(byRef[0][0], "side") + "cl"
	rdb := e.srv.Client()
	val, err := rdb.HGet(t.Context(), cl, byRef[0][1]).Result()
	if err != nil {
		t.Fatal(err)
	}
	ver, rest, ok := strings.Cut(strings.TrimPrefix(val, "v"), "\t")
	n, perr := strconv.Atoi(ver)
	if !ok || !strings.HasPrefix(val, "v") || perr != nil {
		t.Fatalf("cluster value %q holds no version", val)
	}
	if err := rdb.HSet(t.Context(), cl, byRef[0][1], "v"+strconv.Itoa(n+1)+"\t"+rest).Err(); err != nil {
		t.Fatal(err)
	}
	second := pipeline.NewHandler(settled, e.owners(ns), e.cfg)
	_, err = second.Handle(t.Context(), byTenantTopic, 0, offsets(trio(byTenantTopic))[:1])
	if err == nil || !strings.Contains(err.Error(), "tenant acme, cluster "+byRef[0][1]) || !strings.Contains(err.Error(), "stored by reference") {
		t.Fatalf("take of a reference to another version: %v", err)
	}
}

// seenStored returns the taken lifecycle entries in namespace ns whose
// cluster seen is stored by reference to the store's records (side key,
// cluster id), and counts those stored with their records.
func seenStored(t *testing.T, srv *redistest.Server, ns string) (byRef [][2]string, whole int) {
	t.Helper()
	rdb := srv.Client()
	keys, err := rdb.Keys(t.Context(), ns+":{*}:side").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		fields, err := rdb.HGetAll(t.Context(), k).Result()
		if err != nil {
			t.Fatal(err)
		}
		for f, v := range fields {
			var e struct {
				Seen *struct{ Records json.RawMessage } `json:"seen"`
			}
			if json.Unmarshal([]byte(v), &e) != nil || e.Seen == nil {
				continue // the clock, a stub
			}
			switch r := string(e.Seen.Records); {
			case r == `"store"`:
				byRef = append(byRef, [2]string{k, f})
			case strings.HasPrefix(r, "["):
				whole++
			}
		}
	}
	return byRef, whole
}
