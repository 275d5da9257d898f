package gen

import (
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/record"
)

func TestDeterministic(t *testing.T) {
	o := Options{Seed: 7, Records: 500, ContactShare: 0.2, Updates: 0.2, Deletes: 0.1}
	a, b := New(o), New(o)
	if !reflect.DeepEqual(a.Events(), b.Events()) || !reflect.DeepEqual(a.Truth(), b.Truth()) {
		t.Fatal("same options gave different data")
	}
	o.Seed = 8
	if reflect.DeepEqual(a.Events(), New(o).Events()) {
		t.Fatal("another seed gave the same data")
	}
}

func TestShape(t *testing.T) {
	const n = 4000
	s := New(Options{Seed: 3, Tenant: "t1", Records: n, DupRate: 0.3, ContactShare: 0.25})
	evs := s.Events()
	if len(evs) != n {
		t.Fatalf("%d events, want %d creations", len(evs), n)
	}
	truth := s.Truth()
	entities := map[string]int{}
	contacts, fields := 0, 0
	for _, ev := range evs {
		if ev.Op != record.OpUpsert || ev.Tenant != "t1" || ev.CreatedAt != ev.ModifiedAt {
			t.Fatalf("creation %s: op %s tenant %s created %v modified %v", ev.Ref(), ev.Op, ev.Tenant, ev.CreatedAt, ev.ModifiedAt)
		}
		entities[truth[ev.Ref()]]++
		fields += len(ev.Fields)
		switch ev.Object {
		case record.Contact:
			contacts++
			if _, ok := ev.Fields["Company"]; ok {
				t.Fatalf("contact %s has the lead field Company: %v", ev.ID, ev.Fields)
			}
		case record.Lead:
			if _, ok := ev.Fields["AccountName"]; ok {
				t.Fatalf("lead %s has the contact field AccountName", ev.ID)
			}
		}
		if ev.Fields.Blank("LastName") {
			t.Fatalf("%s has no last name", ev.ID)
		}
	}
	if dup := 1 - float64(len(entities))/n; dup < 0.27 || dup > 0.33 {
		t.Errorf("duplicate share %.3f, want about 0.3", dup)
	}
	if c := float64(contacts) / n; c < 0.22 || c > 0.28 {
		t.Errorf("contact share %.3f, want about 0.25", c)
	}
	if avg := float64(fields) / n; avg < 13 || avg > 18 {
		t.Errorf("%.1f fields per record, want about 15", avg)
	}
}

// Distinct people share no personal e-mail address (the default rules treat
// one as proof of identity), only team addresses such as info@, which the
// e-mail normaliser blanks.
func TestEmailsUniquePerEntity(t *testing.T) {
	s := New(Options{Seed: 4, Records: 5000, Updates: 0.2})
	owner := map[string]string{}
	roles := map[string]map[string]bool{}
	for _, r := range s.Records() {
		e := strings.ToLower(strings.TrimSpace(r.Fields.Str("Email")))
		if e == "" {
			continue
		}
		if matcher.NormalizeEmail(e) == "" {
			if roles[e] == nil {
				roles[e] = map[string]bool{}
			}
			roles[e][s.Truth()[r.Ref()]] = true
			continue
		}
		ent := s.Truth()[r.Ref()]
		if o, ok := owner[e]; ok && o != ent {
			t.Fatalf("entities %s and %s share %s", o, ent, e)
		}
		owner[e] = ent
	}
	shared := 0
	for _, ents := range roles {
		if len(ents) > 1 {
			shared++
		}
	}
	if len(roles) < 20 || shared < 5 {
		t.Errorf("%d team addresses, %d shared by several people: want some of both", len(roles), shared)
	}
}

// Duplicates carry the noise the matcher must see through, each kind in a
// measurable share, and the variants are variants: the same value under the
// matcher's normalisers, or one or two edits away.
func TestDuplicateVariants(t *testing.T) {
	s := New(Options{Seed: 5, Records: 10000})
	opts := matcher.DefaultConfig()
	first := map[string]record.Fields{}
	count := map[string]int{}
	dups := 0
	for _, r := range s.Records() {
		ent := s.Truth()[r.Ref()]
		o, ok := first[ent]
		if !ok {
			first[ent] = r.Fields
			continue
		}
		dups++
		d := r.Fields
		fo, fd := o.Str("FirstName"), d.Str("FirstName")
		switch {
		case fd == "" || fd == fo:
		case matcher.NormalizeName(fd) == matcher.NormalizeName(fo):
			count["first name case or accents"]++
		case nicknameOf(fd, fo):
			count["nickname"]++
		// One keyboard slip: a transposition is two edits.
		case matcher.LevenshteinWithin(matcher.NormalizeName(fd), matcher.NormalizeName(fo), 2):
			count["first name typo"]++
		case len([]rune(fd)) == 2 && strings.HasSuffix(fd, "."):
			count["initial"]++
		default:
			t.Errorf("%s: first name %q is no variant of %q", r.ID, fd, fo)
		}
		lo, ld := o.Str("LastName"), d.Str("LastName")
		switch {
		case ld == lo:
		case matcher.NormalizeName(ld) == matcher.NormalizeName(lo):
			count["last name case or accents"]++
		case matcher.LevenshteinWithin(matcher.NormalizeName(ld), matcher.NormalizeName(lo), 2):
			count["last name typo"]++
		default:
			t.Errorf("%s: last name %q is no variant of %q", r.ID, ld, lo)
		}
		eo, ed := o.Str("Email"), d.Str("Email")
		switch {
		case ed == "":
			count["email missing"]++
		case ed == eo:
		case matcher.NormalizeEmail(ed) == matcher.NormalizeEmail(eo):
			count["email spelling"]++
		default:
			count["other email"]++
		}
		if po, pd := o.Str("Phone"), d.Str("Phone"); pd != "" && pd != po {
			if matcher.NormalizePhone(pd, opts.Phone.DefaultRegion) != matcher.NormalizePhone(po, opts.Phone.DefaultRegion) {
				t.Errorf("%s: phone %q is not %q", r.ID, pd, po)
			}
			count["phone format"]++
		}
		co, cd := o.Str("Company"), d.Str("Company")
		switch {
		case cd == "":
			count["company missing"]++
		case cd == co:
		case matcher.NormalizeCompany(cd) == matcher.NormalizeCompany(co):
			count["company suffix or case"]++
		case matcher.NormalizeCompany(cd) == "" || matcher.NormalizeCompany(co) == "":
			count["company placeholder"]++
		case matcher.LevenshteinWithin(matcher.NormalizeText(cd), matcher.NormalizeText(co), 2),
			matcher.LevenshteinWithin(matcher.NormalizeCompany(cd), matcher.NormalizeCompany(co), 2),
			// A slip in a suffix word ("Hodlings") keeps it from being dropped.
			matcher.TokenSet(matcher.NormalizeCompany(cd), matcher.NormalizeCompany(co)) == 1,
			// …nor a slip that deletes the space before it ("PeakGroup").
			squeezedPrefix(matcher.NormalizeCompany(cd), matcher.NormalizeCompany(co)):
			count["company typo"]++
		default:
			t.Errorf("%s: company %q is no variant of %q", r.ID, cd, co)
		}
		for k := range o {
			if _, ok := d[k]; !ok {
				count["missing fields"]++
				break
			}
		}
	}
	// Floors well below the generator's rates, far above zero.
	floors := map[string]float64{
		"nickname": 0.03, "first name typo": 0.01, "first name case or accents": 0.01, "initial": 0.002,
		"last name typo": 0.02, "last name case or accents": 0.05,
		"email spelling": 0.05, "other email": 0.03, "email missing": 0.05,
		"phone format": 0.3, "company suffix or case": 0.1, "company missing": 0.03, "company typo": 0.01,
		"company placeholder": 0.005, "missing fields": 0.5,
	}
	for kind, floor := range floors {
		if share := float64(count[kind]) / float64(dups); share < floor {
			t.Errorf("%s in %.4f of %d duplicates, want ≥ %.4f", kind, share, dups, floor)
		}
	}
	t.Logf("%d duplicates: %v", dups, count)
}

func squeezedPrefix(a, b string) bool {
	a, b = strings.ReplaceAll(a, " ", ""), strings.ReplaceAll(b, " ", "")
	return strings.HasPrefix(a, b) || strings.HasPrefix(b, a)
}

func nicknameOf(nick, full string) bool {
	for _, n := range nicknames[full] {
		if strings.EqualFold(n, nick) {
			return true
		}
	}
	return false
}

// Distinct people share what real people share, so the rules meet hard
// negatives: namesakes at other companies, colleagues behind one
// switchboard, companies of one name.
func TestHardNegatives(t *testing.T) {
	s := New(Options{Seed: 9, Records: 10000})
	type key struct{ a, b string }
	byName := map[key]map[string]bool{}
	byPhone := map[string]map[string]bool{}
	byCompany := map[string]map[string]bool{}
	add := func(m map[string]map[string]bool, k, ent string) {
		if k == "" {
			return
		}
		if m[k] == nil {
			m[k] = map[string]bool{}
		}
		m[k][ent] = true
	}
	for _, r := range s.Records() {
		ent := s.Truth()[r.Ref()]
		n := key{matcher.NormalizeName(r.Fields.Str("FirstName")), matcher.NormalizeName(r.Fields.Str("LastName"))}
		if byName[n] == nil {
			byName[n] = map[string]bool{}
		}
		byName[n][ent] = true
		add(byPhone, matcher.NormalizePhone(r.Fields.Str("Phone"), "US"), ent)
		add(byCompany, matcher.NormalizeCompany(r.Fields.Str("Company")), ent)
	}
	shared := func(m map[string]map[string]bool) int {
		n := 0
		for _, ents := range m {
			if len(ents) > 1 {
				n++
			}
		}
		return n
	}
	namesakes := 0
	for _, ents := range byName {
		if len(ents) > 1 {
			namesakes++
		}
	}
	if namesakes < 100 {
		t.Errorf("%d full names shared by different people, want many", namesakes)
	}
	if n := shared(byPhone); n < 200 {
		t.Errorf("%d phone numbers shared by different people (switchboards), want many", n)
	}
	if n := shared(byCompany); n < 1000 {
		t.Errorf("%d companies with several people, want most", n)
	}
}

// The duplicate groups have the sizes of real CRM data: mostly pairs, some
// larger, and the share of duplicate records follows DupRate.
func TestGroupSizes(t *testing.T) {
	for _, rate := range []float64{0.1, 0.3, 0.5} {
		s := New(Options{Seed: 11, Records: 8000, DupRate: rate})
		size := map[string]int{}
		for _, e := range s.Truth() {
			size[e]++
		}
		hist := map[int]int{}
		for _, n := range size {
			hist[min(n, 4)]++
		}
		if got := 1 - float64(len(size))/8000; got < rate-0.03 || got > rate+0.03 {
			t.Errorf("rate %.1f: duplicate share %.3f", rate, got)
		}
		if hist[2] == 0 || hist[3] == 0 || hist[2] < hist[3] {
			t.Errorf("rate %.1f: group sizes %v: want mostly pairs and some triples", rate, hist)
		}
	}
	if s := New(Options{Seed: 1, Records: 500, DupRate: -1}); len(s.Truth()) != 500 || countEntities(s) != 500 {
		t.Error("DupRate < 0 still made duplicates")
	}
}

func countEntities(s *Set) int {
	m := map[string]bool{}
	for _, e := range s.Truth() {
		m[e] = true
	}
	return len(m)
}

// Every generated string is valid UTF-8 (accented names, initials, typos
// work on runes).
func TestValidUTF8(t *testing.T) {
	s := New(Options{Seed: 12, Records: 20000, ContactShare: 0.3, Updates: 0.2})
	for _, ev := range s.Events() {
		for k, v := range ev.Fields {
			if str, ok := v.(string); ok && !utf8.ValidString(str) {
				t.Fatalf("%s %s = %q: invalid UTF-8", ev.Ref(), k, str)
			}
		}
	}
}

// Replaying the events (upsert replaces, patch merges, delete removes) gives
// Records(); updates and deletes follow their record's creation.
func TestEventsReplayToRecords(t *testing.T) {
	for _, upserts := range []bool{false, true} {
		s := New(Options{Seed: 6, Records: 3000, ContactShare: 0.2, Updates: 0.3, Deletes: 0.1, UpdateAsUpsert: upserts})
		state := map[record.Ref]*record.Record{}
		ops := map[record.Op]int{}
		var last record.Event
		for i, ev := range s.Events() {
			if i > 0 && !ev.ModifiedAt.After(last.ModifiedAt) {
				t.Fatalf("event %d (%s %s) not after the previous one", i, ev.Op, ev.Ref())
			}
			last = ev
			ops[ev.Op]++
			cur, exists := state[ev.Ref()]
			switch {
			case ev.Op == record.OpUpsert && !exists:
				r := ev.Record
				r.Fields = cloneFields(ev.Fields)
				state[ev.Ref()] = &r
			case !exists:
				t.Fatalf("event %d: %s of %s before its creation", i, ev.Op, ev.Ref())
			case ev.Op == record.OpDelete:
				delete(state, ev.Ref())
			case ev.Op == record.OpUpsert:
				cur.Fields = cloneFields(ev.Fields)
				cur.ModifiedAt = ev.ModifiedAt
			case ev.Op == record.OpPatch:
				for k, v := range ev.Fields {
					if v == nil {
						delete(cur.Fields, k)
					} else {
						cur.Fields[k] = v
					}
				}
				cur.ModifiedAt = ev.ModifiedAt
			}
			if exists && ev.CreatedAt != cur.CreatedAt && ev.Op != record.OpDelete {
				t.Fatalf("event %d: created_at %v, record created %v", i, ev.CreatedAt, cur.CreatedAt)
			}
		}
		if upserts && ops[record.OpPatch] > 0 || !upserts && ops[record.OpPatch] < 700 || ops[record.OpDelete] < 200 {
			t.Fatalf("ops %v: want updates and deletes", ops)
		}
		recs := s.Records()
		if len(recs) != len(state) || len(recs) != len(s.Truth()) {
			t.Fatalf("%d records, %d after replay, %d in truth", len(recs), len(state), len(s.Truth()))
		}
		for _, r := range recs {
			if got := state[r.Ref()]; !reflect.DeepEqual(*got, r) {
				t.Fatalf("%s: replay gives\n%+v\nRecords() has\n%+v", r.Ref(), *got, r)
			}
		}
	}
}

func TestVaryFirstInitialOfAccentedName(t *testing.T) {
	g := &generator{r: rand.New(rand.NewPCG(1, 2))}
	initials := 0
	for range 2000 {
		v := g.varyFirst("Łukasz")
		if !utf8.ValidString(v) {
			t.Fatalf("varyFirst(Łukasz) = %q", v)
		}
		if v == "Ł." {
			initials++
		}
	}
	if initials == 0 {
		t.Fatal("no initial among 2000 variants")
	}
}

// An update never reaches back into the creation event: the final state
// copies the fields before it changes them.
func TestUpdatesLeaveCreationsAlone(t *testing.T) {
	s := New(Options{Seed: 13, Records: 3000, Updates: 0.5})
	created := map[record.Ref]record.Fields{}
	patches, stale := 0, 0
	for _, ev := range s.Events() {
		if _, ok := created[ev.Ref()]; !ok {
			created[ev.Ref()] = ev.Fields
			continue
		}
		if ev.Op != record.OpPatch {
			continue
		}
		patches++
		same := true
		for k, v := range ev.Fields {
			if !reflect.DeepEqual(created[ev.Ref()][k], v) {
				same = false
			}
		}
		if same {
			stale++
		}
	}
	// A patch may by chance set a field to the value it had (a new title
	// that equals the old one), not most of them.
	if patches < 1000 || stale > patches/5 {
		t.Fatalf("%d of %d patches already in their creation event", stale, patches)
	}
}

// TestCRMShape: with a CRM, every field is one of that CRM's lead or
// contact fields (or its system timestamps), contacts lack what the CRM's
// contacts lack, and the people are the same as without the CRM.
func TestCRMShape(t *testing.T) {
	base := New(Options{Seed: 5, Records: 600, ContactShare: 0.3, Updates: 0.3})
	for _, crm := range []string{"salesforce", "zoho", "hubspot", "dynamics"} {
		m, _ := engine.Model(crm)
		set := New(Options{Seed: 5, Records: 600, ContactShare: 0.3, Updates: 0.3, CRM: crm})
		if !maps.Equal(set.Truth(), base.Truth()) {
			t.Fatalf("%s: other people than without a CRM", crm)
		}
		check := func(what string, obj record.Object, f record.Fields) {
			allowed := m.Lead
			if obj == record.Contact {
				allowed = m.Contact
			}
			for k := range f {
				if k != m.Created && k != m.Modified && !slices.Contains(allowed, k) {
					t.Errorf("%s %s: %s field %q is not a %s %s field", crm, what, obj, k, crm, obj)
				}
			}
			if _, ok := f[m.Modified]; !ok {
				t.Errorf("%s %s: no %s", crm, what, m.Modified)
			}
		}
		contacts := 0
		for _, ev := range set.Events() {
			if ev.Op != record.OpDelete {
				check("event", ev.Object, ev.Fields)
			}
		}
		for _, r := range set.Records() {
			check("record", r.Object, r.Fields)
			if _, ok := r.Fields[m.Created]; !ok {
				t.Errorf("%s: record %s has no %s", crm, r.ID, m.Created)
			}
			if r.Object == record.Contact {
				contacts++
				if _, ok := r.Fields[m.AccountField]; ok && !slices.Contains(m.Contact, m.AccountField) {
					t.Errorf("%s: contact %s has the lead's %s", crm, r.ID, m.AccountField)
				}
			}
		}
		if contacts == 0 {
			t.Errorf("%s: no contacts", crm)
		}
	}
	sf := New(Options{Seed: 5, Records: 50, CRM: "salesforce"}).Records()[0].Fields
	if sf.Str("LastName") == "" || sf.Str("CreatedDate") == "" {
		t.Errorf("salesforce lead %v: want LastName, CreatedDate", sf)
	}
}
