package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/matcher/gen"
	"github.com/leadconv/leadconv/record"
)

func genCommand() *command {
	return &command{
		name:     "gen",
		synopsis: "write generated lead data with known duplicates as JSON lines",
		usage:    "[flags]",
		help: `Generates realistic CRM leads (and optionally contacts) with known
duplicates, deterministically from --seed: nicknames and typos in names,
other spellings of the same e-mail and phone number, company suffix variants,
missing fields. --crm writes them as that CRM's API shows them: its field
names (Salesforce FirstName, MailingCity; Dynamics emailaddress1,
companyname ...), without the fields its objects lack, with its created and
modified timestamps (CreatedDate, LastModifiedDate ...).

--format events (the default) writes record events in stream order, the input
of "leadconv simulate" and of the records topic:
  {"tenant","object","id","op","created_at","modified_at","related_count","fields"}
--format eval writes every record's final state with its true entity, the
JSON-lines input of "leadconv eval --format jsonl":
  {"id","entity","object","fields"}

Examples:
  leadconv gen --records 10000 --output events.jsonl
  leadconv gen --records 5000 --format eval --output truth.jsonl
  leadconv gen --crm salesforce --records 1000 --output salesforce.jsonl`,
		setup: func(fs *flagSet) func(context.Context, *env, []string) error {
			var o gen.Options
			fs.Uint64Var(&o.Seed, "seed", 1, "random seed: the same flags give the same output")
			fs.StringVar(&o.Tenant, "tenant", "acme", "tenant of every record")
			fs.IntVar(&o.Records, "records", 1000, "number of records created")
			fs.Float64Var(&o.DupRate, "dup-rate", 0.3, "share of records that duplicate an earlier person (0 to 1)")
			fs.Float64Var(&o.ContactShare, "contacts", 0, "share of records created as contacts instead of leads (0 to 1)")
			fs.Float64Var(&o.Updates, "updates", 0, "share of records that get a later update (0 to 1)")
			fs.BoolVar(&o.UpdateAsUpsert, "updates-as-upserts", false, "send updates as upserts of the full state instead of patches")
			fs.Float64Var(&o.Deletes, "deletes", 0, "share of records deleted later (0 to 1)")
			fs.StringVar(&o.CRM, "crm", "", "write records with a CRM's field names and system timestamps: salesforce, zoho, hubspot or dynamics (default: leadconv's canonical names)")
			fs.Float64Var(&o.Bursts, "bursts", 0, "share of duplicates that follow their entity's previous record at once (0 to 1)")
			format := fs.String("format", "events", "output format: events or eval")
			output := fs.String("output", "-", "output file; - is stdout")
			return func(_ context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				if o.Records <= 0 {
					return usagef("--records %d: must be positive", o.Records)
				}
				for name, v := range map[string]float64{"--dup-rate": o.DupRate, "--contacts": o.ContactShare, "--updates": o.Updates, "--deletes": o.Deletes, "--bursts": o.Bursts} {
					if v < 0 || v > 1 {
						return usagef("%s %g: must be between 0 and 1", name, v)
					}
				}
				if o.DupRate == 0 {
					o.DupRate = -1 // gen treats 0 as "default"; the flag means none
				}
				if _, ok := engine.Model(o.CRM); o.CRM != "" && !ok {
					return usagef("--crm %q: allowed values are salesforce, zoho, hubspot, dynamics", o.CRM)
				}
				if *format != "events" && *format != "eval" {
					return usagef("--format %q: allowed values are events, eval", *format)
				}
				return writeOutput(e.stdout, *output, func(w io.Writer) error {
					set := gen.New(o)
					if *format == "eval" {
						return writeEvalLines(w, set)
					}
					return writeJSONLines(w, set.Events())
				})
			}
		},
	}
}

// writeOutput runs write on stdout ("-") or on a created file, buffered,
// and reports the first error including the one of closing the file.
func writeOutput(stdout io.Writer, path string, write func(io.Writer) error) (err error) {
	w := stdout
	if path != "-" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer func() {
			if cerr := f.Close(); err == nil && cerr != nil {
				err = cerr
			}
		}()
		w = f
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	if err := write(bw); err != nil {
		return err
	}
	return bw.Flush()
}

func writeJSONLines[T any](w io.Writer, items []T) error {
	enc := json.NewEncoder(w)
	for i := range items {
		if err := enc.Encode(&items[i]); err != nil {
			return fmt.Errorf("write line %d: %w", i+1, err)
		}
	}
	return nil
}

// evalLine is one record of the eval JSON-lines format.
type evalLine struct {
	ID     string        `json:"id"`
	Entity string        `json:"entity,omitempty"`
	Object record.Object `json:"object"`
	Fields record.Fields `json:"fields"`
}

func writeEvalLines(w io.Writer, set *gen.Set) error {
	truth := set.Truth()
	recs := set.Records()
	lines := make([]evalLine, len(recs))
	for i, r := range recs {
		lines[i] = evalLine{ID: r.ID, Entity: truth[r.Ref()], Object: r.Object, Fields: r.Fields}
	}
	return writeJSONLines(w, lines)
}
