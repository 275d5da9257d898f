package ingest

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/events"
	"github.com/leadconv/leadconv/record"
)

// Salesforce change types (ChangeEventHeader.changeType).
const (
	sfCreate   = "CREATE"
	sfUpdate   = "UPDATE"
	sfDelete   = "DELETE"
	sfUndelete = "UNDELETE"
	// sfOverflow events name no record: recordIds holds the empty id.
	sfOverflow = "GAP_OVERFLOW"
	sfEmptyID  = "000000000000000AAA"
)

var sfGaps = []string{"GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE", sfOverflow}

// sfHeader is the ChangeEventHeader, as Salesforce documents it.
type sfHeader struct {
	EntityName      string      `json:"entityName"`
	RecordIDs       []string    `json:"recordIds"`
	ChangeType      string      `json:"changeType"`
	ChangeOrigin    string      `json:"changeOrigin"`
	TransactionKey  string      `json:"transactionKey"`
	SequenceNumber  json.Number `json:"sequenceNumber"`
	CommitTimestamp json.Number `json:"commitTimestamp"`
	CommitNumber    json.Number `json:"commitNumber"`
	ChangedFields   []string    `json:"changedFields"`
	NulledFields    []string    `json:"nulledFields"`
}

// salesforce decodes a change event: the payload with its
// ChangeEventHeader, bare (as Kafka connectors and Pub/Sub API clients
// write it) or inside the Streaming API's {schema, payload, event} or
// {data, channel} envelopes.
func (d *Decoder) salesforce(b []byte, tenant string, r *kgo.Record) (Decoded, error) {
	m, err := object(b, "/")
	if err != nil {
		return Decoded{}, err
	}
	at := ""
	for range 2 {
		if _, ok := m["ChangeEventHeader"]; ok {
			break
		}
		for _, wrap := range []string{"data", "payload"} {
			if inner, ok := m[wrap].(map[string]any); ok {
				m, at = inner, at+"/"+wrap
				break
			}
		}
	}
	raw, ok := m["ChangeEventHeader"]
	if !ok {
		return Decoded{}, violation(at+"/ChangeEventHeader", "required")
	}
	hat := at + "/ChangeEventHeader"
	h, err := sfReadHeader(raw, hat)
	if err != nil {
		return Decoded{}, err
	}
	obj, ok := d.cfg.Objects[h.EntityName]
	if !ok {
		return Decoded{}, &Error{CodeUnknownObject, hat + "/entityName: not in the input's objects"}
	}
	ms, err := strconv.ParseInt(h.CommitTimestamp.String(), 10, 64)
	if err != nil {
		return Decoded{}, violation(hat+"/commitTimestamp", "type")
	}
	committed, err := timeAt(time.UnixMilli(ms).UTC(), hat+"/commitTimestamp")
	if err != nil {
		return Decoded{}, err
	}
	gap := slices.Contains(sfGaps, h.ChangeType)
	// A wildcard (key prefix and "*": a field type conversion changed every
	// record) or the empty id names no record to apply the change to.
	unnamed := false
	for i, id := range h.RecordIDs {
		if id == sfEmptyID || strings.HasSuffix(id, "*") {
			unnamed = true
			continue
		}
		if err := checkID(hat+"/recordIds/"+strconv.Itoa(i), id); err != nil {
			return Decoded{}, err
		}
	}
	if gap || unnamed {
		return d.resyncOf(tenant, obj, h, committed, unnamed, r)
	}
	base := record.Event{Record: record.Record{Tenant: tenant, Object: obj, ModifiedAt: committed}}
	base.Echo = d.echo(h.ChangeOrigin)
	switch h.ChangeType {
	case sfCreate, sfUndelete:
		base.Op = record.OpUpsert
		if base.Fields, err = d.sfFields(m, at, nil); err != nil {
			return Decoded{}, err
		}
	case sfUpdate:
		base.Op = record.OpPatch
		if base.Fields, err = d.sfFields(m, at, &h); err != nil {
			return Decoded{}, err
		}
	case sfDelete:
		base.Op = record.OpDelete
	default:
		return Decoded{}, &Error{CodeUnknownOp, hat + "/changeType: enum"}
	}
	if base.Op != record.OpDelete {
		// A patch's creation time is the stored record's.
		created := committed
		if base.Op == record.OpPatch {
			created = time.Time{}
		}
		if base.CreatedAt, err = sfTime(m["CreatedDate"], at+"/CreatedDate", created); err != nil {
			return Decoded{}, err
		}
		if base.ModifiedAt, err = sfTime(m["LastModifiedDate"], at+"/LastModifiedDate", committed); err != nil {
			return Decoded{}, err
		}
	}
	out := Decoded{Events: make([]record.Event, len(h.RecordIDs))}
	for i, id := range h.RecordIDs {
		ev := base
		ev.ID = id
		if i > 0 && ev.Fields != nil {
			// Each event owns its map: the store may keep it.
			ev.Fields = maps(ev.Fields)
		}
		out.Events[i] = ev
	}
	return out, nil
}

func maps(f record.Fields) record.Fields {
	c := make(record.Fields, len(f))
	for k, v := range f {
		c[k] = v
	}
	return c
}

func sfReadHeader(raw any, at string) (sfHeader, error) {
	var h sfHeader
	hm, ok := raw.(map[string]any)
	if !ok {
		return h, violation(at, "type")
	}
	str := func(key string, dst *string, required bool) error {
		v, ok := hm[key]
		if !ok || v == nil {
			if required {
				return violation(at, "required")
			}
			return nil
		}
		s, ok := v.(string)
		if !ok {
			return violation(at+"/"+key, "type")
		}
		*dst = s
		return nil
	}
	num := func(key string, dst *json.Number, required bool) error {
		v, ok := hm[key]
		if !ok || v == nil {
			if required {
				return violation(at, "required")
			}
			return nil
		}
		n, ok := v.(json.Number)
		if !ok {
			return violation(at+"/"+key, "type")
		}
		*dst = n
		return nil
	}
	list := func(key string, dst *[]string, required bool) error {
		v, ok := hm[key]
		if !ok || v == nil {
			if required {
				return violation(at, "required")
			}
			return nil
		}
		xs, ok := v.([]any)
		if !ok {
			return violation(at+"/"+key, "type")
		}
		for i, x := range xs {
			s, ok := x.(string)
			if !ok {
				return violation(at+"/"+key+"/"+strconv.Itoa(i), "type")
			}
			*dst = append(*dst, s)
		}
		return nil
	}
	for _, err := range []error{
		str("entityName", &h.EntityName, true),
		list("recordIds", &h.RecordIDs, true),
		str("changeType", &h.ChangeType, true),
		num("commitTimestamp", &h.CommitTimestamp, true),
		str("changeOrigin", &h.ChangeOrigin, false),
		str("transactionKey", &h.TransactionKey, false),
		num("sequenceNumber", &h.SequenceNumber, false),
		num("commitNumber", &h.CommitNumber, false),
		list("changedFields", &h.ChangedFields, false),
		list("nulledFields", &h.NulledFields, false),
	} {
		if err != nil {
			return h, err
		}
	}
	if len(h.RecordIDs) == 0 {
		return h, violation(at+"/recordIds", "minItems")
	}
	if h.ChangeType != sfCreate && h.ChangeType != sfUpdate && h.ChangeType != sfDelete && h.ChangeType != sfUndelete && !slices.Contains(sfGaps, h.ChangeType) {
		return h, &Error{CodeUnknownOp, at + "/changeType: enum"}
	}
	return h, nil
}

// echo reports whether changeOrigin
// (com/salesforce/api/<api>/<version>;client=<id>) names the writer's
// client id.
func (d *Decoder) echo(origin string) bool {
	_, client, ok := strings.Cut(origin, ";client=")
	if !ok {
		return false
	}
	return strings.TrimSuffix(client, "/") == d.cfg.EchoClient
}

// resyncOf holds the named records and requests their re-read: the CRM
// sent no values, and none are guessed.
func (d *Decoder) resyncOf(tenant string, obj record.Object, h sfHeader, committed time.Time, unnamed bool, r *kgo.Record) (Decoded, error) {
	req := events.ResyncRequested{
		Tenant: tenant, Object: obj, Entity: h.EntityName, Reason: strings.ToLower(h.ChangeType),
		ChangedAt: committed, Transaction: h.TransactionKey,
		Origin: &events.Origin{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset},
	}
	var out Decoded
	if !unnamed {
		req.IDs = h.RecordIDs
		for _, id := range h.RecordIDs {
			out.Events = append(out.Events, record.Event{
				Record: record.Record{Tenant: tenant, Object: obj, ID: id, ModifiedAt: committed},
				Op:     record.OpHold, Echo: d.echo(h.ChangeOrigin),
			})
		}
	}
	rec, err := d.resync.ResyncRequested(req, events.ResyncID(req, h.SequenceNumber.String()+"/"+h.CommitNumber.String()))
	if err != nil {
		return Decoded{}, err
	}
	out.Out = []*kgo.Record{rec}
	return out, nil
}

// sfFields flattens the event's fields. For an update (h set) only the
// changed fields count, with the nulled ones set to null; an update that
// lists no changed fields (older API versions) carries its changes as the
// non-null fields. Otherwise every non-null field counts.
func (d *Decoder) sfFields(m map[string]any, at string, h *sfHeader) (record.Fields, error) {
	renames := []map[string]string{d.cfg.Fields}
	f := record.Fields{}
	put := func(name string, v any) {
		if to := rename(renames, name); to != "" {
			f[to] = v
		}
	}
	if h != nil && len(h.ChangedFields) > 0 {
		for i, name := range h.ChangedFields {
			v, flat, err := sfLookup(m, name)
			if err != nil {
				return nil, violation(at+"/ChangeEventHeader/changedFields/"+strconv.Itoa(i), err.Error())
			}
			if nested, ok := v.(map[string]any); ok {
				// A compound field named whole: each of its components.
				if err := sfCompound(name, nested, at, true, put); err != nil {
					return nil, err
				}
				continue
			}
			if v, err = sfScalar(v, at+"/"+strings.ReplaceAll(name, ".", "/")); err != nil {
				return nil, err
			}
			put(flat, sfDate(flat, v))
		}
		for i, name := range h.NulledFields {
			_, flat, err := sfLookup(m, name)
			if err != nil {
				return nil, violation(at+"/ChangeEventHeader/nulledFields/"+strconv.Itoa(i), err.Error())
			}
			put(flat, nil)
		}
		return f, nil
	}
	for _, k := range sortedKeys(m) {
		v := m[k]
		if k == "ChangeEventHeader" || v == nil {
			continue
		}
		if k == "" {
			return nil, violation(at, "propertyNames")
		}
		if nested, ok := v.(map[string]any); ok {
			if err := sfCompound(k, nested, at, false, put); err != nil {
				return nil, err
			}
			continue
		}
		v, err := sfScalar(v, at+"/"+k)
		if err != nil {
			return nil, err
		}
		put(k, sfDate(k, v))
	}
	for _, name := range nulled(h) {
		if _, flat, err := sfLookup(m, name); err == nil {
			put(flat, nil)
		}
	}
	return f, nil
}

// sfCompound puts the components of a compound field; nulls too when
// withNulls (an update names the whole field: its null components changed).
func sfCompound(name string, nested map[string]any, at string, withNulls bool, put func(string, any)) error {
	for _, c := range sortedKeys(nested) {
		cv := nested[c]
		if cv == nil && !withNulls {
			continue
		}
		flat, ok := sfComponent(name, c)
		if !ok {
			return violation(at+"/"+name, "type")
		}
		cv, err := sfScalar(cv, at+"/"+name+"/"+c)
		if err != nil {
			return err
		}
		put(flat, cv)
	}
	return nil
}

func nulled(h *sfHeader) []string {
	if h == nil {
		return nil
	}
	return h.NulledFields
}

// errRule is a rule name returned as an error by sfLookup.
type errRule string

func (e errRule) Error() string { return string(e) }

// sfLookup returns the value of a field named as changedFields names it
// ("Email", or "Name.FirstName" for a component of a compound field) and
// its flat field name.
func sfLookup(m map[string]any, name string) (any, string, error) {
	compound, comp, ok := strings.Cut(name, ".")
	if !ok {
		if name == "" {
			return nil, "", errRule("minLength")
		}
		return m[name], name, nil
	}
	flat, ok := sfComponent(compound, comp)
	if !ok || comp == "" {
		return nil, "", errRule("pattern")
	}
	nested, _ := m[compound].(map[string]any)
	return nested[comp], flat, nil
}

// sfComponent names a component of a compound field as the object's own
// field: Name's FirstName is FirstName, an address's City is City (Lead
// Address), MailingCity (Contact MailingAddress) or BillingCity (Account
// BillingAddress), a custom geolocation Loc__c's Latitude is
// Loc__Latitude__s. Other nested values are not fields leadconv knows.
func sfComponent(compound, comp string) (string, bool) {
	switch {
	case comp == "":
		return "", false
	case compound == "Name":
		return comp, true
	case strings.HasSuffix(compound, "Address"):
		return strings.TrimSuffix(compound, "Address") + comp, true
	case strings.HasSuffix(compound, "__c"):
		return strings.TrimSuffix(compound, "__c") + "__" + comp + "__s", true
	}
	return "", false
}

// sfScalar accepts the values a record event field holds.
func sfScalar(v any, at string) (any, error) {
	switch v.(type) {
	case nil, string, bool, json.Number:
		return v, nil
	}
	return nil, violation(at, "type")
}

// sfDate writes the standard timestamps as RFC 3339 text when the client
// sent them as epoch milliseconds (Pub/Sub API's Avro longs), as the
// Streaming API sends them, so rules and strategies read one form.
func sfDate(name string, v any) any {
	n, ok := v.(json.Number)
	if !ok || name != "CreatedDate" && name != "LastModifiedDate" {
		return v
	}
	ms, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil {
		return v
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
}

// sfTime reads a CreatedDate or LastModifiedDate (RFC 3339 text or epoch
// milliseconds); absent, the commit time stands in.
func sfTime(v any, at string, fallback time.Time) (time.Time, error) {
	switch x := v.(type) {
	case nil:
		return fallback, nil
	case string:
		t, err := time.Parse(time.RFC3339Nano, x)
		if err != nil {
			return time.Time{}, violation(at, "format")
		}
		return timeAt(t.UTC(), at)
	case json.Number:
		ms, err := strconv.ParseInt(x.String(), 10, 64)
		if err != nil {
			return time.Time{}, violation(at, "type")
		}
		return timeAt(time.UnixMilli(ms).UTC(), at)
	}
	return time.Time{}, violation(at, "type")
}
