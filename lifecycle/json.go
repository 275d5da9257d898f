package lifecycle

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/record"
)

// InStore reports whether the matcher's store will hold the cluster at the
// version once the entries are written (or holds it now, outside a batch).
// An entry whose cluster seen it holds is stored without that cluster's
// records: the store has them, and Fill puts them back at the take. They
// were about seven tenths of what an owner wrote to Redis, most of it a
// second copy of records written with the same call. A nil InStore holds
// nothing: every entry is stored whole.
type InStore func(cluster string, version int64) bool

// AppendJSON appends e's JSON to b: byte for byte what json.Marshal writes
// of the entry as stored (durable; a differential test holds it to that),
// without reflection, so that stored entries stay what json.Unmarshal
// restores. An owner encodes every changed entry of every batch, and
// encoding/json's reflection and garbage made that a fifth of its CPU. An
// entry holding what the engine's encoders do not write themselves (a
// field value of another type, a command's data of another type, NaN, a
// time json.Marshal rejects: a year outside 0..9999, an offset of a day)
// is left to json.Marshal, whole, so the output and the errors stay
// encoding/json's: such an entry fails the batch as it did before.
func (e *Entry) AppendJSON(b []byte, in InStore) ([]byte, error) {
	ref := e.byRef(in)
	if out, ok := e.appendJSON(b, ref); ok {
		return out, nil
	}
	j, err := json.Marshal(e.durable(ref))
	if err != nil {
		return b, err
	}
	return append(b, j...), nil
}

// byRef reports whether e's cluster seen is stored by reference: it has
// records, and the store holds them at that version.
func (e *Entry) byRef(in InStore) bool {
	return in != nil && len(e.Seen.Records) > 0 && in(e.Seen.ID, e.Seen.Version)
}

// heldSeen is the cluster of a held plan that is the cluster seen, as
// stored: the entry's records once, not twice. (Most held plans are: an
// owner holds a plan as it plans the cluster's latest state, and its
// records were about half of what it wrote to Redis.) A string, where an
// earlier release expects a cluster, so that one reading it fails rather
// than replan an empty cluster.
const heldSeen = `"seen"`

// recordsInStore is the records of a cluster seen stored by reference
// (InStore). A string, where an earlier release expects records, so that
// one reading it fails rather than plan an empty cluster.
const recordsInStore = `"store"`

// storedEntry, storedCluster and storedHeld are an entry as stored
// (durable): its cluster seen with its records or recordsInStore, its held
// plans' clusters last, each as JSON or heldSeen.
type (
	plainEntry  Entry
	storedEntry struct {
		*plainEntry
		Seen json.RawMessage `json:"seen"`
		Held []storedHeld    `json:"held,omitempty"`
	}
	storedCluster struct {
		Tenant   string
		ID       string
		Version  int64
		Records  json.RawMessage
		Accounts map[string]string
	}
	storedHeld struct {
		*Held
		Cluster json.RawMessage `json:"cluster"`
	}
)

// durable returns e as stored, for encoding/json; ref: its cluster seen by
// reference.
func (e *Entry) durable(ref bool) any {
	d := storedEntry{plainEntry: (*plainEntry)(e)}
	var err error
	if ref {
		c := e.Seen
		d.Seen, err = json.Marshal(storedCluster{Tenant: c.Tenant, ID: c.ID, Version: c.Version, Records: json.RawMessage(recordsInStore), Accounts: c.Accounts})
	} else {
		d.Seen, err = json.Marshal(&e.Seen)
	}
	if err != nil {
		return e // which fails as the cluster does
	}
	for i := range e.Held {
		h := &e.Held[i]
		c := json.RawMessage(heldSeen)
		if !sameCluster(&h.Cluster, &e.Seen) {
			if c, err = json.Marshal(&h.Cluster); err != nil {
				return e
			}
		}
		d.Held = append(d.Held, storedHeld{Held: h, Cluster: c})
	}
	return d
}

// UnmarshalJSON restores an entry as AppendJSON stored it (or as json.Marshal
// writes an Entry: what earlier releases stored). An entry stored by
// reference comes back InStore, its records to be filled (Fill).
func (e *Entry) UnmarshalJSON(b []byte) error {
	*e = Entry{}
	d := storedEntry{plainEntry: (*plainEntry)(e)}
	if err := json.Unmarshal(b, &d); err != nil {
		return err
	}
	if len(d.Seen) > 0 {
		var c storedCluster
		if err := json.Unmarshal(d.Seen, &c); err != nil {
			return fmt.Errorf("lifecycle: cluster seen of %s: %w", e.ClusterID, err)
		}
		e.Seen = engine.Cluster{Tenant: c.Tenant, ID: c.ID, Version: c.Version, Accounts: c.Accounts}
		switch string(c.Records) {
		case recordsInStore:
			e.inStore = true
		case "", "null":
		default:
			if err := json.Unmarshal(c.Records, &e.Seen.Records); err != nil {
				return fmt.Errorf("lifecycle: records of cluster %s: %w", e.ClusterID, err)
			}
		}
	}
	for i := range d.Held {
		h := d.Held[i].Held
		if h == nil {
			h = &Held{}
		}
		switch c := d.Held[i].Cluster; {
		case string(c) == heldSeen:
			h.Cluster = e.Seen
			if e.inStore {
				e.heldSeen = append(e.heldSeen, i)
			}
		case len(c) > 0:
			if err := json.Unmarshal(c, &h.Cluster); err != nil {
				return fmt.Errorf("lifecycle: held plan of cluster %s: %w", e.ClusterID, err)
			}
		}
		e.Held = append(e.Held, *h)
	}
	return nil
}

// InStore reports whether the entry was restored without the records of
// its cluster seen (Seen.ID at Seen.Version), which the store holds: Fill
// them before Restore.
func (e *Entry) InStore() bool { return e.inStore }

// Fill gives an entry restored InStore the records of its cluster seen, as
// the store holds them at Seen.Version, in the store's member order.
func (e *Entry) Fill(records []record.Record) {
	e.Seen.Records = records
	for _, i := range e.heldSeen {
		e.Held[i].Cluster = e.Seen
	}
	e.inStore, e.heldSeen = false, nil
}

// AppendEntriesJSON appends the JSON of each entry to b, one after the
// other, as AppendJSON writes it, and appends to ends the offset in b where
// each one ends. On error, ends holds the entries written before the one
// that failed, and b those entries.
func AppendEntriesJSON(b []byte, ends []int, entries []*Entry, in InStore) ([]byte, []int, error) {
	for i := range entries {
		var err error
		if b, err = entries[i].AppendJSON(b, in); err != nil {
			return b, ends, err
		}
		ends = append(ends, len(b))
	}
	return b, ends, nil
}

func (e *Entry) appendJSON(b []byte, ref bool) (_ []byte, ok bool) {
	b = append(b, `{"cluster_id":`...)
	b = record.AppendJSONString(b, e.ClusterID)
	b = append(b, `,"state":`...)
	if b, ok = engine.AppendStateJSON(b, &e.State); !ok {
		return b, false
	}
	if t := e.Pending; t != nil {
		b = append(b, `,"pending":{"first":`...)
		if b, ok = record.AppendTimeJSON(b, t.First); !ok {
			return b, false
		}
		b = append(b, `,"last":`...)
		if b, ok = record.AppendTimeJSON(b, t.Last); !ok {
			return b, false
		}
		b = append(b, '}')
	}
	if e.Settled {
		b = append(b, `,"settled":true`...)
	}
	if e.MergedInto != "" {
		b = append(b, `,"merged_into":`...)
		b = record.AppendJSONString(b, e.MergedInto)
	}
	if len(e.Outstanding) > 0 {
		b = append(b, `,"outstanding":`...)
		if b, ok = engine.AppendCommandsJSON(b, e.Outstanding); !ok {
			return b, false
		}
	}
	// Seen goes last but for the held plans, where json.Marshal puts it
	// (storedEntry).
	b = append(b, `,"seen":`...)
	if ref {
		b = engine.AppendClusterRecordsJSON(b, &e.Seen, recordsInStore)
	} else if b, ok = engine.AppendClusterJSON(b, &e.Seen); !ok {
		return b, false
	}
	if len(e.Held) > 0 {
		b = append(b, `,"held":[`...)
		for i := range e.Held {
			if i > 0 {
				b = append(b, ',')
			}
			h := &e.Held[i]
			b = append(b, `{"history":`...)
			if b, ok = engine.AppendHistoryJSON(b, &h.History); !ok {
				return b, false
			}
			b = append(b, `,"at":`...)
			if b, ok = record.AppendTimeJSON(b, h.At); !ok {
				return b, false
			}
			if len(h.Absorbed) > 0 {
				b = append(b, `,"absorbed":`...)
				b = record.AppendStringsJSON(b, h.Absorbed)
			}
			b = append(b, `,"cluster":`...)
			if sameCluster(&h.Cluster, &e.Seen) {
				b = append(b, heldSeen...)
			} else if b, ok = engine.AppendClusterJSON(b, &h.Cluster); !ok {
				return b, false
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}'), true
}

// sameCluster reports whether a and b are one cluster value: equal ids and
// version, and records and accounts in the same memory.
func sameCluster(a, b *engine.Cluster) bool {
	return a.Tenant == b.Tenant && a.ID == b.ID && a.Version == b.Version &&
		sameSlice(a.Records, b.Records) && reflect.ValueOf(a.Accounts).UnsafePointer() == reflect.ValueOf(b.Accounts).UnsafePointer()
}

// sameSlice reports whether a and b are the same elements of the same
// array (or both nil, or both empty).
func sameSlice[E any](a, b []E) bool {
	return len(a) == len(b) && (a == nil) == (b == nil) && (len(a) == 0 || &a[0] == &b[0])
}
