package matcher

import (
	"math"
	"net/mail"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// normalizer turns a raw field value into its comparable form; "" means
// blank (the condition cannot hold).
type normalizer func(o *options, s string) string

// options are the compiled normaliser options of a Ruleset.
type options struct {
	email     EmailOptions
	dotProv   map[string]bool
	region    string // ISO 3166 code of the phone normaliser
	phones    *phoneMemo
	nicknames bool
	freeMail  map[string]bool
}

var normalizers = map[string]normalizer{
	"email":        func(o *options, s string) string { return normalizeEmail(s, o) },
	"phone":        func(o *options, s string) string { return o.phones.normalize(s, o.region) },
	"name":         func(o *options, s string) string { return normalizeName(s, o.nicknames) },
	"company":      func(_ *options, s string) string { return NormalizeCompany(s) },
	"domain":       func(o *options, s string) string { return normalizeDomain(s, o.freeMail) },
	"text":         func(_ *options, s string) string { return NormalizeText(s) },
	"address":      func(_ *options, s string) string { return NormalizeAddress(s) },
	"house_number": func(_ *options, s string) string { return HouseNumber(s) },
	"none":         func(_ *options, s string) string { return strings.TrimSpace(s) },
}

// NormalizeText case-folds s, strips accents, drops apostrophes and dots
// ("O'Brien" -> "obrien", "L.L.C." -> "llc"), turns other punctuation into
// spaces and collapses whitespace.
func NormalizeText(s string) string {
	if isFolded(s) {
		return s
	}
	if !isASCII(s) {
		// NFD splits "é" into "e" + a combining mark, which the loop drops.
		s = norm.NFD.String(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		switch {
		case r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= '0' && r <= '9'):
		case r >= 'A' && r <= 'Z':
			r += 'a' - 'A'
		case r == '\'' || r == '.' || r == '’' || r == '`' || r == '´':
			continue
		case unicode.Is(unicode.Mn, r):
			continue
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			if t, ok := foldSpecial[r]; ok {
				if space && b.Len() > 0 {
					b.WriteByte(' ')
				}
				space = false
				b.WriteString(t)
				continue
			}
			r = unicode.ToLower(r)
		default:
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

// foldSpecial covers letters that NFD does not decompose into a base letter.
var foldSpecial = map[rune]string{
	'ß': "ss", 'æ': "ae", 'Æ': "ae", 'ø': "o", 'Ø': "o", 'œ': "oe", 'Œ': "oe",
	'ł': "l", 'Ł': "l", 'đ': "d", 'Đ': "d", 'þ': "th", 'Þ': "th", 'ı': "i", 'ð': "d",
}

// isFolded reports whether s is already in NormalizeText form, so the common
// case costs no allocation.
func isFolded(s string) bool {
	if s == "" {
		return true
	}
	if s[0] == ' ' || s[len(s)-1] == ' ' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == ' ' && s[i-1] != ' ':
		default:
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// NormalizeName is the name normaliser without the nickname table.
func NormalizeName(s string) string { return normalizeName(s, false) }

// nameNoise are titles and generational suffixes that say nothing about
// identity; dropped while another token remains.
var nameNoise = map[string]bool{
	"mr": true, "mrs": true, "ms": true, "miss": true, "dr": true, "prof": true,
	"jr": true, "sr": true, "ii": true, "iii": true, "iv": true,
}

func normalizeName(s string, nicknames bool) string {
	s = NormalizeText(s)
	if s == "" {
		return ""
	}
	if strings.IndexByte(s, ' ') < 0 {
		if nicknames {
			if full, ok := nicknameOf[s]; ok {
				return full
			}
		}
		return s
	}
	toks := strings.Fields(s)
	out := toks[:0]
	for i, t := range toks {
		if nameNoise[t] && (len(out) > 0 || i < len(toks)-1) {
			continue
		}
		if nicknames {
			if full, ok := nicknameOf[t]; ok {
				t = full
			}
		}
		out = append(out, t)
	}
	return strings.Join(out, " ")
}

// legalSuffixes are company-form words dropped from the end of a company
// name ("Acme Corp." ~ "ACME Corporation" ~ "Acme, Inc.").
var legalSuffixes = map[string]bool{
	"inc": true, "incorporated": true, "llc": true, "llp": true, "lp": true, "ltd": true, "limited": true,
	"gmbh": true, "corp": true, "corporation": true, "co": true, "company": true, "plc": true, "ag": true,
	"sa": true, "sas": true, "sarl": true, "bv": true, "nv": true, "pty": true, "pvt": true, "srl": true,
	"spa": true, "oy": true, "ab": true, "kk": true, "kg": true, "se": true, "as": true, "aps": true,
	"pte": true, "group": true, "holding": true, "holdings": true,
}

// companyPlaceholders are what web forms that require a company get from
// people without one; as a company they would link strangers.
var companyPlaceholders = map[string]bool{
	"n a": true, "na": true, "none": true, "no": true, "self": true, "self employed": true,
	"individual": true, "unknown": true, "private": true, "personal": true, "home": true,
	"test": true, "null": true, "not applicable": true, "retired": true, "student": true,
}

// NormalizeCompany case-folds, strips accents and punctuation, drops "and",
// a leading "the" and trailing legal suffixes. Placeholders ("N/A", "none",
// "self-employed") are blank.
func NormalizeCompany(s string) string {
	s = NormalizeText(s)
	if s == "" || companyPlaceholders[s] {
		return ""
	}
	toks := strings.Fields(s)
	out := toks[:0]
	for i, t := range toks {
		if t == "and" || (i == 0 && t == "the" && len(toks) > 1) {
			continue
		}
		out = append(out, t)
	}
	for len(out) > 1 && legalSuffixes[out[len(out)-1]] {
		out = out[:len(out)-1]
	}
	if len(out) == len(toks) {
		return s
	}
	return strings.Join(out, " ")
}

// addressWords maps the abbreviations of street addresses to one spelling,
// so "1001 W. Roosevelt Rd" ~ "1001 West Roosevelt Road".
var addressWords = map[string]string{
	"n": "north", "s": "south", "e": "east", "w": "west",
	"ne": "northeast", "nw": "northwest", "se": "southeast", "sw": "southwest",
	"st": "street", "str": "street", "ave": "avenue", "av": "avenue", "rd": "road", "blvd": "boulevard",
	"dr": "drive", "ln": "lane", "ct": "court", "pl": "place", "sq": "square", "pkwy": "parkway",
	"hwy": "highway", "cir": "circle", "ter": "terrace", "trl": "trail", "pk": "park", "crt": "court",
	"cres": "crescent", "cl": "close", "apt": "apartment", "ste": "suite", "fl": "floor", "bldg": "building",
	"mt": "mount", "ft": "fort", "hts": "heights", "jct": "junction", "xing": "crossing",
	"first": "1st", "second": "2nd", "third": "3rd", "fourth": "4th", "fifth": "5th",
}

// NormalizeAddress is NormalizeText with street-address abbreviations
// spelled out (directions, street types, low ordinals as numbers).
func NormalizeAddress(s string) string {
	s = NormalizeText(s)
	if s == "" {
		return ""
	}
	toks := strings.Fields(s)
	changed := false
	for i, t := range toks {
		if w, ok := addressWords[t]; ok {
			toks[i], changed = w, true
		}
	}
	if !changed {
		return s
	}
	return strings.Join(toks, " ")
}

// HouseNumber returns the leading number of a street address ("1001 W.
// Roosevelt Rd" -> "1001", "12-14 High St" -> "12"), or "" when the address
// does not start with one.
func HouseNumber(s string) string {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	n := strings.TrimLeft(s[:i], "0")
	if n == "" {
		return ""
	}
	return n
}

// NormalizeEmail lower-cases and validates an address, removing +tags and
// the dots of gmail-like providers per DefaultConfig.
func NormalizeEmail(s string) string {
	o := newOptions(DefaultConfig())
	return normalizeEmail(s, o)
}

func normalizeEmail(s string, o *options) string {
	s = strings.TrimSpace(s)
	if strings.ContainsAny(s, "<\"(") {
		// A display name or comment ("Jane <jane@ex.com>"): net/mail reads
		// RFC 5322 as a mail client would. Plain addresses skip the parser.
		a, err := mail.ParseAddress(s)
		if err != nil {
			return ""
		}
		s = a.Address
	}
	s = strings.ToLower(s)
	s = strings.TrimPrefix(s, "mailto:")
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || strings.ContainsAny(s, " ,;<>") {
		return ""
	}
	local, domain := s[:at], strings.TrimRight(s[at+1:], ".")
	changed := false
	if !isASCII(domain) {
		// bücher.de and xn--bcher-kva.de are one domain: compare the
		// ASCII (punycode) form.
		d, err := idna.Lookup.ToASCII(domain)
		if err != nil {
			return ""
		}
		domain, changed = d, true
	}
	if strings.IndexByte(domain, '.') < 0 {
		return ""
	}
	if a, ok := o.email.Aliases[domain]; ok {
		domain, changed = a, true
	}
	if o.email.StripTags {
		if i := strings.IndexByte(local, '+'); i > 0 {
			local, changed = local[:i], true
		}
	}
	if o.email.StripDots && o.dotProv[domain] && strings.IndexByte(local, '.') >= 0 {
		local, changed = strings.ReplaceAll(local, ".", ""), true
	}
	if o.email.IgnoreRoles && roleAddress[local] {
		return ""
	}
	if !changed && at == len(local) && len(s) == at+1+len(domain) {
		return s
	}
	return local + "@" + domain
}

// NormalizePhone reduces a phone number to E.164 ("+13125550100") with
// libphonenumber's rules for the number's country, assuming region (an ISO
// 3166 code, "US", "IT") for numbers written without a calling code and
// dropping extensions: "06 6982 1234" in IT is +390669821234, "8 (495)
// 123-45-67" in RU is +74951234567. Numbers too short to place are kept as
// bare local digits (7) or blank (fewer); with no region, numbers written
// without a calling code stay bare digits.
func NormalizePhone(s, region string) string { return memoFor(region).normalize(s, region) }

// parsePhone places the digits d (written after a "+" when plus) with
// libphonenumber.
func parsePhone(d string, plus bool, region string) string {
	if len(d) > 15 {
		return ""
	}
	if !plus && strings.HasPrefix(d, "00") {
		// 00 is the exit code of most of the world, written so even where
		// the region dials out otherwise (011 in North America).
		d, plus = d[2:], true
	}
	switch {
	case region == "" && !plus:
		if len(d) < 8 || d[0] == '0' {
			return localDigits(d)
		}
		return d
	case region == "":
		region = "ZZ"
	case region[0] >= 'a':
		region = strings.ToUpper(region)
	}
	if v, ok := northAmerican(d, plus, region); ok {
		return v
	}
	return libPhone(d, plus, region)
}

// libPhone places d with libphonenumber, in region (upper case, "ZZ" for
// none).
func libPhone(d string, plus bool, region string) string {
	in := d
	if plus {
		in = "+" + d
	}
	num, err := phonenumbers.Parse(in, region)
	if err != nil {
		return localDigits(d)
	}
	switch phonenumbers.IsPossibleNumberWithReason(num) {
	case phonenumbers.IS_POSSIBLE:
		return phonenumbers.Format(num, phonenumbers.E164)
	case phonenumbers.IS_POSSIBLE_LOCAL_ONLY:
		return localDigits(d)
	}
	return ""
}

// northAmerican places, without libphonenumber, the North American numbers
// whose place is their digits alone: ten digits not starting with 1 (the
// trunk prefix) dialled in the US, or eleven starting with 1 and then
// 2-9, written after a '+' or dialled in the US. libphonenumber gives each
// of them +1 and the ten digits (its US numbers' only possible length is
// ten, and nothing is stripped from them), at some 14 µs a parse, most of
// the CPU a new US record's normalising costs; TestNorthAmerican checks
// the two agree.
func northAmerican(d string, plus bool, region string) (string, bool) {
	switch {
	case len(d) == 10 && !plus && region == "US" && d[0] >= '2':
		return "+1" + d, true
	case len(d) == 11 && d[0] == '1' && d[1] >= '2' && (plus || region == "US"):
		return "+" + d, true
	}
	return "", false
}

// phoneMemo remembers parsePhone's results by digits: libphonenumber's
// parse costs tens of microseconds, and the same numbers come back with
// every update of their record, every other spelling of them and every
// colleague behind one switchboard. Safe for concurrent use; it forgets
// everything when full.
type phoneMemo struct {
	mu  sync.Mutex
	max int
	m   map[string]string
}

// phoneMemoSize bounds the memo: about 6 MB at its fullest.
const phoneMemoSize = 1 << 16

// phoneMemos holds one memo per region, shared by every Ruleset of that
// region: tenants, config reloads and test variants parse a number once.
var phoneMemos sync.Map // region -> *phoneMemo

func memoFor(region string) *phoneMemo {
	if pm, ok := phoneMemos.Load(region); ok {
		return pm.(*phoneMemo)
	}
	pm, _ := phoneMemos.LoadOrStore(region, &phoneMemo{max: phoneMemoSize, m: map[string]string{}})
	return pm.(*phoneMemo)
}

// normalize is NormalizePhone, remembering results.
func (pm *phoneMemo) normalize(s, region string) string {
	s = strings.TrimSpace(s)
	if isE164(s) {
		// Already canonical (what a CRM stores after its own cleanup):
		// the parser would return it unchanged.
		return s
	}
	// "+44 (0)20 …": the trunk prefix written inside an international number.
	if i := strings.Index(s, "(0)"); i >= 0 {
		s = s[:i] + s[i+3:]
	}
	// A second number after a separator is not part of the first.
	if i := strings.IndexAny(s, ",;/"); i >= 0 {
		s = s[:i]
	}
	// The memo's key is the digits, after a '+' when written: the region is
	// the Ruleset's, fixed for the memo's life.
	var kb [1 + 16]byte
	k, plus := phoneDigits(kb[:1], s) // kb[0] is kept for the '+'
	d := k[1:]
	if plus {
		k[0] = '+'
	} else {
		k = d
	}
	if len(d) < 7 || len(d) > 15 {
		return parsePhone(string(d), plus, region)
	}
	pm.mu.Lock()
	v, ok := pm.m[string(k)]
	pm.mu.Unlock()
	if ok {
		return v
	}
	v = parsePhone(string(d), plus, region)
	pm.mu.Lock()
	if len(pm.m) >= pm.max {
		clear(pm.m)
	}
	pm.m[string(k)] = v
	pm.mu.Unlock()
	return v
}

// localDigits keeps a seven-digit local number (no area code) as bare
// digits, which match only the same bare digits; anything else is blank.
func localDigits(d string) string {
	if len(d) == 7 {
		return d
	}
	return ""
}

// phoneDigits appends to dst the digits of s up to an extension (letters,
// '#'), at most 16 (more is too long either way), and reports whether a '+'
// came before them. dst's capacity bounds it: no allocation.
func phoneDigits(dst []byte, s string) (digits []byte, plus bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if n == 16 || len(dst) == cap(dst) {
				return dst, plus
			}
			dst = append(dst, c)
			n++
		case c == '+' && n == 0:
			plus = true
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || c == '\t':
		default:
			if n > 0 {
				return dst, plus
			}
		}
	}
	return dst, plus
}

// isE164 reports whether s is "+" and 8 to 15 digits, the first not 0.
func isE164(s string) bool {
	if len(s) < 9 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	return allDigits(s[1:])
}

func normalizeDomain(s string, free map[string]bool) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if at := strings.LastIndexByte(s, '@'); at >= 0 {
		s = s[at+1:]
	} else {
		if i := strings.Index(s, "://"); i >= 0 {
			s = s[i+3:]
		}
		if i := strings.IndexAny(s, "/?#"); i >= 0 {
			s = s[:i]
		}
		if i := strings.LastIndexByte(s, '@'); i >= 0 {
			s = s[i+1:]
		}
		if i := strings.IndexByte(s, ':'); i >= 0 {
			s = s[:i]
		}
		s = strings.TrimPrefix(s, "www.")
	}
	s = strings.TrimSuffix(s, ".")
	if !isASCII(s) {
		d, err := idna.Lookup.ToASCII(s)
		if err != nil {
			return ""
		}
		s = d
	}
	if strings.IndexByte(s, '.') <= 0 || strings.ContainsAny(s, " ,;") || free[s] {
		return ""
	}
	return s
}

// parseNumber reads a field value as a number; ok is false when it is not one.
func parseNumber(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	if strings.IndexByte(s, ',') >= 0 {
		s = strings.ReplaceAll(s, ",", "")
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

var dateLayouts = []string{"2006-01-02", time.RFC3339Nano, "2006-01-02T15:04:05", "20060102", "2006/01/02"}

// parseDate reads an ISO date or datetime (or compact yyyymmdd) as days
// since the Unix epoch.
func parseDate(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	if len(s) >= 10 && s[4] == '-' && len(s) > 10 {
		// Datetimes compare by their calendar day.
		for _, l := range [...]string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999-0700"} {
			if t, err := time.Parse(l, s); err == nil {
				return float64(t.UTC().Unix() / 86400), true
			}
		}
	}
	for _, l := range dateLayouts {
		if len(l) > len(s)+6 {
			continue
		}
		if t, err := time.Parse(l, s); err == nil {
			return math.Floor(float64(t.Unix()) / 86400), true
		}
	}
	return 0, false
}

var roleAddress = func() map[string]bool {
	m := make(map[string]bool, len(RoleAddresses))
	for _, r := range RoleAddresses {
		m[r] = true
	}
	return m
}()

func newOptions(cfg Config) *options {
	o := &options{
		email:     cfg.Email,
		dotProv:   map[string]bool{},
		region:    cfg.Phone.region(),
		phones:    memoFor(cfg.Phone.region()),
		nicknames: cfg.Nicknames,
		freeMail:  map[string]bool{},
	}
	for _, d := range cfg.Email.DotProviders {
		o.dotProv[strings.ToLower(d)] = true
	}
	free := cfg.FreeMailDomains
	if len(free) == 0 {
		free = DefaultFreeMailDomains
	}
	for _, d := range free {
		o.freeMail[strings.ToLower(d)] = true
	}
	return o
}
