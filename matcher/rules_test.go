package matcher

import (
	"encoding/hex"
	"hash/fnv"
	"strings"
	"testing"

	"github.com/leadconv/leadconv/matcher/gen"
	"github.com/leadconv/leadconv/record"
)

func lead(id string, f record.Fields) record.Record {
	return record.Record{Tenant: "t", Object: record.Lead, ID: id, Fields: f}
}

func mustCompile(t testing.TB, cfg Config, fm record.FieldMap) *Ruleset {
	t.Helper()
	rs, err := Compile(cfg, fm)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestDefaultRulesMatch(t *testing.T) {
	fm := record.FieldMap{"AccountName": "Company"}
	rs := mustCompile(t, DefaultConfig(), fm)
	base := record.Fields{"FirstName": "Robert", "LastName": "Smith", "Email": "rob.smith@gmail.com",
		"Phone": "(312) 555-0100", "Company": "Acme, Inc."}
	tests := []struct {
		name  string
		a, b  record.Record
		rule  string
		match bool
	}{
		{"email dots and tag", lead("1", base), lead("2", record.Fields{"Email": "RobSmith+crm@googlemail.com"}), "email", true},
		{"phone and last name", lead("1", base), lead("2", record.Fields{"MobilePhone": "+1 312 555 0100 ext. 12", "LastName": "Smyth"}), "phone_last_name", true},
		{"phone, other last name", lead("1", base), lead("2", record.Fields{"Phone": "3125550100", "LastName": "Jones"}), "", false},
		{"nickname at same company", lead("1", base), lead("2", record.Fields{"FirstName": "Bob", "LastName": "Smith", "Company": "ACME Corporation"}), "name_company", true},
		{"same name, other company", lead("1", base), lead("2", record.Fields{"FirstName": "Robert", "LastName": "Smith", "Company": "Globex"}), "", false},
		{"contact through field map", lead("1", base), record.Record{Object: record.Contact, ID: "c", Fields: record.Fields{"FirstName": "Rob", "LastName": "Smith", "AccountName": "acme llc"}}, "name_company", true},
		{"converted lead", lead("1", base), lead("2", record.Fields{"Email": "rob.smith@gmail.com", "IsConverted": true}), "", false},
		{"itself", lead("1", base), lead("1", base), "", false},
		{"blank email", lead("1", record.Fields{"Email": ""}), lead("2", record.Fields{"Email": " "}), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := rs.Prepare(&tt.a), rs.Prepare(&tt.b)
			for _, pair := range [][2]*Prepared{{a, b}, {b, a}} {
				rule, ok := rs.Match(pair[0], pair[1])
				if ok != tt.match || rule != tt.rule {
					t.Fatalf("Match = %q, %v; want %q, %v", rule, ok, tt.rule, tt.match)
				}
			}
			if tt.match && !shareBlock(a, b, tt.rule) {
				t.Fatalf("matching records share no %s block: %v %v", tt.rule, a.Blocks, b.Blocks)
			}
		})
	}
}

func shareBlock(a, b *Prepared, rule string) bool {
	for _, x := range a.Blocks {
		for _, y := range b.Blocks {
			if x == y && x.Rule == rule {
				return true
			}
		}
	}
	return false
}

// keyed is a one-rule config: an exact key on K (for blocking) and c.
func keyed(c Condition) Config {
	return Config{Rules: []Rule{{Name: "r", All: []Condition{{Field: "K", Normalizer: "text", Comparator: "exact"}, c}}}}
}

func TestConditions(t *testing.T) {
	f := func(kv ...any) record.Fields {
		out := record.Fields{"K": "k"}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	jw := Condition{Field: "N", Normalizer: "name", Comparator: "jaro_winkler", Threshold: 0.9}
	lev := Condition{Field: "N", Normalizer: "text", Comparator: "levenshtein", Threshold: 1}
	ts := Condition{Field: "N", Normalizer: "company", Comparator: "token_set", Threshold: 0.9}
	tsort := Condition{Fields: []string{"F", "L"}, Combine: "concat", Normalizer: "name", Comparator: "token_sort", Threshold: 0.9}
	ph := Condition{Field: "N", Normalizer: "name", Comparator: "phonetic"}
	dm := Condition{Field: "N", Normalizer: "name", Comparator: "phonetic", Algorithm: "double_metaphone"}
	num := Condition{Field: "N", Normalizer: "none", Comparator: "number_within", Threshold: 10}
	date := Condition{Field: "N", Normalizer: "none", Comparator: "date_within", Threshold: 30}
	anyPhone := Condition{Fields: []string{"Phone", "MobilePhone"}, Normalizer: "phone", Comparator: "exact"}
	dom := Condition{Field: "N", Normalizer: "domain", Comparator: "exact"}
	opt := jw
	opt.Optional = true
	optNum := num
	optNum.Optional = true
	tests := []struct {
		name  string
		cond  Condition
		a, b  record.Fields
		match bool
	}{
		{"jaro_winkler above", jw, f("N", "Jonathan"), f("N", "Jonathon"), true},
		{"jaro_winkler below", jw, f("N", "Jonathan"), f("N", "Jennifer"), false},
		{"jaro_winkler nickname", jw, f("N", "Bob"), f("N", "Robert"), true},
		{"jaro_winkler blank", jw, f("N", ""), f(), false},
		{"levenshtein within", lev, f("N", "Smith"), f("N", "Smyth"), true},
		{"levenshtein beyond", lev, f("N", "Smith"), f("N", "Smythe"), false},
		{"token_set subset", ts, f("N", "Acme Widgets Inc"), f("N", "ACME"), true},
		{"token_set other", ts, f("N", "Acme Widgets"), f("N", "Globex Widgets"), false},
		{"token_sort swapped", tsort, f("F", "Smith", "L", "John"), f("F", "John", "L", "Smith"), true},
		{"token_sort missing part", tsort, f("F", "Mary Jane", "L", "Smith"), f("F", "Mary", "L", "Smith"), false},
		{"phonetic", ph, f("N", "Smith"), f("N", "Smyth"), true},
		{"phonetic differs", ph, f("N", "Smith"), f("N", "Jones"), false},
		{"soundex misses a first-letter change", ph, f("N", "Catherine"), f("N", "Kathryn"), false},
		{"double metaphone", dm, f("N", "Catherine"), f("N", "Kathryn"), true},
		{"double metaphone alternate", dm, f("N", "Smith"), f("N", "Schmidt"), true},
		{"double metaphone differs", dm, f("N", "Smith"), f("N", "Jones"), false},
		{"number within", num, f("N", 100.0), f("N", "1,09"), true},
		{"number string", num, f("N", "100"), f("N", "110"), true},
		{"number beyond", num, f("N", 100.0), f("N", 111.0), false},
		{"number not a number", num, f("N", "many"), f("N", "many"), false},
		{"date within", date, f("N", "2026-01-01"), f("N", "2026-01-31T23:00:00Z"), true},
		{"date beyond", date, f("N", "2026-01-01"), f("N", "2026-02-01"), false},
		{"date unparsable", date, f("N", "01/01/2026"), f("N", "01/01/2026"), false},
		{"any field cross", anyPhone, f("Phone", "312 555 0100"), f("MobilePhone", "+1 (312) 555-0100"), true},
		{"any field none shared", anyPhone, f("Phone", "312 555 0100"), f("Phone", "312 555 0199", "MobilePhone", "312 555 0188"), false},
		{"domain email vs url", dom, f("N", "bob@acme.com"), f("N", "https://www.acme.com/"), true},
		{"domain free mail", dom, f("N", "bob@gmail.com"), f("N", "al@gmail.com"), false},
		{"optional missing", opt, f("N", "Jonathan"), f(), true},
		{"optional both missing", opt, f(), f(), true},
		{"optional present differs", opt, f("N", "Jonathan"), f("N", "Jennifer"), false},
		{"optional number missing", optNum, f(), f("N", 5.0), true},
		{"optional number differs", optNum, f("N", 100.0), f("N", 5.0), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := keyed(tt.cond)
			cfg.Nicknames = true
			cfg.Phone.DefaultCountry = "1"
			rs := mustCompile(t, cfg, nil)
			la, lb := lead("a", tt.a), lead("b", tt.b)
			a, b := rs.Prepare(&la), rs.Prepare(&lb)
			for _, p := range [][2]*Prepared{{a, b}, {b, a}} {
				if _, ok := rs.Match(p[0], p[1]); ok != tt.match {
					t.Fatalf("Match = %v, want %v", ok, tt.match)
				}
			}
		})
	}
}

// A condition with a phonetic or exact comparator is a blocking part: the
// records it matches share a block.
func TestBlocks(t *testing.T) {
	cfg := Config{Rules: []Rule{
		{Name: "phone", All: []Condition{{Fields: []string{"Phone", "MobilePhone"}, Normalizer: "phone", Comparator: "exact"}}},
		{Name: "name", All: []Condition{
			{Field: "LastName", Normalizer: "name", Comparator: "phonetic"},
			{Field: "City", Normalizer: "text", Comparator: "exact"},
			{Field: "FirstName", Normalizer: "name", Comparator: "jaro_winkler", Threshold: 0.9},
		}},
	}, Phone: PhoneOptions{DefaultCountry: "1"}}
	rs := mustCompile(t, cfg, nil)
	prep := func(f record.Fields) *Prepared { r := lead("x", f); return rs.Prepare(&r) }
	full := prep(record.Fields{"Phone": "312-555-0100", "MobilePhone": "312-555-0199", "LastName": "Smith", "City": "Boston", "FirstName": "Jo"})
	if len(full.Blocks) != 3 {
		t.Fatalf("blocks %v: want two phone keys and one name key", full.Blocks)
	}
	for _, b := range full.Blocks {
		if len(b.Key) != 16 || strings.Trim(b.Key, "0123456789abcdef") != "" {
			t.Errorf("block key %q is not a hex hash", b.Key)
		}
		if s := b.String(); !strings.HasPrefix(s, b.Rule+":") || strings.Contains(s, "555") || strings.Contains(strings.ToLower(s), "boston") {
			t.Errorf("block %q leaks a field value", s)
		}
	}
	// Same normalised values, same keys; the first name is no blocking part.
	same := prep(record.Fields{"MobilePhone": "+1 (312) 555-0100", "LastName": "Smyth", "City": "BOSTON", "FirstName": "Joanna"})
	if !shareBlock(full, same, "phone") || !shareBlock(full, same, "name") {
		t.Errorf("no shared blocks: %v %v", full.Blocks, same.Blocks)
	}
	if other := prep(record.Fields{"LastName": "Smith", "City": "Chicago"}); shareBlock(full, other, "name") {
		t.Error("another city shares the name block")
	}
	// A record blank in any blocking part of a rule has no key for it.
	if p := prep(record.Fields{"LastName": "Smith"}); len(p.Blocks) != 0 {
		t.Errorf("blocks %v for a record without phone and city", p.Blocks)
	}
	// The keys of one rule are capped however many values its parts have.
	many := Config{Rules: []Rule{{Name: "m", All: []Condition{
		{Fields: []string{"A", "B", "C", "D", "E"}, Normalizer: "text", Comparator: "exact"},
		{Fields: []string{"F", "G", "H", "I", "J"}, Normalizer: "text", Comparator: "exact"},
	}}}}
	rsm := mustCompile(t, many, nil)
	f := record.Fields{}
	for _, k := range strings.Split("ABCDEFGHIJ", "") {
		f[k] = "v" + k
	}
	r := lead("m", f)
	if n := len(rsm.Prepare(&r).Blocks); n != maxKeysPerRule {
		t.Errorf("%d keys for 25 combinations, want %d", n, maxKeysPerRule)
	}
}

// Leads match contacts through the contact field map; accounts are indexed
// by their normalised name and match nobody.
func TestObjects(t *testing.T) {
	fm := record.FieldMap{"AccountName": "Company", "MailingCity": "City", "OtherPhone": "Phone", "HomePhone": "Phone"}
	cfg := DefaultConfig()
	cfg.Rules = append(cfg.Rules, Rule{Name: "city_name", All: []Condition{
		{Field: "City", Normalizer: "text", Comparator: "exact"},
		{Field: "LastName", Normalizer: "name", Comparator: "exact"},
		{Field: "FirstName", Normalizer: "name", Comparator: "exact"},
	}})
	rs := mustCompile(t, cfg, fm)
	contact := func(id string, f record.Fields) record.Record {
		return record.Record{Tenant: "t", Object: record.Contact, ID: id, Fields: f}
	}
	account := record.Record{Tenant: "t", Object: record.Account, ID: "acc", Fields: record.Fields{"Name": "ACME Corporation", "Company": "x"}}
	l := lead("l", record.Fields{"FirstName": "Robert", "LastName": "Smith", "Company": "Acme, Inc.", "City": "Boston", "Phone": "312 555 0100"})
	tests := []struct {
		name string
		a, b record.Record
		rule string
	}{
		{"contact company via AccountName", l, contact("c1", record.Fields{"FirstName": "Bob", "LastName": "Smith", "AccountName": "ACME LLC"}), "name_company"},
		{"contact city via MailingCity", l, contact("c2", record.Fields{"FirstName": "Robert", "LastName": "Smith", "MailingCity": "boston"}), "city_name"},
		{"contact phone via second mapped field", l, contact("c3", record.Fields{"FirstName": "Rob", "LastName": "Smith", "OtherPhone": "", "HomePhone": "+1 312-555-0100"}), "phone_last_name"},
		// As in record.FieldMap.ToLead, an unmapped contact field keeps its name.
		{"unmapped contact field under the lead name", l, contact("c4", record.Fields{"FirstName": "Robert", "LastName": "Smith", "Company": "Acme"}), "name_company"},
		{"contact of another company", l, contact("c7", record.Fields{"FirstName": "Robert", "LastName": "Smith", "AccountName": "Globex"}), ""},
		{"contact with contact", contact("c5", record.Fields{"Email": "a@acme.com"}), contact("c6", record.Fields{"Email": "A@ACME.COM"}), "email"},
		{"account never matches", l, account, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := rs.Prepare(&tt.a), rs.Prepare(&tt.b)
			rule, _ := rs.Match(a, b)
			if rule != tt.rule {
				t.Fatalf("Match rule %q, want %q", rule, tt.rule)
			}
			if rule != "" && !shareBlock(a, b, rule) {
				t.Fatalf("no shared %s block", rule)
			}
		})
	}
	acc := rs.Prepare(&account)
	if acc.Active || len(acc.Blocks) != 0 || acc.Account != "acme" {
		t.Errorf("account prepared as %+v: want inactive, no blocks, key acme", acc)
	}
	if p := rs.Prepare(&l); p.Account != "acme" || p.Account != rs.AccountKey("Acme Corp.") {
		t.Errorf("lead account key %q", p.Account)
	}
	c := contact("c", record.Fields{"AccountName": "The Acme Company"})
	if p := rs.Prepare(&c); p.Account != "acme" {
		t.Errorf("contact account key %q, want acme", p.Account)
	}
	if k := rs.AccountKey("N/A"); k != "" {
		t.Errorf("placeholder company has account key %q", k)
	}
}

func TestConverted(t *testing.T) {
	tests := []struct {
		v      any
		active bool
	}{
		{nil, true}, {false, true}, {"false", true}, {"0", true}, {0.0, true}, {"", true}, {"no", true},
		{true, false}, {"true", false}, {" TRUE ", false}, {"yes", false}, {"1", false}, {1.0, false}, {1, false},
	}
	rs := mustCompile(t, DefaultConfig(), nil)
	custom := DefaultConfig()
	custom.ConvertedField = "Done__c"
	rsc := mustCompile(t, custom, nil)
	for _, tt := range tests {
		r := lead("x", record.Fields{"Email": "a@acme.com", "IsConverted": tt.v, "Done__c": tt.v})
		if p := rs.Prepare(&r); p.Active != tt.active || (len(p.Blocks) > 0) != tt.active {
			t.Errorf("IsConverted=%#v: active %v with %d blocks, want active %v", tt.v, p.Active, len(p.Blocks), tt.active)
		}
		if p := rsc.Prepare(&r); p.Active != tt.active {
			t.Errorf("Done__c=%#v: active %v, want %v", tt.v, p.Active, tt.active)
		}
		// Contacts have no conversion.
		c := record.Record{Object: record.Contact, ID: "c", Fields: r.Fields}
		if !rs.Prepare(&c).Active {
			t.Errorf("contact with IsConverted=%#v left matching", tt.v)
		}
	}
}

func TestComponents(t *testing.T) {
	cfg := Config{Rules: []Rule{
		{Name: "email", All: []Condition{{Field: "Email", Normalizer: "email", Comparator: "exact"}}},
		{Name: "city", All: []Condition{
			{Field: "City", Normalizer: "text", Comparator: "exact"},
			{Field: "LastName", Normalizer: "name", Comparator: "jaro_winkler", Threshold: 0.9},
		}},
	}}
	recs := []record.Record{
		lead("1", record.Fields{"Email": "a@x.com", "City": "Boston", "LastName": "Smith"}),
		lead("2", record.Fields{"Email": "A@X.com", "City": "Boston", "LastName": "Smith"}),
		lead("3", record.Fields{"Email": "b@x.com", "City": "Boston", "LastName": "Smith"}),
		lead("4", record.Fields{"Email": "b@x.com", "City": "Paris"}),
		lead("5", record.Fields{"Email": "c@x.com", "City": "Boston", "LastName": "Jones"}),
		lead("6", record.Fields{"Email": "a@x.com", "IsConverted": true}),
		{Object: record.Account, ID: "7", Fields: record.Fields{"Name": "X"}},
	}
	render := func(cs [][]record.Ref) string {
		var parts []string
		for _, c := range cs {
			var ids []string
			for _, r := range c {
				ids = append(ids, r.ID)
			}
			parts = append(parts, strings.Join(ids, ","))
		}
		return strings.Join(parts, " ")
	}
	tests := []struct {
		name     string
		maxBlock int
		bans     [][2]record.Ref
		want     string
	}{
		{"transitive", 0, nil, "1,2,3,4 5"},
		// Boston's city block has four members: at a cap of 3 it yields no
		// candidates, and only the e-mail links remain.
		{"block cap", 3, nil, "1,2 3,4 5"},
		{"block cap at size", 4, nil, "1,2,3,4 5"},
		{"ban keeps others", 0, [][2]record.Ref{{{Object: record.Lead, ID: "2"}, {Object: record.Lead, ID: "1"}}}, "1,2,3,4 5"},
		{"ban splits", 3, [][2]record.Ref{{{Object: record.Lead, ID: "1"}, {Object: record.Lead, ID: "2"}}}, "1 2 3,4 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg
			c.MaxBlockSize = tt.maxBlock
			rs := mustCompile(t, c, nil)
			if got := render(Components(rs, recs, tt.bans)); got != tt.want {
				t.Fatalf("components %q, want %q", got, tt.want)
			}
		})
	}
}

// Double Metaphone blocks on both codes, so records that share only the
// alternate pronunciation still meet.
func TestDoubleMetaphoneBlocks(t *testing.T) {
	cfg := Config{Rules: []Rule{{Name: "dm", All: []Condition{
		{Field: "LastName", Normalizer: "name", Comparator: "phonetic", Algorithm: "double_metaphone"},
	}}}}
	rs := mustCompile(t, cfg, nil)
	a, b := lead("a", record.Fields{"LastName": "Smith"}), lead("b", record.Fields{"LastName": "Schmidt"})
	pa, pb := rs.Prepare(&a), rs.Prepare(&b)
	if len(pa.Blocks) != 2 || len(pb.Blocks) != 2 {
		t.Fatalf("blocks %v %v: want primary and alternate", pa.Blocks, pb.Blocks)
	}
	if !shareBlock(pa, pb, "dm") {
		t.Fatal("Smith (SM0/XMT) and Schmidt (XMT/SMT) share no block")
	}
	c := lead("c", record.Fields{"LastName": "Thomas"})
	if len(rs.Prepare(&c).Blocks) != 1 {
		t.Fatalf("Thomas has one pronunciation: %v", rs.Prepare(&c).Blocks)
	}
}

// BenchmarkPrepare is the CPU cost of normalising one generated lead or
// contact under the default rules (blocking keys and compared values).
//
//	go test -run '^$' -bench 'Prepare|MatchCandidates' -benchmem ./matcher/
//
// cold: every phone number is new (libphonenumber parses it; the region's
// memo is emptied first); warm: every number was seen before (an update of
// a record, another spelling, a colleague's switchboard), so the memo
// answers.
func BenchmarkPrepare(b *testing.B) {
	recs := gen.New(gen.Options{Seed: 1, Records: 10000, ContactShare: 0.2}).Records()
	b.Run("cold", func(b *testing.B) {
		var rs *Ruleset
		b.ReportAllocs()
		for i := range b.N {
			if i%len(recs) == 0 {
				b.StopTimer()
				rs = mustCompile(b, DefaultConfig(), gen.ContactFields())
				pm := memoFor("US")
				pm.mu.Lock()
				clear(pm.m)
				pm.mu.Unlock()
				b.StartTimer()
			}
			rs.Prepare(&recs[i%len(recs)])
		}
	})
	b.Run("warm", func(b *testing.B) {
		rs := mustCompile(b, DefaultConfig(), gen.ContactFields())
		for i := range recs {
			rs.Prepare(&recs[i])
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			rs.Prepare(&recs[i%len(recs)])
		}
	})
}

// BenchmarkMatchCandidates is the CPU cost of one Match between records that
// share a block (the candidates the store compares).
func BenchmarkMatchCandidates(b *testing.B) {
	rs := mustCompile(b, DefaultConfig(), gen.ContactFields())
	recs := gen.New(gen.Options{Seed: 1, Records: 10000, ContactShare: 0.2}).Records()
	byBlock := map[Block][]*Prepared{}
	for i := range recs {
		p := rs.Prepare(&recs[i])
		for _, bl := range p.Blocks {
			byBlock[bl] = append(byBlock[bl], p)
		}
	}
	var pairs [][2]*Prepared
	for _, ps := range byBlock {
		for i := 1; i < len(ps); i++ {
			pairs = append(pairs, [2]*Prepared{ps[0], ps[i]})
		}
	}
	if len(pairs) == 0 {
		b.Fatal("no candidate pairs")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		p := pairs[i%len(pairs)]
		rs.Match(p[0], p[1])
	}
}

// Block keys are FNV-1a 64 of the values, each followed by 0x1f, in hex:
// the inlined hash must keep the keys stored in Redis unchanged.
func TestBlockKeyHash(t *testing.T) {
	cfg := Config{Rules: []Rule{{Name: "r", All: []Condition{
		{Field: "A", Normalizer: "text", Comparator: "exact"},
		{Field: "B", Normalizer: "text", Comparator: "exact"},
	}}}}
	rs := mustCompile(t, cfg, nil)
	r := lead("x", record.Fields{"A": "José", "B": "acme corp"})
	p := rs.Prepare(&r)
	h := fnv.New64a()
	for _, v := range []string{"jose", "acme corp"} {
		h.Write([]byte(v))
		h.Write([]byte{0x1f})
	}
	if want := hex.EncodeToString(h.Sum(nil)); len(p.Blocks) != 1 || p.Blocks[0].Key != want {
		t.Fatalf("blocks %v, want key %s", p.Blocks, want)
	}
}
