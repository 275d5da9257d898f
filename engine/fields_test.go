package engine

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/leadconv/leadconv/record"
)

// fv is one record of a field-strategy case: the master is the record with
// master set (the config's specified_values picks it).
type fv struct {
	id       string
	contact  bool
	master   bool
	created  int
	modified int
	v        any
	absent   bool
}

func fieldCluster(recs []fv) Cluster {
	out := make([]record.Record, len(recs))
	for i, r := range recs {
		f := record.Fields{"Company": "Acme"}
		if !r.absent {
			f["F"] = r.v
		}
		if r.master {
			f["M"] = "master"
		}
		obj := record.Lead
		if r.contact {
			obj = record.Contact
		}
		out[i] = rb{obj: obj, id: r.id, created: r.created, modified: r.modified, fields: f}.rec()
	}
	return cluster(out...)
}

func fieldCfg(strategy string, blanks *bool, global bool) *Config {
	return cfgWith(func(c *Config) {
		c.Master = MasterConfig{Strategy: MasterSpecifiedValues, Field: "M", Values: []string{"master"}, Fallback: FallbackDoNotConvert}
		c.PreferExistingContact = false // the master is whichever record the test marks
		c.Fields.ConsiderBlanks = global
		c.Fields.Overrides = []FieldOverride{{Field: "F", Strategy: strategy, ConsiderBlanks: blanks}}
	})
}

// fieldResult returns field F of a plan's first command and its explain.
func fieldResult(t *testing.T, r Result) (v any, present bool, fe FieldExplain) {
	t.Helper()
	if len(r.Commands) == 0 {
		t.Fatalf("no commands (reason %q)", r.Reason)
	}
	c := r.Commands[0]
	lc, ok := c.Data.(*LeadConvert)
	if !ok {
		t.Fatalf("first command is %s, want lead.convert", c.Kind)
	}
	v, present = lc.Fields["F"]
	i := slices.IndexFunc(c.Explain.Fields, func(f FieldExplain) bool { return f.Field == "F" })
	if i < 0 {
		t.Fatalf("no explain for F: %+v", c.Explain.Fields)
	}
	return v, present, c.Explain.Fields[i]
}

func TestFieldStrategies(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name     string
		strategy string
		blanks   *bool // per-override consider_blanks
		global   bool  // fields.consider_blanks
		recs     []fv
		want     any
		from     []string
		kept     bool
		absent   bool // F left out of the written fields
	}{
		{name: "take_from_master keeps master value", strategy: FieldTakeFromMaster,
			recs: []fv{{id: "a", master: true, v: "x"}, {id: "b", modified: 5, v: "y"}}, want: "x", from: []string{"a"}},
		{name: "take_from_master keeps master blank", strategy: FieldTakeFromMaster,
			recs: []fv{{id: "a", master: true, v: ""}, {id: "b", modified: 5, v: "y"}}, want: "", from: []string{"a"}},
		{name: "take_any master non-blank", strategy: FieldTakeAnyWhenMasterBlank,
			recs: []fv{{id: "a", master: true, v: "x"}, {id: "b", modified: 5, v: "y"}}, want: "x", from: []string{"a"}},
		{name: "take_any newest non-blank when master blank", strategy: FieldTakeAnyWhenMasterBlank,
			recs: []fv{{id: "a", master: true, modified: 9, v: " "}, {id: "b", modified: 5, v: "y"}, {id: "c", modified: 7, v: nil}, {id: "d", modified: 1, v: "z"}},
			want: "y", from: []string{"b"}},
		{name: "take_any modified tie goes to smallest id", strategy: FieldTakeAnyWhenMasterBlank,
			recs: []fv{{id: "a", master: true, absent: true}, {id: "c", modified: 5, v: "c"}, {id: "b", modified: 5, v: "b"}},
			want: "b", from: []string{"b"}},
		{name: "take_any nothing usable keeps master", strategy: FieldTakeAnyWhenMasterBlank,
			recs: []fv{{id: "a", master: true, v: ""}, {id: "b", modified: 5, v: nil}}, want: "", from: []string{"a"}, kept: true},

		{name: "most_common folds case and space, keeps newest spelling", strategy: FieldMostCommon,
			recs: []fv{{id: "a", master: true, modified: 1, v: "Tech"}, {id: "b", modified: 3, v: " TECH "}, {id: "c", modified: 2, v: "Retail"}},
			want: " TECH ", from: []string{"b"}},
		{name: "most_common count tie goes to newest holder", strategy: FieldMostCommon,
			recs: []fv{{id: "a", master: true, modified: 1, v: "x"}, {id: "b", modified: 4, v: "y"}, {id: "c", modified: 2, v: "x"}, {id: "d", modified: 3, v: "y"}},
			want: "y", from: []string{"b"}},
		{name: "most_common skips blanks", strategy: FieldMostCommon,
			recs: []fv{{id: "a", master: true, modified: 1, v: ""}, {id: "b", modified: 2, v: nil}, {id: "c", modified: 3, v: "x"}},
			want: "x", from: []string{"c"}},
		{name: "most_common consider_blanks lets blank win", strategy: FieldMostCommon, blanks: &yes,
			recs: []fv{{id: "a", master: true, modified: 1, v: ""}, {id: "b", modified: 2, v: "  "}, {id: "c", modified: 3, v: "x"}},
			want: "  ", from: []string{"b"}},
		{name: "most_common global consider_blanks", strategy: FieldMostCommon, global: true,
			recs: []fv{{id: "a", master: true, modified: 1, v: "x"}, {id: "b", modified: 2, v: nil}, {id: "c", modified: 3, absent: true}},
			want: nil, from: []string{"c"}},
		{name: "most_common override turns global consider_blanks off", strategy: FieldMostCommon, global: true, blanks: &no,
			recs: []fv{{id: "a", master: true, modified: 1, v: "x"}, {id: "b", modified: 2, v: nil}, {id: "c", modified: 3, absent: true}},
			want: "x", from: []string{"a"}},
		{name: "most_common numbers", strategy: FieldMostCommon,
			recs: []fv{{id: "a", master: true, modified: 1, v: 5.0}, {id: "b", modified: 2, v: "5"}, {id: "c", modified: 3, v: 7.0}},
			want: "5", from: []string{"b"}},
		{name: "most_common nothing keeps master", strategy: FieldMostCommon,
			recs: []fv{{id: "a", master: true, v: ""}, {id: "b", modified: 2, absent: true}}, want: "", from: []string{"a"}, kept: true},

		{name: "newest_modified skips blank", strategy: FieldNewestModified,
			recs: []fv{{id: "a", master: true, modified: 1, v: "old"}, {id: "b", modified: 3, v: ""}, {id: "c", modified: 2, v: "mid"}},
			want: "mid", from: []string{"c"}},
		{name: "newest_modified consider_blanks takes blank", strategy: FieldNewestModified, blanks: &yes,
			recs: []fv{{id: "a", master: true, modified: 1, v: "old"}, {id: "b", modified: 3, v: ""}, {id: "c", modified: 2, v: "mid"}},
			want: "", from: []string{"b"}},
		{name: "newest_modified consider_blanks clears with absent", strategy: FieldNewestModified, blanks: &yes,
			recs: []fv{{id: "a", master: true, modified: 1, v: "old"}, {id: "b", modified: 3, absent: true}},
			want: nil, from: []string{"b"}},
		{name: "newest_modified tie smallest id", strategy: FieldNewestModified,
			recs: []fv{{id: "a", master: true, modified: 1, v: "old"}, {id: "c", modified: 3, v: "c"}, {id: "b", modified: 3, v: "b"}},
			want: "b", from: []string{"b"}},
		{name: "oldest_modified", strategy: FieldOldestModified,
			recs: []fv{{id: "a", master: true, modified: 5, v: "m"}, {id: "b", modified: 1, v: ""}, {id: "c", modified: 2, v: "c"}},
			want: "c", from: []string{"c"}},
		{name: "oldest_modified consider_blanks", strategy: FieldOldestModified, blanks: &yes,
			recs: []fv{{id: "a", master: true, modified: 5, v: "m"}, {id: "b", modified: 1, v: ""}, {id: "c", modified: 2, v: "c"}},
			want: "", from: []string{"b"}},
		{name: "newest_created", strategy: FieldNewestCreated,
			recs: []fv{{id: "a", master: true, created: 1, modified: 9, v: "m"}, {id: "b", created: 4, v: "b"}, {id: "c", created: 6, v: nil}},
			want: "b", from: []string{"b"}},
		{name: "newest_created consider_blanks", strategy: FieldNewestCreated, blanks: &yes,
			recs: []fv{{id: "a", master: true, created: 1, modified: 9, v: "m"}, {id: "b", created: 4, v: "b"}, {id: "c", created: 6, v: nil}},
			want: nil, from: []string{"c"}},
		{name: "newest_created tie goes to newest modified", strategy: FieldNewestCreated,
			recs: []fv{{id: "a", master: true, created: 1, v: "m"}, {id: "b", created: 4, modified: 1, v: "b"}, {id: "c", created: 4, modified: 2, v: "c"}},
			want: "c", from: []string{"c"}},
		{name: "oldest_created", strategy: FieldOldestCreated,
			recs: []fv{{id: "a", master: true, created: 3, v: "m"}, {id: "b", created: 1, v: "  "}, {id: "c", created: 2, v: "c"}},
			want: "c", from: []string{"c"}},
		{name: "oldest_created consider_blanks", strategy: FieldOldestCreated, global: true,
			recs: []fv{{id: "a", master: true, created: 3, v: "m"}, {id: "b", created: 1, v: "  "}, {id: "c", created: 2, v: "c"}},
			want: "  ", from: []string{"b"}},

		{name: "max_number mixes types, ignores text", strategy: FieldMaxNumber,
			recs: []fv{{id: "a", master: true, v: 10.0}, {id: "b", modified: 1, v: " 12.5 "}, {id: "c", modified: 2, v: "n/a"}, {id: "d", modified: 3, v: json.Number("11")}},
			want: " 12.5 ", from: []string{"b"}},
		{name: "max_number ignores blanks even with consider_blanks", strategy: FieldMaxNumber, blanks: &yes,
			recs: []fv{{id: "a", master: true, v: ""}, {id: "b", modified: 1, v: "-3"}}, want: "-3", from: []string{"b"}},
		{name: "max_number tie goes to newest modified", strategy: FieldMaxNumber,
			recs: []fv{{id: "a", master: true, modified: 1, v: 10.0}, {id: "b", modified: 2, v: "10.0"}}, want: "10.0", from: []string{"b"}},
		{name: "min_number", strategy: FieldMinNumber,
			recs: []fv{{id: "a", master: true, v: 10.0}, {id: "b", modified: 1, v: "-2"}, {id: "c", modified: 2, v: "NaN"}, {id: "d", modified: 3, v: true}},
			want: "-2", from: []string{"b"}},
		{name: "min_number nothing numeric keeps master", strategy: FieldMinNumber,
			recs: []fv{{id: "a", master: true, v: "none"}, {id: "b", modified: 1, v: "Inf"}}, want: "none", from: []string{"a"}, kept: true},

		{name: "longest_text counts runes not bytes", strategy: FieldLongestText,
			recs: []fv{{id: "a", master: true, v: "abcd"}, {id: "b", modified: 1, v: "ééé"}}, want: "abcd", from: []string{"a"}},
		{name: "longest_text tie goes to newest modified", strategy: FieldLongestText,
			recs: []fv{{id: "a", master: true, modified: 1, v: "abc"}, {id: "b", modified: 2, v: "xyz"}}, want: "xyz", from: []string{"b"}},
		{name: "shortest_text ignores empty", strategy: FieldShortestText,
			recs: []fv{{id: "a", master: true, v: "abcd"}, {id: "b", modified: 1, v: " "}, {id: "c", modified: 2, v: "ééé"}}, want: "ééé", from: []string{"c"}},
		{name: "shortest_text ignores blanks with consider_blanks", strategy: FieldShortestText, global: true,
			recs: []fv{{id: "a", master: true, v: "ab"}, {id: "b", modified: 1, v: ""}}, want: "ab", from: []string{"a"}},

		{name: "combine_values master first then newest, dedup case-insensitive", strategy: FieldCombineValues,
			recs: []fv{{id: "a", master: true, modified: 1, v: "Red; blue"}, {id: "b", modified: 2, v: "green;;BLUE"}, {id: "c", modified: 3, v: " yellow ; red"}, {id: "d", modified: 4, v: ""}},
			want: "Red;blue;yellow;green", from: []string{"a", "c", "b"}},
		{name: "combine_values master blank", strategy: FieldCombineValues,
			recs: []fv{{id: "a", master: true, absent: true}, {id: "b", modified: 2, v: "x"}}, want: "x", from: []string{"b"}},
		{name: "combine_values nothing keeps master", strategy: FieldCombineValues,
			recs: []fv{{id: "a", master: true, v: " ; "}, {id: "b", modified: 2, v: ""}}, want: " ; ", from: []string{"a"}, kept: true},

		{name: "true_over_false", strategy: FieldTrueOverFalse,
			recs: []fv{{id: "a", master: true, modified: 3, v: false}, {id: "b", modified: 1, v: "YES"}, {id: "c", modified: 2, v: "maybe"}}, want: true, from: []string{"b"}},
		{name: "true_over_false all false", strategy: FieldTrueOverFalse,
			recs: []fv{{id: "a", master: true, modified: 1, v: ""}, {id: "b", modified: 2, v: "0"}, {id: "c", modified: 3, v: "No"}}, want: false, from: []string{"c"}},
		{name: "true_over_false newest true", strategy: FieldTrueOverFalse,
			recs: []fv{{id: "a", master: true, modified: 1, v: true}, {id: "b", modified: 2, v: "1"}}, want: true, from: []string{"b"}},
		{name: "false_over_true", strategy: FieldFalseOverTrue,
			recs: []fv{{id: "a", master: true, modified: 3, v: true}, {id: "b", modified: 1, v: "false"}, {id: "c", modified: 2, v: "TRUE"}}, want: false, from: []string{"b"}},
		// Seed: "True Over False: True is set to the master when there is a
		// record with True value." / "False Over True: False is set to the
		// master when there is a record with False value." What is set is a
		// boolean, whatever spelling the source used; JSON sends 1 and 0.
		{name: "true_over_false JSON 1 is true", strategy: FieldTrueOverFalse,
			recs: []fv{{id: "a", master: true, modified: 3, v: 0.0}, {id: "b", modified: 1, v: 1.0}}, want: true, from: []string{"b"}},
		{name: "true_over_false json.Number 0 is false", strategy: FieldTrueOverFalse,
			recs: []fv{{id: "a", master: true, modified: 3, v: json.Number("0")}, {id: "b", modified: 1, v: 7.0}}, want: false, from: []string{"a"}},
		{name: "false_over_true JSON 0 is false", strategy: FieldFalseOverTrue,
			recs: []fv{{id: "a", master: true, modified: 3, v: "Yes"}, {id: "b", modified: 1, v: 0.0}}, want: false, from: []string{"b"}},
		{name: "false_over_true all yes gives true", strategy: FieldFalseOverTrue,
			recs: []fv{{id: "a", master: true, modified: 3, v: "Yes"}, {id: "b", modified: 1, v: 1.0}}, want: true, from: []string{"a"}},
		// Seed: "Longest Text: The value with the most characters wins." /
		// "Shortest Text: The value with the least characters wins. Empty
		// value is not considered." Measured trimmed, written as measured.
		{name: "longest_text outputs the trimmed value", strategy: FieldLongestText,
			recs: []fv{{id: "a", master: true, v: "abc"}, {id: "b", modified: 1, v: "  abcd \n"}}, want: "abcd", from: []string{"b"}},
		{name: "longest_text padding does not count", strategy: FieldLongestText,
			recs: []fv{{id: "a", master: true, modified: 2, v: "abcd"}, {id: "b", modified: 1, v: "abc      "}}, want: "abcd", from: []string{"a"}},
		{name: "shortest_text outputs the trimmed value", strategy: FieldShortestText,
			recs: []fv{{id: "a", master: true, v: "abcd"}, {id: "b", modified: 1, v: " ab  "}}, want: "ab", from: []string{"b"}},
		{name: "false_over_true nothing boolean keeps master", strategy: FieldFalseOverTrue,
			recs: []fv{{id: "a", master: true, v: "?"}, {id: "b", modified: 1, v: 2.0}}, want: "?", from: []string{"a"}, kept: true},

		{name: "newest_date parses formats, ignores garbage", strategy: FieldNewestDate,
			recs: []fv{{id: "a", master: true, v: "2024-01-02"}, {id: "b", modified: 1, v: "2024-03-01T10:00:00+0000"}, {id: "c", modified: 2, v: "tomorrow"}, {id: "d", modified: 3, v: "2024-02-01T00:00:00Z"}},
			want: "2024-03-01T10:00:00+0000", from: []string{"b"}},
		{name: "newest_date zone aware", strategy: FieldNewestDate,
			recs: []fv{{id: "a", master: true, v: "2024-01-02T10:00:00+02:00"}, {id: "b", modified: 1, v: "2024-01-02 09:00:00"}}, want: "2024-01-02 09:00:00", from: []string{"b"}},
		{name: "oldest_date", strategy: FieldOldestDate,
			recs: []fv{{id: "a", master: true, v: "2024-01-02"}, {id: "b", modified: 1, v: "2023-12-31T23:59:59.5Z"}, {id: "c", modified: 2, v: "31/12/2020"}}, want: "2023-12-31T23:59:59.5Z", from: []string{"b"}},
		{name: "oldest_date tie goes to newest modified", strategy: FieldOldestDate,
			recs: []fv{{id: "a", master: true, modified: 1, v: "2024-01-02"}, {id: "b", modified: 2, v: "2024-01-02T00:00:00Z"}}, want: "2024-01-02T00:00:00Z", from: []string{"b"}},
		{name: "shortest_text tie goes to newest modified", strategy: FieldShortestText,
			recs: []fv{{id: "a", master: true, modified: 1, v: "abcd"}, {id: "b", modified: 2, v: "xy"}, {id: "c", modified: 3, v: "zw"}}, want: "zw", from: []string{"c"}},
		{name: "min_number tie goes to smallest id among the newest", strategy: FieldMinNumber,
			recs: []fv{{id: "a", master: true, modified: 1, v: 3.0}, {id: "c", modified: 2, v: "1"}, {id: "b", modified: 2, v: 1.0}}, want: 1.0, from: []string{"b"}},
		{name: "newest_date tie goes to newest modified", strategy: FieldNewestDate,
			recs: []fv{{id: "a", master: true, modified: 3, v: "2024-05-01"}, {id: "b", modified: 4, v: "2024-05-01T00:00:00Z"}, {id: "c", modified: 1, v: "2020-01-01"}}, want: "2024-05-01T00:00:00Z", from: []string{"b"}},
		{name: "false_over_true several false: newest", strategy: FieldFalseOverTrue,
			recs: []fv{{id: "a", master: true, modified: 1, v: "no"}, {id: "b", modified: 2, v: false}, {id: "c", modified: 3, v: "yes"}}, want: false, from: []string{"b"}},
		{name: "oldest_created tie goes to newest modified, then smallest id", strategy: FieldOldestCreated,
			recs: []fv{{id: "a", master: true, created: 5, v: "m"}, {id: "c", created: 1, modified: 2, v: "c"}, {id: "b", created: 1, modified: 2, v: "b"}, {id: "d", created: 1, modified: 1, v: "d"}},
			want: "b", from: []string{"b"}},
		{name: "newest_modified consider_blanks tie: blank from the smaller id wins", strategy: FieldNewestModified, blanks: &yes,
			recs: []fv{{id: "a", master: true, modified: 1, v: "m"}, {id: "c", modified: 4, v: "c"}, {id: "b", modified: 4, v: ""}}, want: "", from: []string{"b"}},
		{name: "most_common contacts and leads counted together", strategy: FieldMostCommon,
			recs: []fv{{id: "a", master: true, modified: 3, v: "x"}, {id: "b", contact: true, modified: 1, v: "Y"}, {id: "c", contact: true, modified: 2, v: "y "}}, want: "y ", from: []string{"c"}},
		{name: "newest_date nothing keeps master absent", strategy: FieldNewestDate,
			recs: []fv{{id: "a", master: true, absent: true}, {id: "b", modified: 1, v: "soon"}}, want: nil, from: []string{"a"}, kept: true, absent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := fieldCfg(tt.strategy, tt.blanks, tt.global)
			if err := cfg.Validate(""); err != nil {
				t.Fatal(err)
			}
			v, present, fe := fieldResult(t, Plan(cfg, fieldCluster(tt.recs)))
			if present == tt.absent {
				t.Errorf("F present = %v, want %v", present, !tt.absent)
			}
			if v != tt.want {
				t.Errorf("F = %#v, want %#v", v, tt.want)
			}
			var from []string
			for _, r := range fe.From {
				from = append(from, r.ID)
			}
			if !slices.Equal(from, tt.from) {
				t.Errorf("from = %v, want %v", from, tt.from)
			}
			if fe.MasterKept != tt.kept || fe.Strategy != tt.strategy {
				t.Errorf("explain = %+v, want strategy %s master_kept %v", fe, tt.strategy, tt.kept)
			}
		})
	}
}

func TestDefaultFieldStrategy(t *testing.T) {
	recs := []fv{{id: "a", master: true, v: ""}, {id: "b", modified: 5, v: "y"}}
	for _, tt := range []struct {
		def  string
		want any
	}{{FieldTakeFromMaster, ""}, {FieldTakeAnyWhenMasterBlank, "y"}} {
		cfg := fieldCfg(FieldTakeFromMaster, nil, false)
		cfg.Fields.Overrides = nil
		cfg.Fields.Default = tt.def
		v, _, fe := fieldResult(t, Plan(cfg, fieldCluster(recs)))
		if v != tt.want || fe.Strategy != tt.def {
			t.Errorf("default %s: F = %#v (%s), want %#v", tt.def, v, fe.Strategy, tt.want)
		}
	}
}

func TestParseDate(t *testing.T) {
	for _, s := range []string{"2024-05-01", "2024-05-01T10:11:12Z", "2024-05-01T10:11:12.123+02:00", "2024-05-01T10:11:12.000+0000",
		"2024-05-01 10:11:12", "2024-05-01T10:11:12", " 2024-05-01T10:11:12Z "} {
		if _, ok := parseDate(s); !ok {
			t.Errorf("parseDate(%q) failed", s)
		}
	}
	for _, v := range []any{"", "2024-13-01", "01/05/2024", "2024-05-01X10:11:12", 20240501.0, nil, "2024-05-01T10:11"} {
		if _, ok := parseDate(v); ok {
			t.Errorf("parseDate(%#v) succeeded", v)
		}
	}
}
