// Package looptest is the closed loop of the tests: generated CRM records
// in a PostgreSQL mirror and on the records topic, a pipeline (in-process
// or a leadconv process) planning commands, the reference writer applying
// them and feeding record events and results back. It loads the input,
// waits until the loop is quiet and checks the mirror's invariants; the
// caller starts and stops the services.
package looptest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/events"
	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
	"github.com/leadconv/leadconv/internal/testutil/pgtest"
	"github.com/leadconv/leadconv/internal/testutil/redistest"
	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/matcher/gen"
	"github.com/leadconv/leadconv/record"
	"github.com/leadconv/leadconv/writer"
)

// The consumer groups of the loop's pipeline and writer.
const (
	PipelineGroup = "pipeline"
	WriterGroup   = "writer"
)

// Topics names the loop's topics.
type Topics struct {
	Records, ByTenant, Commands, Results, Requests, DLQ string
	// More are further topics to create (a requests events topic).
	More []string
}

// Options shape a loop.
type Options struct {
	Topics     Topics
	Partitions int32
	// Engine is YAML put under defaults.engine on top of the shipped
	// defaults ("" for none).
	Engine string
	// Feedback: the pipeline reads the writer's results (quiet waits for
	// them to be committed too).
	Feedback bool
	// Hold is how long Quiet wants nothing new; longer than a settle window
	// and a tick, it means no window is pending (default: the longest
	// settle window of the config and a second).
	Hold time.Duration
}

// Loop holds the real parts of a closed loop.
type Loop struct {
	T     testing.TB
	Kafka *kafkatest.Cluster
	Adm   *kadm.Client
	// ConfigYAML is the service config Config was parsed from.
	ConfigYAML string
	Config     *config.File
	Redis      *redistest.Server
	RDB        redis.UniversalClient
	Namespace  string
	// Store reads the matcher's state.
	Store  *matcher.Store
	Mirror *writer.Mirror
	DB     *pgtest.DB
	Topics Topics
	Options
}

// New starts Kafka, Redis and PostgreSQL for a loop.
func New(t testing.TB, o Options) *Loop {
	t.Helper()
	var yml strings.Builder
	yml.WriteString("defaults:\n")
	if o.Engine != "" {
		yml.WriteString("  engine:\n    " + o.Engine + "\n")
	}
	// The generator's contacts name their fields its own way.
	yml.WriteString("  contact_fields:\n")
	for c, l := range gen.ContactFields() {
		fmt.Fprintf(&yml, "    %s: %s\n", c, l)
	}
	cfg, err := config.Parse([]byte(yml.String()))
	if err != nil {
		t.Fatal(err)
	}
	srv := redistest.New(t)
	ns := redistest.Namespace(t)
	db := pgtest.New(t)
	if err := writer.Migrate(context.Background(), db.Pool()); err != nil {
		t.Fatal(err)
	}
	tp := o.Topics
	kc := kafkatest.New(t, o.Partitions, append([]string{tp.Records, tp.ByTenant, tp.Commands, tp.Results, tp.Requests, tp.DLQ}, tp.More...)...)
	return &Loop{
		T: t, Kafka: kc, Adm: kadm.NewClient(kc.Client()), ConfigYAML: yml.String(), Config: cfg,
		Redis: srv, RDB: srv.Client(), Namespace: ns,
		Store:  matcher.NewStore(srv.Client(), matcher.StoreOptions{Namespace: ns, Rules: cfg.Rules}),
		Mirror: writer.NewMirror(db.Pool()), DB: db, Topics: tp, Options: o,
	}
}

// End is the number of records written to topic.
func (l *Loop) End(topic string) int64 {
	l.T.Helper()
	ends, err := l.Adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		l.T.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// Committed is the number of topic's records group has committed.
func (l *Loop) Committed(group, topic string) int64 {
	l.T.Helper()
	offs, err := l.Adm.FetchOffsets(context.Background(), group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return 0
	}
	if err != nil {
		l.T.Fatal(err)
	}
	var n int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.At > 0 {
			n += o.At
		}
	})
	return n
}

// Prepare puts the generated records in the mirror, with a note on every
// fifth, and returns their upserts for the records topic, keyed by tenant
// and entity.
func (l *Loop) Prepare(set *gen.Set) []*kgo.Record {
	l.T.Helper()
	ctx := context.Background()
	truth := set.Truth()
	recs := set.Records()
	var out []*kgo.Record
	for i := range recs {
		r := &recs[i]
		if i%5 == 0 {
			if err := l.Mirror.AddRelated(ctx, r.Tenant, "note-"+r.ID, "note", r.Ref()); err != nil {
				l.T.Fatal(err)
			}
			r.RelatedCount = 1
		}
		b, err := json.Marshal(record.Event{Op: record.OpUpsert, Record: *r})
		if err != nil {
			l.T.Fatal(err)
		}
		out = append(out, &kgo.Record{Topic: l.Topics.Records, Key: []byte(r.Tenant + "/" + truth[r.Ref()]), Value: b})
	}
	if err := l.Mirror.Put(ctx, recs...); err != nil {
		l.T.Fatal(err)
	}
	return out
}

// Quiet waits until the pipeline and the writer have committed everything
// and nothing new was written for Hold.
func (l *Loop) Quiet() {
	l.T.Helper()
	tp := l.Topics
	var last [3]int64
	since := time.Now()
	hold := l.Hold
	if hold == 0 {
		hold = l.settle() + time.Second
	}
	kafkatest.WaitFor(l.T, 60*time.Second, "the loop to go quiet", func() bool {
		ends := [3]int64{l.End(tp.Records), l.End(tp.ByTenant), l.End(tp.Commands)}
		done := l.Committed(PipelineGroup, tp.Records) >= ends[0] && l.Committed(PipelineGroup, tp.ByTenant) >= ends[1] &&
			l.Committed(WriterGroup, tp.Commands) >= ends[2] && l.Committed(PipelineGroup, tp.Requests) >= l.End(tp.Requests) &&
			(!l.Feedback || l.Committed(PipelineGroup, tp.Results) >= l.End(tp.Results))
		if !done || ends != last {
			since = time.Now()
		}
		last = ends
		time.Sleep(50 * time.Millisecond)
		return time.Since(since) >= hold
	})
}

// settle is the longest settle window of the loop's tenants: a window
// pending writes nothing for up to that long after the input stopped.
func (l *Loop) settle() time.Duration {
	var d time.Duration
	for _, name := range append(l.Config.Tenants(), "unconfigured") {
		tn, err := l.Config.Tenant(name)
		if err != nil {
			l.T.Fatal(err)
		}
		d = max(d, time.Duration(tn.Engine.Settle))
	}
	return d
}

// List is the tenant's records of obj in the mirror by id.
func (l *Loop) List(tenant string, obj record.Object) map[string]record.Record {
	l.T.Helper()
	recs, err := l.Mirror.List(context.Background(), tenant, obj)
	if err != nil {
		l.T.Fatal(err)
	}
	out := make(map[string]record.Record, len(recs))
	for _, r := range recs {
		out[r.ID] = r
	}
	return out
}

// Reviewed returns the tenant's records named by review.requested and
// conversion.failed commands the writer stored, with the reason.
func (l *Loop) Reviewed(tenant string) map[record.Ref]string {
	l.T.Helper()
	rows, err := l.DB.Pool().Query(context.Background(), "SELECT reason, data FROM cluster_reviews WHERE tenant = $1", tenant)
	if err != nil {
		l.T.Fatal(err)
	}
	out := map[record.Ref]string{}
	for rows.Next() {
		var reason string
		var d struct {
			Records []record.Ref `json:"records"`
		}
		if err := rows.Scan(&reason, &d); err != nil {
			l.T.Fatal(err)
		}
		for _, r := range d.Records {
			out[r] = reason
		}
	}
	if err := rows.Err(); err != nil {
		l.T.Fatal(err)
	}
	return out
}

// Deleted is the set of the tenant's records the writer deleted.
func (l *Loop) Deleted(tenant string) map[record.Ref]bool {
	l.T.Helper()
	rows, err := l.DB.Pool().Query(context.Background(), "SELECT object, id FROM deleted_records WHERE tenant = $1", tenant)
	if err != nil {
		l.T.Fatal(err)
	}
	out := map[record.Ref]bool{}
	for rows.Next() {
		var obj, id string
		if err := rows.Scan(&obj, &id); err != nil {
			l.T.Fatal(err)
		}
		out[record.Ref{Object: record.Object(obj), ID: id}] = true
	}
	if err := rows.Err(); err != nil {
		l.T.Fatal(err)
	}
	return out
}

// CheckNotes asserts no note was lost and every one hangs on a live record,
// none on a converted lead: merges and conversions moved them.
func (l *Loop) CheckNotes(tenant string, leads, contacts map[string]record.Record, want int) {
	t := l.T
	t.Helper()
	rows, err := l.DB.Pool().Query(context.Background(), "SELECT parent_object, parent_id FROM related WHERE tenant = $1", tenant)
	if err != nil {
		t.Fatal(err)
	}
	notes := 0
	for rows.Next() {
		var obj, id string
		if err := rows.Scan(&obj, &id); err != nil {
			t.Fatal(err)
		}
		notes++
		switch record.Object(obj) {
		case record.Lead:
			if r, ok := leads[id]; !ok || Converted(r) {
				t.Errorf("%s: a note hangs on lead %s, converted or gone", tenant, id)
			}
		case record.Contact:
			if _, ok := contacts[id]; !ok {
				t.Errorf("%s: a note hangs on contact %s, which is gone", tenant, id)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if notes != want {
		t.Errorf("%s: %d notes, want %d", tenant, notes, want)
	}
}

// Converted reports whether the mirror's lead is converted.
func Converted(r record.Record) bool {
	switch v := r.Fields[writer.FieldIsConverted].(type) {
	case bool:
		return v
	case string:
		return strings.EqualFold(strings.TrimSpace(v), "true")
	}
	return false
}

// Tenants are the tenants of Sets: several, so their owners spread over
// the by-tenant partitions.
var Tenants = []string{"acme", "globex", "initech"}

// Sets are generated leads and contacts for each of Tenants, with many
// duplicates, some of them back to back.
func Sets() map[string]*gen.Set {
	sets := map[string]*gen.Set{}
	for i, tn := range Tenants {
		sets[tn] = gen.New(gen.Options{Seed: uint64(21 + i), Tenant: tn, Records: 120, ContactShare: 0.25, DupRate: 0.45, Bursts: 0.3})
	}
	return sets
}

// Feed puts every tenant's records in the mirror, then their upserts on the
// records topic keyed by record, as a CRM's change stream: half of them at
// once, the rest in groups of ten every 300ms, the tenants interleaved,
// each modified when it is sent (event time is wall time, as live), so
// settle windows open while others close. during, when set, is called
// after each trickled group.
func (l *Loop) Feed(sets map[string]*gen.Set, during func(group int)) {
	l.T.Helper()
	var burst, trickle []record.Event
	per := map[string][]record.Event{}
	for _, tn := range Tenants {
		var evs []record.Event
		for _, r := range l.Prepare(sets[tn]) {
			var ev record.Event
			if err := json.Unmarshal(r.Value, &ev); err != nil {
				l.T.Fatal(err)
			}
			evs = append(evs, ev)
		}
		burst = append(burst, evs[:len(evs)/2]...)
		per[tn] = evs[len(evs)/2:]
	}
	for i := 0; ; i++ {
		n := 0
		for _, tn := range Tenants {
			if i < len(per[tn]) {
				trickle = append(trickle, per[tn][i])
				n++
			}
		}
		if n == 0 {
			break
		}
	}
	send := func(evs []record.Event) {
		now := time.Now().UTC()
		recs := make([]*kgo.Record, len(evs))
		for i, ev := range evs {
			// A microsecond apart keeps their order in event time.
			ev.ModifiedAt = now.Add(time.Duration(i) * time.Microsecond)
			b, err := json.Marshal(ev)
			if err != nil {
				l.T.Fatal(err)
			}
			recs[i] = &kgo.Record{Topic: l.Topics.Records, Key: []byte(ev.Tenant + "/" + ev.ID), Value: b}
		}
		l.Kafka.Produce(recs...)
	}
	send(burst)
	for g := 0; len(trickle) > 0; g++ {
		time.Sleep(300 * time.Millisecond)
		n := min(10, len(trickle))
		send(trickle[:n])
		trickle = trickle[n:]
		if during != nil {
			during(g)
		}
	}
}

// Figures are what a loop did.
type Figures struct {
	Results      map[string]int // writer results by outcome
	Converted    int            // leads converted in the mirror
	ConvertIDs   int            // distinct lead.convert command ids
	MultiContact int            // clusters with a lead and more than one live contact
	Untouched    int            // contact-only clusters with duplicates (merge_contacts off)
	Reviewed     map[string]int // clusters handed to a person, by reason
	Deleted      int            // records merged away
	Commands     int            // records on the commands topic
	Reemitted    int            // of them, commands emitted before (same id)
}

func (f Figures) String() string {
	return fmt.Sprintf("%d commands (%d emitted again), results %v, %d leads converted by %d lead.convert ids, %d clusters with >1 live contact, %d contact-only clusters left alone, reviews %v, %d records merged away",
		f.Commands, f.Reemitted, f.Results, f.Converted, f.ConvertIDs, f.MultiContact, f.Untouched, f.Reviewed, f.Deleted)
}

// MaxReviewed bounds the clusters a loop over generated data may hand to a
// person: the data has no real conflict, so nearly none should be.
const MaxReviewed = 2

// Check asserts the closed loop's invariants over Sets after it went quiet:
// no command refused, one lead.convert per converted lead, no record merged
// away by two commands, every cluster
// with a lead and another member holding exactly one live contact and no
// unconverted lead, merged duplicates gone from the mirror and the
// matcher, notes moved. It logs and returns the figures.
func (l *Loop) Check(sets map[string]*gen.Set) Figures {
	t := l.T
	t.Helper()
	ctx := context.Background()
	f := Figures{Results: map[string]int{}, Reviewed: map[string]int{}}

	applied := map[string]bool{} // command ids
	for _, r := range l.Kafka.ReadAll(l.Topics.Results) {
		if string(kafkatest.Header(r, "ce_type")) != events.TypeCommandResult {
			continue
		}
		var res events.CommandResult
		if err := json.Unmarshal(r.Value, &res); err != nil {
			t.Fatal(err)
		}
		f.Results[res.Outcome]++
		// A writer killed between its commit and its result reports the
		// redelivered command as a duplicate of what it applied.
		if res.Outcome == writer.OutcomeApplied || res.Outcome == writer.OutcomeSkippedDuplicate && res.Previous == writer.OutcomeApplied {
			applied[res.CommandID] = true
		}
		if res.Outcome == writer.OutcomeFailed {
			t.Errorf("%s: command %s (%s, cluster %s v%d) failed: %s", res.Tenant, res.CommandID, res.Kind, res.ClusterID, res.ClusterVersion, res.Reason)
		}
	}
	// Every lead one lead.convert: a redelivery or a re-plan of the same
	// state carries the same id, anything else is a second conversion.
	convertedBy := map[string]map[string]bool{} // tenant/lead -> command ids
	convertIDs := map[string]bool{}
	mergedBy := map[string]map[string]bool{} // tenant/object/id -> applied merge ids
	payloads := map[string]string{}          // command id -> payload
	cmds := l.Kafka.ReadAll(l.Topics.Commands)
	f.Commands = len(cmds)
	for _, r := range cmds {
		b, err := events.Payload(r)
		if err != nil {
			t.Fatal(err)
		}
		// A command emitted again (after a restart, a re-plan of the same
		// state) is the same command.
		id := string(kafkatest.Header(r, "ce_id"))
		if p, ok := payloads[id]; ok {
			f.Reemitted++
			if p != string(b) {
				t.Errorf("command %s emitted twice with different data:\n%s\n%s", id, p, b)
			}
		}
		payloads[id] = string(b)
		var c engine.Command
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		if m, ok := c.Data.(*engine.RecordsMerge); ok && applied[c.ID] {
			for _, id := range m.MergedIDs {
				k := c.Tenant + "/" + string(m.Object) + "/" + id
				if mergedBy[k] == nil {
					mergedBy[k] = map[string]bool{}
				}
				mergedBy[k][c.ID] = true
			}
		}
		if c.Kind != engine.KindLeadConvert {
			continue
		}
		convertIDs[c.ID] = true
		k := c.Tenant + "/" + c.Data.(*engine.LeadConvert).LeadID
		if convertedBy[k] == nil {
			convertedBy[k] = map[string]bool{}
		}
		convertedBy[k][c.ID] = true
	}
	f.ConvertIDs = len(convertIDs)
	for k, ids := range convertedBy {
		if len(ids) > 1 {
			t.Errorf("lead %s converted by %d commands: %v", k, len(ids), slices.Sorted(maps.Keys(ids)))
		}
	}
	for k, ids := range mergedBy {
		if len(ids) > 1 {
			t.Errorf("%s merged away by %d applied commands: %v", k, len(ids), slices.Sorted(maps.Keys(ids)))
		}
	}

	for _, tn := range Tenants {
		leads := l.List(tn, record.Lead)
		contacts := l.List(tn, record.Contact)
		convertedInto := map[string]bool{} // contacts leads were converted into
		for id, r := range leads {
			if !Converted(r) {
				continue
			}
			convertedInto[r.Fields.Str(writer.FieldConvertedContactID)] = true
			f.Converted++
			if _, ok := contacts[r.Fields.Str(writer.FieldConvertedContactID)]; !ok {
				t.Errorf("%s: converted lead %s points at %q, not a live contact", tn, id, r.Fields.Str(writer.FieldConvertedContactID))
			}
			if len(convertedBy[tn+"/"+id]) != 1 {
				t.Errorf("%s: lead %s converted in the mirror by %d lead.convert commands", tn, id, len(convertedBy[tn+"/"+id]))
			}
		}
		reviewed := l.Reviewed(tn)
		clusters, err := l.Store.Clusters(ctx, tn)
		if err != nil {
			t.Fatal(err)
		}
		deleted := l.Deleted(tn)
		f.Deleted += len(deleted)
		for r := range deleted {
			if len(mergedBy[tn+"/"+string(r.Object)+"/"+r.ID]) != 1 && !strings.HasPrefix(r.ID, "con_") {
				t.Errorf("%s: %s deleted, merged away by %d applied commands", tn, r, len(mergedBy[tn+"/"+string(r.Object)+"/"+r.ID]))
			}
		}
		for id, members := range clusters {
			var liveContacts, openLeads, leadMembers []string
			reason := ""
			for _, m := range members {
				if r := reviewed[m]; r != "" {
					reason = r
				}
				if deleted[m] {
					t.Errorf("%s: cluster %s still holds %s, merged away", tn, id, m)
				}
				switch m.Object {
				case record.Lead:
					leadMembers = append(leadMembers, m.ID)
					if r, ok := leads[m.ID]; ok && !Converted(r) {
						openLeads = append(openLeads, m.ID)
					}
				case record.Contact:
					if _, ok := contacts[m.ID]; ok {
						liveContacts = append(liveContacts, m.ID)
					}
				}
			}
			if len(liveContacts) > 1 && len(leadMembers) > 0 {
				f.MultiContact++
			}
			switch {
			case reason != "":
				f.Reviewed[reason]++
				t.Logf("%s: cluster %s handed to review: %s", tn, id, reason)
			case len(leadMembers) == 0 && !slices.ContainsFunc(liveContacts, func(c string) bool { return convertedInto[c] }):
				// Existing contacts alone: merge_contacts is off by default,
				// leadconv leaves them be.
				if len(liveContacts) > 1 {
					f.Untouched++
				}
			case len(leadMembers) == 0:
				// The converted leads left the cluster; the contact they
				// became must be its only one.
				if len(liveContacts) != 1 {
					t.Errorf("%s: cluster %s ends with live contacts %v, leads were converted into some", tn, id, liveContacts)
					l.logHistory(tn, cmds, leads, liveContacts)
				}
			case len(members) == 1:
				// A lone lead: converted only by request (convert_when unset).
			case len(liveContacts) != 1 || len(openLeads) > 0:
				t.Errorf("%s: cluster %s (%v) ends with live contacts %v and unconverted leads %v", tn, id, members, liveContacts, openLeads)
				l.logHistory(tn, cmds, leads, append(liveContacts, leadMembers...))
			}
		}
		l.CheckNotes(tn, leads, contacts, (len(sets[tn].Records())+4)/5)
	}
	if f.Converted != f.ConvertIDs {
		t.Errorf("%d lead.convert command ids for %d converted leads", f.ConvertIDs, f.Converted)
	}
	if f.Converted < 30 {
		t.Errorf("only %d leads converted: the data sets should convert many", f.Converted)
	}
	if f.Deleted == 0 {
		t.Error("no record was merged away")
	}
	if n := sumValues(f.Reviewed); n > MaxReviewed {
		t.Errorf("%d clusters handed to review (%v), want at most %d", n, f.Reviewed, MaxReviewed)
	}
	t.Logf("figures: %s", f)
	return f
}

// logHistory logs, in topic order, the tenant's commands that name one of
// ids or a lead converted into one of them: what a failed check needs.
func (l *Loop) logHistory(tenant string, cmds []*kgo.Record, leads map[string]record.Record, ids []string) {
	terms := slices.Clone(ids)
	for id, r := range leads {
		if slices.Contains(ids, r.Fields.Str(writer.FieldConvertedContactID)) {
			terms = append(terms, id)
		}
	}
	for _, r := range cmds {
		b, err := events.Payload(r)
		if err != nil {
			continue
		}
		var c engine.Command
		if json.Unmarshal(b, &c) != nil || c.Tenant != tenant {
			continue
		}
		if slices.ContainsFunc(terms, func(id string) bool { return strings.Contains(string(b), `"`+id+`"`) }) {
			d, _ := json.Marshal(c.Data)
			l.T.Logf("  %s %s cluster %s v%d seq %d: %s", c.ID, c.Kind, c.ClusterID, c.ClusterVersion, c.Seq, d)
		}
	}
}

func sumValues(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
