package matcher

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

func TestNormalizeText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"   ", ""},
		{"acme", "acme"},
		{"  Hello,   World!  ", "hello world"},
		{"José Müller", "jose muller"},
		{"Łukasz Øster", "lukasz oster"},
		{"Straße", "strasse"},
		{"O'Brien", "obrien"},
		{"O’Brien", "obrien"},
		{"L.L.C.", "llc"},
		{"Jean-Luc", "jean luc"},
		{"Zoë_Renée", "zoe renee"},
		{"ÆSIR Œuvre", "aesir oeuvre"},
		{"ΑΘΗΝΑ", "αθηνα"},
		{"R2-D2", "r2 d2"},
	}
	for _, tt := range tests {
		if got := NormalizeText(tt.in); got != tt.want {
			t.Errorf("NormalizeText(%q) = %q, want %q", tt.in, got, tt.want)
		}
		// Normalising is idempotent: stored values normalise to themselves.
		if got := NormalizeText(tt.want); got != tt.want {
			t.Errorf("NormalizeText(%q) = %q, not idempotent", tt.want, got)
		}
	}
}

func TestNormalizeName(t *testing.T) {
	tests := []struct {
		in        string
		nicknames bool
		want      string
	}{
		{"", true, ""},
		{"Robert", true, "robert"},
		{"Bob", true, "robert"},
		{"BOBBY", true, "robert"},
		{"rob", true, "robert"},
		{"Bob", false, "bob"},
		{"Bill", true, "william"},
		{"Liz", true, "elizabeth"},
		{"Steven", true, "stephen"},
		{"Steve", true, "stephen"},
		// Ambiguous short forms stay as written: Al is Albert, Alan or Alfred.
		{"Al", true, "al"},
		{"Chris", true, "chris"},
		{"José", true, "jose"},
		{"Renée", false, "renee"},
		{"O'Connor", true, "oconnor"},
		{"Dr. Robert Smith Jr.", false, "robert smith"},
		{"Mr. Bob", true, "robert"},
		// A lone title or suffix is kept: it is all there is.
		{"Dr.", true, "dr"},
		{"Mary-Jane", true, "mary jane"},
		{"Bob Jim", true, "robert james"},
		{"Van der Berg", true, "van der berg"},
	}
	for _, tt := range tests {
		if got := normalizeName(tt.in, tt.nicknames); got != tt.want {
			t.Errorf("normalizeName(%q, nicknames=%v) = %q, want %q", tt.in, tt.nicknames, got, tt.want)
		}
	}
	if got := NormalizeName("Bob"); got != "bob" {
		t.Errorf("NormalizeName(Bob) = %q: the exported form has no nickname table", got)
	}
}

// Every nickname maps to exactly one full name, and full names map to
// themselves, so the table never merges two given names.
func TestNicknameTable(t *testing.T) {
	seen := map[string]string{}
	for full, nicks := range nicknames {
		if NormalizeText(full) != full {
			t.Errorf("full name %q is not normalised", full)
		}
		if _, isNick := nicknameOf[full]; isNick {
			t.Errorf("full name %q is also a nickname of %q", full, nicknameOf[full])
		}
		for _, n := range strings.Fields(nicks) {
			if other, ok := seen[n]; ok {
				t.Errorf("nickname %q listed under %q and %q", n, other, full)
			}
			seen[n] = full
			if nicknameOf[n] != full {
				t.Errorf("nicknameOf[%q] = %q, want %q", n, nicknameOf[n], full)
			}
		}
	}
}

func TestNormalizeCompany(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"Acme", "acme"},
		{"Acme, Inc.", "acme"},
		{"ACME INC", "acme"},
		{"Acme Incorporated", "acme"},
		{"Acme Corp.", "acme"},
		{"Acme Corporation", "acme"},
		{"Acme L.L.C.", "acme"},
		{"acme llc", "acme"},
		{"Acme Ltd", "acme"},
		{"Acme Limited", "acme"},
		{"Acme Pty Ltd", "acme"},
		{"Müller Technik GmbH", "muller technik"},
		{"Acme Co.", "acme"},
		{"Acme Holdings PLC", "acme"},
		{"The Acme Company", "acme"},
		{"Johnson & Sons", "johnson sons"},
		{"Smith and Partners Ltd", "smith partners"},
		{"Société Générale Conseil SA", "societe generale conseil"},
		// Suffix words inside the name stay; a name that is only a suffix too.
		{"Inc Magazine Group", "inc magazine"},
		{"Corporation", "corporation"},
		{"The", "the"},
		// Placeholders web forms force on people without a company.
		{"N/A", ""},
		{"n.a.", ""},
		{"None", ""},
		{"-", ""},
		{"Self", ""},
		{"Self-employed", ""},
		{"Individual", ""},
		{"Unknown", ""},
		{"Private", ""},
	}
	for _, tt := range tests {
		if got := NormalizeCompany(tt.in); got != tt.want {
			t.Errorf("NormalizeCompany(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNormalizeAddress(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"1001 W. Roosevelt Rd", "1001 west roosevelt road"},
		{"1001 West Roosevelt Road", "1001 west roosevelt road"},
		{"12 N Main St., Apt 4", "12 north main street apartment 4"},
		{"5 First Ave", "5 1st avenue"},
		{"Broadway", "broadway"},
	}
	for _, tt := range tests {
		if got := NormalizeAddress(tt.in); got != tt.want {
			t.Errorf("NormalizeAddress(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestHouseNumber(t *testing.T) {
	tests := []struct{ in, want string }{
		{"1001 W. Roosevelt Rd", "1001"},
		{"  12-14 High St", "12"},
		{"007 Bond St", "7"},
		{"High St 12", ""},
		{"0", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := HouseNumber(tt.in); got != tt.want {
			t.Errorf("HouseNumber(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNormalizeEmail(t *testing.T) {
	def := DefaultConfig().Email
	none := EmailOptions{}
	tagsOnly := EmailOptions{StripTags: true}
	dotsOnly := EmailOptions{StripDots: true, DotProviders: []string{"gmail.com"}}
	tests := []struct {
		name string
		opts EmailOptions
		in   string
		want string
	}{
		{"trim and lower-case", def, "  Bob.Smith@ACME.com ", "bob.smith@acme.com"},
		{"mailto", def, "mailto:bob@acme.com", "bob@acme.com"},
		{"gmail dots", def, "b.o.b.smith@gmail.com", "bobsmith@gmail.com"},
		{"gmail tag", def, "bobsmith+crm@gmail.com", "bobsmith@gmail.com"},
		{"googlemail alias", def, "Bob.Smith+news@googlemail.com", "bobsmith@gmail.com"},
		{"dots kept elsewhere", def, "bob.smith@acme.com", "bob.smith@acme.com"},
		{"tag stripped everywhere", def, "bob+leads@acme.com", "bob@acme.com"},
		{"leading plus kept", def, "+bob@acme.com", "+bob@acme.com"},
		{"trailing dot of domain", def, "bob@acme.com.", "bob@acme.com"},
		{"only dots after the name", def, "bob@acme..", ""},
		{"no options", none, "B.ob+x@GMAIL.com", "b.ob+x@gmail.com"},
		{"tags only", tagsOnly, "b.ob+x@gmail.com", "b.ob@gmail.com"},
		{"dots only", dotsOnly, "b.ob+x@gmail.com", "bob+x@gmail.com"},
		{"dots only, other provider", dotsOnly, "b.ob@yahoo.com", "b.ob@yahoo.com"},
		{"role address", def, "Info@Acme.com", ""},
		{"role address with tag", def, "sales+web@acme.com", ""},
		{"role word inside a name", def, "info.smith@acme.com", "info.smith@acme.com"},
		{"role address kept", tagsOnly, "info@acme.com", "info@acme.com"},
		{"blank", def, "  ", ""},
		{"no at", def, "bob.acme.com", ""},
		{"no local part", def, "@acme.com", ""},
		{"no domain", def, "bob@", ""},
		{"dotless domain", def, "bob@localhost", ""},
		{"two addresses", def, "bob@acme.com, al@acme.com", ""},
		{"display name", def, "Jane <jane@ex.com>", "jane@ex.com"},
		{"quoted display name", def, "\"Doe, Jane\" <Jane.Doe@Ex.com>", "jane.doe@ex.com"},
		{"comment", def, "jane@ex.com (work)", "jane@ex.com"},
		{"broken display name", def, "Jane <jane@ex.com", ""},
		{"IDN domain as punycode", def, "info.b@bücher.de", "info.b@xn--bcher-kva.de"},
		{"punycode domain kept", def, "info.b@xn--bcher-kva.de", "info.b@xn--bcher-kva.de"},
		{"IDN domain upper-case", def, "Max@BÜCHER.de", "max@xn--bcher-kva.de"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOptions(Config{Email: tt.opts})
			if got := normalizeEmail(tt.in, o); got != tt.want {
				t.Errorf("normalizeEmail(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	if got := NormalizeEmail("B.ob+x@GoogleMail.com"); got != "bob@gmail.com" {
		t.Errorf("NormalizeEmail uses the default options: got %q", got)
	}
}

func TestNormalizePhone(t *testing.T) {
	tests := []struct {
		name, in, region, want string
	}{
		{"US formatted", "(312) 555-0100", "US", "+13125550100"},
		{"US dashes", "312-555-0100", "US", "+13125550100"},
		{"US dots", "312.555.0100", "US", "+13125550100"},
		{"US trunk 1", "1-312-555-0100", "US", "+13125550100"},
		{"US plus", "+1 (312) 555-0100", "US", "+13125550100"},
		{"US 011 exit code", "011 44 20 7946 0958", "US", "+442079460958"},
		{"00 exit code", "0044 20 7946 0958", "US", "+442079460958"},
		{"extension x", "312-555-0100 x123", "US", "+13125550100"},
		{"extension ext.", "+1 312 555 0100 ext. 12", "US", "+13125550100"},
		{"extension hash", "3125550100 #7", "US", "+13125550100"},
		{"second number after comma", "312-555-0100, 312-555-0199", "US", "+13125550100"},
		{"label before number", "Tel: 312 555 0100", "US", "+13125550100"},
		{"UK national", "020 7946 0958", "GB", "+442079460958"},
		{"UK mobile", "07700 900123", "GB", "+447700900123"},
		{"UK international with trunk 0", "+44 (0)20 7946 0958", "GB", "+442079460958"},
		{"00 exit code, no default country", "0049 30 1234567", "", "+49301234567"},
		{"German national", "030 1234567", "DE", "+49301234567"},
		{"international kept under other default", "+49 30 1234567", "US", "+49301234567"},
		{"local seven digits", "555-0100", "US", "5550100"},
		{"too short", "12345", "US", ""},
		{"too long", "+1234567890123456", "US", ""},
		{"no default country", "312 555 0100", "", "3125550100"},
		{"no default country, plus", "+1 312 555 0100", "", "+13125550100"},
		{"letters only", "n/a", "US", ""},
		// libphonenumber knows each country's trunk prefix: Italy keeps the
		// leading 0 of landlines, Russia's trunk is 8, Hungary's 06.
		{"Italian landline keeps its 0", "06 6982 1234", "IT", "+390669821234"},
		{"Italian international", "+39 06 6982 1234", "US", "+390669821234"},
		{"Russian trunk 8", "8 (495) 123-45-67", "RU", "+74951234567"},
		{"Russian international", "+7 495 123 45 67", "US", "+74951234567"},
		{"Hungarian trunk 06", "06 30 123 4567", "HU", "+36301234567"},
		{"Hungarian international", "+36 30 123 4567", "US", "+36301234567"},
		{"already E.164", "+390669821234", "US", "+390669821234"},
		{"lower-case region", "020 7946 0958", "gb", "+442079460958"},
		{"blank", "", "US", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NormalizePhone(tt.in, tt.region); got != tt.want {
				t.Errorf("NormalizePhone(%q, %q) = %q, want %q", tt.in, tt.region, got, tt.want)
			}
		})
	}
}

func TestNormalizeDomain(t *testing.T) {
	def := newOptions(DefaultConfig())
	custom := newOptions(Config{FreeMailDomains: []string{"corp-mail.example"}})
	tests := []struct {
		name string
		o    *options
		in   string
		want string
	}{
		{"email", def, "Bob@Acme.COM", "acme.com"},
		{"url", def, "https://www.acme.com/about?x=1", "acme.com"},
		{"bare www", def, "WWW.ACME.COM", "acme.com"},
		{"port", def, "http://acme.com:8080/", "acme.com"},
		{"userinfo", def, "http://user@acme.com", "acme.com"},
		{"subdomain kept", def, "mail.acme.co.uk", "mail.acme.co.uk"},
		{"trailing dot", def, "acme.com.", "acme.com"},
		{"free mail", def, "bob@gmail.com", ""},
		{"free mail url", def, "https://www.yahoo.com", ""},
		{"custom free list", custom, "bob@corp-mail.example", ""},
		{"custom list replaces defaults", custom, "bob@gmail.com", "gmail.com"},
		{"not a domain", def, "acme", ""},
		{"blank", def, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := normalizeDomain(tt.in, tt.o.freeMail); got != tt.want {
				t.Errorf("normalizeDomain(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseNumber(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"42", 42, true},
		{" 1,250,000 ", 1250000, true},
		{"-3.5", -3.5, true},
		{"", 0, false},
		{"abc", 0, false},
		{"NaN", 0, false},
		{"Inf", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseNumber(tt.in)
		if ok != tt.ok || got != tt.want {
			t.Errorf("parseNumber(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseDate(t *testing.T) {
	const jan2 = 20455 // 2026-01-02 in days since 1970-01-01
	tests := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"2026-01-02", jan2, true},
		{"20260102", jan2, true},
		{"2026/01/02", jan2, true},
		{"2026-01-02T23:59:59Z", jan2, true},
		{"2026-01-02T10:00:00", jan2, true},
		{"2026-01-03T01:00:00+02:00", jan2, true},
		{"2026-01-03T01:00:00.000+0200", jan2, true}, // Salesforce REST
		{"2026-01-02T10:00:00.000Z", jan2, true},     // Salesforce CDC
		{"1969-12-31", -1, true},
		{"02/01/2026", 0, false},
		{"", 0, false},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseDate(tt.in)
		if ok != tt.ok || got != tt.want {
			t.Errorf("parseDate(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// FuzzNormalize checks the normalisers' invariants on any input: no panic,
// valid UTF-8, idempotence where a stored value is normalised again, and the
// shapes the blocking keys rely on.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"", "José Müller", "Acme, Inc.", "+1 (312) 555-0100 x12", "B.ob+x@GoogleMail.com",
		"https://www.acme.com/x", "O'Brien-Smith Jr.", "ß æ ø ł", "\xff\xfe", "0049 (0)30 1234567", "N/A"} {
		f.Add(s)
	}
	o := newOptions(DefaultConfig())
	f.Fuzz(func(t *testing.T, s string) {
		for name, n := range normalizers {
			v := n(o, s)
			if !utf8.ValidString(v) && utf8.ValidString(s) {
				t.Fatalf("%s(%q) = %q: invalid UTF-8", name, s, v)
			}
			if v != strings.TrimSpace(v) {
				t.Fatalf("%s(%q) = %q: untrimmed", name, s, v)
			}
		}
		if v := NormalizeText(s); NormalizeText(v) != v {
			t.Fatalf("NormalizeText not idempotent on %q: %q -> %q", s, v, NormalizeText(v))
		}
		if v := normalizeName(s, true); normalizeName(v, true) != v {
			t.Fatalf("name not idempotent on %q: %q -> %q", s, v, normalizeName(v, true))
		}
		if v := NormalizeCompany(s); NormalizeCompany(v) != v && NormalizeCompany(v) != "" {
			// Dropping a suffix can expose another ("Acme Holdings Inc"
			// -> "acme"), but never changes a value otherwise.
			if !strings.HasPrefix(v, NormalizeCompany(v)) {
				t.Fatalf("company not stable on %q: %q -> %q", s, v, NormalizeCompany(v))
			}
		}
		if p := NormalizePhone(s, "US"); p != "" {
			d := strings.TrimPrefix(p, "+")
			if !allDigits(d) || len(d) < 7 || len(d) > 15 {
				t.Fatalf("NormalizePhone(%q) = %q", s, p)
			}
			if NormalizePhone(p, "US") != p {
				t.Fatalf("NormalizePhone not idempotent on %q: %q -> %q", s, p, NormalizePhone(p, "US"))
			}
		}
		if e := normalizeEmail(s, o); e != "" && normalizeEmail(e, o) != e {
			t.Fatalf("email not idempotent on %q: %q -> %q", s, e, normalizeEmail(e, o))
		}
		p, a := DoubleMetaphone(s)
		if len(p) > 4 || len(a) > 4 {
			t.Fatalf("DoubleMetaphone(%q) = %q, %q: longer than 4", s, p, a)
		}
		if sx := Soundex(s); sx != "" && len(sx) != 4 {
			t.Fatalf("Soundex(%q) = %q", s, sx)
		}
	})
}

// TestPhoneMemo: the region's memo gives NormalizePhone's results, under
// concurrent use, across spellings sharing digits and after it is cleared.
func TestPhoneMemo(t *testing.T) {
	ins := []string{"(312) 555-0100", "312.555.0100", "+1 312 555 0100 x9", "06 6982 1234", "+39 06 6982 1234",
		"555-0100", "0044 20 7946 0958", "n/a", "+13125550100", "8 (495) 123-45-67"}
	for _, region := range []string{"US", "IT", "RU", ""} {
		pm := &phoneMemo{max: phoneMemoSize, m: map[string]string{}}
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 3 {
					for _, in := range ins {
						if got, want := pm.normalize(in, region), NormalizePhone(in, region); got != want {
							t.Errorf("memo(%q, %q) = %q, NormalizePhone %q", in, region, got, want)
						}
					}
				}
			})
		}
		wg.Wait()
		if len(pm.m) == 0 || len(pm.m) > len(ins) {
			t.Errorf("region %q: memo holds %d entries", region, len(pm.m))
		}
	}
	pm := &phoneMemo{max: 50, m: map[string]string{}}
	for i := range 60 {
		pm.normalize(fmt.Sprintf("312 %07d", i), "US")
	}
	if len(pm.m) > 50 {
		t.Errorf("memo holds %d entries, bound 50", len(pm.m))
	}
	if got := pm.normalize("312 0000001", "US"); got != NormalizePhone("312 0000001", "US") {
		t.Errorf("after clearing: %q", got)
	}
	if it := memoFor("IT"); it != memoFor("IT") || it == memoFor("US") {
		t.Error("want one memo per region")
	}
}

// TestNorthAmerican: the North American fast path places every number it
// takes where libphonenumber does, and leaves the rest to it: random digits
// around each of its rules' edges, with and without '+', in the US and
// elsewhere.
func TestNorthAmerican(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 14))
	digits := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('0' + r.IntN(10))
		}
		return string(b)
	}
	taken := 0
	for _, region := range []string{"US", "CA", "GB", "ZZ"} {
		for i := 0; i < 20000; i++ {
			d := digits(9 + r.IntN(4))
			if r.IntN(2) == 0 {
				d = "1" + d[1:] // the trunk and calling code's edge
			}
			plus := r.IntN(2) == 0
			got, ok := northAmerican(d, plus, region)
			if !ok {
				continue
			}
			taken++
			if want := libPhone(d, plus, region); got != want {
				t.Errorf("northAmerican(%q, %v, %q) = %q, libphonenumber %q", d, plus, region, got, want)
			}
		}
	}
	// Without a calling code outside the US, or in a shape it does not
	// know, the fast path declines.
	for _, tt := range []struct {
		d      string
		plus   bool
		region string
	}{
		{"3125550100", false, "CA"}, {"3125550100", true, "US"}, {"1125550100", false, "US"},
		{"13125550100", false, "GB"}, {"11125550100", true, "US"}, {"23125550100", true, "US"},
	} {
		if v, ok := northAmerican(tt.d, tt.plus, tt.region); ok {
			t.Errorf("northAmerican(%q, %v, %q) took it: %q", tt.d, tt.plus, tt.region, v)
		}
	}
	if taken < 5000 {
		t.Fatalf("only %d numbers took the fast path: the test no longer covers it", taken)
	}
}
