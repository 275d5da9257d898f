package ingest

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/leadconv/leadconv/record"
)

// unavailable is the placeholder Debezium's PostgreSQL connector writes for
// an unchanged TOASTed column it did not receive: the value is not known.
const unavailable = "__debezium_unavailable_value"

// debezium decodes a change event of a mapped table: the envelope
// (before, after, source, op), bare or inside the JSON converter's
// {schema, payload} wrapper. key is the Kafka key, the row's primary key,
// read when a delete's before lacks it.
func (d *Decoder) debezium(b []byte, tenant string, key []byte) (Decoded, error) {
	// The JSON converter's wrapper is {schema, payload}; an envelope has
	// an op. Only the wrapper's members are kept raw in this pass.
	var top struct {
		Schema  json.RawMessage `json:"schema"`
		Payload json.RawMessage `json:"payload"`
		Op      json.RawMessage `json:"op"`
	}
	if err := json.Unmarshal(b, &top); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) || !json.Valid(b) {
			return Decoded{}, &Error{CodeNotJSON, "value is not a single JSON document"}
		}
		return Decoded{}, violation("/", "type")
	}
	at := ""
	var types map[string]colType
	var m map[string]any
	var err error
	if top.Payload != nil && top.Op == nil {
		types = d.schemaTypes(top.Schema)
		m, err = object(top.Payload, "/payload")
		at = "/payload"
	} else {
		m, err = object(b, "/")
	}
	if err != nil {
		return Decoded{}, err
	}
	op, ok := m["op"].(string)
	if !ok {
		if _, has := m["op"]; has {
			return Decoded{}, violation(at+"/op", "type")
		}
		return Decoded{}, violation(at+"/", "required")
	}
	src, ok := m["source"].(map[string]any)
	if !ok {
		return Decoded{}, violation(at+"/source", "type")
	}
	table, ok := d.table(src)
	if !ok {
		return Decoded{}, &Error{CodeUnknownObject, at + "/source/table: not in the input's tables"}
	}
	changed := time.Time{}
	if n, ok := src["ts_ms"].(json.Number); ok {
		ms, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil {
			return Decoded{}, violation(at+"/source/ts_ms", "type")
		}
		if changed, err = timeAt(time.UnixMilli(ms).UTC(), at+"/source/ts_ms"); err != nil {
			return Decoded{}, err
		}
	}
	renames := []map[string]string{table.Fields, d.cfg.Fields}
	idCol := table.ID
	if idCol == "" {
		idCol = DefaultIDColumn
	}
	ev := record.Event{Record: record.Record{Tenant: tenant, Object: table.Object}}
	var row map[string]any
	rowAt := at + "/after"
	switch op {
	case "c", "r", "u":
		if row, ok = m["after"].(map[string]any); !ok {
			return Decoded{}, violation(rowAt, "type")
		}
		ev.Op = record.OpUpsert
	case "d":
		rowAt = at + "/before"
		row, _ = m["before"].(map[string]any)
		ev.Op = record.OpDelete
	default:
		// t (truncate) and m (message) change no record leadconv can name.
		return Decoded{}, &Error{CodeUnknownOp, at + "/op: enum"}
	}
	id, err := dbzID(row[idCol], rowAt+"/"+idCol)
	if ev.Op == record.OpDelete && row[idCol] == nil {
		id, err = keyID(key, idCol)
	}
	if err != nil {
		return Decoded{}, err
	}
	ev.ID = id
	if ev.Op == record.OpDelete {
		ev.ModifiedAt = changed
		return Decoded{Events: []record.Event{ev}}, nil
	}
	if table.Deleted != "" && truthy(row[table.Deleted]) {
		ev.Op = record.OpDelete
		ev.ModifiedAt = changed
		if t, err := d.dbzTime(row[table.ModifiedAt], types[table.ModifiedAt], table, rowAt+"/"+table.ModifiedAt); err == nil && !t.IsZero() {
			ev.ModifiedAt = t
		}
		return Decoded{Events: []record.Event{ev}}, nil
	}
	if ev.CreatedAt, err = d.dbzTime(row[table.CreatedAt], types[table.CreatedAt], table, rowAt+"/"+table.CreatedAt); err != nil {
		return Decoded{}, err
	}
	if ev.CreatedAt.IsZero() {
		return Decoded{}, violation(rowAt+"/"+table.CreatedAt, "required")
	}
	if ev.ModifiedAt, err = d.dbzTime(row[table.ModifiedAt], types[table.ModifiedAt], table, rowAt+"/"+table.ModifiedAt); err != nil {
		return Decoded{}, err
	}
	if ev.ModifiedAt.IsZero() {
		ev.ModifiedAt = changed
	}
	if ev.ModifiedAt.IsZero() {
		return Decoded{}, violation(rowAt+"/"+table.ModifiedAt, "required")
	}
	ev.Fields = record.Fields{}
	for _, col := range sortedKeys(row) {
		v := row[col]
		if col == "" {
			return Decoded{}, violation(rowAt, "propertyNames")
		}
		to := rename(renames, col)
		if to == "" {
			continue
		}
		if v == unavailable {
			// The row's full state is not known: what is, patches.
			ev.Op = record.OpPatch
			continue
		}
		if v, err = dbzValue(v, types[col], rowAt+"/"+col); err != nil {
			return Decoded{}, err
		}
		if v == nil && ev.Op == record.OpUpsert {
			continue
		}
		ev.Fields[to] = v
	}
	if ev.Op == record.OpPatch {
		// A patch removes null fields: only the upsert's absent ones
		// may be dropped.
		for _, col := range sortedKeys(row) {
			if to := rename(renames, col); to != "" && row[col] == nil {
				ev.Fields[to] = nil
			}
		}
	}
	return Decoded{Events: []record.Event{ev}}, nil
}

// table finds the mapping of the event's table: "schema.table"
// (PostgreSQL, SQL Server), "db.table" (MySQL), then the bare name.
func (d *Decoder) table(src map[string]any) (Table, bool) {
	tbl, _ := src["table"].(string)
	if tbl == "" {
		return Table{}, false
	}
	for _, scope := range []string{"schema", "db"} {
		if s, _ := src[scope].(string); s != "" {
			if t, ok := d.cfg.Tables[s+"."+tbl]; ok {
				return t, true
			}
		}
	}
	t, ok := d.cfg.Tables[tbl]
	return t, ok
}

// colType is a column's Kafka Connect schema: its type and semantic name
// (io.debezium.time.MicroTimestamp), and the scale of a decimal.
type colType struct {
	typ, name string
	scale     int
}

// maxSchemas bounds the cache of parsed schemas: one per table and
// version of it.
const maxSchemas = 256

// schemaTypes returns the column types the JSON converter's schema gives,
// parsed once per distinct schema: it is most of each message, and the
// same for every message of a table.
func (d *Decoder) schemaTypes(raw json.RawMessage) map[string]colType {
	d.mu.RLock()
	types, ok := d.schemas[string(raw)]
	d.mu.RUnlock()
	if ok {
		return types
	}
	s, err := value(raw)
	if err != nil {
		return nil
	}
	types = schemaTypesOf(s)
	d.mu.Lock()
	if len(d.schemas) < maxSchemas {
		d.schemas[string(raw)] = types
	}
	d.mu.Unlock()
	return types
}

// schemaTypesOf reads the column types of the after (or before) struct
// from the envelope's schema; none when it is absent.
func schemaTypesOf(s any) map[string]colType {
	sm, _ := s.(map[string]any)
	fields, _ := sm["fields"].([]any)
	out := map[string]colType{}
	for _, f := range fields {
		fm, _ := f.(map[string]any)
		if name, _ := fm["field"].(string); name != "after" && name != "before" {
			continue
		}
		cols, _ := fm["fields"].([]any)
		for _, c := range cols {
			cm, _ := c.(map[string]any)
			col, _ := cm["field"].(string)
			ct := colType{}
			ct.typ, _ = cm["type"].(string)
			ct.name, _ = cm["name"].(string)
			if params, ok := cm["parameters"].(map[string]any); ok {
				if s, ok := params["scale"].(string); ok {
					ct.scale, _ = strconv.Atoi(s)
				}
			}
			out[col] = ct
		}
	}
	return out
}

// dbzTime reads a time column: RFC 3339 text (ZonedTimestamp), a
// date-time without zone (read as UTC), or a number in the unit its
// schema's semantic type names, else the table's time_unit.
func (d *Decoder) dbzTime(v any, ct colType, t Table, at string) (time.Time, error) {
	tm, err := d.dbzTimeOf(v, ct, t, at)
	if err != nil || tm.IsZero() {
		return tm, err
	}
	return timeAt(tm, at)
}

func (d *Decoder) dbzTimeOf(v any, ct colType, t Table, at string) (time.Time, error) {
	switch x := v.(type) {
	case nil:
		return time.Time{}, nil
	case string:
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00"} {
			if tm, err := time.Parse(layout, x); err == nil {
				return tm.UTC(), nil
			}
		}
		return time.Time{}, violation(at, "format")
	case json.Number:
		n, err := strconv.ParseInt(x.String(), 10, 64)
		if err != nil {
			return time.Time{}, violation(at, "type")
		}
		unit := t.TimeUnit
		switch ct.name {
		case "io.debezium.time.Timestamp", "org.apache.kafka.connect.data.Timestamp":
			unit = "ms"
		case "io.debezium.time.MicroTimestamp":
			unit = "us"
		case "io.debezium.time.NanoTimestamp":
			unit = "ns"
		}
		switch unit {
		case "us":
			return time.UnixMicro(n).UTC(), nil
		case "ns":
			return time.Unix(0, n).UTC(), nil
		}
		return time.UnixMilli(n).UTC(), nil
	}
	return time.Time{}, violation(at, "type")
}

// dbzValue turns a column value into a field value. With the schema,
// timestamps and dates become RFC 3339 text and decimals (base64 of the
// unscaled two's-complement integer) exact numbers.
func dbzValue(v any, ct colType, at string) (any, error) {
	switch x := v.(type) {
	case nil, bool:
		return v, nil
	case json.Number:
		n, err := strconv.ParseInt(x.String(), 10, 64)
		if err != nil {
			return v, nil
		}
		switch ct.name {
		case "io.debezium.time.Timestamp", "org.apache.kafka.connect.data.Timestamp":
			return time.UnixMilli(n).UTC().Format(time.RFC3339Nano), nil
		case "io.debezium.time.MicroTimestamp":
			return time.UnixMicro(n).UTC().Format(time.RFC3339Nano), nil
		case "io.debezium.time.NanoTimestamp":
			return time.Unix(0, n).UTC().Format(time.RFC3339Nano), nil
		case "io.debezium.time.Date", "org.apache.kafka.connect.data.Date":
			return time.Unix(n*86400, 0).UTC().Format(time.DateOnly), nil
		}
		return v, nil
	case string:
		if ct.name == "org.apache.kafka.connect.data.Decimal" {
			raw, err := base64.StdEncoding.DecodeString(x)
			if err != nil {
				return nil, violation(at, "contentEncoding")
			}
			return decimal(raw, ct.scale), nil
		}
		return v, nil
	}
	return nil, violation(at, "type")
}

// decimal renders Kafka Connect's decimal (big-endian two's complement,
// scale digits after the point) exactly.
func decimal(raw []byte, scale int) json.Number {
	n := new(big.Int).SetBytes(raw)
	if len(raw) > 0 && raw[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(raw))))
	}
	s := n.String()
	if scale <= 0 {
		return json.Number(s)
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for len(s) <= scale {
		s = "0" + s
	}
	s = s[:len(s)-scale] + "." + s[len(s)-scale:]
	if neg {
		s = "-" + s
	}
	return json.Number(s)
}

// dbzID reads a primary key value: text, or an integer (Odoo's ids).
func dbzID(v any, at string) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", violation(at, "required")
	case string:
		return x, checkID(at, x)
	case json.Number:
		if _, err := strconv.ParseInt(x.String(), 10, 64); err != nil {
			return "", violation(at, "type")
		}
		return x.String(), nil
	}
	return "", violation(at, "type")
}

// keyID reads the primary key from the Kafka key: {"id": ...} or the JSON
// converter's {schema, payload: {"id": ...}}.
func keyID(key []byte, col string) (string, error) {
	m, err := object(key, "key")
	if err != nil {
		return "", violation("key", "required")
	}
	if p, ok := m["payload"].(map[string]any); ok {
		m = p
	}
	return dbzID(m[col], "key/"+col)
}

// truthy reads a soft-delete column.
func truthy(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case json.Number:
		f, err := x.Float64()
		return err == nil && f != 0
	case string:
		return x != "" && x != "0" && !strings.EqualFold(x, "false")
	}
	return false
}
