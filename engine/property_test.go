package engine

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/leadconv/leadconv/record"
)

func TestCommandIDs(t *testing.T) {
	base := func() Cluster {
		return cluster(
			lead("a", 0, 1, record.Fields{"Company": "Acme"}),
			lead("b", 0, 2, record.Fields{"Company": "Acme"}),
			contact("c", 0, 3, nil), contact("d", 0, 4, nil), contact("e", 0, 5, nil),
		)
	}
	ids := func(c Cluster) []string {
		res := Plan(cfgWith(func(c *Config) { c.CRM, c.PreferExistingContact = "hubspot", false }), c)
		out := make([]string, len(res.Commands))
		for i, cmd := range res.Commands {
			out[i] = cmd.ID
		}
		return out
	}
	want := ids(base())
	if len(want) != 5 {
		t.Fatalf("plan has %d commands, want 5", len(want))
	}
	seen := map[string]bool{}
	for _, id := range want {
		if b, err := hex.DecodeString(id); err != nil || len(b) != 16 || seen[id] {
			t.Errorf("id %q: want 32 hex digits, unique in the plan", id)
		}
		seen[id] = true
	}
	if got := ids(base()); !slices.Equal(got, want) {
		t.Errorf("same input, other ids: %v vs %v", got, want)
	}
	for name, edit := range map[string]func(*Cluster){
		"tenant":  func(c *Cluster) { c.Tenant = "globex" },
		"cluster": func(c *Cluster) { c.ID = "c2" },
		"version": func(c *Cluster) { c.Version++ },
	} {
		c := base()
		edit(&c)
		for i, id := range ids(c) {
			if id == want[i] {
				t.Errorf("changing the %s keeps command %d's id", name, i)
			}
		}
	}
	// The subject is length-prefixed: ("ab","c") and ("a","bc") differ.
	a := Cluster{Tenant: "ab", ID: "c", Version: 1, Records: base().Records}
	b := Cluster{Tenant: "a", ID: "bc", Version: 1, Records: base().Records}
	if ids(a)[0] == ids(b)[0] {
		t.Error("tenant and cluster id are not separated in the hash")
	}
}

// randomConfig draws a valid config: any master strategy and fallback, a
// random default and overrides of random fields with any field strategy.
func randomConfig(r *rand.Rand) *Config {
	return cfgWith(func(c *Config) {
		c.CRM = CRMs[r.IntN(len(CRMs))]
		c.MaxClusterSize = 2 + r.IntN(12)
		c.MergeContacts = r.IntN(2) == 0
		c.ContactFields = record.FieldMap{"AccountName": "Company", "Tel": "F1"}
		c.Fields.ConsiderBlanks = r.IntN(3) == 0
		c.Fields.Default = DefaultStrategies[r.IntN(2)]
		fb := FallbackStrategies[r.IntN(len(FallbackStrategies))]
		switch s := MasterStrategies[r.IntN(len(MasterStrategies))]; s {
		case MasterNewestDate, MasterOldestDate:
			c.Master = MasterConfig{Strategy: s, Field: "F3", Fallback: fb}
		case MasterSpecifiedValues:
			c.Master = MasterConfig{Strategy: s, Field: "F0", Values: []string{"b", "", "a"}[:1+r.IntN(3)], Fallback: fb}
		case MasterMostComplete:
			c.Master = MasterConfig{Strategy: s, Fallback: fb}
			if r.IntN(2) == 0 {
				c.Master.Fields = []string{"F0", "F1", "Company"}
			}
		default:
			c.Master = MasterConfig{Strategy: s, Fallback: fb}
		}
		for i, f := range []string{"F0", "F1", "F2", "F3", "Company"} {
			if r.IntN(4) == 0 {
				continue
			}
			o := FieldOverride{Field: f, Strategy: FieldStrategies[r.IntN(len(FieldStrategies))]}
			if i%2 == 0 && r.IntN(2) == 0 {
				cb := r.IntN(2) == 0
				o.ConsiderBlanks = &cb
			}
			c.Fields.Overrides = append(c.Fields.Overrides, o)
		}
		if r.IntN(2) == 0 {
			c.Conversion.BlankAccount = BlankAccountConfig{Strategy: AccountUseExisting, AccountID: "001D"}
		}
		if r.IntN(2) == 0 {
			c.Conversion.Opportunity = OpportunityConfig{Strategy: OpportunityCreate, NameFrom: "F2"}
		}
		if r.IntN(3) == 0 {
			c.ConvertWhen = &Condition{Field: "F0", In: []string{"a", ""}}
		}
	})
}

// randomCluster draws records from small pools of times and values, so
// ties of every kind are common.
func randomCluster(r *rand.Rand, n int) Cluster {
	values := []any{nil, "", " ", "a", "A ", "b", "1", "2.5", 3.0, true, "false", "yes", "2024-01-02", "2023-05-06T07:08:09Z", "x;y", "Y; z", "ü"}
	recs := make([]record.Record, n)
	for i := range recs {
		obj := []record.Object{record.Lead, record.Lead, record.Contact, record.Account}[r.IntN(4)]
		f := record.Fields{}
		for _, k := range []string{"F0", "F1", "F2", "F3", "Company", "Tel", "AccountName", "AccountId"} {
			if r.IntN(3) > 0 {
				f[k] = values[r.IntN(len(values))]
			}
		}
		recs[i] = rb{obj: obj, id: fmt.Sprintf("r%d-%d", r.IntN(3*n), i), created: r.IntN(3), modified: r.IntN(3), related: r.IntN(3), fields: f}.rec()
	}
	c := cluster(recs...)
	c.Accounts = map[string]string{"a": "001A", "b": "001B"}
	return c
}

// TestShuffleNeverChangesThePlan is the property test: the order of a
// cluster's records never changes the plan, byte for byte.
func TestShuffleNeverChangesThePlan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 400 {
		cfg := randomConfig(r)
		if err := cfg.Validate(""); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		c := randomCluster(r, 1+r.IntN(8))
		want := marshalPlan(t, Plan(cfg, c))
		for range 4 {
			s := c
			s.Records = slices.Clone(c.Records)
			r.Shuffle(len(s.Records), func(a, b int) { s.Records[a], s.Records[b] = s.Records[b], s.Records[a] })
			if got := marshalPlan(t, Plan(cfg, s)); !bytes.Equal(got, want) {
				t.Fatalf("case %d: shuffled records change the plan\nconfig %+v\nwant %s\ngot %s", i, *cfg, want, got)
			}
		}
		checkInvariants(t, cfg, c, Plan(cfg, c))
	}
}

// TestAccountValuesAgreeWithPlan: AccountValues names exactly the value a
// plan would create an account for, and resolving it makes the plan use
// the resolved account.
func TestAccountValuesAgreeWithPlan(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	lookups := 0
	for i := range 400 {
		cfg := randomConfig(r)
		c := randomCluster(r, 1+r.IntN(8))
		c.Accounts = nil
		vals := AccountValues(cfg, c.Records)
		lc := converts(Plan(cfg, c))
		creates := len(lc) > 0 && lc[0].Account.Create
		if creates != (len(vals) == 1) || len(vals) > 1 {
			t.Fatalf("case %d: AccountValues = %q, but the plan creates an account: %v", i, vals, creates)
		}
		if !creates {
			continue
		}
		lookups++
		if lc[0].Account.Name != text(vals[0]) {
			t.Fatalf("case %d: account name %q, AccountValues %q", i, lc[0].Account.Name, vals[0])
		}
		c.Accounts = map[string]string{vals[0]: "001Z"}
		if lc := converts(Plan(cfg, c)); len(lc) == 0 || lc[0].Account.Target != (Target{ID: "001Z"}) {
			t.Fatalf("case %d: resolved account not used: %+v", i, lc)
		}
	}
	if lookups < 20 {
		t.Fatalf("only %d cases needed an account lookup; the generator is too narrow", lookups)
	}
}

// checkInvariants asserts what holds for every plan.
func checkInvariants(t *testing.T, cfg *Config, c Cluster, res Result) {
	t.Helper()
	lim, _ := Profile(cfg.CRM)
	member := func(ref record.Ref) bool {
		return slices.ContainsFunc(c.Records, func(r record.Record) bool { return r.Ref() == ref && r.Object != record.Account })
	}
	if len(res.Commands) == 0 && res.Reason == "" {
		t.Fatal("empty plan without a reason")
	}
	if res.Master != (record.Ref{}) && !member(res.Master) {
		t.Fatalf("master %v is not a lead or contact of the cluster", res.Master)
	}
	ids := map[string]bool{}
	for i, cmd := range res.Commands {
		if cmd.Seq != i || cmd.Tenant != c.Tenant || cmd.ClusterID != c.ID || cmd.ClusterVersion != c.Version || ids[cmd.ID] || cmd.Explain == nil {
			t.Fatalf("command %d: bad envelope %+v", i, cmd)
		}
		ids[cmd.ID] = true
		switch d := cmd.Data.(type) {
		case *RecordsMerge:
			if len(d.MergedIDs) == 0 || len(d.MergedIDs) > lim.MergeRecords-1 || slices.Contains(d.MergedIDs, res.Master.ID) && res.Master.Object == record.Contact {
				t.Fatalf("merge %+v breaks the %s limit or merges the master", d, cfg.CRM)
			}
		case *LeadConvert:
			if !member(record.Ref{Object: record.Lead, ID: d.LeadID}) {
				t.Fatalf("converts %s, not a lead of the cluster", d.LeadID)
			}
		}
	}
}

// FuzzPlan plans clusters and configs derived from fuzz input: no panic,
// the invariants hold, and reversing the records changes nothing.
func FuzzPlan(f *testing.F) {
	for _, s := range []uint64{1, 2, 3, 42, 1 << 40} {
		f.Add(s, uint8(5))
	}
	f.Fuzz(func(t *testing.T, seed uint64, n uint8) {
		r := rand.New(rand.NewPCG(seed, uint64(n)))
		cfg := randomConfig(r)
		c := randomCluster(r, int(n%24))
		res := Plan(cfg, c)
		checkInvariants(t, cfg, c, res)
		rev := c
		rev.Records = slices.Clone(c.Records)
		slices.Reverse(rev.Records)
		if !bytes.Equal(marshalPlan(t, res), marshalPlan(t, Plan(cfg, rev))) {
			t.Fatal("record order changes the plan")
		}
	})
}

// Prepare, then AccountValues and Plan on the result, gives what the
// functions give, byte for byte.
func TestPreparedAgrees(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	lookups := 0
	for i := range 1000 {
		cfg := randomConfig(r)
		c := randomCluster(r, r.IntN(10))
		pp := Prepare(cfg, c)
		vals := pp.AccountValues()
		if want := AccountValues(cfg, c.Records); !slices.Equal(vals, want) {
			t.Fatalf("case %d: AccountValues %q, the function's %q", i, vals, want)
		}
		if len(vals) > 0 && r.IntN(2) == 0 {
			lookups++
			c.Accounts = map[string]string{vals[0]: "001Z"}
		}
		got, want := marshalPlan(t, pp.Plan(c.Accounts)), marshalPlan(t, Plan(cfg, c))
		if !bytes.Equal(got, want) {
			t.Fatalf("case %d: prepared plan\n%s\nPlan\n%s", i, got, want)
		}
	}
	if lookups < 50 {
		t.Fatalf("only %d cases resolved an account; the generator is too narrow", lookups)
	}
}
