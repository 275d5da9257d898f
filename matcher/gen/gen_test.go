package gen

import (
	"reflect"
	"strings"
	"testing"

	"github.com/leadconv/leadconv/record"
)

func TestDeterministic(t *testing.T) {
	o := Options{Seed: 7, Records: 500, ContactShare: 0.2, Updates: 0.2, Deletes: 0.1}
	a, b := New(o), New(o)
	if !reflect.DeepEqual(a.Events(), b.Events()) || !reflect.DeepEqual(a.Truth(), b.Truth()) {
		t.Fatal("same options gave different data")
	}
	o.Seed = 8
	if reflect.DeepEqual(a.Events(), New(o).Events()) {
		t.Fatal("another seed gave the same data")
	}
}

func TestShape(t *testing.T) {
	const n = 4000
	s := New(Options{Seed: 3, Tenant: "t1", Records: n, DupRate: 0.3, ContactShare: 0.25})
	evs := s.Events()
	if len(evs) != n {
		t.Fatalf("%d events, want %d creations", len(evs), n)
	}
	truth := s.Truth()
	entities := map[string]int{}
	contacts, fields := 0, 0
	for _, ev := range evs {
		if ev.Op != record.OpUpsert || ev.Tenant != "t1" || ev.CreatedAt != ev.ModifiedAt {
			t.Fatalf("creation %s: op %s tenant %s created %v modified %v", ev.Ref(), ev.Op, ev.Tenant, ev.CreatedAt, ev.ModifiedAt)
		}
		entities[truth[ev.Ref()]]++
		fields += len(ev.Fields)
		switch ev.Object {
		case record.Contact:
			contacts++
			if _, ok := ev.Fields["Company"]; ok {
				t.Fatalf("contact %s has the lead field Company: %v", ev.ID, ev.Fields)
			}
		case record.Lead:
			if _, ok := ev.Fields["AccountName"]; ok {
				t.Fatalf("lead %s has the contact field AccountName", ev.ID)
			}
		}
		if ev.Fields.Blank("LastName") {
			t.Fatalf("%s has no last name", ev.ID)
		}
	}
	if dup := 1 - float64(len(entities))/n; dup < 0.27 || dup > 0.33 {
		t.Errorf("duplicate share %.3f, want about 0.3", dup)
	}
	if c := float64(contacts) / n; c < 0.22 || c > 0.28 {
		t.Errorf("contact share %.3f, want about 0.25", c)
	}
	if avg := float64(fields) / n; avg < 13 || avg > 18 {
		t.Errorf("%.1f fields per record, want about 15", avg)
	}
}

// Distinct people never share an e-mail address: the default rules treat a
// shared address as proof of identity.
func TestEmailsUniquePerEntity(t *testing.T) {
	s := New(Options{Seed: 4, Records: 5000, Updates: 0.2})
	owner := map[string]string{}
	for _, r := range s.Records() {
		e := strings.ToLower(strings.TrimSpace(r.Fields.Str("Email")))
		if e == "" {
			continue
		}
		ent := s.Truth()[r.Ref()]
		if o, ok := owner[e]; ok && o != ent {
			t.Fatalf("entities %s and %s share %s", o, ent, e)
		}
		owner[e] = ent
	}
}

// Duplicates carry the noise the matcher must see through.
func TestDuplicatesAreNoisy(t *testing.T) {
	s := New(Options{Seed: 5, Records: 5000})
	first := map[string]record.Fields{}
	var dups, nick, emailDiff, phoneDiff, companyDiff, missing int
	for _, r := range s.Records() {
		ent := s.Truth()[r.Ref()]
		o, ok := first[ent]
		if !ok {
			first[ent] = r.Fields
			continue
		}
		dups++
		if fn, on := r.Fields.Str("FirstName"), o.Str("FirstName"); fn != "" && len(fn) < len(on)-1 {
			nick++
		}
		if e := r.Fields.Str("Email"); e != "" && e != o.Str("Email") {
			emailDiff++
		}
		if p := r.Fields.Str("Phone"); p != "" && p != o.Str("Phone") {
			phoneDiff++
		}
		if c := r.Fields.Str("Company"); c != "" && c != o.Str("Company") {
			companyDiff++
		}
		if len(r.Fields) < len(o)-2 {
			missing++
		}
	}
	for name, n := range map[string]int{"nickname": nick, "e-mail variant": emailDiff, "phone format": phoneDiff,
		"company variant": companyDiff, "missing fields": missing} {
		if share := float64(n) / float64(dups); share < 0.05 {
			t.Errorf("%s in %.3f of %d duplicates, want some", name, share, dups)
		}
	}
}

// Replaying the events (upsert replaces, patch merges, delete removes) gives
// Records(); updates and deletes follow their record's creation.
func TestEventsReplayToRecords(t *testing.T) {
	for _, upserts := range []bool{false, true} {
		s := New(Options{Seed: 6, Records: 3000, ContactShare: 0.2, Updates: 0.3, Deletes: 0.1, UpdateAsUpsert: upserts})
		state := map[record.Ref]*record.Record{}
		ops := map[record.Op]int{}
		var last record.Event
		for i, ev := range s.Events() {
			if i > 0 && !ev.ModifiedAt.After(last.ModifiedAt) {
				t.Fatalf("event %d (%s %s) not after the previous one", i, ev.Op, ev.Ref())
			}
			last = ev
			ops[ev.Op]++
			cur, exists := state[ev.Ref()]
			switch {
			case ev.Op == record.OpUpsert && !exists:
				r := ev.Record
				r.Fields = cloneFields(ev.Fields)
				state[ev.Ref()] = &r
			case !exists:
				t.Fatalf("event %d: %s of %s before its creation", i, ev.Op, ev.Ref())
			case ev.Op == record.OpDelete:
				delete(state, ev.Ref())
			case ev.Op == record.OpUpsert:
				cur.Fields = cloneFields(ev.Fields)
				cur.ModifiedAt = ev.ModifiedAt
			case ev.Op == record.OpPatch:
				for k, v := range ev.Fields {
					if v == nil {
						delete(cur.Fields, k)
					} else {
						cur.Fields[k] = v
					}
				}
				cur.ModifiedAt = ev.ModifiedAt
			}
			if exists && ev.CreatedAt != cur.CreatedAt && ev.Op != record.OpDelete {
				t.Fatalf("event %d: created_at %v, record created %v", i, ev.CreatedAt, cur.CreatedAt)
			}
		}
		if upserts && ops[record.OpPatch] > 0 || !upserts && ops[record.OpPatch] < 700 || ops[record.OpDelete] < 200 {
			t.Fatalf("ops %v: want updates and deletes", ops)
		}
		recs := s.Records()
		if len(recs) != len(state) || len(recs) != len(s.Truth()) {
			t.Fatalf("%d records, %d after replay, %d in truth", len(recs), len(state), len(s.Truth()))
		}
		for _, r := range recs {
			if got := state[r.Ref()]; !reflect.DeepEqual(*got, r) {
				t.Fatalf("%s: replay gives\n%+v\nRecords() has\n%+v", r.Ref(), *got, r)
			}
		}
	}
}
