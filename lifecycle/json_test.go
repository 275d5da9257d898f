package lifecycle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/record"
)

// trickyStrings are the pieces generated strings are made of: what
// encoding/json escapes or replaces (HTML characters, control characters,
// invalid UTF-8, U+2028 and U+2029) beside plain and multi-byte text.
var trickyStrings = []string{
	"a", "Ann Lee", " ", "<", ">", "&", `"`, `\`, "/", "\x00", "\x1f", "\x7f",
	"\b\f\n\r\t", "\xff", "\xc3", "\xed\xa0\x80", "\u2028", "\u2029", "é", "李", "🙂", "\ufffd",
}

// gen fills values by reflection: every settable field of every struct an
// Entry holds, at any depth, so that a field added to any of those types
// is filled too and the comparison with json.Marshal fails until AppendJSON
// writes it. A kind of field it does not know fails the test rather than
// being left zero.
type gen struct {
	r *rand.Rand
	// extra is one more string piece (the fuzzer's).
	extra string
	// year and offset, when set, are the date of some times (the
	// fuzzer's); others are random.
	year, offset int
	// filled and empty record, by "Type.Field", which fields were given a
	// non-zero value and which were left zero (omitempty's two sides).
	filled, empty map[string]bool
	// omissible are the fields encoded otherwise when zero: omitempty or omitzero,
	// or null.
	omissible map[string]bool
	err       error
}

func newGen(seed uint64) *gen {
	return &gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), filled: map[string]bool{}, empty: map[string]bool{}, omissible: map[string]bool{}}
}

func (g *gen) entry() Entry {
	var e Entry
	g.fill(reflect.ValueOf(&e).Elem(), "Entry")
	// As the lifecycle keeps them, a held plan's cluster is often the one
	// seen, in the same memory (AppendJSON copies those bytes); one field
	// of the copy is sometimes
	// given another value, whichever field, so that a field added to those
	// types without AppendJSON comparing it fails here.
	for i := range e.Held {
		h := &e.Held[i]
		if g.r.IntN(2) == 0 {
			h.Cluster = e.Seen
			g.refillOne(reflect.ValueOf(&h.Cluster).Elem())
		}
	}
	return e
}

// refillOne fills one field of the struct v anew, or none.
func (g *gen) refillOne(v reflect.Value) {
	if i := g.r.IntN(2 * v.NumField()); i < v.NumField() {
		g.fill(v.Field(i), v.Type().Name()+"."+v.Type().Field(i).Name)
	}
}

var (
	timeType   = reflect.TypeFor[time.Time]()
	fieldsType = reflect.TypeFor[record.Fields]()
)

// commandData are the types of engine.Command's Data.
var commandData = map[string]reflect.Type{
	engine.KindLeadConvert:      reflect.TypeFor[engine.LeadConvert](),
	engine.KindRecordsMerge:     reflect.TypeFor[engine.RecordsMerge](),
	engine.KindConversionFailed: reflect.TypeFor[engine.ConversionFailed](),
	engine.KindReviewRequested:  reflect.TypeFor[engine.ReviewRequested](),
}

func (g *gen) fill(v reflect.Value, path string) {
	switch t := v.Type(); {
	case t == timeType:
		v.Set(reflect.ValueOf(g.time()))
		return
	case t == fieldsType:
		g.fields(v)
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(g.string())
	case reflect.Bool:
		v.SetBool(g.r.IntN(2) == 0)
	case reflect.Int, reflect.Int64:
		switch g.r.IntN(4) {
		case 0:
			v.SetInt(0)
		case 1:
			v.SetInt(g.r.Int64N(20))
		default:
			n := int64(g.r.Uint64())
			if v.Kind() == reflect.Int {
				n = int64(int(n))
			}
			v.SetInt(n)
		}
	case reflect.Pointer:
		if g.r.IntN(3) > 0 {
			v.Set(reflect.New(v.Type().Elem()))
			g.fill(v.Elem(), path)
		}
	case reflect.Slice:
		switch n := g.r.IntN(5); n {
		case 0: // nil
		case 1:
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		default:
			v.Set(reflect.MakeSlice(v.Type(), n-1, n-1))
			for i := range n - 1 {
				g.fill(v.Index(i), path)
			}
		}
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			g.fail(path, v.Type())
			return
		}
		switch n := g.r.IntN(5); n {
		case 0: // nil
		default:
			v.Set(reflect.MakeMap(v.Type()))
			for range n - 1 {
				k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
				g.fill(k, path)
				g.fill(e, path)
				v.SetMapIndex(k, e)
			}
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name := t.Name() + "." + f.Name
			switch f.Type.Kind() {
			case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
				g.omissible[name] = true
			}
			if tag := f.Tag.Get("json"); strings.Contains(tag, ",omitempty") || strings.Contains(tag, ",omitzero") {
				g.omissible[name] = true
			}
			if f.Type.Kind() == reflect.Interface {
				if t != reflect.TypeFor[engine.Command]() || f.Name != "Data" {
					g.fail(name, f.Type)
					continue
				}
				g.commandData(v)
			} else {
				g.fill(v.Field(i), name)
			}
			if v.Field(i).IsZero() {
				g.empty[name] = true
			} else {
				g.filled[name] = true
			}
		}
	default:
		g.fail(path, v.Type())
	}
}

func (g *gen) fail(path string, t reflect.Type) {
	if g.err == nil {
		g.err = fmt.Errorf("%s: the generator does not fill a %s: teach it (and AppendJSON)", path, t)
	}
}

// commandData sets a Command's Data, nil or of one of the kinds, and its
// Kind to match, as json.Unmarshal decodes it.
func (g *gen) commandData(c reflect.Value) {
	kinds := []string{"", engine.KindLeadConvert, engine.KindRecordsMerge, engine.KindConversionFailed, engine.KindReviewRequested}
	kind := kinds[g.r.IntN(len(kinds))]
	if kind == "" {
		c.FieldByName("Kind").SetString(engine.Kinds[g.r.IntN(len(engine.Kinds))])
		return
	}
	d := reflect.New(commandData[kind])
	g.fill(d.Elem(), commandData[kind].Name())
	c.FieldByName("Data").Set(d)
	c.FieldByName("Kind").SetString(kind)
}

func (g *gen) string() string {
	var sb strings.Builder
	for range g.r.IntN(5) {
		if g.extra != "" && g.r.IntN(4) == 0 {
			sb.WriteString(g.extra)
			continue
		}
		sb.WriteString(trickyStrings[g.r.IntN(len(trickyStrings))])
	}
	return sb.String()
}

// fields fills a record.Fields with the values records hold: strings,
// float64, json.Number, bool and nil.
func (g *gen) fields(v reflect.Value) {
	if g.r.IntN(6) == 0 {
		return
	}
	f := record.Fields{}
	for range g.r.IntN(6) {
		var x any
		switch g.r.IntN(6) {
		case 0:
			x = g.string()
		case 1:
			x = g.r.NormFloat64() * math.Pow(10, float64(g.r.IntN(50)-25))
		case 2:
			x = float64(g.r.IntN(1000) - 500)
		case 3:
			x = json.Number([]string{"0", "-1", "12.50", "1e21", "-0.5e-3", "7E+2"}[g.r.IntN(6)])
		case 4:
			x = g.r.IntN(2) == 0
		}
		f[g.string()] = x
	}
	v.Set(reflect.ValueOf(f))
}

// withMonotonic is a time with a monotonic reading, which encoding drops;
// one for the process, so that a fuzzed input generates the same entry
// every time.
var withMonotonic = time.Now()

// time is the zero time, a time now (with a monotonic reading), or a time
// of a year from 0 to 9999 in UTC or at an offset, with or without
// fractional seconds.
func (g *gen) time() time.Time {
	switch g.r.IntN(8) {
	case 0:
		return time.Time{}
	case 1:
		return withMonotonic
	}
	loc := time.UTC
	switch g.r.IntN(3) {
	case 1:
		loc = time.FixedZone("", (g.r.IntN(2*1439+1)-1439)*60) // up to ±23:59
	case 2:
		loc = time.FixedZone("odd", g.r.IntN(2*86399+1)-86399) // seconds are dropped
	}
	year := g.r.IntN(10000)
	if g.year != 0 && g.r.IntN(2) == 0 {
		year, loc = g.year, time.FixedZone("", g.offset)
	}
	ns := 0
	switch g.r.IntN(4) {
	case 1:
		ns = g.r.IntN(1e9)
	case 2:
		ns = g.r.IntN(1000) * 1e6
	}
	return time.Date(year, time.Month(1+g.r.IntN(12)), 1+g.r.IntN(28), g.r.IntN(24), g.r.IntN(60), g.r.IntN(60), ns, loc)
}

// sameAsMarshal checks that AppendJSON appends exactly json.Marshal's
// bytes, or fails exactly when it fails, leaving b as it was.
// Both forms: whole, and with the cluster seen by reference (a store
// holding it) when it has records; the whole form is returned.
func sameAsMarshal(t testing.TB, e *Entry) []byte {
	t.Helper()
	var whole []byte
	for _, in := range []InStore{nil, holds(e.Seen)} {
		want, werr := json.Marshal(e.durable(e.byRef(in)))
		prefix := []byte("prefix:")
		got, err := e.AppendJSON(prefix, in)
		switch {
		case werr != nil || err != nil:
			if werr == nil || err == nil || err.Error() != werr.Error() || string(got) != string(prefix) {
				t.Fatalf("AppendJSON error %v (wrote %q), json.Marshal error %v", err, got, werr)
			}
			return nil
		case !bytes.HasPrefix(got, prefix) || !bytes.Equal(got[len(prefix):], want):
			t.Fatalf("AppendJSON wrote\n%s\njson.Marshal\n%s", got[len(prefix):], want)
		}
		if in == nil {
			whole = want
		}
	}
	return whole
}

// holds is a store holding cluster c at its version.
func holds(c engine.Cluster) InStore {
	return func(id string, version int64) bool { return id == c.ID && version == c.Version }
}

// Random entries, every field of every type they hold filled (and, in
// some, left zero), encode as json.Marshal does, without falling back to
// it.
func TestAppendJSONRandomEntries(t *testing.T) {
	g := newGen(1)
	copied := 0
	for range 3000 {
		e := g.entry()
		if g.err != nil {
			t.Fatal(g.err)
		}
		sameAsMarshal(t, &e)
		if _, ok := e.appendJSON(nil, e.byRef(holds(e.Seen))); !ok {
			t.Fatalf("left to encoding/json:\n%+v", e)
		}
		for _, h := range e.Held {
			if sameCluster(&h.Cluster, &e.Seen) {
				copied++
			}
		}
	}
	if copied < 500 {
		t.Errorf("only %d held clusters copied", copied)
	}
	// Every field the generator reached was filled, and every one that
	// can be omitted or null was left zero too: both sides compared.
	for name := range g.filled {
		if g.omissible[name] && !g.empty[name] {
			t.Errorf("%s was never zero", name)
		}
	}
	for name := range g.empty {
		if !g.filled[name] {
			t.Errorf("%s was never filled", name)
		}
	}
	// The walk reached the types inside commands and held plans.
	for _, name := range []string{"Entry.Held", "Held.History", "History.Own", "State.Held", "Held.Reviewed", "Record.Fields", "Cluster.Accounts", "Command.Explain", "LeadConvert.Opportunity", "AccountTarget.Fields", "MasterExplain.Candidates", "AccountExplain.From"} {
		if !g.filled[name] {
			t.Errorf("%s never filled", name)
		}
	}
}

// What the engine's encoders do not write is left to json.Marshal, for
// the whole entry: the same bytes, or the same error (the entry is not
// written; the batch fails as it did with json.Marshal), b untouched.
func TestAppendJSONFallsBackToEncodingJSON(t *testing.T) {
	base := func() Entry {
		g := newGen(2)
		for {
			e := g.entry()
			if e.Pending != nil && len(e.Outstanding) > 0 && len(e.Seen.Records) > 0 {
				return e
			}
		}
	}
	for _, tt := range []struct {
		name    string
		change  func(e *Entry)
		wantErr string
	}{
		{"int field value", func(e *Entry) { e.Seen.Records[0].Fields = record.Fields{"n": 3} }, ""},
		{"list field value", func(e *Entry) { e.State.Fields = record.Fields{"l": []any{"a", 1.5}} }, ""},
		{"command data of another type", func(e *Entry) { e.Outstanding[0].Data = map[string]int{"x": 1} }, ""},
		{"NaN", func(e *Entry) { e.State.Fields = record.Fields{"n": math.NaN()} }, "unsupported value: NaN"},
		{"year 10000", func(e *Entry) { e.Pending.Last = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, "year outside of range [0,9999]"},
		{"year -1", func(e *Entry) { e.Seen.Records[0].ModifiedAt = time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC) }, "year outside of range [0,9999]"},
		{"offset of 24 hours", func(e *Entry) { e.State.CreatedAt = time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 24*3600)) }, "timezone hour outside of range [0,23]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := base()
			tt.change(&e)
			if _, ok := e.appendJSON(nil, false); ok {
				t.Fatal("written by hand")
			}
			sameAsMarshal(t, &e)
			_, err := e.AppendJSON(nil, nil)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// What AppendJSON writes json.Unmarshal restores: decoded, the entry
// encodes as json.Marshal writes it, and what that decodes to encodes the
// same again. (A random entry does not come back equal to the one encoded:
// invalid UTF-8 is replaced, locations and monotonic readings go, an
// offset of under a minute comes back as UTC or Local, json.Number
// becomes float64, empty slices under omitempty nil.)
func TestAppendJSONRoundTrip(t *testing.T) {
	g := newGen(3)
	for range 500 {
		e := g.entry()
		b, err := e.AppendJSON(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		var d Entry
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%v\n%s", err, b)
		}
		b2 := sameAsMarshal(t, &d)
		var d2 Entry
		if err := json.Unmarshal(b2, &d2); err != nil {
			t.Fatal(err)
		}
		if b3 := sameAsMarshal(t, &d2); !bytes.Equal(b3, b2) {
			t.Fatalf("decoded again, encodes as\n%s\nwant\n%s", b3, b2)
		}
	}
	// A planned entry, as the pipeline keeps it, comes back as it was.
	e := plannedEntry(t)
	b, err := e.AppendJSON(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var d Entry
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d, e) {
		t.Fatalf("restored\n%+v\nwant\n%+v", d, e)
	}
	// Its held plan's cluster is the one seen: stored once, and restored
	// in the same memory, so that it is stored once again.
	if n := bytes.Count(b, []byte(`"cluster":"seen"`)); n != 1 || !sameCluster(&d.Held[0].Cluster, &d.Seen) {
		t.Fatalf("%d held clusters stored as the one seen, restored in its memory: %v", n, sameCluster(&d.Held[0].Cluster, &d.Seen))
	}
	full, err := json.Marshal(&e)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > len(full)*3/4 {
		t.Errorf("stored in %d bytes, %d with the held cluster written out", len(b), len(full))
	}
	// What earlier releases stored (every held cluster written out) is
	// restored as it was.
	var old Entry
	if err := json.Unmarshal(full, &old); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(old, e) {
		t.Fatalf("restored from the earlier form\n%+v\nwant\n%+v", old, e)
	}
	// An earlier release, reading the cluster as a cluster, fails rather
	// than replan an empty one.
	type earlierEntry struct {
		Held []struct {
			Cluster engine.Cluster `json:"cluster"`
		} `json:"held"`
	}
	if err := json.Unmarshal(b, new(earlierEntry)); err == nil {
		t.Fatal("an earlier release reads the held plan's cluster as empty")
	}
}

// An entry whose cluster seen the store holds is stored without its
// records and comes back InStore; filled with the store's records, it is
// the entry stored, its held plan of that cluster in the same memory. A
// store that holds another version, or nothing, gets the whole entry; an
// earlier release fails on the reference rather than plan no records.
func TestSeenInStore(t *testing.T) {
	e := plannedEntry(t)
	whole, err := e.AppendJSON(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []InStore{
		func(string, int64) bool { return false },
		holds(engine.Cluster{ID: e.Seen.ID, Version: e.Seen.Version - 1}),
	} {
		if b, _ := e.AppendJSON(nil, in); !bytes.Equal(b, whole) {
			t.Fatalf("a store without the version: %s", b)
		}
	}
	b, err := e.AppendJSON(nil, holds(e.Seen))
	if err != nil {
		t.Fatal(err)
	}
	if recs := mustJSON(t, e.Seen.Records); len(b) > len(whole)-len(recs)+50 || bytes.Contains(b, []byte(`"Records":[`)) {
		t.Fatalf("stored in %d bytes of %d, records included: %s", len(b), len(whole), b)
	}
	var d Entry
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if !d.InStore() || d.Seen.Records != nil || d.Seen.ID != e.Seen.ID || d.Seen.Version != e.Seen.Version || !reflect.DeepEqual(d.Seen.Accounts, e.Seen.Accounts) {
		t.Fatalf("restored %+v, InStore %v", d.Seen, d.InStore())
	}
	var fromStore []record.Record
	if err := json.Unmarshal(mustJSON(t, e.Seen.Records), &fromStore); err != nil {
		t.Fatal(err)
	}
	d.Fill(fromStore)
	var want Entry
	if err := json.Unmarshal(whole, &want); err != nil {
		t.Fatal(err)
	}
	if d.InStore() || !reflect.DeepEqual(d, want) || !sameCluster(&d.Held[0].Cluster, &d.Seen) {
		t.Fatalf("filled\n%+v\nwant\n%+v", d, want)
	}
	// Stored again as it was.
	if again, _ := d.AppendJSON(nil, holds(d.Seen)); !bytes.Equal(again, b) {
		t.Fatalf("stored again as\n%s\nwant\n%s", again, b)
	}
	type earlierEntry struct {
		Seen engine.Cluster `json:"seen"`
	}
	if err := json.Unmarshal(b, new(earlierEntry)); err == nil {
		t.Fatal("an earlier release reads the cluster seen as empty")
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAppendEntriesJSON(t *testing.T) {
	g := newGen(4)
	entries := make([]*Entry, 5)
	for i := range entries {
		e := g.entry()
		entries[i] = &e
	}
	entries[3].State.Fields = record.Fields{"n": 2}
	b, ends, err := AppendEntriesJSON([]byte("x"), []int{-1}, entries, nil)
	if err != nil || len(ends) != 1+len(entries) {
		t.Fatalf("error %v, ends %v", err, ends)
	}
	start := 1
	for i := range entries {
		want, _ := json.Marshal(entries[i].durable(false))
		if got := b[start:ends[i+1]]; !bytes.Equal(got, want) {
			t.Fatalf("entry %d: %s\nwant %s", i, got, want)
		}
		start = ends[i+1]
	}
	entries[2].Pending = &Timer{First: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	b, ends, err = AppendEntriesJSON(nil, nil, entries, nil)
	if err == nil || len(ends) != 2 || len(b) != ends[1] {
		t.Fatalf("error %v, ends %v, %d bytes", err, ends, len(b))
	}
}

// FuzzAppendJSON compares AppendJSON with json.Marshal on generated
// entries, the fuzzer choosing the generator's seed, one more string piece
// and the date and offset of some times (out of range too: both must
// fail). Run it with -fuzzminimizetime 0: minimizing the many inputs
// that find new coverage stalls the run for a minute each.
func FuzzAppendJSON(f *testing.F) {
	for i, s := range trickyStrings {
		f.Add(uint64(i), s, 0, 0)
	}
	f.Add(uint64(100), "<\xff>", 10000, 0)
	f.Add(uint64(101), "\u2028&", 2026, 24*3600)
	f.Add(uint64(102), "", -1, -3600)
	f.Fuzz(func(t *testing.T, seed uint64, s string, year, offset int) {
		g := newGen(seed)
		g.extra, g.year, g.offset = s, year, offset
		e := g.entry()
		if g.err != nil {
			t.Fatal(g.err)
		}
		sameAsMarshal(t, &e)
	})
}

// plannedEntry is a cluster of three records of twelve fields, planned
// with results awaited and the plan held, as a live owner keeps it.
func plannedEntry(t testing.TB) Entry {
	l := New(Options{AwaitResults: true})
	recs := make([]record.Record, 3)
	for i, id := range []string{"L1", "L2", "C1"} {
		r := rec(id, i, "FirstName=Ann", "Phone=+1 555 0100", "Title=VP Sales & Marketing", "Street=1 Main St", "City=Springfield",
			"State=IL", "PostalCode=62701", "Country=US", "Website=https://acme.io/?a=1&b=<2>")
		r.Fields["AnnualRevenue"] = 1.25e6
		r.RelatedCount = i
		recs[i] = r
	}
	l.Change(Change{Cluster: engine.Cluster{Tenant: "acme", ID: "k", Version: 3, Records: recs, Accounts: map[string]string{"Acme": "A1"}}, At: sec(3)})
	rs := l.Due(sec(3))
	if len(rs) != 1 {
		t.Fatalf("%d due", len(rs))
	}
	l.Hold(rs[0])
	pp := engine.PrepareFrom(cfgWith(nil), rs[0].Cluster, rs[0].History)
	res := pp.Plan(nil)
	st, changed := pp.State()
	l.Planned(rs[0], res.Commands, st, changed)
	changedEntries, _ := l.TakeDirty()
	e := *changedEntries[0]
	if len(e.Outstanding) == 0 || len(e.Held) == 0 || len(e.State.Fields) == 0 {
		t.Fatalf("entry without outstanding commands, held plans or fields: %+v", e)
	}
	return e
}

// BenchmarkEntryJSON encodes a planned entry with its plan held (the held
// cluster and history copied) and once acknowledged (no held plan).
func BenchmarkEntryJSON(b *testing.B) {
	held := plannedEntry(b)
	acked := held
	acked.Held = nil
	for _, e := range []struct {
		name string
		e    *Entry
	}{{"held", &held}, {"acked", &acked}} {
		want, _ := json.Marshal(e.e.durable(false))
		b.Run(e.name+"/encoding-json", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(want)))
			for b.Loop() {
				if _, err := json.Marshal(e.e.durable(false)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(e.name+"/AppendJSON", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(want)))
			var buf []byte
			for b.Loop() {
				var err error
				if buf, err = e.e.AppendJSON(buf[:0], nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
