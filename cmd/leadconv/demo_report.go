package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/events"
	"github.com/leadconv/leadconv/matcher/gen"
	"github.com/leadconv/leadconv/record"
)

// demoReport turns the commands the demo's pipeline published into text a
// person reads at a glance.
type demoReport struct {
	names map[record.Ref]string // "First Last <email>" of the sample records
	// model is the --crm profile's field model: names are read in its
	// field names, and conversions list the fields they write. nil without.
	model  *engine.FieldModel
	final  map[string][]record.Ref // clusters with two or more members at the end
	plans  map[string][]engine.Command
	byType map[string]int
	total  int
}

func newDemoReport(set *gen.Set, final map[string][]record.Ref, crm string) *demoReport {
	rep := &demoReport{names: map[record.Ref]string{}, final: final, plans: map[string][]engine.Command{}, byType: map[string]int{}}
	if m, ok := engine.Model(crm); ok {
		rep.model = &m
	}
	personName := personNamer(crm)
	// Events first so that deleted records keep a name; final states win.
	for _, ev := range set.Events() {
		if n := personName(ev.Fields); n != "" {
			rep.names[ev.Ref()] = n
		}
	}
	for _, r := range set.Records() {
		if n := personName(r.Fields); n != "" {
			rep.names[r.Ref()] = n
		}
	}
	return rep
}

// personNamer returns what names a person in the reports, "First Last
// <email>", read under crm's field names (leadconv's canonical ones for a
// CRM without a model).
func personNamer(crm string) func(record.Fields) string {
	first, last, email := "FirstName", "LastName", "Email"
	if m, ok := engine.Model(crm); ok {
		first, last, email = m.Canonical[first], m.Canonical[last], m.Canonical[email]
	}
	return func(f record.Fields) string {
		name := strings.TrimSpace(f.Str(first) + " " + f.Str(last))
		if e := f.Str(email); e != "" {
			name = strings.TrimSpace(name + " <" + e + ">")
		}
		return name
	}
}

func decodeCommand(r *kgo.Record) (engine.Command, error) {
	var cmd engine.Command
	b, err := events.Payload(r)
	if err != nil {
		return cmd, fmt.Errorf("command at %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	if err := json.Unmarshal(b, &cmd); err != nil {
		return cmd, fmt.Errorf("command at %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	return cmd, nil
}

// add counts a command and keeps it with its cluster's: plans compose, so
// a cluster's commands together are what a writer does with it. A command
// emitted again under its id (after a restart) counts once.
func (rep *demoReport) add(r *kgo.Record) error {
	cmd, err := decodeCommand(r)
	if err != nil {
		return err
	}
	plan := rep.plans[cmd.ClusterID]
	if slices.ContainsFunc(plan, func(c engine.Command) bool { return c.ID == cmd.ID }) {
		return nil
	}
	rep.total++
	rep.byType[cmd.Kind]++
	rep.plans[cmd.ClusterID] = append(plan, cmd)
	return nil
}

func (rep *demoReport) print(w io.Writer, events, dead int, elapsed time.Duration, show int) {
	kinds := make([]string, 0, len(rep.byType))
	for _, k := range engine.Kinds {
		if n := rep.byType[k]; n > 0 {
			kinds = append(kinds, fmt.Sprintf("%d %s", n, k))
		}
	}
	fmt.Fprintf(w, "Processed %d events in %s: %d commands (%s), %d dead letters.\n",
		events, elapsed.Round(time.Millisecond), rep.total, strings.Join(kinds, ", "), dead)

	// The clusters that still exist, largest first.
	ids := make([]string, 0, len(rep.plans))
	for id := range rep.plans {
		if len(rep.final[id]) > 1 {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b string) int {
		return cmp.Or(cmp.Compare(len(rep.final[b]), len(rep.final[a])), cmp.Compare(a, b))
	})
	records := 0
	for _, id := range ids {
		records += len(rep.final[id])
	}
	fmt.Fprintf(w, "%d duplicate clusters hold %d records; each plan builds on the ones before it.\n", len(ids), records)
	if len(ids) == 0 || show == 0 {
		return
	}
	n := min(show, len(ids))
	if n == 1 {
		fmt.Fprint(w, "\nThe largest cluster and what leadconv does with it:\n")
	} else {
		fmt.Fprintf(w, "\nThe %d largest clusters and what leadconv does with them:\n", n)
	}
	for _, id := range ids[:n] {
		plan := rep.plans[id]
		slices.SortStableFunc(plan, func(a, b engine.Command) int {
			return cmp.Or(cmp.Compare(a.ClusterVersion, b.ClusterVersion), cmp.Compare(a.Seq, b.Seq))
		})
		fmt.Fprintf(w, "\ncluster %s (version %d, %s)\n", id, plan[len(plan)-1].ClusterVersion, countObjects(rep.final[id]))
		for _, cmd := range plan {
			fmt.Fprintf(w, "  v%d %s\n", cmd.ClusterVersion, rep.describe(cmd))
		}
	}
	if len(ids) > n {
		fmt.Fprintf(w, "\n... and %d more clusters (--show N shows more).\n", len(ids)-n)
	}
}

func countObjects(refs []record.Ref) string {
	var leads, contacts int
	for _, r := range refs {
		if r.Object == record.Contact {
			contacts++
		} else {
			leads++
		}
	}
	parts := []string{}
	if leads > 0 {
		parts = append(parts, plural(leads, "lead"))
	}
	if contacts > 0 {
		parts = append(parts, plural(contacts, "contact"))
	}
	return strings.Join(parts, ", ")
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// line is the one-line form of a command, for --serve's live output.
func (rep *demoReport) line(r *kgo.Record) (string, error) {
	cmd, err := decodeCommand(r)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("cluster %s v%d: %s", cmd.ClusterID, cmd.ClusterVersion, rep.describe(cmd)), nil
}

func (rep *demoReport) who(ref record.Ref) string {
	if n := rep.names[ref]; n != "" {
		return ref.ID + " " + n
	}
	return ref.ID
}

func (rep *demoReport) describe(cmd engine.Command) string {
	switch d := cmd.Data.(type) {
	case *engine.LeadConvert:
		s := "convert " + rep.who(record.Ref{Object: record.Lead, ID: d.LeadID}) + " -> "
		switch {
		case d.Contact.FromLead != "" && d.Contact.FromLead == d.Account.FromLead:
			s += "contact and account of " + d.Contact.FromLead
		case d.Account.Create && d.Account.Name != "":
			s += target("contact", d.Contact) + fmt.Sprintf(", new account %q", d.Account.Name)
		default:
			s += target("contact", d.Contact) + ", " + target("account", d.Account.Target)
		}
		if d.Opportunity != nil {
			s += ", new opportunity"
		}
		if rep.model != nil && d.Contact.Create {
			s += "\n      " + rep.model.CRM + " contact fields: " + strings.Join(fieldNames(d.Fields), ", ")
		}
		if rep.model != nil && d.Account.Create {
			s += "\n      " + rep.model.CRM + " account fields: " + rep.model.AccountName
			if names := fieldNames(d.Account.Fields); len(names) > 0 {
				s += ", " + strings.Join(names, ", ")
			}
		}
		return s
	case *engine.RecordsMerge:
		merged := make([]string, len(d.MergedIDs))
		for i, id := range d.MergedIDs {
			merged[i] = rep.who(record.Ref{Object: d.Object, ID: id})
		}
		for _, l := range d.MergedFromLeads {
			merged = append(merged, "contact of "+l)
		}
		into := target(string(d.Object), d.Master)
		if d.Master.ID != "" {
			into = rep.who(record.Ref{Object: d.Object, ID: d.Master.ID})
		}
		return fmt.Sprintf("merge %s into %s", strings.Join(merged, ", "), into)
	case *engine.ConversionFailed:
		return fmt.Sprintf("conversion failed (%s) for %s", d.Reason, plural(len(d.Records), "record"))
	case *engine.ReviewRequested:
		return fmt.Sprintf("review requested (%s) for %s", d.Reason, plural(len(d.Records), "record"))
	}
	return cmd.Kind + " " + cmd.Subject
}

func target(what string, t engine.Target) string {
	switch {
	case t.Create:
		return "new " + what
	case t.FromLead != "":
		return what + " of " + t.FromLead
	case t.ID != "":
		return what + " " + t.ID
	}
	return "no " + what
}

// fieldNames lists the names of f, sorted.
func fieldNames(f record.Fields) []string {
	return slices.Sorted(maps.Keys(f))
}
