package matcher

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/leadconv/leadconv/internal/testutil/redistest"
	"github.com/leadconv/leadconv/record"
)

// instantStream builds a stream of two tenants' leads, contacts and
// accounts whose names match the people's companies: upserts, patches that
// change companies or e-mails (so clusters split), deletes, conversions,
// review bans, account renames and deletes, and exact replays of earlier
// events (duplicates, or stale once the record moved on).
func instantStream(seed uint64, n int) []record.Event {
	rng := rand.New(rand.NewPCG(seed, 7))
	companies := []string{"Acme", "ACME Inc.", "Globex", "Globex GmbH", "Initech", "Umbrella", ""}
	accountNames := []string{"Acme, Inc.", "Globex", "Initech LLC", "Umbrella Corp", "Hooli"}
	firsts := []string{"Ann", "Anne", "Bob", "Cy", "Dee"}
	lasts := []string{"Lee", "Smith", "Ng", "Ruiz"}
	tenants := []string{"acme", "beta"}
	minute := map[string]int{}
	var out []record.Event
	person := func(obj record.Object) record.Fields {
		p := rng.IntN(8)
		f := record.Fields{"FirstName": firsts[p%len(firsts)], "LastName": lasts[p%len(lasts)]}
		switch rng.IntN(3) {
		case 0:
			f["Email"] = fmt.Sprintf("p%d@example.com", p)
		case 1:
			f["Phone"] = fmt.Sprintf("+1 555 %04d", p)
		default:
			f["Email"] = fmt.Sprintf("p%d@example.com", p)
			f["Phone"] = fmt.Sprintf("+1 555 %04d", p)
		}
		company := companies[rng.IntN(len(companies))]
		if obj == record.Contact {
			f["AccountName"] = company
		} else {
			f["Company"] = company
		}
		// Numbers as the pipeline decodes them, and as a Go caller may
		// pass them.
		f["NumberOfEmployees"] = json.Number(fmt.Sprintf("%d.50", rng.IntN(3)))
		if rng.IntN(4) == 0 {
			f["AnnualRevenue"] = float64(rng.IntN(3)) + 0.25
		}
		return f
	}
	for len(out) < n {
		tenant := tenants[rng.IntN(len(tenants))]
		if len(out) > 0 && rng.IntN(10) == 0 {
			// An exact replay of an earlier event.
			out = append(out, out[rng.IntN(len(out))])
			continue
		}
		obj, id := record.Lead, fmt.Sprintf("l%d", rng.IntN(14))
		switch x := rng.IntN(10); {
		case x < 2:
			obj, id = record.Account, fmt.Sprintf("A%d", rng.IntN(5))
		case x < 4:
			obj, id = record.Contact, fmt.Sprintf("c%d", rng.IntN(6))
		}
		key := tenant + "/" + string(obj) + "/" + id
		minute[key]++
		r := record.Record{Tenant: tenant, Object: obj, ID: id, CreatedAt: t0.Add(time.Duration(len(key)) * time.Second),
			ModifiedAt: t0.Add(time.Duration(minute[key]) * time.Minute)}
		if obj == record.Account {
			switch rng.IntN(4) {
			case 0:
				out = append(out, record.Event{Op: record.OpDelete, Record: r})
			default:
				r.Fields = record.Fields{"Name": accountNames[rng.IntN(len(accountNames))]}
				out = append(out, record.Event{Op: record.OpUpsert, Record: r})
			}
			continue
		}
		switch x := rng.IntN(20); {
		case x < 2:
			out = append(out, record.Event{Op: record.OpDelete, Record: r})
		case x == 2 && obj == record.Lead:
			r.Fields = person(obj)
			r.Fields["IsConverted"] = true
			out = append(out, record.Event{Op: record.OpUpsert, Record: r})
		case x == 3:
			other := record.Ref{Object: record.Lead, ID: fmt.Sprintf("l%d", rng.IntN(14))}
			if other.ID == id {
				continue
			}
			op := record.OpNotDuplicate
			if rng.IntN(3) == 0 {
				op = record.OpClearNotDuplicate
			}
			out = append(out, record.Event{Op: op, Record: record.Record{Tenant: tenant, Object: obj, ID: id}, Other: &other})
		case x < 8:
			// A patch of the company or the e-mail.
			f := record.Fields{}
			if rng.IntN(2) == 0 {
				name := "Company"
				if obj == record.Contact {
					name = "AccountName"
				}
				f[name] = companies[rng.IntN(len(companies))]
			} else {
				f["Email"] = fmt.Sprintf("p%d@example.com", rng.IntN(8))
			}
			r.Fields = f
			out = append(out, record.Event{Op: record.OpPatch, Record: r})
		default:
			r.Fields = person(obj)
			out = append(out, record.Event{Op: record.OpUpsert, Record: r})
		}
	}
	return out
}

// instantMode is how a run's stores hold state between (and within) its
// batches.
type instantMode int

const (
	// warm: one store with the default budget: both tenants complete.
	warm instantMode = iota
	// cold: a new store per batch, whose budget makes it read through
	// (tenants too large to load whole) with an empty prepared cache.
	cold
	// tiny: one store for the run whose budget sheds resident keys after
	// every batch and whose prepared cache keeps a handful of records.
	tiny
)

func (m instantMode) String() string { return [...]string{"warm", "cold", "tiny"}[m] }

// applyCut applies events into a fresh namespace, cut before each index of
// cuts, and returns the changes with Index counted in events.
func applyCut(t *testing.T, srv *redistest.Server, events []record.Event, cuts []int, mode instantMode) []Change {
	t.Helper()
	ctx := context.Background()
	ns := redistest.Namespace(t)
	rs, err := Compile(DefaultConfig(), record.FieldMap{"AccountName": "Company"})
	if err != nil {
		t.Fatal(err)
	}
	newStore := func() *Store {
		opts := StoreOptions{Namespace: ns, Rules: func(string) (*Ruleset, error) { return rs, nil }}
		if mode != warm {
			opts.Resident = NewResident(ResidentOptions{MaxBytes: 24 << 10, PreparedRecords: 4})
		}
		return NewStore(srv.Client(), opts)
	}
	s := newStore()
	var out []Change
	bounds := append(append([]int{0}, cuts...), len(events))
	for i := 0; i+1 < len(bounds); i++ {
		lo, hi := bounds[i], bounds[i+1]
		if lo == hi {
			continue
		}
		if mode == cold && i > 0 {
			s = newStore()
		}
		changes, err := s.Apply(ctx, slices.Clone(events[lo:hi]))
		if err != nil {
			t.Fatalf("batch [%d, %d): %v", lo, hi, err)
		}
		for _, c := range changes {
			c.Index += lo
			out = append(out, c)
		}
	}
	return out
}

// randomCuts returns sorted, distinct cut points in (0, n), from one per
// event to a handful.
func randomCuts(rng *rand.Rand, n int) []int {
	var cuts []int
	p := []int{2, 5, 20, 60}[rng.IntN(4)]
	for i := 1; i < n; i++ {
		if rng.IntN(p) == 0 {
			cuts = append(cuts, i)
		}
	}
	return cuts
}

// TestChangesIndependentOfBatches checks that every Change describes its
// cluster at the instant of its triggering event: the same events applied
// as one batch, and cut into batches anywhere, on warm, cold or shedding
// stores, return the same changes (members, accounts, versions, before,
// lineage), in the same order.
func TestChangesIndependentOfBatches(t *testing.T) {
	srv := redistest.New(t)
	for _, seed := range []uint64{1, 2, 3, 4, 5, 6} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			events := instantStream(seed, 400)
			want := applyCut(t, srv, events, nil, warm)
			if len(want) < 100 {
				t.Fatalf("only %d changes: the stream exercises too little", len(want))
			}
			rng := rand.New(rand.NewPCG(seed, 8))
			for _, mode := range []instantMode{warm, cold, tiny} {
				for range 3 {
					cuts := randomCuts(rng, len(events))
					got := applyCut(t, srv, events, cuts, mode)
					if msg := diffChanges(want, got); msg != "" {
						t.Fatalf("%s store, %d batches: %s", mode, len(cuts)+1, msg)
					}
				}
			}
			// One big batch on top of state a store does not hold whole.
			if msg := diffChanges(want, applyCut(t, srv, events, []int{len(events) / 3}, cold)); msg != "" {
				t.Fatalf("cold store, two batches: %s", msg)
			}
		})
	}
}

// diffChanges describes the first difference between two change lists, ""
// when they are equal.
func diffChanges(want, got []Change) string {
	for i := range min(len(want), len(got)) {
		if !reflect.DeepEqual(want[i], got[i]) {
			return fmt.Sprintf("change %d (event %d, %s %s) differs:\n one batch: %s\n cut:       %s",
				i, want[i].Index, want[i].Tenant, want[i].Trigger, showChange(want[i]), showChange(got[i]))
		}
	}
	if len(want) != len(got) {
		return fmt.Sprintf("%d changes as one batch, %d cut", len(want), len(got))
	}
	return ""
}

func showChange(c Change) string {
	members := make([]string, 0, len(c.Members))
	for _, m := range c.Members {
		members = append(members, fmt.Sprintf("%s%v", m.Ref(), map[string]any(m.Fields)))
	}
	types := map[string]string{}
	for _, m := range c.Members {
		for k, v := range m.Fields {
			types[k] = fmt.Sprintf("%T", v)
		}
	}
	return fmt.Sprintf("event %d trigger %s cluster %s v%d removed=%v before=%v merged=%v/%q split=%v/%q accounts=%v members=%v types=%v",
		c.Index, c.Trigger, c.ClusterID, c.Version, c.Removed, c.Before, c.MergedFrom, c.MergedInto, c.SplitInto, c.SplitFrom, c.Accounts, members, types)
}
