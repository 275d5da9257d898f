package requests

import (
	"flag"
	"reflect"
	"slices"
	"testing"

	"github.com/rs/zerolog"
)

func TestFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		args   []string
		topic  string
		cfg    HandlerConfig
		policy Policy
	}{
		{"defaults", nil, DefaultRequestsTopic,
			HandlerConfig{EventsTopic: DefaultEventsTopic, ProgressEvery: 100},
			Policy{MaxRecords: DefaultMaxRecords, MaxNewRecords: DefaultMaxNewRecords}},
		{"all", []string{"--requests-topic", "rq", "--results-topic", "rs", "--progress-every", "5",
			"--mass-convert-roles", " admin, sales_admin ,", "--max-records-per-request", "10", "--max-new-records-per-request", "20"},
			"rq", HandlerConfig{EventsTopic: "rs", ProgressEvery: 5},
			Policy{Roles: []string{"admin", "sales_admin"}, MaxRecords: 10, MaxNewRecords: 20}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("run", flag.ContinueOnError)
			var f Flags
			f.Register(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			var names []string
			fs.VisitAll(func(fl *flag.Flag) { names = append(names, fl.Name) })
			if slices.Sort(names); !slices.Equal(names, slices.Sorted(slices.Values(FlagNames))) {
				t.Errorf("flags %v, FlagNames %v", names, FlagNames)
			}
			if f.Topic() != tc.topic {
				t.Errorf("topic %q, want %q", f.Topic(), tc.topic)
			}
			got := f.HandlerConfig("cmds", true, zerolog.Nop())
			want := tc.cfg
			want.CommandsTopic, want.Structured = "cmds", true
			got.Logger = zerolog.Logger{}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("config %+v, want %+v", got, want)
			}
			if p := f.Policy(); !reflect.DeepEqual(p, tc.policy) {
				t.Errorf("policy %+v, want %+v", p, tc.policy)
			}
		})
	}
}
