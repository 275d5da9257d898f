package lifecycle

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/record"
)

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
func (e *Entry) AppendJSON(b []byte) ([]byte, error) {
	if out, ok := e.appendJSON(b); ok {
		return out, nil
	}
	j, err := json.Marshal(e.durable())
	if err != nil {
		return b, err
	}
	return append(b, j...), nil
}

// heldSeen is the cluster of a held plan that is the cluster seen, as
// stored: the entry's records once, not twice. (Most held plans are: an
// owner holds a plan as it plans the cluster's latest state, and its
// records were about half of what it wrote to Redis.) A string, where an
// earlier release expects a cluster, so that one reading it fails rather
// than replan an empty cluster.
const heldSeen = `"seen"`

// storedEntry and storedHeld are an entry as stored (durable): its held
// plans' clusters last, each as JSON or heldSeen.
type (
	plainEntry  Entry
	storedEntry struct {
		*plainEntry
		Held []storedHeld `json:"held,omitempty"`
	}
	storedHeld struct {
		*Held
		Cluster json.RawMessage `json:"cluster"`
	}
)

// durable returns e as stored, for encoding/json.
func (e *Entry) durable() any {
	d := storedEntry{plainEntry: (*plainEntry)(e)}
	for i := range e.Held {
		h := &e.Held[i]
		c := json.RawMessage(heldSeen)
		if !sameCluster(&h.Cluster, &e.Seen) {
			var err error
			if c, err = json.Marshal(&h.Cluster); err != nil {
				return e // which fails as the cluster does
			}
		}
		d.Held = append(d.Held, storedHeld{Held: h, Cluster: c})
	}
	return d
}

// UnmarshalJSON restores an entry as AppendJSON stored it (or as json.Marshal
// writes an Entry: what earlier releases stored).
func (e *Entry) UnmarshalJSON(b []byte) error {
	*e = Entry{}
	d := storedEntry{plainEntry: (*plainEntry)(e)}
	if err := json.Unmarshal(b, &d); err != nil {
		return err
	}
	for i := range d.Held {
		h := d.Held[i].Held
		if h == nil {
			h = &Held{}
		}
		switch c := d.Held[i].Cluster; {
		case string(c) == heldSeen:
			h.Cluster = e.Seen
		case len(c) > 0:
			if err := json.Unmarshal(c, &h.Cluster); err != nil {
				return fmt.Errorf("lifecycle: held plan of cluster %s: %w", e.ClusterID, err)
			}
		}
		e.Held = append(e.Held, *h)
	}
	return nil
}

// AppendEntriesJSON appends the JSON of each entry to b, one after the
// other, as AppendJSON writes it, and appends to ends the offset in b where
// each one ends. On error, ends holds the entries written before the one
// that failed, and b those entries.
func AppendEntriesJSON(b []byte, ends []int, entries []*Entry) ([]byte, []int, error) {
	for i := range entries {
		var err error
		if b, err = entries[i].AppendJSON(b); err != nil {
			return b, ends, err
		}
		ends = append(ends, len(b))
	}
	return b, ends, nil
}

func (e *Entry) appendJSON(b []byte) (_ []byte, ok bool) {
	b = append(b, `{"cluster_id":`...)
	b = record.AppendJSONString(b, e.ClusterID)
	b = append(b, `,"state":`...)
	if b, ok = engine.AppendStateJSON(b, &e.State); !ok {
		return b, false
	}
	b = append(b, `,"seen":`...)
	if b, ok = engine.AppendClusterJSON(b, &e.Seen); !ok {
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
