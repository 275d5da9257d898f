package requests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/events"
	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
	"github.com/leadconv/leadconv/matcher/gen"
	"github.com/leadconv/leadconv/record"
	"github.com/leadconv/leadconv/writer"
)

// loopTenants are the tenants of the shipped-defaults loop: several, so
// their owners spread over the by-tenant partitions.
var loopTenants = []string{"acme", "globex", "initech"}

func loopSets() map[string]*gen.Set {
	sets := map[string]*gen.Set{}
	for i, tn := range loopTenants {
		sets[tn] = gen.New(gen.Options{Seed: uint64(21 + i), Tenant: tn, Records: 120, ContactShare: 0.25, DupRate: 0.45, Bursts: 0.3})
	}
	return sets
}

// newDefaultsLoop is the loop as shipped: no engine override (settle
// windows, merge_contacts off, prefer_existing_contact as configured by
// default), three partitions per topic, and the writer's results read by
// the pipeline.
func newDefaultsLoop(t *testing.T) *loop {
	l := newLoop(t, loopOptions{partitions: 3, feedback: true})
	// Longer than the default settle window plus a tick: quiet then means
	// no window is pending.
	l.hold = 3 * time.Second
	return l
}

// TestClosedLoopShippedDefaults runs generated leads and contacts with
// duplicates, for three tenants, through the pipeline and the writer with
// the shipped defaults: half in one burst, the rest trickling in over a few
// seconds so settle windows open and close while results and echoes come
// back. The CRM must end with one contact per person and nothing refused.
func TestClosedLoopShippedDefaults(t *testing.T) {
	t.Parallel()
	l := newDefaultsLoop(t)
	sets := loopSets()
	l.pipeline()
	l.writer()
	l.feed(sets, nil)
	l.quiet()
	l.checkLoop(sets)
}

// TestClosedLoopKilled is the same loop with the pipeline killed while
// clusters wait in their settle windows and the writer killed while it
// applies commands, both restarted.
//
// A kill is modelled in-process: from the moment of the kill the broker
// refuses the victim's offset commits (the connection is dropped, as to a
// dead process), then the victim is stopped. Whatever it did after that
// moment (a batch finished, its Redis state and commands written) is what a
// kill -9 just before its next periodic commit leaves: work done and not
// committed, redelivered to its successor. Nothing it does on the way out
// is committed, which is what distinguishes kill -9 from a graceful stop.
func TestClosedLoopKilled(t *testing.T) {
	t.Parallel()
	l := newDefaultsLoop(t)
	sets := loopSets()
	killed := l.killed
	l.refuseCommits()
	stopP := l.pipeline()
	stopW := l.writer()
	var pendingAtKill, uncommittedAtKill int64
	l.feed(sets, func(group int) {
		switch group {
		case 4:
			// Trickled records were just routed: their clusters are in
			// their settle windows.
			pendingAtKill = l.end(loopRecords) - l.committed("pipeline", loopRecords)
			killed["pipeline"].Store(true)
			time.Sleep(300 * time.Millisecond)
			stopP()
			killed["pipeline"].Store(false)
			stopP = l.pipeline()
		case 6:
			// The burst's commands come out as its settle windows close:
			// kill the writer with commands on the topic it has not
			// committed.
			kafkatest.WaitFor(t, 10*time.Second, "commands for the writer", func() bool {
				return l.end(loopCommands) > l.committed("writer", loopCommands)+2
			})
			uncommittedAtKill = l.end(loopCommands) - l.committed("writer", loopCommands)
			killed["writer"].Store(true)
			time.Sleep(100 * time.Millisecond)
			stopW()
			killed["writer"].Store(false)
			stopW = l.writer()
		}
	})
	l.quiet()
	t.Logf("killed the pipeline with %d records uncommitted, the writer with %d commands uncommitted", pendingAtKill, uncommittedAtKill)
	l.checkLoop(sets)
	stopP()
	stopW()
}

// refuseCommits has the broker drop the offset commits of a group while
// it is marked killed.
func (l *loop) refuseCommits() {
	l.kc.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		l.kc.KeepControl()
		if f, ok := l.killed[req.(*kmsg.OffsetCommitRequest).Group]; ok && f.Load() {
			return nil, errors.New("killed"), true
		}
		return nil, nil, false
	})
}

// feed puts every tenant's records in the mirror, then their upserts on
// the records topic keyed by record, as a CRM's change stream: half of
// them at once, the rest in groups of ten every 300ms, the tenants
// interleaved. during, when set, is called after each trickled group.
func (l *loop) feed(sets map[string]*gen.Set, during func(group int)) {
	l.t.Helper()
	var burst, trickle []*kgo.Record
	per := map[string][]*kgo.Record{}
	for _, tn := range loopTenants {
		recs := l.prepare(sets[tn])
		for _, r := range recs {
			var ev record.Event
			if err := json.Unmarshal(r.Value, &ev); err != nil {
				l.t.Fatal(err)
			}
			r.Key = []byte(ev.Tenant + "/" + ev.ID)
		}
		burst = append(burst, recs[:len(recs)/2]...)
		per[tn] = recs[len(recs)/2:]
	}
	for i := 0; ; i++ {
		n := 0
		for _, tn := range loopTenants {
			if i < len(per[tn]) {
				trickle = append(trickle, per[tn][i])
				n++
			}
		}
		if n == 0 {
			break
		}
	}
	l.kc.Produce(burst...)
	for g := 0; len(trickle) > 0; g++ {
		time.Sleep(300 * time.Millisecond)
		n := min(10, len(trickle))
		l.kc.Produce(trickle[:n]...)
		trickle = trickle[n:]
		if during != nil {
			during(g)
		}
	}
}

// loopFigures are what the loop did, for the test's log.
type loopFigures struct {
	results      map[string]int // writer results by outcome
	converted    int            // leads converted in the mirror
	convertIDs   int            // distinct lead.convert command ids
	multiContact int            // clusters with a lead and more than one live contact
	untouched    int            // contact-only clusters with duplicates (merge_contacts off)
	reviewed     map[string]int // clusters handed to a person, by reason
	deleted      int            // records merged away
}

func (f loopFigures) String() string {
	return fmt.Sprintf("results %v, %d leads converted by %d lead.convert ids, %d clusters with >1 live contact, %d contact-only clusters left alone, reviews %v, %d records merged away",
		f.results, f.converted, f.convertIDs, f.multiContact, f.untouched, f.reviewed, f.deleted)
}

// maxReviewed bounds the clusters a loop over generated data may hand to a
// person: the data has no real conflict, so nearly none should be.
const maxReviewed = 2

// checkLoop asserts the closed loop's invariants with the shipped defaults
// after it went quiet: no command refused, one lead.convert per converted
// lead, every cluster with a lead holding exactly one live contact and no
// unconverted lead, merged duplicates gone from the mirror and the matcher,
// notes moved. It returns the figures.
func (l *loop) checkLoop(sets map[string]*gen.Set) loopFigures {
	t := l.t
	t.Helper()
	ctx := context.Background()
	f := loopFigures{results: map[string]int{}, reviewed: map[string]int{}}

	for _, r := range l.kc.ReadAll(loopResults) {
		if string(kafkatest.Header(r, "ce_type")) != events.TypeCommandResult {
			continue
		}
		var res events.CommandResult
		if err := json.Unmarshal(r.Value, &res); err != nil {
			t.Fatal(err)
		}
		f.results[res.Outcome]++
		if res.Outcome == writer.OutcomeFailed {
			t.Errorf("%s: command %s (%s, cluster %s v%d) failed: %s", res.Tenant, res.CommandID, res.Kind, res.ClusterID, res.ClusterVersion, res.Reason)
		}
	}
	// Every lead one lead.convert (redeliveries carry the same id).
	convertedBy := map[string]map[string]bool{} // tenant/lead -> command ids
	convertIDs := map[string]bool{}
	for _, r := range l.kc.ReadAll(loopCommands) {
		b, err := events.Payload(r)
		if err != nil {
			t.Fatal(err)
		}
		var c engine.Command
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
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
	f.convertIDs = len(convertIDs)
	for k, ids := range convertedBy {
		if len(ids) > 1 {
			t.Errorf("lead %s converted by %d commands: %v", k, len(ids), slices.Sorted(maps.Keys(ids)))
		}
	}

	for _, tn := range loopTenants {
		leads := l.list(tn, record.Lead)
		contacts := l.list(tn, record.Contact)
		for id, r := range leads {
			if !isTrue(r.Fields[writer.FieldIsConverted]) {
				continue
			}
			f.converted++
			if _, ok := contacts[r.Fields.Str(writer.FieldConvertedContactID)]; !ok {
				t.Errorf("%s: converted lead %s points at %q, not a live contact", tn, id, r.Fields.Str(writer.FieldConvertedContactID))
			}
			if len(convertedBy[tn+"/"+id]) != 1 {
				t.Errorf("%s: lead %s converted in the mirror by %d lead.convert commands", tn, id, len(convertedBy[tn+"/"+id]))
			}
		}
		reviewed := l.reviewed(tn)
		clusters, err := l.store.Clusters(ctx, tn)
		if err != nil {
			t.Fatal(err)
		}
		deleted := l.deleted(tn)
		f.deleted += len(deleted)
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
					if r, ok := leads[m.ID]; ok && !isTrue(r.Fields[writer.FieldIsConverted]) {
						openLeads = append(openLeads, m.ID)
					}
				case record.Contact:
					if _, ok := contacts[m.ID]; ok {
						liveContacts = append(liveContacts, m.ID)
					}
				}
			}
			if len(liveContacts) > 1 && len(leadMembers) > 0 {
				f.multiContact++
			}
			switch {
			case reason != "":
				f.reviewed[reason]++
			case len(leadMembers) == 0:
				// Existing contacts alone: merge_contacts is off by default,
				// leadconv leaves them be.
				if len(liveContacts) > 1 {
					f.untouched++
				}
			case len(members) == 1:
				// A lone lead: converted only by request (convert_when unset).
			case len(liveContacts) != 1 || len(openLeads) > 0:
				t.Errorf("%s: cluster %s (%v) ends with live contacts %v and unconverted leads %v", tn, id, members, liveContacts, openLeads)
			}
		}
		l.checkNotes(tn, leads, contacts, (len(sets[tn].Records())+4)/5)
	}
	if f.converted != f.convertIDs {
		t.Errorf("%d lead.convert command ids for %d converted leads", f.convertIDs, f.converted)
	}
	if f.converted < 30 {
		t.Errorf("only %d leads converted: the data sets should convert many", f.converted)
	}
	if f.deleted == 0 {
		t.Error("no record was merged away")
	}
	if n := sumValues(f.reviewed); n > maxReviewed {
		t.Errorf("%d clusters handed to review (%v), want at most %d", n, f.reviewed, maxReviewed)
	}
	t.Logf("figures: %s", f)
	return f
}

// deleted is the set of the tenant's records the writer deleted.
func (l *loop) deleted(tenant string) map[record.Ref]bool {
	l.t.Helper()
	rows, err := l.db.Pool().Query(context.Background(), "SELECT object, id FROM deleted_records WHERE tenant = $1", tenant)
	if err != nil {
		l.t.Fatal(err)
	}
	defer rows.Close()
	out := map[record.Ref]bool{}
	for rows.Next() {
		var obj, id string
		if err := rows.Scan(&obj, &id); err != nil {
			l.t.Fatal(err)
		}
		out[record.Ref{Object: record.Object(obj), ID: id}] = true
	}
	if err := rows.Err(); err != nil {
		l.t.Fatal(err)
	}
	return out
}

func sumValues(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
