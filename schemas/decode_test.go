package schemas_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/leadconv/leadconv/record"
	"github.com/leadconv/leadconv/schemas"
)

const upsert = `{"tenant":"acme","object":"lead","id":"00Q1","op":"upsert","created_at":"2026-01-02T03:04:05Z","modified_at":"2026-01-03T03:04:05.5+01:00","related_count":2,"fields":{"LastName":"Hopper","Revenue":12.5,"Big":12345678901234567890,"Vip":true,"Gone":null}}`

// TestDecodeIntegralRelatedCount: related_count is a JSON Schema integer,
// so a number with a zero fraction in any spelling decodes to its value.
func TestDecodeIntegralRelatedCount(t *testing.T) {
	for in, want := range map[string]int{"3": 3, "3.0": 3, "3e2": 300, "0.0": 0, "-0": 0} {
		ev, err := schemas.DecodeEvent([]byte(`{"tenant":"a","object":"lead","id":"1","op":"delete","related_count":`+in+`}`), 0)
		if err != nil || ev.RelatedCount != want {
			t.Errorf("related_count %s: %d, %v; want %d", in, ev.RelatedCount, err, want)
		}
	}
	for _, in := range []string{"3.5", "-1", "2147483648", "1e10"} {
		if _, err := schemas.DecodeEvent([]byte(`{"tenant":"a","object":"lead","id":"1","op":"delete","related_count":`+in+`}`), 0); err == nil {
			t.Errorf("related_count %s accepted", in)
		}
	}
}

func TestDecodeEvent(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		max   int
		code  string // "" = decodes
		where string // a JSON pointer in the error
	}{
		{name: "upsert", in: upsert},
		{name: "patch", in: `{"tenant":"acme","object":"contact","id":"0031","op":"patch","modified_at":"2026-01-03T00:00:00Z","fields":{"Email":null}}`},
		{name: "delete", in: `{"tenant":"acme","object":"account","id":"0011","op":"delete"}`},
		{name: "escaped date", in: `{"tenant":"acme","object":"lead","id":"00Q1","op":"delete","modified_at":"2026-01-03T00:00:00\u005a"}`},
		{name: "not_duplicate", in: `{"tenant":"acme","object":"lead","id":"00Q1","op":"not_duplicate","other":{"object":"contact","id":"0031"}}`},
		{name: "oversize", in: upsert, max: 10, code: schemas.CodeOversize},
		{name: "not json", in: `{"tenant":`, code: schemas.CodeNotJSON},
		{name: "trailing data", in: upsert + `{}`, code: schemas.CodeNotJSON},
		{name: "unknown object", in: `{"tenant":"acme","object":"deal","id":"1","op":"delete"}`, code: schemas.CodeSchemaViolation, where: "/object"},
		{name: "unknown op", in: `{"tenant":"acme","object":"lead","id":"1","op":"merge"}`, code: schemas.CodeSchemaViolation, where: "/op"},
		{name: "tenant with braces", in: `{"tenant":"{a}","object":"lead","id":"1","op":"delete"}`, code: schemas.CodeSchemaViolation, where: "/tenant"},
		{name: "id with space", in: `{"tenant":"a","object":"lead","id":"1 2","op":"delete"}`, code: schemas.CodeSchemaViolation, where: "/id"},
		{name: "field names are case-sensitive", in: `{"Tenant":"a","object":"lead","id":"1","op":"delete"}`, code: schemas.CodeSchemaViolation, where: "/"},
		{name: "upsert without dates", in: `{"tenant":"a","object":"lead","id":"1","op":"upsert"}`, code: schemas.CodeSchemaViolation, where: "/"},
		{name: "impossible date", in: `{"tenant":"a","object":"lead","id":"1","op":"patch","modified_at":"2026-02-30T00:00:00Z"}`, code: schemas.CodeSchemaViolation, where: "/modified_at"},
		{name: "nested field value", in: `{"tenant":"a","object":"lead","id":"1","op":"patch","modified_at":"2026-02-03T00:00:00Z","fields":{"Tags":["a"]}}`, code: schemas.CodeSchemaViolation, where: "/fields/Tags"},
		{name: "related count with a fraction", in: `{"tenant":"a","object":"lead","id":"1","op":"delete","related_count":1.5}`, code: schemas.CodeSchemaViolation, where: "/related_count"},
		{name: "leap second", in: `{"tenant":"a","object":"lead","id":"1","op":"patch","modified_at":"2026-12-31T23:59:60Z"}`, code: schemas.CodeSchemaViolation, where: "/modified_at"},
		{name: "negative related count", in: `{"tenant":"a","object":"lead","id":"1","op":"delete","related_count":-1}`, code: schemas.CodeSchemaViolation, where: "/related_count"},
		{name: "other without pair op", in: `{"tenant":"a","object":"lead","id":"1","op":"delete","other":{"object":"lead","id":"2"}}`, code: schemas.CodeSchemaViolation, where: "/"},
		{name: "pair op without other", in: `{"tenant":"a","object":"lead","id":"1","op":"clear_not_duplicate"}`, code: schemas.CodeSchemaViolation, where: "/"},
		{name: "pair of accounts", in: `{"tenant":"a","object":"account","id":"1","op":"not_duplicate","other":{"object":"lead","id":"2"}}`, code: schemas.CodeSchemaViolation, where: "/object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := schemas.DecodeEvent([]byte(tt.in), tt.max)
			if tt.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				if ev.Tenant == "" || !ev.Object.Valid() || !ev.Op.Valid() {
					t.Errorf("decoded %+v", ev)
				}
				return
			}
			var se *schemas.Error
			if !errors.As(err, &se) || se.Code != tt.code {
				t.Fatalf("err = %v, want code %s", err, tt.code)
			}
			if tt.where != "" && !slices.Contains(se.Locations(), tt.where) {
				t.Errorf("err = %v (locations %v), want %s", err, se.Locations(), tt.where)
			}
		})
	}

	ev, err := schemas.DecodeEvent([]byte(upsert), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := record.Fields{"LastName": "Hopper", "Revenue": json.Number("12.5"), "Big": json.Number("12345678901234567890"), "Vip": true, "Gone": nil}
	if !reflect.DeepEqual(ev.Fields, want) || ev.RelatedCount != 2 || ev.ModifiedAt.UTC().Hour() != 2 {
		t.Errorf("decoded %+v", ev)
	}
}

// TestDecodeErrorsCarryNoValues: error text names keys and rules, never the
// offending values (they may be personal data).
func TestDecodeErrorsCarryNoValues(t *testing.T) {
	in := `{"tenant":"secret tenant","object":"secret-object","id":"secret id","op":"secret-op","fields":{"Email":{"secret":"ada@example.com"}},"created_at":"secret-date"}`
	_, err := schemas.DecodeEvent([]byte(in), 0)
	if err == nil || strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "ada@") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzDecodeEvent(f *testing.F) {
	for _, s := range []string{
		upsert,
		`{"tenant":"a","object":"lead","id":"1","op":"not_duplicate","other":{"object":"contact","id":"2"}}`,
		`{"tenant":"a","object":"contact","id":"1","op":"patch","modified_at":"2026-01-01T00:00:00.123456789-07:00","fields":{"":1e400}}`,
		`{"tenant":"a","object":"lead","id":"1","op":"upsert","created_at":"2026-12-31T23:59:60Z","modified_at":"2026-01-01T24:00:00Z"}`,
		`{"tenant":"a","object":"lead","id":"1","op":"upsert","created_at":"2026-12-31T23:59:60Z","modified_at":"2026-01-01T00:00:00Z","related_count":2.0}`,
		`[]`, `null`, `"x"`, `{"fields":{"a":{"b":[]}}}`, ``,
	} {
		f.Add([]byte(s))
	}
	keywords := []string{"required", "additionalProperties", "type", "enum", "const", "pattern", "format", "minimum", "maximum",
		"minLength", "maxLength", "not", "oneOf", "anyOf", "allOf", "false", "invalid", "encoding"}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := schemas.DecodeEvent(b, 1<<16)
		if err != nil {
			var se *schemas.Error
			if !errors.As(err, &se) {
				t.Fatalf("error %v is not a *schemas.Error", err)
			}
			switch se.Code {
			case schemas.CodeNotJSON, schemas.CodeOversize:
				return
			case schemas.CodeSchemaViolation:
			default:
				t.Fatalf("unknown code %q", se.Code)
			}
			// Every part is "pointer: keyword [schema names]", and the
			// pointer's segments are keys of the document or indexes.
			keys := map[string]bool{}
			d := json.NewDecoder(bytes.NewReader(b))
			d.UseNumber()
			var doc any
			if d.Decode(&doc) == nil {
				collectKeys(doc, keys)
			}
			for part := range strings.SplitSeq(se.Detail, "; ") {
				if strings.HasPrefix(part, "and ") {
					continue
				}
				ptr, rest, ok := strings.Cut(part, ": ")
				kw, _, _ := strings.Cut(rest, " ")
				if !ok || !slices.Contains(keywords, kw) {
					t.Fatalf("detail part %q: want pointer: keyword", part)
				}
				for seg := range strings.SplitSeq(strings.TrimPrefix(ptr, "/"), "/") {
					seg = strings.NewReplacer("~1", "/", "~0", "~").Replace(seg)
					if _, num := strconv.Atoi(seg); seg != "" && num != nil && !keys[seg] {
						t.Fatalf("detail %q names %q, which is not a key of the document", se.Detail, seg)
					}
				}
			}
			return
		}
		// Accepted: a known object and op, identity present, and the
		// event re-encodes to a document the schema accepts and that decodes
		// to the same event.
		if !ev.Object.Valid() || !ev.Op.Valid() || ev.Tenant == "" || ev.ID == "" {
			t.Fatalf("accepted an event without identity: %+v", ev)
		}
		out, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		back, err := schemas.DecodeEvent(out, 0)
		if err != nil {
			t.Fatalf("re-encoded event rejected: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(normalize(back), normalize(ev)) {
			t.Fatalf("round trip changed the event:\n%+v\n%+v", ev, back)
		}
	})
}

func collectKeys(v any, keys map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			keys[k] = true
			collectKeys(e, keys)
		}
	case []any:
		for _, e := range x {
			collectKeys(e, keys)
		}
	}
}

// normalize drops the time zone, which a round trip through RFC 3339 keeps
// as an offset but not as a *time.Location.
func normalize(ev record.Event) record.Event {
	ev.CreatedAt, ev.ModifiedAt = ev.CreatedAt.UTC(), ev.ModifiedAt.UTC()
	return ev
}
