package eval

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/matcher/gen"
)

// dataDir is where the public data sets live: $LEADCONV_EVAL_DATA, else
// shared/eval beside the repository.
func dataDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("LEADCONV_EVAL_DATA")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "eval")
	}
	if _, err := os.Stat(filepath.Join(dir, "README.md")); err != nil {
		t.Fatalf("evaluation data not found at %s (set LEADCONV_EVAL_DATA to the directory holding febrl/, splink_fake_1000/ and dedupe_csv_example/): %v", dir, err)
	}
	return dir
}

// TestAccuracy runs the in-memory oracle with each committed rule config on
// its data set and holds the pairwise F1 targets. The Redis store produces
// the same clusters (the store's tests compare it with the oracle).
func TestAccuracy(t *testing.T) {
	dir := dataDir(t)
	sets := []struct {
		name, config, format string
		files                []string
		minF1                float64
	}{
		{"febrl1", "febrl1.yaml", "febrl", []string{"febrl/dataset1.csv"}, 0.95},
		{"febrl2", "febrl2.yaml", "febrl", []string{"febrl/dataset2.csv"}, 0.95},
		{"febrl3", "febrl3.yaml", "febrl", []string{"febrl/dataset3.csv"}, 0.95},
		{"febrl4", "febrl4.yaml", "febrl", []string{"febrl/dataset4a.csv", "febrl/dataset4b.csv"}, 0.95},
		{"fake_1000", "fake_1000.yaml", "csv", []string{"splink_fake_1000/fake_1000.csv"}, 0.85},
		{"csv_example", "csv_example.yaml", "csv", []string{"dedupe_csv_example/csv_example_input_with_true_ids.csv"}, 0.90},
	}
	for _, s := range sets {
		t.Run(s.name, func(t *testing.T) {
			t.Parallel()
			paths := make([]string, len(s.files))
			for i, f := range s.files {
				paths[i] = filepath.Join(dir, f)
			}
			ds, err := Load(s.format, CSVOptions{}, paths...)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := LoadConfig(filepath.Join("..", "..", "examples", "eval", s.config))
			if err != nil {
				t.Fatal(err)
			}
			rs, err := matcher.Compile(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			sc, _, err := Run(t.Context(), Oracle{Rules: rs}, ds)
			if err != nil {
				t.Fatal(err)
			}
			t.Log(sc)
			if sc.F1 < s.minF1 {
				t.Errorf("F1 %.4f < %.2f: %v", sc.F1, s.minF1, sc)
			}
		})
	}
}

// TestDefaultRulesPrecision holds the shipped CRM rules to precision ≥ 0.98
// on generated leads and contacts (with updates and deletes): a wrong merge
// destroys data. Recall must stay useful too.
func TestDefaultRulesPrecision(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		set := gen.New(gen.Options{Seed: seed, Records: 10000, DupRate: 0.3, ContactShare: 0.2, Updates: 0.1, Deletes: 0.05})
		ds := &Dataset{Records: set.Records(), Truth: map[string]string{}}
		for ref, e := range set.Truth() {
			ds.Truth[ref.ID] = e
		}
		rs, err := matcher.Compile(matcher.DefaultConfig(), gen.ContactFields())
		if err != nil {
			t.Fatal(err)
		}
		sc, _, err := Run(t.Context(), Oracle{Rules: rs}, ds)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("seed %d: %v", seed, sc)
		if sc.Precision < 0.98 || sc.Recall < 0.9 {
			t.Errorf("seed %d: precision %.4f (want ≥ 0.98), recall %.4f (want ≥ 0.9)", seed, sc.Precision, sc.Recall)
		}
	}
}
