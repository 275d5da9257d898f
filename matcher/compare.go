package matcher

import (
	"strings"
	"unsafe"
)

// Comparators work on normalised values. They are symmetric, allocate
// nothing for ASCII inputs of usual length (names, companies), and fall back
// to runes for other scripts.

// maxStack is the input length up to which comparators use stack buffers.
const maxStack = 64

// asBytes views an ASCII string as bytes without copying; callers only read.
func asBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// JaroWinkler returns the Jaro-Winkler similarity of a and b in [0, 1]
// (prefix scale 0.1 over at most 4 characters).
func JaroWinkler(a, b string) float64 {
	if v, ok := settled(a, b); ok {
		return v
	}
	if isASCII(a) && isASCII(b) {
		return jaroWinkler(asBytes(a), asBytes(b))
	}
	return jaroWinkler([]rune(a), []rune(b))
}

// settled returns the similarity the values decide alone: 1 for equal
// values, 0 when either is empty (blank never matches).
func settled(a, b string) (float64, bool) {
	switch {
	case a == "" || b == "":
		return 0, true
	case a == b:
		return 1, true
	}
	return 0, false
}

func jaroWinkler[E byte | rune](a, b []E) float64 {
	j := jaro(a, b)
	if j <= 0.7 {
		return j
	}
	p := 0
	for p < 4 && p < len(a) && p < len(b) && a[p] == b[p] {
		p++
	}
	return j + float64(p)*0.1*(1-j)
}

func jaro[E byte | rune](a, b []E) float64 {
	if len(a) == 0 || len(b) == 0 {
		return 0
	}
	if len(a) > len(b) {
		a, b = b, a
	}
	window := max(len(b)/2-1, 0)
	var ma, mb [maxStack]bool
	var am, bm []bool
	if len(b) <= maxStack {
		am, bm = ma[:len(a)], mb[:len(b)]
	} else {
		am, bm = make([]bool, len(a)), make([]bool, len(b))
	}
	matches := 0
	for i := range a {
		lo, hi := max(0, i-window), min(len(b), i+window+1)
		for k := lo; k < hi; k++ {
			if !bm[k] && a[i] == b[k] {
				am[i], bm[k] = true, true
				matches++
				break
			}
		}
	}
	if matches == 0 {
		return 0
	}
	trans, k := 0, 0
	for i := range a {
		if !am[i] {
			continue
		}
		for !bm[k] {
			k++
		}
		if a[i] != b[k] {
			trans++
		}
		k++
	}
	m := float64(matches)
	return (m/float64(len(a)) + m/float64(len(b)) + (m-float64(trans/2))/m) / 3
}

// LevenshteinWithin reports whether a and b are at most k edits apart
// (insertions, deletions, substitutions), stopping early once every
// alignment needs more than k.
func LevenshteinWithin(a, b string, k int) bool {
	if a == b {
		return true
	}
	if isASCII(a) && isASCII(b) {
		return levenshteinWithin(asBytes(a), asBytes(b), k)
	}
	return levenshteinWithin([]rune(a), []rune(b), k)
}

func levenshteinWithin[E byte | rune](a, b []E, k int) bool {
	if len(a) > len(b) {
		a, b = b, a
	}
	if len(b)-len(a) > k {
		return false
	}
	// Common prefix and suffix cost nothing.
	for len(a) > 0 && a[0] == b[0] {
		a, b = a[1:], b[1:]
	}
	for len(a) > 0 && a[len(a)-1] == b[len(b)-1] {
		a, b = a[:len(a)-1], b[:len(b)-1]
	}
	if len(a) == 0 {
		return len(b) <= k
	}
	var buf [2 * (maxStack + 1)]int
	var prev, cur []int
	if len(b) <= maxStack {
		prev, cur = buf[:len(b)+1], buf[maxStack+1:maxStack+1+len(b)+1]
	} else {
		prev, cur = make([]int, len(b)+1), make([]int, len(b)+1)
	}
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := i
		for j := 1; j <= len(b); j++ {
			v := prev[j-1]
			if a[i-1] != b[j-1] {
				v = min(v, prev[j], cur[j-1]) + 1
			}
			cur[j] = v
			rowMin = min(rowMin, v)
		}
		// Rows never decrease their minimum: stop once it passes k.
		if rowMin > k {
			return false
		}
		prev, cur = cur, prev
	}
	return prev[len(b)] <= k
}

// TokenSet returns the token-set similarity of two space-separated values in
// [0, 1]: the best of the character similarities between the shared tokens
// and each side's full (sorted) token set, so word order and extra words on
// one side ("acme" vs "acme widgets") do not count against a match.
func TokenSet(a, b string) float64 {
	if v, ok := settled(a, b); ok {
		return v
	}
	var ta, tb [16]string
	as, bs := tokens(a, ta[:0]), tokens(b, tb[:0])
	var bufI, bufA, bufB [2 * maxStack]byte
	inter, onlyA, onlyB := bufI[:0], bufA[:0], bufB[:0]
	i, j := 0, 0
	for i < len(as) || j < len(bs) {
		switch {
		case j == len(bs) || i < len(as) && as[i] < bs[j]:
			onlyA = appendTok(onlyA, as[i])
			i++
		case i == len(as) || bs[j] < as[i]:
			onlyB = appendTok(onlyB, bs[j])
			j++
		default:
			inter = appendTok(inter, as[i])
			i, j = i+1, j+1
		}
	}
	if len(inter) > 0 && (len(onlyA) == 0 || len(onlyB) == 0) {
		return 1
	}
	// t1 = inter + onlyA, t2 = inter + onlyB, built after the shared prefix.
	var buf1, buf2 [4 * maxStack]byte
	t1 := appendTok(append(buf1[:0], inter...), string(onlyA))
	t2 := appendTok(append(buf2[:0], inter...), string(onlyB))
	best := indelRatio(t1, t2)
	if len(inter) > 0 {
		best = max(best, indelRatio(inter, t1), indelRatio(inter, t2))
	}
	return best
}

// TokenSort returns the similarity of a and b with their space-separated
// tokens sorted: word order does not count ("smith john" ~ "john smith"),
// but a missing word does, unlike TokenSet.
func TokenSort(a, b string) float64 {
	if v, ok := settled(a, b); ok {
		return v
	}
	var ta, tb [16]string
	var bufA, bufB [2 * maxStack]byte
	sa, sb := bufA[:0], bufB[:0]
	for _, t := range tokens(a, ta[:0]) {
		sa = appendTok(sa, t)
	}
	for _, t := range tokens(b, tb[:0]) {
		sb = appendTok(sb, t)
	}
	return indelRatio(sa, sb)
}

// tokens splits s on spaces into dst and sorts it (insertion sort: few tokens).
func tokens(s string, dst []string) []string {
	for s != "" {
		i := strings.IndexByte(s, ' ')
		if i < 0 {
			dst = append(dst, s)
			break
		}
		if i > 0 {
			dst = append(dst, s[:i])
		}
		s = s[i+1:]
	}
	for i := 1; i < len(dst); i++ {
		for k := i; k > 0 && dst[k] < dst[k-1]; k-- {
			dst[k], dst[k-1] = dst[k-1], dst[k]
		}
	}
	// Duplicates count once: it is a token set.
	out := dst[:0]
	for i, t := range dst {
		if i == 0 || t != dst[i-1] {
			out = append(out, t)
		}
	}
	return out
}

func appendTok(b []byte, t string) []byte {
	if len(b) > 0 && t != "" {
		b = append(b, ' ')
	}
	return append(b, t...)
}

// indelRatio is 2·LCS/(len(a)+len(b)): the similarity fuzzy matchers call
// "ratio". Inputs are bytes: UTF-8 of normalised values.
func indelRatio(a, b []byte) float64 {
	if len(a)+len(b) == 0 {
		return 1
	}
	if len(a) > len(b) {
		a, b = b, a
	}
	var buf [2 * (4*maxStack + 1)]int
	var prev, cur []int
	n := len(a) + 1
	if n <= 4*maxStack+1 {
		prev, cur = buf[:n], buf[n:2*n]
	} else {
		prev, cur = make([]int, n), make([]int, n)
	}
	for j := range b {
		cur[0] = 0
		for i := 1; i < n; i++ {
			switch {
			case a[i-1] == b[j]:
				cur[i] = prev[i-1] + 1
			case prev[i] >= cur[i-1]:
				cur[i] = prev[i]
			default:
				cur[i] = cur[i-1]
			}
		}
		prev, cur = cur, prev
	}
	return 2 * float64(prev[n-1]) / float64(len(a)+len(b))
}

// Soundex returns the American Soundex code of the letters of s ("robert"
// -> "R163"), or "" when s has no ASCII letter.
func Soundex(s string) string {
	var out [4]byte
	n := 0
	var last byte
	for i := 0; i < len(s) && n < 4; i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c < 'a' || c > 'z' {
			continue
		}
		code := soundexCode[c-'a']
		if n == 0 {
			out[0] = c - 'a' + 'A'
			n, last = 1, code
			continue
		}
		switch {
		case code == 'h': // h and w do not separate equal codes
		case code == '0':
			last = 0
		case code != last:
			out[n] = code
			n++
			last = code
		}
	}
	if n == 0 {
		return ""
	}
	for ; n < 4; n++ {
		out[n] = '0'
	}
	return string(out[:])
}

// soundexCode maps a..z to its digit; '0' for vowels, 'h' for h and w.
var soundexCode = [26]byte{
	'0', '1', '2', '3', '0', '1', '2', 'h', '0', '2', '2', '4', '5',
	'5', '0', '1', '2', '6', '2', '3', '0', '1', 'h', '2', '0', '2',
}

// DoubleMetaphone returns Lawrence Philips' Double Metaphone codes of s
// (at most 4 characters each): the primary and the alternate pronunciation,
// equal when there is only one ("Smith" -> "SM0", "XMT"; "Schmidt" ->
// "XMT", "SMT"). It reads ASCII letters and spaces; callers pass normalised
// names, whose accents are already stripped.
func DoubleMetaphone(s string) (primary, alternate string) {
	m := newMetaphone(s)
	if m.length == 0 {
		return "", ""
	}
	m.run()
	p, a := m.primary.String(), m.alternate.String()
	return p[:min(len(p), 4)], a[:min(len(a), 4)]
}

type metaphone struct {
	w                  []byte // upper-case word padded with spaces
	length, last       int
	primary, alternate strings.Builder
	slavoGermanic      bool
}

func newMetaphone(s string) *metaphone {
	w := make([]byte, 0, len(s)+5)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z':
			w = append(w, c-'a'+'A')
		case c >= 'A' && c <= 'Z', c == ' ':
			w = append(w, c)
		}
	}
	ws := strings.TrimSpace(string(w))
	m := &metaphone{w: []byte(ws + "     "), length: len(ws), last: len(ws) - 1}
	m.slavoGermanic = strings.Contains(ws, "W") || strings.Contains(ws, "K") || strings.Contains(ws, "CZ") || strings.Contains(ws, "WITZ")
	return m
}

// at returns the letter at i: 0 before the word, ' ' after it.
func (m *metaphone) at(i int) byte {
	if i < 0 || i >= len(m.w) {
		if i < 0 {
			return 0
		}
		return ' '
	}
	return m.w[i]
}

// is reports whether one of subs starts at i.
func (m *metaphone) is(i int, subs ...string) bool {
	if i < 0 {
		return false
	}
	for _, sub := range subs {
		if i+len(sub) <= len(m.w) && string(m.w[i:i+len(sub)]) == sub {
			return true
		}
	}
	return false
}

func (m *metaphone) vowel(i int) bool {
	switch m.at(i) {
	case 'A', 'E', 'I', 'O', 'U', 'Y':
		return true
	}
	return false
}

// add appends main to the primary code and alt to the alternate; an empty
// alt means the same as main, " " means nothing.
func (m *metaphone) add(main string, alt ...string) {
	m.primary.WriteString(main)
	switch {
	case len(alt) == 0:
		m.alternate.WriteString(main)
	case alt[0] != " ":
		m.alternate.WriteString(alt[0])
	}
}

func (m *metaphone) run() {
	cur := 0
	if m.is(0, "GN", "KN", "PN", "WR", "PS") {
		cur++
	}
	if m.at(0) == 'X' {
		m.add("S")
		cur++
	}
	for cur < m.length && (m.primary.Len() < 4 || m.alternate.Len() < 4) {
		cur = m.step(cur)
	}
}

// step codes the letter at cur and returns the position of the next one.
func (m *metaphone) step(cur int) int {
	next := func(c byte) int { // skip a doubled letter
		if m.at(cur+1) == c {
			return cur + 2
		}
		return cur + 1
	}
	switch c := m.at(cur); c {
	case 'A', 'E', 'I', 'O', 'U', 'Y':
		if cur == 0 {
			m.add("A")
		}
		return cur + 1
	case 'B':
		m.add("P")
		return next('B')
	case 'C':
		return m.stepC(cur)
	case 'D':
		if m.is(cur, "DG") {
			if m.is(cur+2, "I", "E", "Y") {
				m.add("J")
				return cur + 3
			}
			m.add("TK")
			return cur + 2
		}
		m.add("T")
		if m.is(cur, "DT", "DD") {
			return cur + 2
		}
		return cur + 1
	case 'F':
		m.add("F")
		return next('F')
	case 'G':
		return m.stepG(cur)
	case 'H':
		if (cur == 0 || m.vowel(cur-1)) && m.vowel(cur+1) {
			m.add("H")
			return cur + 2
		}
		return cur + 1
	case 'J':
		return m.stepJ(cur)
	case 'K':
		m.add("K")
		return next('K')
	case 'L':
		if m.at(cur+1) == 'L' {
			if (cur == m.length-3 && m.is(cur-1, "ILLO", "ILLA", "ALLE")) ||
				((m.is(m.last-1, "AS", "OS") || m.is(m.last, "A", "O")) && m.is(cur-1, "ALLE")) {
				m.add("L", " ")
				return cur + 2
			}
			m.add("L")
			return cur + 2
		}
		m.add("L")
		return cur + 1
	case 'M':
		m.add("M")
		if (m.is(cur-1, "UMB") && (cur+1 == m.last || m.is(cur+2, "ER"))) || m.at(cur+1) == 'M' {
			return cur + 2
		}
		return cur + 1
	case 'N':
		m.add("N")
		return next('N')
	case 'P':
		if m.at(cur+1) == 'H' {
			m.add("F")
			return cur + 2
		}
		m.add("P")
		if m.is(cur+1, "P", "B") {
			return cur + 2
		}
		return cur + 1
	case 'Q':
		m.add("K")
		return next('Q')
	case 'R':
		if cur == m.last && !m.slavoGermanic && m.is(cur-2, "IE") && !m.is(cur-4, "ME", "MA") {
			m.add("", "R")
		} else {
			m.add("R")
		}
		return next('R')
	case 'S':
		return m.stepS(cur)
	case 'T':
		switch {
		case m.is(cur, "TION"), m.is(cur, "TIA", "TCH"):
			m.add("X")
			return cur + 3
		case m.is(cur, "TH", "TTH"):
			if m.is(cur+2, "OM", "AM") || m.is(0, "VAN ", "VON ", "SCH") {
				m.add("T")
			} else {
				m.add("0", "T")
			}
			return cur + 2
		}
		m.add("T")
		if m.is(cur+1, "T", "D") {
			return cur + 2
		}
		return cur + 1
	case 'V':
		m.add("F")
		return next('V')
	case 'W':
		return m.stepW(cur)
	case 'X':
		if !(cur == m.last && (m.is(cur-3, "IAU", "EAU") || m.is(cur-2, "AU", "OU"))) {
			m.add("KS")
		}
		if m.is(cur+1, "C", "X") {
			return cur + 2
		}
		return cur + 1
	case 'Z':
		if m.at(cur+1) == 'H' {
			m.add("J")
			return cur + 2
		}
		if m.is(cur+1, "ZO", "ZI", "ZA") || (m.slavoGermanic && cur > 0 && m.at(cur-1) != 'T') {
			m.add("S", "TS")
		} else {
			m.add("S")
		}
		return next('Z')
	}
	return cur + 1
}

func (m *metaphone) stepC(cur int) int {
	switch {
	case cur > 1 && !m.vowel(cur-2) && m.is(cur-1, "ACH") && m.at(cur+2) != 'I' &&
		(m.at(cur+2) != 'E' || m.is(cur-2, "BACHER", "MACHER")):
		m.add("K")
		return cur + 2
	case cur == 0 && m.is(cur, "CAESAR"):
		m.add("S")
		return cur + 2
	case m.is(cur, "CHIA"):
		m.add("K")
		return cur + 2
	case m.is(cur, "CH"):
		switch {
		case cur > 0 && m.is(cur, "CHAE"):
			m.add("K", "X")
		case cur == 0 && (m.is(cur+1, "HARAC", "HARIS") || m.is(cur+1, "HOR", "HYM", "HIA", "HEM")) && !m.is(0, "CHORE"):
			m.add("K")
		case m.is(0, "VAN ", "VON ", "SCH") || m.is(cur-2, "ORCHES", "ARCHIT", "ORCHID") || m.is(cur+2, "T", "S") ||
			((m.is(cur-1, "A", "O", "U", "E") || cur == 0) && m.is(cur+2, "L", "R", "N", "M", "B", "H", "F", "V", "W", " ")):
			m.add("K")
		case cur > 0 && m.is(0, "MC"):
			m.add("K")
		case cur > 0:
			m.add("X", "K")
		default:
			m.add("X")
		}
		return cur + 2
	case m.is(cur, "CZ") && !m.is(cur-2, "WICZ"):
		m.add("S", "X")
		return cur + 2
	case m.is(cur+1, "CIA"):
		m.add("X")
		return cur + 3
	case m.is(cur, "CC") && !(cur == 1 && m.at(0) == 'M'):
		if m.is(cur+2, "I", "E", "H") && !m.is(cur+2, "HU") {
			if (cur == 1 && m.at(cur-1) == 'A') || m.is(cur-1, "UCCEE", "UCCES") {
				m.add("KS")
			} else {
				m.add("X")
			}
			return cur + 3
		}
		m.add("K")
		return cur + 2
	case m.is(cur, "CK", "CG", "CQ"):
		m.add("K")
		return cur + 2
	case m.is(cur, "CI", "CE", "CY"):
		if m.is(cur, "CIO", "CIE", "CIA") {
			m.add("S", "X")
		} else {
			m.add("S")
		}
		return cur + 2
	}
	m.add("K")
	switch {
	case m.is(cur+1, " C", " Q", " G"):
		return cur + 3
	case m.is(cur+1, "C", "K", "Q") && !m.is(cur+1, "CE", "CI"):
		return cur + 2
	}
	return cur + 1
}

func (m *metaphone) stepG(cur int) int {
	if m.at(cur+1) == 'H' {
		switch {
		case cur > 0 && !m.vowel(cur-1):
			m.add("K")
		case cur == 0:
			if m.at(cur+2) == 'I' {
				m.add("J")
			} else {
				m.add("K")
			}
		case (cur > 1 && m.is(cur-2, "B", "H", "D")) || (cur > 2 && m.is(cur-3, "B", "H", "D")) || (cur > 3 && m.is(cur-4, "B", "H")):
			// "Hugh", "bough": silent.
		case cur > 2 && m.at(cur-1) == 'U' && m.is(cur-3, "C", "G", "L", "R", "T"):
			m.add("F") // "laugh", "tough"
		case m.at(cur-1) != 'I':
			m.add("K")
		}
		return cur + 2
	}
	switch {
	case m.at(cur+1) == 'N':
		switch {
		case cur == 1 && m.vowel(0) && !m.slavoGermanic:
			m.add("KN", "N")
		case !m.is(cur+2, "EY") && m.at(cur+1) != 'Y' && !m.slavoGermanic:
			m.add("N", "KN")
		default:
			m.add("KN")
		}
		return cur + 2
	case m.is(cur+1, "LI") && !m.slavoGermanic:
		m.add("KL", "L")
		return cur + 2
	case cur == 0 && (m.at(cur+1) == 'Y' || m.is(cur+1, "ES", "EP", "EB", "EL", "EY", "IB", "IL", "IN", "IE", "EI", "ER")):
		m.add("K", "J")
		return cur + 2
	case (m.is(cur+1, "ER") || m.at(cur+1) == 'Y') && !m.is(0, "DANGER", "RANGER", "MANGER") &&
		!m.is(cur-1, "E", "I") && !m.is(cur-1, "RGY", "OGY"):
		m.add("K", "J")
		return cur + 2
	case m.is(cur+1, "E", "I", "Y") || m.is(cur-1, "AGGI", "OGGI"):
		switch {
		case m.is(0, "VAN ", "VON ", "SCH") || m.is(cur+1, "ET"):
			m.add("K")
		case m.is(cur+1, "IER "):
			m.add("J")
		default:
			m.add("J", "K")
		}
		return cur + 2
	}
	m.add("K")
	if m.at(cur+1) == 'G' {
		return cur + 2
	}
	return cur + 1
}

func (m *metaphone) stepJ(cur int) int {
	if m.is(cur, "JOSE") || m.is(0, "SAN ") {
		if (cur == 0 && m.at(cur+4) == ' ') || m.is(0, "SAN ") {
			m.add("H")
		} else {
			m.add("J", "H")
		}
		return cur + 1
	}
	switch {
	case cur == 0:
		m.add("J", "A")
	case m.vowel(cur-1) && !m.slavoGermanic && (m.at(cur+1) == 'A' || m.at(cur+1) == 'O'):
		m.add("J", "H")
	case cur == m.last:
		m.add("J", " ")
	case !m.is(cur+1, "L", "T", "K", "S", "N", "M", "B", "Z") && !m.is(cur-1, "S", "K", "L"):
		m.add("J")
	}
	if m.at(cur+1) == 'J' {
		return cur + 2
	}
	return cur + 1
}

func (m *metaphone) stepS(cur int) int {
	switch {
	case m.is(cur-1, "ISL", "YSL"):
		return cur + 1 // "island", "carlysle": silent
	case cur == 0 && m.is(cur, "SUGAR"):
		m.add("X", "S")
		return cur + 1
	case m.is(cur, "SH"):
		if m.is(cur+1, "HEIM", "HOEK", "HOLM", "HOLZ") {
			m.add("S")
		} else {
			m.add("X")
		}
		return cur + 2
	case m.is(cur, "SIO", "SIA") || m.is(cur, "SIAN"):
		if m.slavoGermanic {
			m.add("S")
		} else {
			m.add("S", "X")
		}
		return cur + 3
	case (cur == 0 && m.is(cur+1, "M", "N", "L", "W")) || m.is(cur+1, "Z"):
		m.add("S", "X")
		if m.is(cur+1, "Z") {
			return cur + 2
		}
		return cur + 1
	case m.is(cur, "SC"):
		switch {
		case m.at(cur+2) == 'H':
			switch {
			case m.is(cur+3, "ER", "EN"):
				m.add("X", "SK")
			case m.is(cur+3, "OO", "UY", "ED", "EM"):
				m.add("SK")
			case cur == 0 && !m.vowel(3) && m.at(3) != 'W':
				m.add("X", "S")
			default:
				m.add("X")
			}
		case m.is(cur+2, "I", "E", "Y"):
			m.add("S")
		default:
			m.add("SK")
		}
		return cur + 3
	}
	if cur == m.last && m.is(cur-2, "AI", "OI") {
		m.add("", "S")
	} else {
		m.add("S")
	}
	if m.is(cur+1, "S", "Z") {
		return cur + 2
	}
	return cur + 1
}

func (m *metaphone) stepW(cur int) int {
	if m.is(cur, "WR") {
		m.add("R")
		return cur + 2
	}
	if cur == 0 && (m.vowel(cur+1) || m.is(cur, "WH")) {
		if m.vowel(cur + 1) {
			m.add("A", "F")
		} else {
			m.add("A")
		}
	}
	if (cur == m.last && m.vowel(cur-1)) || m.is(cur-1, "EWSKI", "EWSKY", "OWSKI", "OWSKY") || m.is(0, "SCH") {
		m.add("", "F")
		return cur + 1
	}
	if m.is(cur, "WICZ", "WITZ") {
		m.add("TS", "FX")
		return cur + 4
	}
	return cur + 1
}
