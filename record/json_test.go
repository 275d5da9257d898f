package record

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
)

// AppendFieldsJSON must write exactly what encoding/json writes, or say it
// cannot: commands and stored records are compared byte for byte.
func TestAppendFieldsJSONMatchesEncodingJSON(t *testing.T) {
	tests := []Fields{
		nil,
		{},
		{"FirstName": "Ann", "Email": "ann@x.com"},
		{"Company": `Smith & Sons <"Ltd">`, "Note": "tab\there\nnew\rline\b\f\x00\x1f\x7f"},
		{"Name": "Zoë Ñúñez 李 🙂", "Bad": "\xff\xfe ok \xc3", "Sep": "a\u2028b\u2029c"},
		{"Revenue": json.Number("1200.50"), "Neg": json.Number("-0.5e-3"), "Employees": 12.0, "Big": 1e21, "Small": 1e-7, "Tiny": -2.5e-9, "Active": true, "Gone": false, "Null": nil},
		{"": "empty key", "\\": "backslash key", "ключ": "значение"},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []string{"a", " ", "\"", "\\", "<", ">", "&", "\n", "\x01", "é", "\u2028", "\xff", "🙂", "/"}
	for range 500 {
		f := Fields{}
		for range rng.IntN(6) {
			k, v := "", ""
			for range rng.IntN(4) {
				k += alphabet[rng.IntN(len(alphabet))]
			}
			for range rng.IntN(10) {
				v += alphabet[rng.IntN(len(alphabet))]
			}
			f[k] = v
		}
		f["n"] = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(40)-20))
		tests = append(tests, f)
	}
	for i, f := range tests {
		got, ok := AppendFieldsJSON([]byte("x"), f)
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if !ok || string(got) != "x"+string(want) {
			t.Fatalf("case %d: ok=%v\n got %s\nwant x%s", i, ok, got, want)
		}
	}
}

func TestAppendFieldsJSONDefersWhatItDoesNotWrite(t *testing.T) {
	for _, f := range []Fields{
		{"NaN": math.NaN()},
		{"Bad": json.Number("12abc")},
		{"Empty": json.Number("")},
		{"List": []any{"a"}},
		{"Int": 3},
	} {
		if _, ok := AppendFieldsJSON(nil, f); ok {
			t.Errorf("%v: written, want deferred to encoding/json", f)
		}
	}
}
