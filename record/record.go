// Package record holds the CRM record model shared by the matcher, the
// engine and the pipeline: leads, contacts and accounts as they arrive on the
// change stream, and the events that carry them.
package record

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Object is the CRM object type of a record.
type Object string

// The objects leadconv knows. Accounts never join person clusters; they only
// serve account resolution.
const (
	Lead    Object = "lead"
	Contact Object = "contact"
	Account Object = "account"
)

// Valid reports whether o is one of the known objects.
func (o Object) Valid() bool { return o == Lead || o == Contact || o == Account }

// Op is what an event does to the stored record.
type Op string

// Operations of a record event. NotDuplicate and ClearNotDuplicate are review
// decisions about a pair of records (the event's record and Other). Hold
// takes a record out of matching and conversion until its next upsert: the
// CRM reported a change without its values (a Salesforce gap event), so the
// stored state can no longer be trusted and nothing may be guessed.
const (
	OpUpsert            Op = "upsert"
	OpPatch             Op = "patch"
	OpDelete            Op = "delete"
	OpHold              Op = "hold"
	OpNotDuplicate      Op = "not_duplicate"
	OpClearNotDuplicate Op = "clear_not_duplicate"
)

// Valid reports whether op is one of the known operations.
func (op Op) Valid() bool {
	switch op {
	case OpUpsert, OpPatch, OpDelete, OpHold, OpNotDuplicate, OpClearNotDuplicate:
		return true
	}
	return false
}

// Ref names a record within a tenant.
type Ref struct {
	Object Object `json:"object"`
	ID     string `json:"id"`
}

// String renders the ref as "object/id", the form used in keys and logs.
func (r Ref) String() string { return string(r.Object) + "/" + r.ID }

// ParseRef parses what String renders; ok is false for anything else.
func ParseRef(s string) (_ Ref, ok bool) {
	obj, id, found := strings.Cut(s, "/")
	if !found || id == "" || !Object(obj).Valid() {
		return Ref{}, false
	}
	return Ref{Object: Object(obj), ID: id}, true
}

// Fields maps CRM field names to values: string, float64 or json.Number,
// bool, nil, or an ISO 8601 date/datetime string.
type Fields map[string]any

// Record is one CRM record at one point in time.
type Record struct {
	Tenant       string    `json:"tenant"`
	Object       Object    `json:"object"`
	ID           string    `json:"id"`
	CreatedAt    time.Time `json:"created_at"`
	ModifiedAt   time.Time `json:"modified_at"`
	RelatedCount int       `json:"related_count"`
	Fields       Fields    `json:"fields"`
}

// Ref returns the record's reference.
func (r *Record) Ref() Ref { return Ref{Object: r.Object, ID: r.ID} }

// Event is one change of the record stream. For upsert the record carries its
// full state, for patch only the changed fields, for delete only its identity.
// For not_duplicate and clear_not_duplicate, Other names the second record of
// the reviewed pair.
type Event struct {
	Record
	Op    Op   `json:"op"`
	Other *Ref `json:"other,omitempty"`
	// Echo marks a change the CRM reports as made by leadconv's own writer
	// (Salesforce's changeOrigin names its client id). It is applied like
	// any other change; the lifecycle uses it to tell its own writes apart.
	Echo bool `json:"-"`
}

// IsBlank reports whether v counts as blank: absent (nil) or a string that is
// empty after trimming.
func IsBlank(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return strings.TrimSpace(x) == ""
	}
	return false
}

// Blank reports whether the named field is blank in f.
func (f Fields) Blank(name string) bool { return IsBlank(f[name]) }

// String renders a field value as text: strings as they are, numbers in their
// shortest form, booleans as true/false, blank as "".
func String(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case json.Number:
		return x.String()
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	}
	return fmt.Sprint(v)
}

// Str returns the named field as text (see String).
func (f Fields) Str(name string) string { return String(f[name]) }

// FieldMap maps contact field names to the lead field names they correspond
// to (contact "AccountName" ↔ lead "Company"). Matching and the engine's
// strategies work in lead names; plans for contacts write contact names.
type FieldMap map[string]string

// ToLead returns r's fields under lead names. Leads and unmapped contact
// fields are returned unchanged; the input is never modified.
func (m FieldMap) ToLead(obj Object, f Fields) Fields {
	if obj != Contact || len(m) == 0 {
		return f
	}
	out := make(Fields, len(f))
	for k, v := range f {
		if lead, ok := m[k]; ok {
			k = lead
		}
		out[k] = v
	}
	return out
}

// ContactName returns the contact field name for a lead field name.
func (m FieldMap) ContactName(lead string) string {
	for c, l := range m {
		if l == lead {
			return c
		}
	}
	return lead
}
