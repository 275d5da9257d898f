package events

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/record"
)

// TypeResyncRequested is the type of resync requests.
const TypeResyncRequested = "io.leadconv.resync.requested.v1"

// ResyncRequested is the data of an io.leadconv.resync.requested.v1 event:
// the CRM reported changes without their values (a Salesforce gap or
// overflow event). leadconv holds the named records out of matching and
// conversion; a connector or a person re-reads them and sends their full
// state (an upsert, or a delete), which ends the hold.
type ResyncRequested struct {
	Tenant string        `json:"tenant"`
	Object record.Object `json:"object"`
	// Entity is the CRM's name of the object (Salesforce's entityName).
	Entity string `json:"entity"`
	// IDs are the records to re-read; empty when the CRM did not name them
	// (an overflow event, or a change of every record of the entity): then
	// every record of the entity changed in that transaction may be stale.
	IDs []string `json:"ids,omitempty"`
	// Reason is the CRM's change type, lower case (gap_update, gap_overflow).
	Reason string `json:"reason"`
	// ChangedAt is when the CRM committed the change.
	ChangedAt time.Time `json:"changed_at"`
	// Transaction is the CRM's transaction key, when it sends one.
	Transaction string  `json:"transaction,omitempty"`
	Origin      *Origin `json:"origin,omitempty"`
}

// ResyncID is the deterministic event id of a resync request: the same CRM
// event, delivered or replayed again, gives the same id.
func ResyncID(d ResyncRequested, sequence string) string {
	h := sha256.New()
	for _, s := range []string{d.Tenant, d.Entity, d.Reason, d.Transaction, sequence, d.ChangedAt.UTC().Format(time.RFC3339Nano), strings.Join(d.IDs, ",")} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "resync-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// ResyncRequested encodes d as a CloudEvent record with the given id, keyed
// by tenant and object; at is the CRM's commit time.
func (e Encoder) ResyncRequested(d ResyncRequested, id string) (*kgo.Record, error) {
	data, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("events: encode resync request %s: %w", id, err)
	}
	return e.record(d.Tenant, string(d.Object), id, TypeResyncRequested, d.Entity, SchemaURL("resync.requested"), d.ChangedAt, data)
}
