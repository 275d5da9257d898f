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
		cfg    Config
		policy Policy
	}{
		{"defaults", nil,
			Config{RequestsTopic: DefaultRequestsTopic, EventsTopic: DefaultEventsTopic, ProgressEvery: 100},
			Policy{MaxRecords: DefaultMaxRecords, MaxNewRecords: DefaultMaxNewRecords}},
		{"all", []string{"--requests-topic", "rq", "--requests-group", "g", "--results-topic", "rs", "--progress-every", "5",
			"--mass-convert-roles", " admin, sales_admin ,", "--max-records-per-request", "10", "--max-new-records-per-request", "20"},
			Config{RequestsTopic: "rq", Group: "g", EventsTopic: "rs", ProgressEvery: 5},
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
			got := f.Config([]string{"b:1"}, "cmds", "dlq", zerolog.Nop())
			want := tc.cfg
			want.Brokers, want.CommandsTopic, want.DLQTopic = []string{"b:1"}, "cmds", "dlq"
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
