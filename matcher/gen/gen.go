// Package gen generates realistic CRM lead and contact data with known
// duplicates, deterministically from a seed: for tests, benchmarks, demos
// and the accuracy check of the default match rules.
//
// Each entity is a person at a company. Its first record is clean; each
// duplicate is a copy as another form, import or sales rep would enter it:
// nicknames and typos in names, other spellings of the same e-mail and phone
// number, other legal-form suffixes of the company, missing fields. People
// also share what real people share: common names at other companies, a
// company's switchboard number, placeholder companies ("N/A").
package gen

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/record"
)

// Options configures a generated data set. Zero values take the defaults
// documented per field.
type Options struct {
	// Seed makes the output reproducible: the same options give the same
	// events.
	Seed uint64
	// Tenant of every record (default "acme").
	Tenant string
	// Records is the number of records created (default 1000).
	Records int
	// DupRate is the share of records that duplicate an earlier entity
	// (default 0.3; negative means none).
	DupRate float64
	// ContactShare is the share of records created as contacts (default 0,
	// all leads).
	ContactShare float64
	// Updates is the share of records that get a later patch (a new title or
	// status, sometimes a new e-mail or a cleared phone, which can split a
	// cluster). Default 0.
	Updates float64
	// UpdateAsUpsert sends updates as upserts of the full state instead of
	// patches of the changed fields.
	UpdateAsUpsert bool
	// Deletes is the share of records deleted at a later point. Default 0.
	Deletes float64
	// Bursts is the share of duplicates that duplicate the entity created
	// just before them, one second apart (a form submitted twice, a list
	// imported in one go) instead of an earlier one. Default 0.
	Bursts float64
	// Start is the created_at of the first record (default 2026-01-05
	// 09:00 UTC); each event is one second after the previous.
	Start time.Time
	// ContactFields maps contact field names to lead names (default
	// ContactFields()).
	ContactFields record.FieldMap
	// CRM, when set, writes the records as that CRM's API shows them (a
	// crm profile with a field model: salesforce, zoho, hubspot, dynamics):
	// its lead and contact field names (engine.Model), fields its objects
	// lack left out (a Salesforce contact has no Company), and its system
	// created and modified timestamps as fields (CreatedDate,
	// LastModifiedDate). ContactFields is then ignored: contacts use the
	// CRM's names.
	CRM string
}

// ContactFields is the contact-to-lead field map the generated contacts use.
func ContactFields() record.FieldMap {
	return record.FieldMap{
		"AccountName":       "Company",
		"MailingStreet":     "Street",
		"MailingCity":       "City",
		"MailingState":      "State",
		"MailingPostalCode": "Zip",
		"MailingCountry":    "Country",
	}
}

// Set is a generated data set.
type Set struct {
	events []record.Event
	truth  map[record.Ref]string
	final  map[record.Ref]*record.Record
	order  []record.Ref
}

// Events returns the events in stream order: creations as upserts, then
// interleaved updates and deletes of records created earlier. The slice is
// shared; callers must not modify it.
func (s *Set) Events() []record.Event { return s.events }

// Truth returns the entity of every record that exists at the end of the
// stream (deleted records are absent).
func (s *Set) Truth() map[record.Ref]string { return s.truth }

// Records returns the final state of every record that exists at the end of
// the stream, in creation order. Their fields may be shared with Events():
// callers must not modify them.
func (s *Set) Records() []record.Record {
	out := make([]record.Record, 0, len(s.final))
	for _, ref := range s.order {
		if r, ok := s.final[ref]; ok {
			out = append(out, *r)
		}
	}
	return out
}

type company struct {
	name   string // without legal form
	legal  int    // index into legalForms, -1 none
	domain string
	phone  string // switchboard: area + 7 digits
	place  place
	street string
	ind    string
	role   string // local part of the team address
	size   int
	rev    int
}

type person struct {
	entity    string
	first     string
	last      string
	co        *company
	title     string
	email     string
	emailFree bool
	direct    string // 10 digits or "" (uses the switchboard)
	ext       string
	mobile    string
	source    string
}

type generator struct {
	opts      Options
	r         *rand.Rand
	companies []*company
	coNames   map[string]bool
	emails    map[string]bool
	phones    map[string]bool
	people    []*person
}

// New generates a data set.
func New(opts Options) *Set {
	if opts.Tenant == "" {
		opts.Tenant = "acme"
	}
	if opts.Records <= 0 {
		opts.Records = 1000
	}
	switch {
	case opts.DupRate == 0:
		opts.DupRate = 0.3
	case opts.DupRate < 0:
		opts.DupRate = 0
	}
	if opts.Start.IsZero() {
		opts.Start = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	}
	if opts.ContactFields == nil {
		opts.ContactFields = ContactFields()
	}
	g := &generator{
		opts:    opts,
		r:       rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		coNames: map[string]bool{},
		emails:  map[string]bool{},
		phones:  map[string]bool{},
	}
	return g.run()
}

func (g *generator) run() *Set {
	o := g.opts
	s := &Set{truth: make(map[record.Ref]string, o.Records), final: make(map[record.Ref]*record.Record, o.Records),
		order: make([]record.Ref, 0, o.Records)}
	// About four people per company: enough colleagues to share
	// switchboards and domains.
	nCompanies := max(5, o.Records/4)
	for range nCompanies {
		g.companies = append(g.companies, g.company())
	}
	type timed struct {
		at     int64 // ordering key: creation slot * 1000 + offset
		create bool
		ev     record.Event
	}
	stream := make([]timed, 0, o.Records+int(float64(o.Records)*(o.Updates+o.Deletes)*1.1)+16)
	for i := range o.Records {
		var p *person
		dup := len(g.people) > 0 && g.r.Float64() < o.DupRate
		if dup {
			// Recent entities are duplicated more often (a web form
			// submitted twice, a trade show list imported after a call).
			// The tail wraps around rather than piling onto the first
			// entity, which would otherwise collect 2% of all duplicates.
			back := int(g.r.ExpFloat64()*float64(len(g.people))/4) % len(g.people)
			if o.Bursts > 0 && g.r.Float64() < o.Bursts {
				back = 0 // right after the previous record: a burst
			}
			p = g.people[len(g.people)-1-back]
		} else {
			p = g.person()
			g.people = append(g.people, p)
		}
		obj := record.Lead
		if g.r.Float64() < o.ContactShare {
			obj = record.Contact
		}
		rec := record.Record{Tenant: o.Tenant, Object: obj, ID: fmt.Sprintf("%s-%07d", obj, i+1),
			RelatedCount: g.related(), Fields: g.toObject(obj, g.fields(p, dup))}
		stream = append(stream, timed{int64(i) * 1000, true, record.Event{Record: rec, Op: record.OpUpsert}})
		ref := rec.Ref()
		s.order = append(s.order, ref)
		s.truth[ref] = p.entity
		// The final state shares the creation's fields until an update
		// copies them: at a million records, a second copy is gigabytes.
		fin := rec
		s.final[ref] = &fin
	}
	// Updates and deletes happen after their record's creation, at a random
	// later point of the stream; a delete comes after any update.
	n := int64(o.Records)
	later := func(from int64) int64 { return from + 1 + g.r.Int64N(n*1000-from+1000) }
	for i, ref := range s.order {
		last := int64(i) * 1000
		if g.r.Float64() < o.Updates {
			last = later(last)
			fin := s.final[ref]
			fin.Fields = cloneFields(fin.Fields)
			stream = append(stream, timed{last, false, g.update(fin)})
		}
		if g.r.Float64() < o.Deletes {
			del := record.Record{Tenant: o.Tenant, Object: ref.Object, ID: ref.ID}
			stream = append(stream, timed{later(last), false, record.Event{Record: del, Op: record.OpDelete}})
			delete(s.final, ref)
			delete(s.truth, ref)
		}
	}
	slices.SortStableFunc(stream, func(a, b timed) int { return cmp.Compare(a.at, b.at) })
	var crm *crmShape
	if o.CRM != "" {
		crm = newCRMShape(o.CRM, o.ContactFields)
	}
	// Event i happens at Start + i seconds.
	created := make(map[record.Ref]time.Time, o.Records)
	s.events = make([]record.Event, len(stream))
	for i, t := range stream {
		ev := t.ev
		at := o.Start.Add(time.Duration(i) * time.Second)
		ref := ev.Ref()
		if t.create {
			created[ref] = at
		}
		ev.CreatedAt, ev.ModifiedAt = created[ref], at
		if r, ok := s.final[ref]; ok {
			r.CreatedAt, r.ModifiedAt = ev.CreatedAt, at
		}
		if crm != nil && ev.Op != record.OpDelete {
			ev.Fields = crm.fields(ev.Object, ev.Fields, ev.CreatedAt, at, ev.Op != record.OpPatch)
		}
		s.events[i] = ev
	}
	if crm != nil {
		for _, r := range s.final {
			r.Fields = crm.fields(r.Object, r.Fields, r.CreatedAt, r.ModifiedAt, true)
		}
	}
	return s
}

func cloneFields(f record.Fields) record.Fields {
	out := make(record.Fields, len(f))
	for k, v := range f {
		out[k] = v
	}
	return out
}

func (g *generator) pick(list []string) string { return list[g.r.IntN(len(list))] }

func (g *generator) chance(p float64) bool { return g.r.Float64() < p }

func (g *generator) related() int {
	if g.chance(0.6) {
		return 0
	}
	return 1 + g.r.IntN(8)
}

func (g *generator) company() *company {
	var name string
	for try := 0; ; try++ {
		if g.chance(0.3) {
			// Founder-named firms: "Garcia Consulting".
			name = asciiFold(g.pick(lastNames)) + " " + g.pick(companyWords)
		} else {
			name = g.pick(companyStems)
			if g.chance(0.6) {
				name += " " + g.pick(companyWords)
			}
		}
		if try > 20 {
			name += " " + g.pick2().city
		}
		if try > 40 {
			name += " " + strconv.Itoa(try)
		}
		if !g.coNames[strings.ToLower(name)] {
			break
		}
	}
	g.coNames[strings.ToLower(name)] = true
	c := &company{name: name, legal: -1, place: g.pick2(), ind: g.pick(industries), role: g.pick(roleLocals)}
	if g.chance(0.75) {
		c.legal = g.r.IntN(len(legalForms))
	}
	dom := strings.ReplaceAll(asciiFold(strings.ToLower(name)), " ", "")
	dom = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, dom)
	c.domain = dom + g.pick([]string{".com", ".com", ".com", ".io", ".net", ".co", ".org"})
	c.phone = g.phone(c.place.area)
	c.street = strconv.Itoa(1+g.r.IntN(9999)) + " " + g.pick(streetNames)
	c.size = []int{5, 10, 25, 50, 120, 250, 800, 2000, 12000}[g.r.IntN(9)]
	c.rev = c.size * (50 + g.r.IntN(300)) * 1000
	return c
}

func (g *generator) pick2() place { return places[g.r.IntN(len(places))] }

// phone returns a new unique ten-digit number in area.
func (g *generator) phone(area string) string {
	for {
		p := area + strconv.Itoa(200+g.r.IntN(800)) + fmt.Sprintf("%04d", g.r.IntN(10000))
		if !g.phones[p] {
			g.phones[p] = true
			return p
		}
	}
}

func (g *generator) person() *person {
	p := &person{
		entity: fmt.Sprintf("E%07d", len(g.people)+1),
		first:  g.zipf(firstNames),
		last:   g.zipf(lastNames),
		co:     g.companies[g.r.IntN(len(g.companies))],
		title:  g.pick(titles),
		source: g.pick(leadSources),
	}
	if g.chance(0.55) {
		p.direct = g.phone(p.co.place.area)
	} else {
		p.ext = strconv.Itoa(100 + g.r.IntN(900))
	}
	if g.chance(0.5) {
		p.mobile = g.phone(g.pick2().area)
	}
	p.emailFree = g.chance(0.25)
	p.email = g.email(p)
	return p
}

// zipf picks from list with a skew towards its head, as real name
// frequencies are.
func (g *generator) zipf(list []string) string {
	i := int(float64(len(list)) * g.r.Float64() * g.r.Float64())
	return list[min(i, len(list)-1)]
}

func (g *generator) email(p *person) string {
	f := emailPart(p.first)
	l := emailPart(p.last)
	domain := p.co.domain
	var local string
	if p.emailFree {
		domain = g.pick(freeMail)
		switch g.r.IntN(3) {
		case 0:
			local = f + "." + l
		case 1:
			local = f + l + strconv.Itoa(g.r.IntN(100))
		default:
			local = f[:1] + l + strconv.Itoa(1950+g.r.IntN(55))
		}
	} else {
		if g.chance(0.08) {
			// The team address (info@, sales@) that colleagues share.
			return p.co.role + "@" + domain
		}
		switch g.r.IntN(4) {
		case 0, 1:
			local = f + "." + l
		case 2:
			local = f[:1] + l
		default:
			local = f + l[:1]
		}
	}
	addr := local + "@" + domain
	for n := 2; g.emails[addr]; n++ {
		addr = local + strconv.Itoa(n) + "@" + domain
	}
	g.emails[addr] = true
	return addr
}

// emailPart is a name as it appears in an e-mail address.
func emailPart(s string) string {
	s = strings.ToLower(asciiFold(s))
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' {
			return r
		}
		return -1
	}, s)
}

// asciiFold strips accents ("José" -> "Jose").
func asciiFold(s string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		switch {
		case unicode.Is(unicode.Mn, r):
		case r == 'ł':
			b.WriteByte('l')
		case r == 'Ł':
			b.WriteByte('L')
		case r == 'ø':
			b.WriteByte('o')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// fields renders p as lead fields; dup makes it a noisy second entry.
func (g *generator) fields(p *person, dup bool) record.Fields {
	c := p.co
	f := make(record.Fields, 24)
	first, last := p.first, p.last
	company := c.name
	legal := c.legal
	email := p.email
	if dup {
		first = g.varyFirst(first)
		last = g.varyLast(last)
		company, legal = g.varyCompany(company, legal)
		email = g.varyEmail(email, p)
	}
	set := func(k string, v any, missing float64) {
		if dup && g.chance(missing) {
			return
		}
		if s, ok := v.(string); ok && s == "" {
			return
		}
		f[k] = v
	}
	set("FirstName", first, 0.05)
	f["LastName"] = last // required by the CRM
	if g.chance(0.3) {
		set("Salutation", g.pick([]string{"Mr.", "Ms.", "Mrs.", "Dr."}), 0.5)
	}
	set("Title", p.title, 0.3)
	set("Email", email, 0.15)
	work := c.phone
	ext := p.ext
	if p.direct != "" {
		work, ext = p.direct, ""
	}
	set("Phone", g.formatPhone(work, ext), 0.2)
	if p.mobile != "" {
		set("MobilePhone", g.formatPhone(p.mobile, ""), 0.25)
	}
	switch {
	case company == "":
	case g.chance(0.02):
		// Web forms that require a company get placeholders.
		f["Company"] = g.pick([]string{"N/A", "none", "Self", "-", "Individual"})
	default:
		if legal >= 0 {
			form := legalForms[legal][0]
			if dup {
				form = g.pick(legalForms[legal])
			}
			if strings.HasPrefix(form, ",") {
				company += form
			} else {
				company += " " + form
			}
		}
		f["Company"] = company
	}
	set("Website", "www."+c.domain, 0.5)
	set("Industry", c.ind, 0.4)
	set("NumberOfEmployees", float64(c.size), 0.5)
	set("AnnualRevenue", float64(c.rev), 0.6)
	set("LeadSource", p.source, 0.3)
	set("Status", g.pick(leadStatuses), 0)
	set("Street", c.street, 0.3)
	set("City", c.place.city, 0.2)
	set("State", c.place.state, 0.2)
	set("Zip", c.place.zip+fmt.Sprintf("%02d", int(c.place.city[0])%100), 0.3)
	set("Country", g.pick([]string{"US", "USA", "United States"}), 0.4)
	return f
}

// toObject renames lead fields to contact fields for contacts.
func (g *generator) toObject(obj record.Object, f record.Fields) record.Fields {
	if obj != record.Contact {
		return f
	}
	out := record.Fields{}
	for k, v := range f {
		switch k {
		case "Status", "Website", "Industry", "NumberOfEmployees", "AnnualRevenue":
			continue // lead-only fields
		}
		out[g.opts.ContactFields.ContactName(k)] = v
	}
	out["Department"] = g.pick([]string{"Sales", "Marketing", "IT", "Finance", "Operations", "Executive"})
	return out
}

func (g *generator) varyFirst(s string) string {
	switch {
	case g.chance(0.25):
		if nn, ok := nicknames[s]; ok {
			return nn[g.r.IntN(len(nn))]
		}
	case g.chance(0.1):
		return g.typo(s)
	case g.chance(0.1):
		return strings.ToUpper(s)
	case g.chance(0.1):
		return asciiFold(s)
	case g.chance(0.05):
		_, n := utf8.DecodeRuneInString(s)
		return s[:n] + "." // initial only
	}
	return s
}

func (g *generator) varyLast(s string) string {
	switch {
	case g.chance(0.08):
		return g.typo(s)
	case g.chance(0.1):
		return strings.ToUpper(s)
	case g.chance(0.1):
		return asciiFold(s)
	case g.chance(0.05):
		return strings.ToLower(s)
	}
	return s
}

func (g *generator) varyCompany(name string, legal int) (string, int) {
	switch {
	case g.chance(0.1):
		return "", legal
	case g.chance(0.15):
		return name, -1 // legal form omitted
	case g.chance(0.1):
		return strings.ToUpper(name), legal
	case g.chance(0.05):
		return g.typo(name), legal
	}
	return name, legal
}

func (g *generator) varyEmail(addr string, p *person) string {
	at := strings.LastIndexByte(addr, '@')
	local, domain := addr[:at], addr[at+1:]
	switch {
	case g.chance(0.1):
		return strings.ToUpper(local[:1]) + local[1:] + "@" + strings.ToUpper(domain[:1]) + domain[1:]
	case domain == "gmail.com" && g.chance(0.4):
		if strings.Contains(local, ".") {
			return strings.ReplaceAll(local, ".", "") + "@" + domain
		}
		return local[:1] + "." + local[1:] + "+" + g.pick([]string{"news", "crm", "work"}) + "@googlemail.com"
	case g.chance(0.05):
		return local + "+" + g.pick([]string{"leads", "web", "promo"}) + "@" + domain
	case g.chance(0.12):
		// Another address of the same person: private vs work.
		q := *p
		q.emailFree = !p.emailFree
		return g.email(&q)
	case g.chance(0.03):
		return " " + addr + " "
	}
	return addr
}

// typo applies one keyboard-style edit to a random letter of s.
func (g *generator) typo(s string) string {
	rs := []rune(s)
	if len(rs) < 3 {
		return s
	}
	i := 1 + g.r.IntN(len(rs)-2)
	switch g.r.IntN(4) {
	case 0: // transposition
		rs[i], rs[i+1] = rs[i+1], rs[i]
	case 1: // deletion
		rs = append(rs[:i], rs[i+1:]...)
	case 2: // doubled letter
		rs = append(rs[:i+1], rs[i:]...)
	default: // substitution by a neighbouring key
		if n, ok := neighbours[unicode.ToLower(rs[i])]; ok {
			rs[i] = rune(n[g.r.IntN(len(n))])
		} else {
			rs[i], rs[i+1] = rs[i+1], rs[i]
		}
	}
	return string(rs)
}

var neighbours = map[rune]string{
	'a': "sqz", 'b': "vn", 'c': "xv", 'd': "sf", 'e': "wr", 'f': "dg", 'g': "fh", 'h': "gj", 'i': "uo",
	'j': "hk", 'k': "jl", 'l': "k", 'm': "n", 'n': "bm", 'o': "ip", 'p': "o", 'q': "wa", 'r': "et",
	's': "ad", 't': "ry", 'u': "yi", 'v': "cb", 'w': "qe", 'x': "zc", 'y': "tu", 'z': "x",
}

// formatPhone writes a ten-digit North American number in one of the ways
// people type it, with the extension when there is one.
func (g *generator) formatPhone(d, ext string) string {
	a, b, c := d[:3], d[3:6], d[6:]
	var s string
	switch g.r.IntN(7) {
	case 0:
		s = "(" + a + ") " + b + "-" + c
	case 1:
		s = a + "-" + b + "-" + c
	case 2:
		s = a + "." + b + "." + c
	case 3:
		s = "+1 " + a + " " + b + " " + c
	case 4:
		s = "1-" + a + "-" + b + "-" + c
	case 5:
		s = d
	default:
		s = "+1 (" + a + ") " + b + "-" + c
	}
	if ext != "" {
		s += g.pick([]string{" x", " ext. ", " ext ", " #"}) + ext
	}
	return s
}

// update changes r (the final state, in place) and returns the event: a
// patch of the changed fields, or an upsert of the new full state.
func (g *generator) update(r *record.Record) record.Event {
	changed := record.Fields{}
	switch g.r.IntN(6) {
	case 0, 1:
		changed[g.fieldName(r, "Title")] = g.pick(titles)
	case 2:
		if r.Object == record.Lead {
			changed["Status"] = g.pick(leadStatuses)
		} else {
			changed["Department"] = g.pick([]string{"Sales", "IT", "Finance"})
		}
	case 3:
		// A new job: another e-mail. Links through the old one go away.
		addr := ""
		for addr == "" || g.emails[addr] {
			addr = fmt.Sprintf("%s.%s.%d@%s", emailPart(r.Fields.Str("FirstName")), emailPart(r.Fields.Str("LastName")), g.r.IntN(10000), g.pick(freeMail))
		}
		g.emails[addr] = true
		changed["Email"] = addr
	case 4:
		changed["Phone"] = nil
		changed["MobilePhone"] = nil
	default:
		changed[g.fieldName(r, "City")] = g.pick2().city
	}
	for k, v := range changed {
		if v == nil {
			delete(r.Fields, k)
		} else {
			r.Fields[k] = v
		}
	}
	if g.opts.UpdateAsUpsert {
		full := *r
		full.Fields = cloneFields(r.Fields)
		return record.Event{Record: full, Op: record.OpUpsert}
	}
	return record.Event{Record: record.Record{Tenant: r.Tenant, Object: r.Object, ID: r.ID, CreatedAt: r.CreatedAt, Fields: changed}, Op: record.OpPatch}
}

func (g *generator) fieldName(r *record.Record, lead string) string {
	if r.Object == record.Contact {
		return g.opts.ContactFields.ContactName(lead)
	}
	return lead
}

// crmShape renames generated fields to one CRM's API names.
type crmShape struct {
	model   engine.FieldModel
	toLead  record.FieldMap   // generated contact field -> generated lead field
	contact map[string]string // CRM lead field -> CRM contact field
}

func newCRMShape(crm string, generated record.FieldMap) *crmShape {
	m, ok := engine.Model(crm)
	if !ok {
		panic(fmt.Sprintf("gen: crm %q has no field model", crm))
	}
	c := &crmShape{model: m, toLead: generated, contact: map[string]string{}}
	for cf, lf := range m.ContactFields {
		c.contact[lf] = cf
	}
	for _, f := range m.Contact {
		if _, mapped := m.ContactFields[f]; !mapped && slices.Contains(m.Lead, f) {
			c.contact[f] = f
		}
	}
	return c
}

// canonicalOf is the generated lead name in the canonical (Salesforce)
// spelling: gen writes the postal code as Zip.
func canonicalOf(f string) string {
	if f == "Zip" {
		return "PostalCode"
	}
	return f
}

// fields returns f under the CRM's names; full adds the created timestamp
// (a creation or upsert), every shape the modified one.
func (c *crmShape) fields(obj record.Object, f record.Fields, created, modified time.Time, full bool) record.Fields {
	out := make(record.Fields, len(f)+2)
	for k, v := range f {
		if obj == record.Contact {
			if k == "Department" {
				if slices.Contains(c.model.Contact, c.departmentName()) {
					out[c.departmentName()] = v
				}
				continue
			}
			if l, ok := c.toLead[k]; ok {
				k = l
			}
		}
		lead := c.model.Canonical[canonicalOf(k)]
		if lead == "" {
			continue // the CRM has no such field
		}
		if obj == record.Contact {
			cf, ok := c.contact[lead]
			if !ok {
				continue // a lead field the CRM's contacts lack
			}
			lead = cf
		}
		out[lead] = v
	}
	if full {
		out[c.model.Created] = created.UTC().Format(time.RFC3339)
	}
	out[c.model.Modified] = modified.UTC().Format(time.RFC3339)
	return out
}

func (c *crmShape) departmentName() string {
	if c.model.CRM == "dynamics" {
		return "department"
	}
	return "Department"
}
