package events_test

import (
	"testing"
	"time"

	"github.com/leadconv/leadconv/events"
	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
	"github.com/leadconv/leadconv/record"
	"github.com/leadconv/leadconv/schemas"
)

// A resync request reads back through sdk-go in both modes, with its data
// valid under its schema, and its id depends on the CRM event only.
func TestResyncRequested(t *testing.T) {
	at := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	d := events.ResyncRequested{Tenant: "acme", Object: record.Lead, Entity: "Lead", IDs: []string{"00Q1", "00Q2"},
		Reason: "gap_update", ChangedAt: at, Transaction: "tx-1", Origin: &events.Origin{Topic: "sf", Partition: 1, Offset: 9}}
	id := events.ResyncID(d, "1/77")
	moved := d
	moved.Origin = &events.Origin{Topic: "sf", Partition: 0, Offset: 3}
	if events.ResyncID(moved, "1/77") != id {
		t.Fatal("the id depends on where the event was read")
	}
	other := d
	other.IDs = []string{"00Q1"}
	if events.ResyncID(other, "1/77") == id || events.ResyncID(d, "2/77") == id {
		t.Fatal("different CRM events share an id")
	}
	for _, structured := range []bool{false, true} {
		r, err := events.Encoder{Topic: "leadconv.resync", Structured: structured}.ResyncRequested(d, id)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := kafkatest.CloudEvent(r)
		if err != nil {
			t.Fatalf("structured=%v: %v", structured, err)
		}
		if ev.ID() != id || ev.Type() != events.TypeResyncRequested || ev.Source() != "leadconv/acme" || ev.Subject() != "Lead" ||
			!ev.Time().Equal(at) || ev.DataSchema() != events.SchemaURL("resync.requested") || string(r.Key) != "acme/lead" {
			t.Fatalf("structured=%v: attributes %s key %s", structured, ev, r.Key)
		}
		if err := schemas.ValidateJSON(schemas.ResyncRequested, ev.Data()); err != nil {
			t.Fatalf("structured=%v: %v", structured, err)
		}
	}
}
