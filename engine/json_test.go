package engine

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/leadconv/leadconv/record"
)

// sameAsMarshal checks that AppendJSON appends exactly json.Marshal's bytes,
// or fails exactly when it fails.
func sameAsMarshal(t *testing.T, c Command) {
	t.Helper()
	want, werr := json.Marshal(c)
	prefix := []byte("prefix:")
	got, err := c.AppendJSON(prefix)
	switch {
	case werr != nil || err != nil:
		if werr == nil || err == nil || err.Error() != werr.Error() {
			t.Fatalf("AppendJSON error %v, json.Marshal error %v", err, werr)
		}
	case !bytes.HasPrefix(got, prefix) || !bytes.Equal(got[len(prefix):], want):
		t.Fatalf("AppendJSON wrote\n%s\njson.Marshal\n%s", got, want)
	}
}

// Every golden plan and many random plans encode as encoding/json does,
// without falling back to it.
func TestAppendJSONPlans(t *testing.T) {
	n := 0
	check := func(c Command) {
		t.Helper()
		sameAsMarshal(t, c)
		var sh shared
		if _, ok := sh.appendCommand(nil, &c); !ok {
			t.Fatalf("%s %s: left to encoding/json", c.Kind, c.ID)
		}
		n++
	}
	for _, g := range goldenPlans() {
		for _, c := range Plan(g.cfg, g.c).Commands {
			check(c)
		}
	}
	r := rand.New(rand.NewPCG(7, 8))
	kinds := map[string]bool{}
	for range 2000 {
		for _, c := range Plan(randomConfig(r), randomCluster(r, r.IntN(12))).Commands {
			check(c)
			kinds[c.Kind] = true
		}
	}
	if len(kinds) != len(Kinds) || n < 1000 {
		t.Fatalf("compared %d commands of kinds %v, want every kind", n, kinds)
	}
}

// samePlanAsMarshal checks that AppendPlanJSON writes each command as
// json.Marshal does, or fails where it fails.
func samePlanAsMarshal(t *testing.T, cmds []Command) {
	t.Helper()
	prefix := []byte("prefix:")
	got, ends, err := AppendPlanJSON(prefix, []int{-1}, cmds)
	start := len(prefix)
	for i, c := range cmds {
		want, werr := json.Marshal(c)
		if werr != nil {
			if err == nil || err.Error() != werr.Error() || len(ends) != i+1 {
				t.Fatalf("command %d: AppendPlanJSON error %v after %d commands, json.Marshal error %v", i, err, len(ends)-1, werr)
			}
			return
		}
		if len(ends) < i+2 || !bytes.Equal(got[start:ends[i+1]], want) {
			t.Fatalf("command %d of %d: AppendPlanJSON wrote (ends %v)\n%s\njson.Marshal\n%s", i, len(cmds), ends, got[start:], want)
		}
		start = ends[i+1]
	}
	if err != nil || start != len(got) || !bytes.HasPrefix(got, prefix) {
		t.Fatalf("error %v, %d bytes after the last end of %d", err, len(got)-start, len(got))
	}
}

// Plans encode as a whole as command by command, the shared explain block
// and field maps copied, also around a command left to encoding/json.
func TestAppendPlanJSON(t *testing.T) {
	shared := 0
	for _, g := range goldenPlans() {
		cmds := Plan(g.cfg, g.c).Commands
		samePlanAsMarshal(t, cmds)
		if len(cmds) > 1 {
			shared++
		}
	}
	r := rand.New(rand.NewPCG(9, 10))
	for range 1000 {
		samePlanAsMarshal(t, Plan(randomConfig(r), randomCluster(r, r.IntN(12))).Commands)
	}
	if shared < 3 {
		t.Fatalf("only %d golden plans have several commands", shared)
	}
	ex := edgeExplain("<s>", t0)
	f := record.Fields{"A": "a", "B": 1.5}
	convert := func(f record.Fields) Command {
		return Command{Kind: KindLeadConvert, Data: &LeadConvert{Fields: f, Account: AccountTarget{Fields: f}}, Explain: ex}
	}
	merge := Command{Kind: KindRecordsMerge, Data: &RecordsMerge{Fields: f, MergedIDs: []string{"x"}}, Explain: ex}
	other := Command{Kind: "other", Data: map[string]int{"x": 1}, Explain: ex}
	samePlanAsMarshal(t, []Command{convert(f), merge, other, convert(f), merge, convert(record.Fields{"A": "b"}), merge})
	samePlanAsMarshal(t, []Command{convert(f), other, merge, convert(record.Fields{"N": math.NaN()}), merge})
	// A command left to encoding/json after its account fields were
	// written by hand; then the same map again, and another explain block.
	g := record.Fields{"G": "g"}
	mixed := Command{Kind: KindLeadConvert, Data: &LeadConvert{Account: AccountTarget{Fields: g}, Fields: record.Fields{"I": 7}}, Explain: ex}
	again := Command{Kind: KindLeadConvert, Data: &LeadConvert{Account: AccountTarget{Fields: g}, Fields: g}, Explain: edgeExplain("other", t0)}
	samePlanAsMarshal(t, []Command{convert(f), mixed, again, convert(f)})
	samePlanAsMarshal(t, nil)
}

// edgeStrings need escaping, replacement or care with UTF-8.
var edgeStrings = []string{
	"", "plain", `<a href="x">&amp;</a>`, "\x00\x01\x1f\x7f", "\b\f\n\r\t", `"\`, "\u2028\u2029",
	"\xff\xfe", "a\xc3", "é日本語🙂", "\ufffd", " trailing ",
}

// edgeValues are field values of every kind a record can hold, including
// ones AppendJSON leaves to encoding/json and ones it cannot encode.
var edgeValues = []any{
	nil, true, false, 0.0, math.Copysign(0, -1), 1.0, -1.5, 123.456, 1e20, 1e21, 1e-6, 1e-7, -2.5e-10,
	math.MaxFloat64, math.SmallestNonzeroFloat64, 100000000000000000000.0, 0.000001234,
	json.Number("1"), json.Number("-0.5e+3"), json.Number("1E5"), json.Number("0"), json.Number(""),
	json.Number("01"), json.Number("1."), json.Number("abc"), json.Number("1e"), json.Number("-"),
	math.NaN(), math.Inf(1), 7, int64(-8), float32(0.1), time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
	[]any{"x"}, map[string]any{"<": 1.0},
}

func edgeCommand(s string, v any, ex *Explain) Command {
	fields := record.Fields{"A": v, s: s, "<k>": 1.0, "": nil}
	return Command{
		Kind: KindLeadConvert, ID: s, Tenant: s, ClusterID: "c<1>", ClusterVersion: -3, Seq: 2, Subject: s,
		Data: &LeadConvert{
			LeadID: s, Batch: 1, Contact: Target{FromLead: s},
			Account:     AccountTarget{Target: Target{Create: true}, Name: s, Fields: fields},
			Opportunity: &Opportunity{Name: s, NameSource: "field", Fields: fields},
			Fields:      fields, ConvertedStatus: s,
		},
		Explain: ex,
	}
}

func edgeExplain(s string, at time.Time) *Explain {
	return &Explain{
		Master: MasterExplain{
			Strategy: s, Field: s, Fallback: s, FallbackReason: s, TieBreak: s,
			Candidates: []Candidate{{Object: record.Lead, ID: s, Value: s, Qualified: true, ModifiedAt: at, CreatedAt: at}, {}},
			Winner:     record.Ref{Object: record.Contact, ID: s},
		},
		Fields:  []FieldExplain{{Field: s, Strategy: s, From: []record.Ref{{ID: s}}, MasterKept: true}, {}},
		Account: &AccountExplain{Source: s, ID: s},
	}
}

// Strings, values and times at the edges of what encoding/json escapes,
// formats or refuses.
func TestAppendJSONValues(t *testing.T) {
	times := []time.Time{
		{}, time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.FixedZone("CET", 3600)),
		time.Date(1, 1, 1, 0, 0, 0, 1, time.FixedZone("", -(13*3600+30*60))),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	for _, s := range edgeStrings {
		for _, v := range edgeValues {
			sameAsMarshal(t, edgeCommand(s, v, nil))
		}
		for _, at := range times {
			sameAsMarshal(t, edgeCommand(s, nil, edgeExplain(s, at)))
		}
	}
}

// Every data type with its optional members present and absent, nil and
// empty lists, and data AppendJSON leaves to encoding/json.
func TestAppendJSONShapes(t *testing.T) {
	ref := record.Ref{Object: record.Lead, ID: "L1"}
	var data []any
	for _, tg := range []Target{{}, {ID: "1"}, {FromLead: "L"}, {Create: true}, {ID: "1", FromLead: "L", Create: true}} {
		for _, acct := range []AccountTarget{{Target: tg}, {Target: tg, Name: "n"}, {Target: tg, Fields: record.Fields{}}, {Target: tg, Fields: record.Fields{"X": "y"}}, {Name: "n", Fields: record.Fields{"X": "y"}}} {
			data = append(data,
				&LeadConvert{Contact: tg, Account: acct},
				&LeadConvert{Contact: tg, Account: acct, Opportunity: &Opportunity{}, Fields: record.Fields{}},
				&LeadConvert{Account: acct, Opportunity: &Opportunity{Fields: record.Fields{"X": nil}}})
		}
		data = append(data,
			&RecordsMerge{Master: tg},
			&RecordsMerge{Object: record.Contact, Master: tg, MergedIDs: []string{}, Fields: record.Fields{}},
			&RecordsMerge{Master: tg, MergedIDs: []string{"a", "<b>"}, Batch: 3, Fields: record.Fields{"X": 1.0}})
	}
	data = append(data,
		&ConversionFailed{}, &ConversionFailed{Reason: "r", Master: ref, Records: []record.Ref{}},
		&ConversionFailed{Records: []record.Ref{ref, {}}},
		&ReviewRequested{}, &ReviewRequested{Reason: "r", Records: []record.Ref{ref}, Size: 30, Limit: 20},
		&ReviewRequested{Size: -1}, &ReviewRequested{Limit: 1, Records: []record.Ref{}},
		nil, (*LeadConvert)(nil), (*RecordsMerge)(nil), (*ConversionFailed)(nil), (*ReviewRequested)(nil),
		LeadConvert{LeadID: "value, not pointer"}, map[string]int{"x": 1}, "text")
	explains := []*Explain{nil, {}, {Master: MasterExplain{Candidates: []Candidate{}}, Fields: []FieldExplain{}}, edgeExplain("s", t0)}
	for _, d := range data {
		for _, ex := range explains {
			sameAsMarshal(t, Command{Kind: KindRecordsMerge, ID: "id", Data: d, Explain: ex})
			sameAsMarshal(t, Command{Kind: KindRecordsMerge, ID: "id", Data: d, Explain: ex, RequestID: "r<1>"})
		}
	}
}

func FuzzAppendJSON(f *testing.F) {
	for _, s := range edgeStrings {
		f.Add(s, 1.5, "1", int64(0))
	}
	f.Fuzz(func(t *testing.T, s string, x float64, num string, nanos int64) {
		at := time.Unix(0, nanos).In(time.FixedZone("", int(nanos%86400)))
		for _, v := range []any{s, x, json.Number(num)} {
			c := edgeCommand(s, v, edgeExplain(s, at))
			sameAsMarshal(t, c)
			c.RequestID = s
			sameAsMarshal(t, c)
		}
	})
}
