package engine

import (
	"encoding/json"
	"reflect"
	"strconv"
	"unsafe"

	"github.com/leadconv/leadconv/record"
)

// AppendJSON appends c's JSON to b: byte for byte what json.Marshal(c)
// writes (a differential test holds it to that), without reflection. The
// pipeline encodes every command, and encoding/json's reflection, map-key
// sorting and per-value allocations made that its largest cost outside the
// matcher. Values of types it does not write itself (field values other
// than strings, json.Number, float64, bool and nil; NaN; data of another
// type) are left to json.Marshal, for the whole command, so the output and
// the errors stay encoding/json's.
func (c *Command) AppendJSON(b []byte) ([]byte, error) {
	var sh shared
	return sh.appendJSON(b, c)
}

// AppendPlanJSON appends the JSON of each command of one plan to b, one
// after the other, as AppendJSON writes it, and appends to ends the offset
// in b where each one ends. The commands of a plan share their explain
// block and field maps (see Plan): those are encoded once and copied.
func AppendPlanJSON(b []byte, ends []int, cmds []Command) ([]byte, []int, error) {
	var sh shared
	for i := range cmds {
		var err error
		if b, err = sh.appendJSON(b, &cmds[i]); err != nil {
			return b, ends, err
		}
		ends = append(ends, len(b))
	}
	return b, ends, nil
}

// shared remembers where, in the output, the explain block and the field
// map encoded last are, to copy them when the next command shares them.
// Holding the pointers keeps their memory from being reused while cached.
type shared struct {
	explain        *Explain
	exStart, exEnd int
	fields         unsafe.Pointer // the map last written, as reflect sees it
	fStart, fEnd   int
}

func (sh *shared) appendJSON(b []byte, c *Command) ([]byte, error) {
	start := len(b)
	if out, ok := sh.appendCommand(b, c); ok {
		return out, nil
	}
	// The cache may point into the attempt's output, which json.Marshal's
	// replaces.
	*sh = shared{}
	j, err := json.Marshal(c)
	if err != nil {
		return b[:start], err
	}
	return append(b[:start], j...), nil
}

func (sh *shared) appendCommand(b []byte, c *Command) ([]byte, bool) {
	b = append(b, `{"kind":`...)
	b = record.AppendJSONString(b, c.Kind)
	b = append(b, `,"command_id":`...)
	b = record.AppendJSONString(b, c.ID)
	b = append(b, `,"tenant":`...)
	b = record.AppendJSONString(b, c.Tenant)
	b = append(b, `,"cluster_id":`...)
	b = record.AppendJSONString(b, c.ClusterID)
	b = append(b, `,"cluster_version":`...)
	b = strconv.AppendInt(b, c.ClusterVersion, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, int64(c.Seq), 10)
	b = append(b, `,"subject":`...)
	b = record.AppendJSONString(b, c.Subject)
	if c.RequestID != "" {
		b = append(b, `,"request_id":`...)
		b = record.AppendJSONString(b, c.RequestID)
	}
	b = append(b, `,"data":`...)
	ok := true
	switch d := c.Data.(type) {
	case *LeadConvert:
		if d == nil {
			return b, false
		}
		b, ok = sh.appendLeadConvert(b, d)
	case *RecordsMerge:
		if d == nil {
			return b, false
		}
		b, ok = sh.appendRecordsMerge(b, d)
	case *ConversionFailed:
		if d == nil {
			return b, false
		}
		b = append(b, `{"reason":`...)
		b = record.AppendJSONString(b, d.Reason)
		b = append(b, `,"master":`...)
		b = appendRef(b, d.Master)
		b = append(b, `,"records":`...)
		b = appendRefs(b, d.Records)
		b = append(b, '}')
	case *ReviewRequested:
		if d == nil {
			return b, false
		}
		b = append(b, `{"reason":`...)
		b = record.AppendJSONString(b, d.Reason)
		b = append(b, `,"records":`...)
		b = appendRefs(b, d.Records)
		if d.Size != 0 {
			b = append(b, `,"size":`...)
			b = strconv.AppendInt(b, int64(d.Size), 10)
		}
		if d.Limit != 0 {
			b = append(b, `,"limit":`...)
			b = strconv.AppendInt(b, int64(d.Limit), 10)
		}
		if d.WriterReason != "" {
			b = append(b, `,"writer_reason":`...)
			b = record.AppendJSONString(b, d.WriterReason)
		}
		b = append(b, '}')
	case nil:
		b = append(b, "null"...)
	default:
		return b, false
	}
	if !ok {
		return b, false
	}
	b = append(b, `,"explain":`...)
	if b, ok = sh.appendExplain(b, c.Explain); !ok {
		return b, false
	}
	return append(b, '}'), true
}

func (sh *shared) appendLeadConvert(b []byte, d *LeadConvert) ([]byte, bool) {
	b = append(b, `{"lead_id":`...)
	b = record.AppendJSONString(b, d.LeadID)
	b = append(b, `,"batch":`...)
	b = strconv.AppendInt(b, int64(d.Batch), 10)
	b = append(b, `,"contact":`...)
	b = appendTarget(b, d.Contact)
	b = append(b, `,"account":{`...)
	b, sep := appendTargetMembers(b, d.Account.Target)
	if d.Account.Name != "" {
		if sep {
			b = append(b, ',')
		}
		b = append(b, `"name":`...)
		b = record.AppendJSONString(b, d.Account.Name)
		sep = true
	}
	ok := true
	if len(d.Account.Fields) > 0 {
		if sep {
			b = append(b, ',')
		}
		b = append(b, `"fields":`...)
		if b, ok = sh.appendFields(b, d.Account.Fields); !ok {
			return b, false
		}
	}
	b = append(b, `},"opportunity":`...)
	if o := d.Opportunity; o == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"name":`...)
		b = record.AppendJSONString(b, o.Name)
		b = append(b, `,"name_source":`...)
		b = record.AppendJSONString(b, o.NameSource)
		if len(o.Fields) > 0 {
			b = append(b, `,"fields":`...)
			if b, ok = sh.appendFields(b, o.Fields); !ok {
				return b, false
			}
		}
		b = append(b, '}')
	}
	b = append(b, `,"converted_status":`...)
	b = record.AppendJSONString(b, d.ConvertedStatus)
	b = append(b, `,"fields":`...)
	if b, ok = sh.appendFields(b, d.Fields); !ok {
		return b, false
	}
	return append(b, '}'), true
}

func (sh *shared) appendRecordsMerge(b []byte, d *RecordsMerge) ([]byte, bool) {
	b = append(b, `{"object":`...)
	b = record.AppendJSONString(b, string(d.Object))
	b = append(b, `,"master":`...)
	b = appendTarget(b, d.Master)
	b = append(b, `,"merged_ids":`...)
	b = record.AppendStringsJSON(b, d.MergedIDs)
	if len(d.MergedFromLeads) > 0 {
		b = append(b, `,"merged_from_leads":`...)
		b = record.AppendStringsJSON(b, d.MergedFromLeads)
	}
	b = append(b, `,"batch":`...)
	b = strconv.AppendInt(b, int64(d.Batch), 10)
	b = append(b, `,"fields":`...)
	b, ok := sh.appendFields(b, d.Fields)
	if !ok {
		return b, false
	}
	return append(b, '}'), true
}

func appendTarget(b []byte, t Target) []byte {
	b = append(b, '{')
	b, _ = appendTargetMembers(b, t)
	return append(b, '}')
}

// appendTargetMembers writes t's members, all omitempty, and reports
// whether it wrote any: AccountTarget continues the same object.
func appendTargetMembers(b []byte, t Target) ([]byte, bool) {
	sep := false
	if t.ID != "" {
		b = append(b, `"id":`...)
		b = record.AppendJSONString(b, t.ID)
		sep = true
	}
	if t.FromLead != "" {
		if sep {
			b = append(b, ',')
		}
		b = append(b, `"from_lead":`...)
		b = record.AppendJSONString(b, t.FromLead)
		sep = true
	}
	if t.Create {
		if sep {
			b = append(b, ',')
		}
		b = append(b, `"create":true`...)
		sep = true
	}
	return b, sep
}

// appendExplain writes ex, or copies it from where it was written last.
func (sh *shared) appendExplain(b []byte, ex *Explain) ([]byte, bool) {
	if ex == nil {
		return append(b, "null"...), true
	}
	if ex == sh.explain {
		return append(b, b[sh.exStart:sh.exEnd]...), true
	}
	start := len(b)
	b, ok := appendExplain(b, ex)
	if ok {
		sh.explain, sh.exStart, sh.exEnd = ex, start, len(b)
	}
	return b, ok
}

func appendExplain(b []byte, ex *Explain) ([]byte, bool) {
	m := &ex.Master
	b = append(b, `{"master":{"strategy":`...)
	b = record.AppendJSONString(b, m.Strategy)
	if m.Field != "" {
		b = append(b, `,"field":`...)
		b = record.AppendJSONString(b, m.Field)
	}
	b = append(b, `,"candidates":`...)
	if m.Candidates == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range m.Candidates {
			c := &m.Candidates[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"object":`...)
			b = record.AppendJSONString(b, string(c.Object))
			b = append(b, `,"id":`...)
			b = record.AppendJSONString(b, c.ID)
			b = append(b, `,"value":`...)
			b = record.AppendJSONString(b, c.Value)
			b = append(b, `,"qualified":`...)
			b = strconv.AppendBool(b, c.Qualified)
			b = append(b, `,"top":`...)
			b = strconv.AppendBool(b, c.Top)
			b = append(b, `,"modified_at":`...)
			var ok bool
			if b, ok = record.AppendTimeJSON(b, c.ModifiedAt); !ok {
				return b, false
			}
			b = append(b, `,"created_at":`...)
			if b, ok = record.AppendTimeJSON(b, c.CreatedAt); !ok {
				return b, false
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if m.Fallback != "" {
		b = append(b, `,"fallback":`...)
		b = record.AppendJSONString(b, m.Fallback)
	}
	if m.FallbackReason != "" {
		b = append(b, `,"fallback_reason":`...)
		b = record.AppendJSONString(b, m.FallbackReason)
	}
	if m.TieBreak != "" {
		b = append(b, `,"tie_break":`...)
		b = record.AppendJSONString(b, m.TieBreak)
	}
	b = append(b, `,"winner":`...)
	b = appendRef(b, m.Winner)
	if m.Kept != "" {
		b = append(b, `,"kept":`...)
		b = record.AppendJSONString(b, m.Kept)
	}
	if m.PreferExistingContact {
		b = append(b, `,"prefer_existing_contact":true`...)
	}
	b = append(b, `},"fields":`...)
	if ex.Fields == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range ex.Fields {
			f := &ex.Fields[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"field":`...)
			b = record.AppendJSONString(b, f.Field)
			b = append(b, `,"strategy":`...)
			b = record.AppendJSONString(b, f.Strategy)
			b = append(b, `,"from":`...)
			b = appendRefs(b, f.From)
			if f.MasterKept {
				b = append(b, `,"master_kept":true`...)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if a := ex.Account; a != nil {
		b = append(b, `,"account":{"source":`...)
		b = record.AppendJSONString(b, a.Source)
		if a.ID != "" {
			b = append(b, `,"id":`...)
			b = record.AppendJSONString(b, a.ID)
		}
		if a.From != nil {
			b = append(b, `,"from":`...)
			b = appendRef(b, *a.From)
		}
		b = append(b, '}')
	}
	return append(b, '}'), true
}

func appendRef(b []byte, r record.Ref) []byte {
	b = append(b, `{"object":`...)
	b = record.AppendJSONString(b, string(r.Object))
	b = append(b, `,"id":`...)
	b = record.AppendJSONString(b, r.ID)
	return append(b, '}')
}

func appendRefs(b []byte, refs []record.Ref) []byte { return record.AppendListJSON(b, refs, appendRef) }

// appendFields writes f, or copies it from where it was written last.
func (sh *shared) appendFields(b []byte, f record.Fields) ([]byte, bool) {
	if f == nil {
		return append(b, "null"...), true
	}
	id := reflect.ValueOf(f).UnsafePointer()
	if id == sh.fields {
		return append(b, b[sh.fStart:sh.fEnd]...), true
	}
	start := len(b)
	b, ok := record.AppendFieldsJSON(b, f)
	if ok {
		sh.fields, sh.fStart, sh.fEnd = id, start, len(b)
	}
	return b, ok
}

// AppendCommandsJSON appends cmds as json.Marshal writes a []Command (null
// when nil), each command as AppendJSON writes it, sharing explain blocks
// and field maps as AppendPlanJSON does. ok is false, with b in an
// undefined state, when a command is one AppendJSON leaves to json.Marshal:
// the caller falls back to json.Marshal of what holds them.
func AppendCommandsJSON(b []byte, cmds []Command) (_ []byte, ok bool) {
	if cmds == nil {
		return append(b, "null"...), true
	}
	var sh shared
	b = append(b, '[')
	for i := range cmds {
		if i > 0 {
			b = append(b, ',')
		}
		if b, ok = sh.appendCommand(b, &cmds[i]); !ok {
			return b, false
		}
	}
	return append(b, ']'), true
}

// AppendStateJSON appends s as json.Marshal writes it. ok is false, with b
// in an undefined state, when a time or a field value is one it does not
// write (record.AppendTimeJSON, record.AppendFieldsJSON): the caller falls
// back to json.Marshal of what holds it.
func AppendStateJSON(b []byte, s *State) (_ []byte, ok bool) {
	// A zero state is "{}": what a new entry holds, and its zero values
	// were most of the bytes of its side state.
	b = append(b, '{')
	open := len(b)
	key := func(k string) {
		if len(b) > open {
			b = append(b, ',')
		}
		b = append(b, k...)
	}
	if s.Master != (Target{}) {
		key(`"master":`)
		b = appendTarget(b, s.Master)
	}
	if s.Created {
		key(`"created":true`)
	}
	if s.Account != (Target{}) {
		key(`"account":`)
		b = appendTarget(b, s.Account)
	}
	if len(s.Converted) > 0 {
		key(`"converted":`)
		b = record.AppendStringsJSON(b, s.Converted)
	}
	if len(s.Merged) > 0 {
		key(`"merged":[`)
		for i, t := range s.Merged {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendTarget(b, t)
		}
		b = append(b, ']')
	}
	if len(s.Fields) > 0 {
		key(`"fields":`)
		if b, ok = record.AppendFieldsJSON(b, s.Fields); !ok {
			return b, false
		}
	}
	if !s.ModifiedAt.IsZero() {
		key(`"modified_at":`)
		if b, ok = record.AppendTimeJSON(b, s.ModifiedAt); !ok {
			return b, false
		}
	}
	if !s.CreatedAt.IsZero() {
		key(`"created_at":`)
		if b, ok = record.AppendTimeJSON(b, s.CreatedAt); !ok {
			return b, false
		}
	}
	if len(s.Held) > 0 {
		key(`"held":[`)
		for i := range s.Held {
			h := &s.Held[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"ref":`...)
			b = appendRef(b, h.Ref)
			b = append(b, `,"reason":`...)
			b = record.AppendJSONString(b, h.Reason)
			b = append(b, `,"modified_at":`...)
			if b, ok = record.AppendTimeJSON(b, h.ModifiedAt); !ok {
				return b, false
			}
			if h.Reviewed {
				b = append(b, `,"reviewed":true`...)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}'), true
}

// AppendHistoryJSON appends h as json.Marshal writes it, or reports, as
// AppendStateJSON does, that it cannot.
func AppendHistoryJSON(b []byte, h *History) (_ []byte, ok bool) {
	b = append(b, '{')
	if len(h.Own) > 0 {
		b = append(b, `"Own":`...)
		if b, ok = appendStates(b, h.Own); !ok {
			return b, false
		}
	}
	if len(h.Split) > 0 {
		if len(h.Own) > 0 {
			b = append(b, ',')
		}
		b = append(b, `"Split":`...)
		if b, ok = appendStates(b, h.Split); !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}

func appendStates(b []byte, states []State) (_ []byte, ok bool) {
	b = append(b, '[')
	for i := range states {
		if i > 0 {
			b = append(b, ',')
		}
		if b, ok = AppendStateJSON(b, &states[i]); !ok {
			return b, false
		}
	}
	return append(b, ']'), true
}

// AppendClusterJSON appends c as json.Marshal writes it, or reports, as
// AppendStateJSON does, that it cannot.
func AppendClusterJSON(b []byte, c *Cluster) (_ []byte, ok bool) {
	return appendClusterJSON(b, c, "")
}

// AppendClusterRecordsJSON appends c as AppendClusterJSON does, with the
// JSON value records in place of its records (a reference to records kept
// elsewhere).
func AppendClusterRecordsJSON(b []byte, c *Cluster, records string) []byte {
	b, _ = appendClusterJSON(b, c, records)
	return b
}

func appendClusterJSON(b []byte, c *Cluster, records string) (_ []byte, ok bool) {
	b = append(b, `{"Tenant":`...)
	b = record.AppendJSONString(b, c.Tenant)
	b = append(b, `,"ID":`...)
	b = record.AppendJSONString(b, c.ID)
	b = append(b, `,"Version":`...)
	b = strconv.AppendInt(b, c.Version, 10)
	b = append(b, `,"Records":`...)
	switch {
	case records != "":
		b = append(b, records...)
	case c.Records == nil:
		b = append(b, "null"...)
	default:
		b = append(b, '[')
		for i := range c.Records {
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok = record.AppendRecordJSON(b, &c.Records[i]); !ok {
				return b, false
			}
		}
		b = append(b, ']')
	}
	b = append(b, `,"Accounts":`...)
	b = record.AppendStringMapJSON(b, c.Accounts)
	return append(b, '}'), true
}
