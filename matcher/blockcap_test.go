package matcher

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/leadconv/leadconv/internal/testutil/redistest"
	"github.com/leadconv/leadconv/record"
)

// lockedBuffer is a log sink safe for the store's concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A block that passes max_block_size stops producing candidates, counts in
// the oversize metric under its rule and logs one warning naming the rule
// (no field values); other rules keep working. Under a higher cap the same
// events link through the block.
func TestStoreBlockCap(t *testing.T) {
	srv := redistest.New(t)
	run := func(maxBlock int) (clusterOf map[string]int, reg *prometheus.Registry, logs string) {
		cfg := Config{MaxBlockSize: maxBlock, Rules: []Rule{
			{Name: "email", All: []Condition{{Field: "Email", Normalizer: "email", Comparator: "exact"}}},
			{Name: "city_last_name", All: []Condition{
				{Field: "City", Normalizer: "text", Comparator: "exact"},
				{Field: "LastName", Normalizer: "name", Comparator: "exact"},
			}},
			{Name: "domain", All: []Condition{
				{Field: "Email", Normalizer: "domain", Comparator: "exact"},
				{Field: "FirstName", Normalizer: "name", Comparator: "jaro_winkler", Threshold: 0.95},
			}},
		}}
		rs := mustCompile(t, cfg, nil)
		var buf lockedBuffer
		reg = prometheus.NewRegistry()
		s := NewStore(srv.Client(), StoreOptions{
			Namespace: redistest.Namespace(t),
			Rules:     func(string) (*Ruleset, error) { return rs, nil },
			Resident:  NewResident(ResidentOptions{Logger: zerolog.New(&buf), Registerer: reg}),
		})
		at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		apply := func(id string, f record.Fields) {
			at = at.Add(time.Second)
			ev := record.Event{Record: record.Record{Tenant: "t", Object: record.Lead, ID: id, CreatedAt: at, ModifiedAt: at, Fields: f}, Op: record.OpUpsert}
			if _, err := s.Apply(t.Context(), []record.Event{ev}); err != nil {
				t.Fatal(err)
			}
		}
		// Everybody at acme.com in one domain block; the Smiths of Boston
		// in one city block.
		for i := range 8 {
			f := record.Fields{"Email": fmt.Sprintf("p%d@acme.com", i), "FirstName": fmt.Sprintf("First%d", i)}
			if i < 3 {
				f["City"], f["LastName"] = "Boston", "Smith"
			}
			apply(fmt.Sprintf("a%d", i), f)
		}
		// "late" matches a0 under the domain rule only.
		apply("late", record.Fields{"Email": "first0@acme.com", "FirstName": "First0"})
		apply("smith", record.Fields{"City": "BOSTON", "LastName": "smith", "Email": "js@other.com"})
		clusters, err := s.Clusters(t.Context(), "t")
		if err != nil {
			t.Fatal(err)
		}
		clusterOf = map[string]int{}
		n := 0
		for _, members := range clusters {
			n++
			for _, m := range members {
				clusterOf[m.ID] = n
			}
		}
		if c := clusterOf["smith"]; c == 0 || c != clusterOf["a1"] || c != clusterOf["a2"] {
			t.Errorf("cap %d: the Boston Smiths are not one cluster: %v", maxBlock, clusters)
		}
		return clusterOf, reg, buf.String()
	}

	clusterOf, reg, logs := run(5)
	if c := clusterOf["late"]; c != 0 && c == clusterOf["a0"] {
		t.Error("a record was linked through an oversize block")
	}
	if got := oversizeCount(t, reg, "domain"); got != 1 {
		t.Errorf("oversize metric for rule domain = %v, want 1", got)
	}
	if got := oversizeCount(t, reg, "city_last_name"); got != 0 {
		t.Errorf("oversize metric for rule city_last_name = %v, want 0", got)
	}
	if strings.Count(logs, "max_block_size") != 1 || !strings.Contains(logs, `"rule":"domain"`) || !strings.Contains(logs, `"level":"warn"`) {
		t.Errorf("want one warning naming rule domain, got:\n%s", logs)
	}
	if strings.Contains(logs, "acme") || strings.Contains(logs, "First") {
		t.Errorf("warning leaks field values:\n%s", logs)
	}

	clusterOf, reg, logs = run(100)
	if c := clusterOf["late"]; c == 0 || c != clusterOf["a0"] {
		t.Error("under a cap of 100 the domain rule did not link late and a0")
	}
	if got := oversizeCount(t, reg, "domain"); got != 0 || logs != "" {
		t.Errorf("under a cap of 100: metric %v, logs %q", got, logs)
	}
}

func oversizeCount(t *testing.T, reg *prometheus.Registry, rule string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "leadconv_matcher_oversize_blocks_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "rule" && l.GetValue() == rule {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
