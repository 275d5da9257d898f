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
