// Package eval measures matching quality on data sets with ground truth:
// readers for Febrl, generic CSV and JSON lines, pairwise precision, recall
// and F1, and the {"id","cluster_id"} output that shared/eval/score.py reads.
package eval

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/leadconv/leadconv/record"
)

// Dataset is a set of records with their true entities.
type Dataset struct {
	// Records are leads of tenant "eval", in file order; ids are unique.
	Records []record.Record
	// Truth maps a record id to its entity. Records of unknown entity are
	// absent and count as singletons.
	Truth map[string]string
	seen  map[string]bool
}

// Tenant is the tenant of the records the readers produce.
const Tenant = "eval"

// Formats lists the accepted input formats.
var Formats = []string{"febrl", "csv", "jsonl"}

// CSVOptions maps CSV columns to record ids and entities. Every other column
// becomes a field named by its header.
type CSVOptions struct {
	// ID is the id column; "" tries "id" and "unique_id" (any case).
	ID string
	// Entity is the ground-truth column; "" tries "entity", "cluster" and
	// "true id" (any case). Values "" and "x" mean unknown (a singleton).
	Entity string
}

// Load reads one or more files of one format into a single data set (Febrl
// 4a and 4b are deduplicated as their union).
func Load(format string, opts CSVOptions, paths ...string) (*Dataset, error) {
	ds := &Dataset{Truth: map[string]string{}}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("eval: %w", err)
		}
		err = ds.read(format, opts, f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("eval: %s: %w", p, err)
		}
	}
	return ds, nil
}

// Read reads one input of the given format.
func Read(format string, opts CSVOptions, r io.Reader) (*Dataset, error) {
	ds := &Dataset{Truth: map[string]string{}}
	if err := ds.read(format, opts, r); err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	return ds, nil
}

func (ds *Dataset) read(format string, opts CSVOptions, r io.Reader) error {
	switch format {
	case "febrl":
		return ds.readFebrl(r)
	case "csv":
		return ds.readCSV(r, opts)
	case "jsonl":
		return ds.readJSONL(r)
	}
	return fmt.Errorf("unknown format %q (allowed: %s)", format, strings.Join(Formats, ", "))
}

func (ds *Dataset) add(id, entity string, f record.Fields) error {
	if id == "" {
		return errors.New("record without id")
	}
	if ds.seen[id] {
		return fmt.Errorf("duplicate id %q", id)
	}
	if ds.seen == nil {
		ds.seen = map[string]bool{}
	}
	ds.seen[id] = true
	ds.Records = append(ds.Records, record.Record{Tenant: Tenant, Object: record.Lead, ID: id, Fields: f})
	if entity != "" && entity != "x" {
		ds.Truth[id] = entity
	}
	return nil
}

var febrlID = regexp.MustCompile(`^rec-(\d+)-(org|dup-\d+)$`)

// readFebrl reads a Febrl file: comma and space separated, optional CRLF,
// rec_id "rec-<N>-org" or "rec-<N>-dup-<k>" naming entity N.
func (ds *Dataset) readFebrl(r io.Reader) error {
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return fmt.Errorf("febrl header: %w", err)
	}
	cols := trimAll(head)
	if len(cols) == 0 || cols[0] != "rec_id" {
		return fmt.Errorf("febrl header: first column is %q, want rec_id", cols[0])
	}
	for {
		row, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		id := strings.TrimSpace(row[0])
		m := febrlID.FindStringSubmatch(id)
		if m == nil {
			return fmt.Errorf("febrl rec_id %q: want rec-<N>-org or rec-<N>-dup-<k>", id)
		}
		f := record.Fields{}
		for i, v := range row[1:] {
			if v = strings.TrimSpace(v); v != "" {
				f[cols[i+1]] = v
			}
		}
		if err := ds.add(id, m[1], f); err != nil {
			return err
		}
	}
}

func (ds *Dataset) readCSV(r io.Reader, opts CSVOptions) error {
	cr := csv.NewReader(r)
	cr.LazyQuotes = true
	head, err := cr.Read()
	if err != nil {
		return fmt.Errorf("csv header: %w", err)
	}
	cols := trimAll(head)
	idCol := column(cols, opts.ID, "id", "unique_id")
	if idCol < 0 {
		return fmt.Errorf("csv header: no id column (%q)", opts.ID)
	}
	entCol := column(cols, opts.Entity, "entity", "cluster", "true id")
	if opts.Entity != "" && entCol < 0 {
		return fmt.Errorf("csv header: no entity column %q", opts.Entity)
	}
	for line := 2; ; line++ {
		row, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		f := record.Fields{}
		entity := ""
		for i, v := range row {
			v = strings.TrimSpace(v)
			switch {
			case i == idCol:
			case i == entCol:
				entity = v
			case v != "":
				f[cols[i]] = v
			}
		}
		if err := ds.add(strings.TrimSpace(row[idCol]), entity, f); err != nil {
			return fmt.Errorf("row %d: %w", line, err)
		}
	}
}

// column finds the named column, or the first of the fallbacks when name is
// empty; case-insensitive.
func column(cols []string, name string, fallbacks ...string) int {
	want := fallbacks
	if name != "" {
		want = []string{name}
	}
	for _, w := range want {
		for i, c := range cols {
			if strings.EqualFold(c, w) {
				return i
			}
		}
	}
	return -1
}

func trimAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = strings.TrimSpace(strings.TrimPrefix(v, "\ufeff"))
	}
	return out
}

// jsonLine is one JSON-lines record: {"id", "entity"?, "object"?, "fields"}.
type jsonLine struct {
	ID     json.RawMessage `json:"id"`
	Entity json.RawMessage `json:"entity"`
	Object record.Object   `json:"object"`
	Fields record.Fields   `json:"fields"`
}

func (ds *Dataset) readJSONL(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	for n := 1; sc.Scan(); n++ {
		b := sc.Bytes()
		if len(strings.TrimSpace(string(b))) == 0 {
			continue
		}
		var l jsonLine
		if err := json.Unmarshal(b, &l); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		if l.Object != "" && l.Object != record.Lead && l.Object != record.Contact {
			return fmt.Errorf("line %d: object %q: only leads and contacts cluster", n, l.Object)
		}
		if err := ds.add(scalar(l.ID), scalar(l.Entity), l.Fields); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		if l.Object == record.Contact {
			ds.Records[len(ds.Records)-1].Object = record.Contact
		}
	}
	return sc.Err()
}

// scalar renders a JSON string or number as text ("" for null or absent).
func scalar(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}
