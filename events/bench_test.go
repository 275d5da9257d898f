package events_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/events"
	"github.com/leadconv/leadconv/matcher/gen"
	"github.com/leadconv/leadconv/record"
)

// generatedCommands plans the duplicate clusters of a generated data set
// under the defaults and the generator's contact field map, as the bench
// pipeline does; field values go through JSON with numbers as json.Number,
// as the pipeline's decoder leaves them.
func generatedCommands(tb testing.TB) []engine.Command {
	tb.Helper()
	set := gen.New(gen.Options{Seed: 1, Records: 600, ContactShare: 0.2, Updates: 0.2})
	byEntity := map[string][]record.Record{}
	var entities []string
	for _, r := range set.Records() {
		b, err := json.Marshal(&r)
		if err != nil {
			tb.Fatal(err)
		}
		d := json.NewDecoder(strings.NewReader(string(b)))
		d.UseNumber()
		var back record.Record
		if err := d.Decode(&back); err != nil {
			tb.Fatal(err)
		}
		e := set.Truth()[r.Ref()]
		if _, ok := byEntity[e]; !ok {
			entities = append(entities, e)
		}
		byEntity[e] = append(byEntity[e], back)
	}
	cfg := engine.DefaultConfig()
	cfg.ContactFields = gen.ContactFields()
	var cmds []engine.Command
	for i, e := range entities {
		recs := byEntity[e]
		if len(recs) < 2 {
			continue
		}
		c := engine.Cluster{Tenant: "acme", ID: e, Version: int64(i + 1), Records: slices.Clone(recs)}
		cmds = append(cmds, engine.Plan(&cfg, c).Commands...)
	}
	if len(cmds) < 50 {
		tb.Fatalf("only %d commands", len(cmds))
	}
	return cmds
}

// BenchmarkCommand encodes the commands of generated plans as binary-mode
// CloudEvents records, as the pipeline does for every planned command.
func BenchmarkCommand(b *testing.B) {
	cmds := generatedCommands(b)
	enc := events.Encoder{Topic: "leadconv.commands"}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := enc.Command(cmds[i%len(cmds)], modified); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// generatedPlans groups generatedCommands by plan (each plan's commands
// are consecutive and share a cluster id).
func generatedPlans(tb testing.TB) [][]engine.Command {
	cmds := generatedCommands(tb)
	var plans [][]engine.Command
	for i := 0; i < len(cmds); {
		j := i + 1
		for j < len(cmds) && cmds[j].ClusterID == cmds[i].ClusterID {
			j++
		}
		plans = append(plans, cmds[i:j])
		i = j
	}
	return plans
}

// BenchmarkCommands encodes whole plans, as the pipeline does; ns/command
// compares with BenchmarkCommand.
func BenchmarkCommands(b *testing.B) {
	plans := generatedPlans(b)
	enc := events.Encoder{Topic: "leadconv.commands"}
	b.ReportAllocs()
	i, n := 0, 0
	var out []*kgo.Record
	for b.Loop() {
		var err error
		p := plans[i%len(plans)]
		if out, err = enc.Commands(out[:0], p, modified); err != nil {
			b.Fatal(err)
		}
		i++
		n += len(p)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/command")
}
