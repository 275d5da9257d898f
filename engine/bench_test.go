package engine

import (
	"fmt"
	"testing"
)

func BenchmarkPlan(b *testing.B) {
	for _, n := range []int{2, 10, 100} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			cfg := cfgWith(func(c *Config) {
				c.MaxClusterSize = 1000
				c.Fields.Overrides = []FieldOverride{
					{Field: "Email", Strategy: FieldMostCommon},
					{Field: "AnnualRevenue", Strategy: FieldMaxNumber},
					{Field: "Description", Strategy: FieldLongestText},
				}
			})
			c := benchCluster(n)
			Plan(cfg, c) // compile once, as a long-running service does
			b.ReportAllocs()
			for b.Loop() {
				if r := Plan(cfg, c); len(r.Commands) == 0 {
					b.Fatal("empty plan")
				}
			}
		})
	}
}

// BenchmarkAccountThenPlan is the pipeline's planning of one cluster: the
// account values to resolve, their lookup (here a map), then the plan, by
// the two functions or on one prepared cluster.
func BenchmarkAccountThenPlan(b *testing.B) {
	cfg := cfgWith(func(c *Config) {
		c.Fields.Overrides = []FieldOverride{{Field: "Email", Strategy: FieldMostCommon}}
	})
	c := benchCluster(10)
	known := c.Accounts
	c.Accounts = nil
	lookup := func(vals []string) map[string]string {
		if len(vals) != 1 {
			b.Fatalf("account values %q, want one", vals)
		}
		return map[string]string{vals[0]: known[vals[0]]}
	}
	b.Run("functions", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			cc := c
			cc.Accounts = lookup(AccountValues(cfg, c.Records))
			if len(Plan(cfg, cc).Commands) == 0 {
				b.Fatal("empty plan")
			}
		}
	})
	b.Run("prepared", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			pp := Prepare(cfg, c)
			if len(pp.Plan(lookup(pp.AccountValues())).Commands) == 0 {
				b.Fatal("empty plan")
			}
		}
	})
}
