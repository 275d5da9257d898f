package pipeline_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/leadconv/leadconv/consumer"
	"github.com/leadconv/leadconv/internal/pipeline"
	"github.com/leadconv/leadconv/matcher/gen"
	"github.com/leadconv/leadconv/schemas"
)

const decodeLimit = 32 << 10

// decodeCases are record event payloads with the code DecodeEvent gives
// them ("" = accepted).
var decodeCases = []struct {
	name, in, code string
}{
	{"upsert", `{"tenant":"acme","object":"lead","id":"L1","op":"upsert","created_at":"2026-01-02T03:04:05Z","modified_at":"2026-01-02T03:04:05.5+01:00","related_count":2,"fields":{"Email":"a@example.com","Score":1.5,"Hot":true,"Phone":null}}`, ""},
	{"patch", `{"tenant":"acme","object":"contact","id":"C1","op":"patch","modified_at":"2026-01-02T03:04:05Z","fields":{"Title":null}}`, ""},
	{"delete", `{"tenant":"acme","object":"account","id":"A1","op":"delete"}`, ""},
	{"hold", `{"tenant":"acme","object":"lead","id":"L1","op":"hold","modified_at":"2026-06-01T10:00:00Z"}`, ""},
	{"hold without times", `{"tenant":"acme","object":"contact","id":"C1","op":"hold"}`, ""},
	{"hold with other", `{"tenant":"acme","object":"lead","id":"L1","op":"hold","other":{"object":"lead","id":"L2"}}`, pipeline.CodeSchemaViolation},
	{"not duplicate", `{"tenant":"acme","object":"lead","id":"L1","op":"not_duplicate","other":{"object":"contact","id":"C1"}}`, ""},
	{"related count 1.0 (a JSON Schema integer)", `{"tenant":"acme","object":"lead","id":"L1","op":"delete","related_count":1.0}`, ""},
	{"related count 1e2", `{"tenant":"acme","object":"lead","id":"L1","op":"delete","related_count":1e2}`, ""},
	{"related count too large as a float", `{"tenant":"acme","object":"lead","id":"L1","op":"delete","related_count":3e9}`, pipeline.CodeSchemaViolation},
	{"not json", `not json`, pipeline.CodeNotJSON},
	{"truncated", `{"tenant":"acme"`, pipeline.CodeNotJSON},
	{"two documents", `{} {}`, pipeline.CodeNotJSON},
	{"array", `[1]`, pipeline.CodeSchemaViolation},
	{"null", `null`, pipeline.CodeSchemaViolation},
	{"unknown object", `{"tenant":"acme","object":"deal","id":"d1","op":"upsert"}`, pipeline.CodeUnknownObject},
	{"unknown object and key", `{"tenant":"acme","object":"deal","id":"d1","op":"delete","colour":"red"}`, pipeline.CodeUnknownObject},
	{"unknown op", `{"tenant":"acme","object":"lead","id":"x1","op":"explode"}`, pipeline.CodeUnknownOp},
	{"unknown key", `{"tenant":"acme","object":"lead","id":"x2","op":"delete","colour":"red"}`, pipeline.CodeSchemaViolation},
	{"key case", `{"Tenant":"acme","object":"lead","id":"x2","op":"delete"}`, pipeline.CodeSchemaViolation},
	{"missing id", `{"tenant":"acme","object":"lead","op":"delete"}`, pipeline.CodeSchemaViolation},
	{"upsert without times", `{"tenant":"acme","object":"lead","id":"L1","op":"upsert"}`, pipeline.CodeSchemaViolation},
	{"patch without modified_at", `{"tenant":"acme","object":"lead","id":"L1","op":"patch"}`, pipeline.CodeSchemaViolation},
	{"pair without other", `{"tenant":"acme","object":"lead","id":"L1","op":"clear_not_duplicate"}`, pipeline.CodeSchemaViolation},
	{"pair of accounts", `{"tenant":"acme","object":"account","id":"A1","op":"not_duplicate","other":{"object":"lead","id":"L1"}}`, pipeline.CodeSchemaViolation},
	{"other account", `{"tenant":"acme","object":"lead","id":"L1","op":"not_duplicate","other":{"object":"account","id":"A1"}}`, pipeline.CodeSchemaViolation},
	{"other on delete", `{"tenant":"acme","object":"lead","id":"L1","op":"delete","other":{"object":"lead","id":"L2"}}`, pipeline.CodeSchemaViolation},
	{"other extra key", `{"tenant":"acme","object":"lead","id":"L1","op":"not_duplicate","other":{"object":"lead","id":"L2","x":1}}`, pipeline.CodeSchemaViolation},
	{"tenant braces", `{"tenant":"a{b}","object":"lead","id":"L1","op":"delete"}`, pipeline.CodeSchemaViolation},
	{"tenant null", `{"tenant":null,"object":"lead","id":"L1","op":"delete"}`, pipeline.CodeSchemaViolation},
	{"empty id", `{"tenant":"acme","object":"lead","id":"","op":"delete"}`, pipeline.CodeSchemaViolation},
	{"id with space", `{"tenant":"acme","object":"lead","id":"L 1","op":"delete"}`, pipeline.CodeSchemaViolation},
	{"id too long", `{"tenant":"acme","object":"lead","id":"` + strings.Repeat("é", 257) + `","op":"delete"}`, pipeline.CodeSchemaViolation},
	{"id of 256 characters", `{"tenant":"acme","object":"lead","id":"` + strings.Repeat("é", 256) + `","op":"delete"}`, ""},
	{"lower-case t", `{"tenant":"acme","object":"lead","id":"L1","op":"patch","modified_at":"2026-01-02t03:04:05Z"}`, pipeline.CodeSchemaViolation},
	{"hour 24", `{"tenant":"acme","object":"lead","id":"L1","op":"patch","modified_at":"2026-01-02T24:04:05Z"}`, pipeline.CodeSchemaViolation},
	{"february 30", `{"tenant":"acme","object":"lead","id":"L1","op":"patch","modified_at":"2026-02-30T03:04:05Z"}`, pipeline.CodeSchemaViolation},
	{"time as number", `{"tenant":"acme","object":"lead","id":"L1","op":"patch","modified_at":1}`, pipeline.CodeSchemaViolation},
	{"negative related count", `{"tenant":"acme","object":"lead","id":"L1","op":"delete","related_count":-1}`, pipeline.CodeSchemaViolation},
	{"fractional related count", `{"tenant":"acme","object":"lead","id":"L1","op":"delete","related_count":1.5}`, pipeline.CodeSchemaViolation},
	{"related count as string", `{"tenant":"acme","object":"lead","id":"L1","op":"delete","related_count":"1"}`, pipeline.CodeSchemaViolation},
	{"nested field", `{"tenant":"acme","object":"lead","id":"L1","op":"patch","modified_at":"2026-01-02T03:04:05Z","fields":{"X":{"y":1}}}`, pipeline.CodeSchemaViolation},
	{"array field", `{"tenant":"acme","object":"lead","id":"L1","op":"patch","modified_at":"2026-01-02T03:04:05Z","fields":{"X":[1]}}`, pipeline.CodeSchemaViolation},
	{"empty field name", `{"tenant":"acme","object":"lead","id":"L1","op":"patch","modified_at":"2026-01-02T03:04:05Z","fields":{"":1}}`, pipeline.CodeSchemaViolation},
	{"fields null", `{"tenant":"acme","object":"lead","id":"L1","op":"delete","fields":null}`, ""},
	{"oversize", `{"tenant":"acme","object":"lead","id":"L1","op":"delete","fields":{"Notes":"` + strings.Repeat("x", decodeLimit) + `"}}`, pipeline.CodeOversize},
	{"escaped keys and values", `{"\u0074enant":"ac\u006de","object":"l\u0065ad","id":"L\/1","op":"upsert","created_at":"2026-01-02T03:04:05Z","modified_at":"2026-01-02T03:04:05Z","fields":{"E\u006dail":"a\"b\\c\n","\ud83d\ude00":"\uD83D\uDE00 \\ud800 \ufffd"}}`, ""},
	{"lone high surrogate", `{"tenant":"acme","object":"lead","id":"L1","op":"delete","fields":{"a":"\ud800"}}`, pipeline.CodeSchemaViolation},
	{"lone low surrogate in an id", `{"tenant":"acme","object":"lead","id":"L\udc001","op":"delete"}`, pipeline.CodeSchemaViolation},
	{"high surrogate then a letter", `{"tenant":"acme","object":"lead","id":"L\ud800\u0041","op":"delete"}`, pipeline.CodeSchemaViolation},
	{"U+FFFD itself", "{\"tenant\":\"acme\",\"object\":\"lead\",\"id\":\"L\xef\xbf\xbd1\",\"op\":\"delete\"}", ""},
	{"escaped timestamp", `{"tenant":"acme","object":"lead","id":"L1","op":"delete","modified_at":"2026-01-02T03:04:05\u005a"}`, ""},
	{"escaped unknown key", `{"tenant":"acme","object":"lead","id":"L1","op":"delete","\u0074enants":1}`, pipeline.CodeSchemaViolation},
	// Replacing invalid UTF-8 by U+FFFD would make different ids one.
	{"invalid UTF-8 in an id", "{\"tenant\":\"acme\",\"object\":\"lead\",\"id\":\"L\xff1\",\"op\":\"delete\"}", pipeline.CodeSchemaViolation},
	{"invalid UTF-8 in a tenant", "{\"tenant\":\"ac\xc3\",\"object\":\"lead\",\"id\":\"L1\",\"op\":\"delete\"}", pipeline.CodeSchemaViolation},
	{"invalid UTF-8 in a field value", "{\"tenant\":\"acme\",\"object\":\"lead\",\"id\":\"L1\",\"op\":\"delete\",\"fields\":{\"N\":\"\xe2\x82\"}}", pipeline.CodeSchemaViolation},
	{"invalid UTF-8 in a field name", "{\"tenant\":\"acme\",\"object\":\"lead\",\"id\":\"L1\",\"op\":\"delete\",\"fields\":{\"N\xc3\":\"x\"}}", pipeline.CodeSchemaViolation},
	{"invalid UTF-8 in the other id", "{\"tenant\":\"acme\",\"object\":\"lead\",\"id\":\"L1\",\"op\":\"not_duplicate\",\"other\":{\"object\":\"lead\",\"id\":\"\xff\"}}", pipeline.CodeSchemaViolation},
	{"invalid UTF-8 in a repeated key's first value", "{\"tenant\":\"\xff\",\"tenant\":\"acme\",\"object\":\"lead\",\"id\":\"L1\",\"op\":\"delete\"}", pipeline.CodeSchemaViolation},
	{"invalid UTF-8 key", "{\"tenant\xff\":\"acme\",\"object\":\"lead\",\"id\":\"L1\",\"op\":\"delete\"}", pipeline.CodeSchemaViolation},
	{"repeated keys, the last counts", `{"tenant":"a{b}","tenant":"acme","object":"deal","object":"lead","id":"L1","op":"delete","fields":{"X":{"y":1},"X":"z"}}`, ""},
	{"repeated field, nested last", `{"tenant":"acme","object":"lead","id":"L1","op":"delete","fields":{"X":"z","X":[1]}}`, pipeline.CodeSchemaViolation},
	{"repeated other", `{"tenant":"acme","object":"lead","id":"L1","op":"not_duplicate","other":{"object":"account","id":"C1","object":"contact"}}`, ""},
	{"other without id", `{"tenant":"acme","object":"lead","id":"L1","op":"not_duplicate","other":{"object":"contact"}}`, pipeline.CodeSchemaViolation},
	{"other not an object", `{"tenant":"acme","object":"lead","id":"L1","op":"not_duplicate","other":["contact","C1"]}`, pipeline.CodeSchemaViolation},
	{"whitespace", " \t\r\n{ \"tenant\" : \"acme\" ,\n\"object\":\"lead\",\"id\":\"L1\",\"op\":\"delete\",\"fields\":{ } } \n", ""},
	{"numbers", `{"tenant":"acme","object":"lead","id":"L1","op":"delete","related_count":0,"fields":{"a":-0,"b":1E+2,"c":0.5e-3,"d":12345678901234567890,"e":-1.0}}`, ""},
	{"related count of ten digits", `{"tenant":"acme","object":"lead","id":"L1","op":"delete","related_count":2147483648}`, pipeline.CodeSchemaViolation},
	{"related count of eleven digits", `{"tenant":"acme","object":"lead","id":"L1","op":"delete","related_count":21474836470}`, pipeline.CodeSchemaViolation},
	{"related count 2^31-1", `{"tenant":"acme","object":"lead","id":"L1","op":"delete","related_count":2147483647}`, ""},
	{"related count -0", `{"tenant":"acme","object":"lead","id":"L1","op":"delete","related_count":-0}`, ""},
	{"leading zero", `{"tenant":"acme","object":"lead","id":"L1","op":"delete","fields":{"a":01}}`, pipeline.CodeNotJSON},
	{"bad escape", `{"tenant":"acme","object":"lead","id":"L1","op":"delete","fields":{"a":"\x"}}`, pipeline.CodeNotJSON},
	{"short unicode escape", `{"tenant":"acme","object":"lead","id":"L1","op":"delete","fields":{"a":"\u12"}}`, pipeline.CodeNotJSON},
	{"control character", "{\"tenant\":\"acme\",\"object\":\"lead\",\"id\":\"L1\",\"op\":\"delete\",\"fields\":{\"a\":\"\t\"}}", pipeline.CodeNotJSON},
	{"trailing comma", `{"tenant":"acme","object":"lead","id":"L1","op":"delete",}`, pipeline.CodeNotJSON},
	{"bad literal", `{"tenant":"acme","object":"lead","id":"L1","op":"delete","fields":{"a":tru}}`, pipeline.CodeNotJSON},
	{"syntax error after an unknown object", `{"object":"deal","tenant":"acme","id":"L1","op":"delete","fields":{"a":-}}`, pipeline.CodeNotJSON},
	{"empty", ``, pipeline.CodeNotJSON},
	{"string", `"x"`, pipeline.CodeSchemaViolation},
	{"nested unknown member", `{"tenant":"acme","object":"lead","id":"L1","op":"delete","x":{"a":[{"b":[]}]}}`, pipeline.CodeSchemaViolation},
	{"deepest nesting", `{"tenant":"acme","object":"lead","id":"L1","op":"delete","fields":{"a":` + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `}}`, pipeline.CodeSchemaViolation},
	{"nesting too deep", `{"tenant":"acme","object":"lead","id":"L1","op":"delete","fields":{"a":` + strings.Repeat("[", 9999) + strings.Repeat("]", 9999) + `}}`, pipeline.CodeNotJSON},
	{"offset time", `{"tenant":"acme","object":"lead","id":"L1","op":"patch","modified_at":"2026-01-02T03:04:05.123456789-13:30"}`, ""},
	{"leap day", `{"tenant":"acme","object":"lead","id":"L1","op":"patch","modified_at":"2024-02-29T23:59:59Z"}`, ""},
	{"no leap day", `{"tenant":"acme","object":"lead","id":"L1","op":"patch","modified_at":"2100-02-29T00:00:00Z"}`, pipeline.CodeSchemaViolation},
	{"ten fraction digits", `{"tenant":"acme","object":"lead","id":"L1","op":"patch","modified_at":"2026-01-02T03:04:05.1234567890Z"}`, pipeline.CodeSchemaViolation},
}

func TestDecodeEvent(t *testing.T) {
	for _, tc := range decodeCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pipeline.DecodeEvent([]byte(tc.in), decodeLimit)
			code, ok := pipeline.ErrorCode(err)
			switch {
			case tc.code == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.code != "" && (!ok || code != tc.code):
				t.Fatalf("error %v, want code %s", err, tc.code)
			}
			agreesWithSchema(t, []byte(tc.in))
		})
	}
}

// A refusal says which member failed which rule, and never a value.
func TestDecodeRejectionReason(t *testing.T) {
	for _, tc := range []struct{ name, in, reason string }{
		{"bad time", `{"tenant":"acme","object":"lead","id":"L1","op":"patch","modified_at":"yesterday"}`, "/modified_at: format date-time"},
		{"february 30", `{"tenant":"acme","object":"lead","id":"L1","op":"patch","modified_at":"2026-02-30T03:04:05Z"}`, "/modified_at: format date-time"},
		{"upsert without times", `{"tenant":"acme","object":"lead","id":"L1","op":"upsert"}`, "/: required created_at,modified_at"},
		{"missing id", `{"tenant":"acme","object":"lead","op":"delete"}`, "/: required id"},
		{"long id", `{"tenant":"acme","object":"lead","id":"` + strings.Repeat("x", 257) + `","op":"delete"}`, "/id: length 1..256"},
		{"invalid UTF-8 id", "{\"tenant\":\"acme\",\"object\":\"lead\",\"id\":\"Lsecret\xff\",\"op\":\"delete\"}", "/id: encoding UTF-8"},
		{"invalid UTF-8 field", "{\"tenant\":\"acme\",\"object\":\"lead\",\"id\":\"L1\",\"op\":\"delete\",\"fields\":{\"Email\":\"secret\xff\"}}", "/fields/Email: encoding UTF-8"},
		{"nested field", `{"tenant":"acme","object":"lead","id":"L1","op":"delete","fields":{"Email":{"secret":1}}}`, "/fields/Email: type"},
		{"unknown object", `{"tenant":"acme","object":"secret","id":"L1","op":"delete"}`, "/object: enum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pipeline.DecodeEvent([]byte(tc.in), decodeLimit)
			r, ok := pipeline.Rejected(err)
			if !ok || r.Reason != tc.reason {
				t.Fatalf("rejection %+v (%v), want reason %q", r, err, tc.reason)
			}
			if strings.Contains(r.Reason, "secret") || strings.Contains(err.Error(), "secret") {
				t.Fatalf("reason carries a value: %q", r.Reason)
			}
		})
	}
}

// schemas.DecodeEvent fits pipeline.Decoder: its refusals map to a code
// (so the record is dead-lettered, not retried forever), with a reason.
func TestSchemaDecoderErrorsAreCoded(t *testing.T) {
	for _, tc := range decodeCases {
		if tc.code == "" {
			continue
		}
		_, err := schemas.DecodeEvent([]byte(tc.in), decodeLimit)
		r, ok := pipeline.Rejected(err)
		if !ok || r.Code == "" || r.Reason == "" {
			t.Errorf("%s: %v has no rejection (%+v)", tc.name, err, r)
		}
		if code, ok := pipeline.ErrorCode(err); !ok || code != r.Code {
			t.Errorf("%s: ErrorCode = %q, %v", tc.name, code, ok)
		}
		// The one classification agrees: permanent, under the same code.
		if code, transient := consumer.Classify(fmt.Errorf("decode: %w", err)); transient || code != r.Code {
			t.Errorf("%s: Classify = %q %v, want %q permanent", tc.name, code, transient, r.Code)
		}
	}
}

// agreesWithSchema holds DecodeEvent to the contract: it accepts exactly
// what schemas.DecodeEvent (record-event.v1.json through a generic
// validator) accepts, decodes it to the same event, and refuses the rest
// with the corresponding code.
func agreesWithSchema(t *testing.T, b []byte) {
	t.Helper()
	got, err := pipeline.DecodeEvent(b, decodeLimit)
	want, werr := schemas.DecodeEvent(b, decodeLimit)
	var se *schemas.Error
	if werr != nil && !errors.As(werr, &se) {
		t.Fatalf("schemas: %v", werr)
	}
	switch {
	case err == nil && werr == nil:
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded %+v, the schema decoder %+v", got, want)
		}
	case err == nil:
		t.Fatalf("accepted what the schema refuses (%v): %s", werr, b)
	case werr == nil:
		t.Fatalf("refused what the schema accepts (%v): %s", err, b)
	default:
		code, _ := pipeline.ErrorCode(err)
		if code == pipeline.CodeUnknownObject || code == pipeline.CodeUnknownOp {
			code = pipeline.CodeSchemaViolation
		}
		if code != se.Code {
			t.Fatalf("code %s, the schema's %s: %s", code, se.Code, b)
		}
	}
}

// Generated events all pass, and decode as the schema decoder does.
func TestDecodeGenerated(t *testing.T) {
	evs := gen.New(gen.Options{Seed: 3, Records: 300, ContactShare: 0.3, Updates: 0.3, Deletes: 0.1}).Events()
	for i := range evs {
		b, err := json.Marshal(&evs[i])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pipeline.DecodeEvent(b, decodeLimit); err != nil {
			t.Fatalf("event %d refused: %v", i, err)
		}
		agreesWithSchema(t, b)
	}
}

func FuzzDecodeEvent(f *testing.F) {
	for _, tc := range decodeCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := pipeline.DecodeEvent(b, decodeLimit); err != nil {
			if _, ok := pipeline.ErrorCode(err); !ok {
				t.Fatalf("error without a code: %v", err)
			}
		}
		agreesWithSchema(t, b)
	})
}

// BenchmarkDecodeEvent compares the built-in decoder with the generic
// schema validator on generated events.
func BenchmarkDecodeEvent(b *testing.B) {
	evs := gen.New(gen.Options{Seed: 1, Records: 1000, ContactShare: 0.2, Updates: 0.2}).Events()
	payloads := make([][]byte, len(evs))
	for i := range evs {
		payloads[i], _ = json.Marshal(&evs[i])
	}
	for _, d := range []struct {
		name   string
		decode pipeline.Decoder
	}{{"pipeline", pipeline.DecodeEvent}, {"schemas", schemas.DecodeEvent}} {
		b.Run(d.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := d.decode(payloads[i%len(payloads)], decodeLimit); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// DecodeResult takes what command.result.v1.json takes and a tenant and
// command id besides; a skipped duplicate counts as its first outcome.
func TestDecodeResult(t *testing.T) {
	base := `"command_id":"c1","kind":"lead.convert","tenant":"acme","cluster_id":"k","cluster_version":3,"seq":0`
	tests := []struct {
		name, doc   string
		max         int
		code, where string
		outcome     string
	}{
		{name: "applied", doc: `{` + base + `,"outcome":"applied","request_id":"r1"}`, outcome: "applied"},
		{name: "duplicate of a failure", doc: `{` + base + `,"outcome":"skipped_duplicate","previous_outcome":"failed","reason":"missing_lead"}`, outcome: "failed"},
		{name: "duplicate of an applied", doc: `{` + base + `,"outcome":"skipped_duplicate","previous_outcome":"applied"}`, outcome: "applied"},
		{name: "stale", doc: `{` + base + `,"outcome":"stale","newest_version":4}`, outcome: "stale"},
		{name: "no tenant", doc: `{"command_id":"c1","kind":"","tenant":"","cluster_id":"","cluster_version":0,"seq":0,"outcome":"failed","reason":"invalid_command"}`, code: pipeline.CodeSchemaViolation, where: "/tenant"},
		{name: "failed without reason", doc: `{` + base + `,"outcome":"failed"}`, code: pipeline.CodeSchemaViolation},
		{name: "not json", doc: `{"command_id":`, code: pipeline.CodeNotJSON},
		{name: "invalid UTF-8", doc: `{` + base + `,"outcome":"applied","request_id":"r` + "\xff" + `"}`, code: pipeline.CodeSchemaViolation},
		{name: "oversize", doc: `{` + base + `,"outcome":"applied"}`, max: 10, code: pipeline.CodeOversize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := pipeline.DecodeResult([]byte(tt.doc), tt.max)
			if tt.code == "" {
				if err != nil || pipeline.LifecycleResult(r).Outcome != tt.outcome || r.Tenant != "acme" {
					t.Fatalf("result %+v, %v; want outcome %s", r, err, tt.outcome)
				}
				return
			}
			rej, ok := pipeline.Rejected(err)
			if !ok || rej.Code != tt.code || !strings.HasPrefix(rej.Reason, tt.where) {
				t.Fatalf("err %v (%+v), want code %s at %s", err, rej, tt.code, tt.where)
			}
			if strings.Contains(rej.Reason, "acme") || strings.Contains(rej.Reason, "r1") {
				t.Errorf("reason %q carries a value", rej.Reason)
			}
		})
	}
}
