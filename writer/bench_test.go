package writer

import (
	"context"
	"fmt"
	"testing"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/internal/testutil/pgtest"
	"github.com/leadconv/leadconv/record"
)

// BenchmarkApply measures one command's transaction on the mirror:
// lead.convert creating a contact and an account (reused by name after the
// first), records.merge of two contacts, and a redelivered command
// (skipped by id).
func BenchmarkApply(b *testing.B) {
	ctx := context.Background()
	db := pgtest.New(b)
	if err := Migrate(ctx, db.Pool()); err != nil {
		b.Fatal(err)
	}
	m := NewMirror(db.Pool())
	n := 0
	// fresh stores a batch of records when the previous ones are used up,
	// outside the timer.
	fresh := func(b *testing.B, obj record.Object, per int) string {
		if n%1000 == 0 {
			b.StopTimer()
			recs := make([]record.Record, 0, 1000*per)
			for i := n; i < n+1000; i++ {
				for j := range per {
					recs = append(recs, record.Record{Tenant: tenant, Object: obj, ID: fmt.Sprintf("%s%d-%d", obj, i, j), CreatedAt: t0, ModifiedAt: t0,
						Fields: record.Fields{"LastName": "Smith", "Email": fmt.Sprintf("s%d@x.io", i), "Company": "Acme"}})
				}
			}
			if err := m.Put(ctx, recs...); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		n++
		return fmt.Sprintf("%s%d", obj, n-1)
	}
	apply := func(b *testing.B, cmd *engine.Command) {
		res, _, err := m.Apply(ctx, cmd)
		if err != nil || res.Outcome != OutcomeApplied && res.Outcome != OutcomeSkippedDuplicate {
			b.Fatalf("%+v %v", res, err)
		}
	}
	b.Run("lead.convert", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			id := fresh(b, record.Lead, 1) + "-0"
			apply(b, command(engine.KindLeadConvert, "conv-"+id, 1, &engine.LeadConvert{
				LeadID: id, Contact: engine.Target{Create: true},
				Account:         engine.AccountTarget{Target: engine.Target{Create: true}, Name: "Acme"},
				ConvertedStatus: "Closed - Converted", Fields: record.Fields{"LastName": "Smith", "Email": "s@x.io"},
			}))
		}
	})
	n = 0
	b.Run("records.merge", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p := fresh(b, record.Contact, 2)
			apply(b, command(engine.KindRecordsMerge, "merge-"+p, 1, &engine.RecordsMerge{
				Object: record.Contact, Master: engine.Target{ID: p + "-0"}, MergedIDs: []string{p + "-1"},
				Fields: record.Fields{"LastName": "Smith", "Title": "CEO"},
			}))
		}
	})
	b.Run("redelivered", func(b *testing.B) {
		b.ReportAllocs()
		cmd := convertL1()
		if err := m.Put(ctx, record.Record{Tenant: tenant, Object: record.Lead, ID: "L1", CreatedAt: t0, ModifiedAt: t0}); err != nil {
			b.Fatal(err)
		}
		apply(b, cmd)
		for b.Loop() {
			apply(b, cmd)
		}
	})
}
