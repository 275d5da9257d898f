package matcher

import (
	"strings"
	"testing"
)

func TestDefaultConfigValid(t *testing.T) {
	if err := DefaultConfig().Validate("matching"); err != nil {
		t.Fatal(err)
	}
	rs := mustCompile(t, DefaultConfig(), nil)
	names := []string{}
	for _, r := range rs.Config().Rules {
		names = append(names, r.Name)
	}
	if got := strings.Join(names, ","); got != "email,phone_last_name,name_company" {
		t.Fatalf("default rules %s", got)
	}
}

func TestValidate(t *testing.T) {
	cond := func(c Condition) Config {
		return Config{Rules: []Rule{{Name: "r", All: []Condition{
			{Field: "Email", Normalizer: "email", Comparator: "exact"}, c}}}}
	}
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none means valid
	}{
		{"valid", cond(Condition{Field: "LastName", Normalizer: "name", Comparator: "jaro_winkler", Threshold: 0.9}), nil},
		{"no rules", Config{}, []string{"m.rules: at least one rule is required"}},
		{"negative block size", Config{MaxBlockSize: -1, Rules: DefaultConfig().Rules}, []string{"m.max_block_size: must be positive"}},
		{"bad country", Config{Phone: PhoneOptions{DefaultCountry: "+1"}, Rules: DefaultConfig().Rules}, []string{"m.phone.default_country"}},
		{"long country", Config{Phone: PhoneOptions{DefaultCountry: "1234"}, Rules: DefaultConfig().Rules}, []string{"m.phone.default_country"}},
		{"unnamed rule", Config{Rules: []Rule{{All: []Condition{{Field: "Email", Normalizer: "email", Comparator: "exact"}}}}}, []string{"m.rules[0].name: is required"}},
		{"duplicate rule", Config{Rules: []Rule{
			{Name: "a", All: []Condition{{Field: "Email", Normalizer: "email", Comparator: "exact"}}},
			{Name: "a", All: []Condition{{Field: "Phone", Normalizer: "phone", Comparator: "exact"}}},
		}}, []string{`m.rules[1].name: duplicate rule name "a"`}},
		{"rule name with colon", Config{Rules: []Rule{{Name: "a:b", All: []Condition{{Field: "Email", Normalizer: "email", Comparator: "exact"}}}}}, []string{"m.rules[0].name: must not contain"}},
		{"empty rule", Config{Rules: []Rule{{Name: "a"}}}, []string{"m.rules[0].all: at least one condition"}},
		{"no blocking part", Config{Rules: []Rule{{Name: "a", All: []Condition{
			{Field: "LastName", Normalizer: "name", Comparator: "jaro_winkler", Threshold: 0.9}}}}}, []string{"m.rules[0].all: needs a non-optional exact or phonetic"}},
		{"optional blocking part", Config{Rules: []Rule{{Name: "a", All: []Condition{
			{Field: "Email", Normalizer: "email", Comparator: "exact", Optional: true}}}}}, []string{"m.rules[0].all: needs a non-optional"}},
		{"no field", cond(Condition{Normalizer: "name", Comparator: "exact"}), []string{"m.rules[0].all[1].field: field or fields is required"}},
		{"field and fields", cond(Condition{Field: "A", Fields: []string{"B"}, Normalizer: "name", Comparator: "exact"}), []string{"all[1].fields: set either field or fields"}},
		{"empty field name", cond(Condition{Fields: []string{"A", ""}, Normalizer: "name", Comparator: "exact"}), []string{"all[1].fields[1]: must not be empty"}},
		{"bad combine", cond(Condition{Fields: []string{"A", "B"}, Combine: "join", Normalizer: "name", Comparator: "exact"}), []string{`all[1].combine: unknown "join"`}},
		{"bad normalizer", cond(Condition{Field: "A", Normalizer: "upper", Comparator: "exact"}), []string{`all[1].normalizer: unknown "upper"`}},
		{"bad comparator", cond(Condition{Field: "A", Normalizer: "text", Comparator: "fuzzy"}), []string{`all[1].comparator: unknown "fuzzy"`}},
		{"jaro_winkler without threshold", cond(Condition{Field: "A", Normalizer: "text", Comparator: "jaro_winkler"}), []string{"all[1].threshold: must be in (0, 1] for jaro_winkler"}},
		{"token_set above 1", cond(Condition{Field: "A", Normalizer: "text", Comparator: "token_set", Threshold: 1.5}), []string{"for token_set, got 1.5"}},
		{"levenshtein fraction", cond(Condition{Field: "A", Normalizer: "text", Comparator: "levenshtein", Threshold: 1.5}), []string{"whole number of edits"}},
		{"levenshtein too many", cond(Condition{Field: "A", Normalizer: "text", Comparator: "levenshtein", Threshold: 9}), []string{"whole number of edits"}},
		{"levenshtein zero", cond(Condition{Field: "A", Normalizer: "text", Comparator: "levenshtein"}), nil},
		{"negative number_within", cond(Condition{Field: "A", Normalizer: "none", Comparator: "number_within", Threshold: -1}), []string{"must not be negative for number_within"}},
		{"date_within", cond(Condition{Field: "A", Normalizer: "none", Comparator: "date_within", Threshold: 30}), nil},
		{"double metaphone", cond(Condition{Field: "A", Normalizer: "name", Comparator: "phonetic", Algorithm: "double_metaphone"}), nil},
		{"bad algorithm", cond(Condition{Field: "A", Normalizer: "name", Comparator: "phonetic", Algorithm: "nysiis"}), []string{`all[1].algorithm: unknown "nysiis"`}},
		{"algorithm off phonetic", cond(Condition{Field: "A", Normalizer: "name", Comparator: "exact", Algorithm: "soundex"}), []string{"only applies to the phonetic comparator"}},
		{"all problems reported", Config{MaxBlockSize: -5, Rules: []Rule{{Name: "a", All: []Condition{{Field: "A", Normalizer: "x", Comparator: "y"}}}}},
			[]string{"max_block_size", "normalizer", "comparator", "blocking"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate("m")
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if _, cerr := Compile(tt.cfg, nil); cerr == nil {
				t.Error("Compile accepted an invalid config")
			}
		})
	}
}

func TestCompileDefaults(t *testing.T) {
	rs := mustCompile(t, Config{Rules: DefaultConfig().Rules}, nil)
	c := rs.Config()
	if rs.MaxBlockSize() != DefaultMaxBlockSize || c.AccountNameField != "Name" || c.AccountField != "Company" || c.ConvertedField != "IsConverted" {
		t.Fatalf("defaults not applied: %+v", c)
	}
	rs = mustCompile(t, Config{Rules: DefaultConfig().Rules, MaxBlockSize: 7}, nil)
	if rs.MaxBlockSize() != 7 {
		t.Fatalf("MaxBlockSize %d, want 7", rs.MaxBlockSize())
	}
}
