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
	if a == b {
		if a == "" {
			return 0
		}
		return 1
	}
	if isASCII(a) && isASCII(b) {
		return jaroWinkler(asBytes(a), asBytes(b))
	}
	return jaroWinkler([]rune(a), []rune(b))
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
	if a == b {
		if a == "" {
			return 0
		}
		return 1
	}
	if a == "" || b == "" {
		return 0
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
	if a == b {
		if a == "" {
			return 0
		}
		return 1
	}
	if a == "" || b == "" {
		return 0
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
