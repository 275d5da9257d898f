package matcher

import (
	"math"
	"strings"
	"testing"
)

func TestJaroWinkler(t *testing.T) {
	tests := []struct {
		a, b string
		want float64
	}{
		// Reference values from Winkler's papers and common implementations.
		{"martha", "marhta", 0.9611},
		{"dwayne", "duane", 0.8400},
		{"dixon", "dicksonx", 0.8133},
		{"jellyfish", "smellyfish", 0.8963},
		{"smith", "smith", 1},
		{"smith", "", 0},
		{"", "", 0},
		{"abc", "xyz", 0},
		{"müller", "muller", 0.9000},
		{"josé", "jose", 0.8833},
	}
	for _, tt := range tests {
		for _, p := range [][2]string{{tt.a, tt.b}, {tt.b, tt.a}} {
			if got := JaroWinkler(p[0], p[1]); math.Abs(got-tt.want) > 0.00005 {
				t.Errorf("JaroWinkler(%q, %q) = %.4f, want %.4f", p[0], p[1], got, tt.want)
			}
		}
	}
	// Long inputs take the heap path and agree with the stack path's rules.
	long := "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz"
	if got := JaroWinkler(long, long+"x"); got < 0.99 || got >= 1 {
		t.Errorf("JaroWinkler of long near-equal strings = %.4f", got)
	}
}

func TestLevenshteinWithin(t *testing.T) {
	tests := []struct {
		a, b string
		dist int // true edit distance
	}{
		{"kitten", "sitting", 3},
		{"flaw", "lawn", 2},
		{"smith", "smith", 0},
		{"smith", "smyth", 1},
		{"", "abc", 3},
		{"abc", "", 3},
		{"1970-01-02", "1970-02-01", 2},
		{"schröder", "schroder", 1},
		{"ab", "ba", 2},
		{"prefixAsuffix", "prefixBBsuffix", 2},
	}
	for _, tt := range tests {
		for k := 0; k <= tt.dist+1; k++ {
			want := tt.dist <= k
			if got := LevenshteinWithin(tt.a, tt.b, k); got != want {
				t.Errorf("LevenshteinWithin(%q, %q, %d) = %v, want %v (distance %d)", tt.a, tt.b, k, got, want, tt.dist)
			}
			if got := LevenshteinWithin(tt.b, tt.a, k); got != want {
				t.Errorf("LevenshteinWithin(%q, %q, %d) = %v, not symmetric", tt.b, tt.a, k, got)
			}
		}
	}
	long := make([]byte, 100)
	for i := range long {
		long[i] = byte('a' + i%26)
	}
	other := append([]byte{}, long...)
	other[10], other[90] = 'X', 'Y'
	if !LevenshteinWithin(string(long), string(other), 2) || LevenshteinWithin(string(long), string(other), 1) {
		t.Error("LevenshteinWithin on 100-byte inputs: want distance 2")
	}
}

func TestTokenSet(t *testing.T) {
	tests := []struct {
		a, b string
		min  float64 // inclusive bounds
		max  float64
	}{
		{"acme widgets", "acme", 1, 1},
		{"widgets acme", "acme widgets", 1, 1},
		{"john smith", "smith john", 1, 1},
		{"acme acme", "acme", 1, 1},
		{"acme", "", 0, 0},
		{"", "", 0, 0},
		{"acme widgets", "acme wigdets", 0.9, 0.99},
		{"globex", "initech", 0, 0.5},
		{"mary jane smith", "mary smith", 1, 1},
	}
	for _, tt := range tests {
		for _, p := range [][2]string{{tt.a, tt.b}, {tt.b, tt.a}} {
			if got := TokenSet(p[0], p[1]); got < tt.min || got > tt.max {
				t.Errorf("TokenSet(%q, %q) = %.4f, want in [%.2f, %.2f]", p[0], p[1], got, tt.min, tt.max)
			}
		}
	}
}

func TestTokenSort(t *testing.T) {
	tests := []struct {
		a, b string
		min  float64
		max  float64
	}{
		{"john smith", "smith john", 1, 1},
		{"john smith", "john smith", 1, 1},
		// Unlike TokenSet, a missing word counts.
		{"mary jane smith", "mary smith", 0.7, 0.9},
		{"jon smith", "smith john", 0.9, 0.99},
		{"abc", "", 0, 0},
		{"", "", 0, 0},
	}
	for _, tt := range tests {
		for _, p := range [][2]string{{tt.a, tt.b}, {tt.b, tt.a}} {
			if got := TokenSort(p[0], p[1]); got < tt.min || got > tt.max {
				t.Errorf("TokenSort(%q, %q) = %.4f, want in [%.2f, %.2f]", p[0], p[1], got, tt.min, tt.max)
			}
		}
	}
}

func TestIndelRatio(t *testing.T) {
	tests := []struct {
		a, b string
		want float64
	}{
		{"abc", "abc", 1},
		{"abc", "abd", 2 * 2.0 / 6},
		{"", "", 1},
		{"abc", "", 0},
		{"acme", "acne", 0.75},
	}
	for _, tt := range tests {
		if got := indelRatio([]byte(tt.a), []byte(tt.b)); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("indelRatio(%q, %q) = %.4f, want %.4f", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestSoundex(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Robert", "R163"},
		{"Rupert", "R163"},
		{"Rubin", "R150"},
		{"Ashcraft", "A261"},
		{"Ashcroft", "A261"},
		{"Tymczak", "T522"},
		{"Pfister", "P236"},
		{"Honeyman", "H555"},
		{"Lee", "L000"},
		{"smith", "S530"},
		{"smyth", "S530"},
		{"o connor", "O256"},
		{"123", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := Soundex(tt.in); got != tt.want {
			t.Errorf("Soundex(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// The comparators allocate nothing on normalised ASCII names: they run for
// every candidate pair.
func TestComparatorsDoNotAllocate(t *testing.T) {
	a, b := "jonathan smithers", "johnathan smithres"
	for name, f := range map[string]func(){
		"jaro_winkler": func() { JaroWinkler(a, b) },
		"levenshtein":  func() { LevenshteinWithin(a, b, 3) },
		"token_set":    func() { TokenSet(a, b) },
		"token_sort":   func() { TokenSort(a, b) },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %.0f allocations per call", name, n)
		}
	}
}

func TestDoubleMetaphone(t *testing.T) {
	tests := []struct{ in, primary, alternate string }{
		{"Smith", "SM0", "XMT"},
		{"Schmidt", "XMT", "SMT"},
		{"Michael", "MKL", "MXL"},
		{"Xavier", "SF", "SFR"},
		{"Catherine", "K0RN", "KTRN"},
		{"Kathryn", "K0RN", "KTRN"},
		{"Jose", "HS", "HS"},
		{"Stephen", "STFN", "STFN"},
		{"Steven", "STFN", "STFN"},
		{"Edge", "AJ", "AJ"},
		{"Caesar", "SSR", "SSR"},
		{"Philips", "FLPS", "FLPS"},
		{"Knight", "NT", "NT"},
		{"Wright", "RT", "RT"},
		{"Laugh", "LF", "LF"},
		{"Hugh", "H", "H"},
		{"Gnome", "NM", "NM"},
		{"Chemistry", "KMST", "KMST"},
		{"Chorus", "KRS", "KRS"},
		{"Church", "XRX", "XRK"},
		{"Jon", "JN", "AN"},
		{"Thomas", "TMS", "TMS"},
		{"Cabrillo", "KPRL", "KPR"},
		{"Wojcik", "AJSK", "FJSK"},
		{"Schneider", "XNTR", "SNTR"},
		{"van der berg", "FNTR", "FNTR"},
		{"", "", ""},
		{"123", "", ""},
	}
	for _, tt := range tests {
		p, a := DoubleMetaphone(tt.in)
		if p != tt.primary || a != tt.alternate {
			t.Errorf("DoubleMetaphone(%q) = %q, %q; want %q, %q", tt.in, p, a, tt.primary, tt.alternate)
		}
		// Case does not matter.
		if p2, a2 := DoubleMetaphone(strings.ToLower(tt.in)); p2 != p || a2 != a {
			t.Errorf("DoubleMetaphone(%q) differs from upper case", strings.ToLower(tt.in))
		}
	}
}

// FuzzCompare checks the comparators' invariants: symmetric, in [0, 1], 1 on
// equal non-empty input, Levenshtein monotone in k.
func FuzzCompare(f *testing.F) {
	f.Add("jonathan smith", "john smithe")
	f.Add("müller", "muller")
	f.Add("", "x")
	f.Add("a b c d e f g h i j k l m n o p q r", "r q p")
	f.Fuzz(func(t *testing.T, a, b string) {
		for name, fn := range map[string]func(string, string) float64{"jaro_winkler": JaroWinkler, "token_set": TokenSet, "token_sort": TokenSort} {
			x, y := fn(a, b), fn(b, a)
			if math.Abs(x-y) > 1e-9 || x < 0 || x > 1+1e-9 || math.IsNaN(x) {
				t.Fatalf("%s(%q, %q) = %v, reversed %v", name, a, b, x, y)
			}
			if a != "" && fn(a, a) != 1 {
				t.Fatalf("%s(%q, itself) = %v", name, a, fn(a, a))
			}
		}
		prev := false
		for k := 0; k <= 4; k++ {
			w := LevenshteinWithin(a, b, k)
			if w != LevenshteinWithin(b, a, k) || (prev && !w) {
				t.Fatalf("LevenshteinWithin(%q, %q, %d) = %v (k-1: %v)", a, b, k, w, prev)
			}
			prev = w
		}
	})
}
