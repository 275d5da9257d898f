package eval

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"

	"go.yaml.in/yaml/v3"

	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/record"
)

// Clusterer assigns records to clusters: the in-memory oracle here, the
// Redis store in the CLI. Clusters are lists of refs; records absent from
// every cluster count as singletons.
type Clusterer interface {
	Cluster(ctx context.Context, recs []record.Record) ([][]record.Ref, error)
}

// Oracle clusters with matcher.Components: the reference the store must equal.
type Oracle struct{ Rules *matcher.Ruleset }

var _ Clusterer = Oracle{}

// Cluster returns the connected components of recs under the rules.
func (o Oracle) Cluster(_ context.Context, recs []record.Record) ([][]record.Ref, error) {
	return matcher.Components(o.Rules, recs, nil), nil
}

// Assignment maps record ids to cluster ids.
type Assignment map[string]string

// Assign turns clusters into an assignment; a cluster is named by its first
// member's id, and records not in any cluster get their own id.
func Assign(recs []record.Record, clusters [][]record.Ref) Assignment {
	a := make(Assignment, len(recs))
	for _, r := range recs {
		a[r.ID] = r.ID
	}
	for _, c := range clusters {
		for _, ref := range c {
			a[ref.ID] = c[0].ID
		}
	}
	return a
}

// Scores are pairwise quality figures and cluster counts.
type Scores struct {
	Precision, Recall, F1 float64
	// TP, FP and FN count record pairs.
	TP, FP, FN                int
	PredictedPairs, TruePairs int
	Records                   int
	// Clusters counts predicted clusters (singletons included), Duplicates
	// those with more than one member; Entities and TrueDuplicates the same
	// for the truth.
	Clusters, Duplicates     int
	Entities, TrueDuplicates int
}

// String renders the scores in score.py's style plus cluster counts.
func (s Scores) String() string {
	return fmt.Sprintf("precision=%.4f recall=%.4f f1=%.4f tp=%d fp=%d fn=%d predicted_pairs=%d true_pairs=%d "+
		"records=%d clusters=%d multi_clusters=%d entities=%d multi_entities=%d",
		s.Precision, s.Recall, s.F1, s.TP, s.FP, s.FN, s.PredictedPairs, s.TruePairs,
		s.Records, s.Clusters, s.Duplicates, s.Entities, s.TrueDuplicates)
}

// Score compares pred with the truth over the data set's records. Pairs are
// counted from group sizes, without listing them.
func Score(ds *Dataset, pred Assignment) Scores {
	type key struct{ c, e string }
	cl := map[string]int{}
	ent := map[string]int{}
	both := map[key]int{}
	for _, r := range ds.Records {
		c, ok := pred[r.ID]
		if !ok {
			c = "\x00" + r.ID
		}
		e, ok := ds.Truth[r.ID]
		if !ok {
			e = "\x00" + r.ID
		}
		cl[c]++
		ent[e]++
		both[key{c, e}]++
	}
	pairs := func(n int) int { return n * (n - 1) / 2 }
	s := Scores{Records: len(ds.Records), Clusters: len(cl), Entities: len(ent)}
	for _, n := range cl {
		s.PredictedPairs += pairs(n)
		if n > 1 {
			s.Duplicates++
		}
	}
	for _, n := range ent {
		s.TruePairs += pairs(n)
		if n > 1 {
			s.TrueDuplicates++
		}
	}
	for _, n := range both {
		s.TP += pairs(n)
	}
	s.FP, s.FN = s.PredictedPairs-s.TP, s.TruePairs-s.TP
	s.Precision, s.Recall = 1, 1
	if s.PredictedPairs > 0 {
		s.Precision = float64(s.TP) / float64(s.PredictedPairs)
	}
	if s.TruePairs > 0 {
		s.Recall = float64(s.TP) / float64(s.TruePairs)
	}
	if s.Precision+s.Recall > 0 {
		s.F1 = 2 * s.Precision * s.Recall / (s.Precision + s.Recall)
	}
	return s
}

// Run clusters the data set's records with c and scores the result.
func Run(ctx context.Context, c Clusterer, ds *Dataset) (Scores, Assignment, error) {
	clusters, err := c.Cluster(ctx, ds.Records)
	if err != nil {
		return Scores{}, nil, fmt.Errorf("eval: cluster: %w", err)
	}
	a := Assign(ds.Records, clusters)
	return Score(ds, a), a, nil
}

// WriteClusters writes one {"id","cluster_id"} line per record, sorted by
// id: the PREDICTED input of score.py.
func WriteClusters(w io.Writer, a Assignment) error {
	return writeLines(w, a, "cluster_id")
}

// WriteTruth writes one {"id","entity"} line per record with a known
// entity: the TRUTH input of score.py.
func WriteTruth(w io.Writer, ds *Dataset) error {
	return writeLines(w, ds.Truth, "entity")
}

func writeLines(w io.Writer, m map[string]string, field string) error {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	bw := bufio.NewWriter(w)
	for _, id := range ids {
		line, err := json.Marshal(map[string]string{"id": id, field: m[id]})
		if err != nil {
			return fmt.Errorf("eval: write: %w", err)
		}
		bw.Write(line)
		bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("eval: write: %w", err)
	}
	return nil
}

// LoadConfig reads a matching config (the `matching:` block of a tenant, as
// in examples/eval/*.yaml) over matcher.DefaultConfig. Unknown keys fail.
func LoadConfig(path string) (matcher.Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return matcher.Config{}, fmt.Errorf("eval: config: %w", err)
	}
	cfg, err := ParseConfig(b)
	if err != nil {
		return matcher.Config{}, fmt.Errorf("eval: config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig decodes and validates a matching config over the defaults; the
// rules, when given, replace the default rules.
func ParseConfig(b []byte) (matcher.Config, error) {
	cfg := matcher.DefaultConfig()
	cfg.Rules = nil
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && err != io.EOF {
		return matcher.Config{}, fmt.Errorf("decode: %w", err)
	}
	if cfg.Rules == nil {
		cfg.Rules = matcher.DefaultConfig().Rules
	}
	if err := cfg.Validate(""); err != nil {
		return matcher.Config{}, err
	}
	return cfg, nil
}

// Store clusters through the Redis store, as the service runs: every record
// applied as an upsert, Batch records per Apply (default 1000), then the
// tenant's clusters listed. The store's state must be empty beforehand.
type Store struct {
	Store *matcher.Store
	Batch int
}

var _ Clusterer = Store{}

// Cluster applies recs and returns the store's clusters of Tenant.
func (s Store) Cluster(ctx context.Context, recs []record.Record) ([][]record.Ref, error) {
	batch := s.Batch
	if batch <= 0 {
		batch = 1000
	}
	events := make([]record.Event, 0, batch)
	for i := 0; i < len(recs); i += batch {
		events = events[:0]
		for _, r := range recs[i:min(i+batch, len(recs))] {
			events = append(events, record.Event{Record: r, Op: record.OpUpsert})
		}
		if _, err := s.Store.Apply(ctx, events); err != nil {
			return nil, fmt.Errorf("apply records %d..%d: %w", i, i+len(events)-1, err)
		}
	}
	m, err := s.Store.Clusters(ctx, Tenant)
	if err != nil {
		return nil, fmt.Errorf("list clusters: %w", err)
	}
	out := make([][]record.Ref, 0, len(m))
	for _, members := range m {
		out = append(out, members)
	}
	return out, nil
}
