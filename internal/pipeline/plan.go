package pipeline

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/internal/parallel"
	"github.com/leadconv/leadconv/lifecycle"
	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/record"
)

var _ ResultPlanner = (*LifecyclePlanner)(nil)

// Planner is the step between the matcher and the encoding: it takes a
// batch's cluster changes and returns the plans due, in emission order.
type Planner interface {
	Plan(ctx context.Context, changes []Changed, accounts AccountResolver) ([]Planned, error)
}

// Flusher is a Planner holding plans back (a settle window): Flush returns
// every plan still pending, at the end of the input.
type Flusher interface {
	Flush(ctx context.Context, accounts AccountResolver) ([]Planned, error)
}

// ResultPlanner is a Planner that awaits the writer's results: Result
// reconciles one command.result with the tenant's pending state and returns
// the plans it made due (a failed command's cluster, planned again).
type ResultPlanner interface {
	Result(ctx context.Context, tenant string, r lifecycle.Result, at time.Time, accounts AccountResolver) ([]Planned, error)
}

// Changed is one cluster change of a batch.
type Changed struct {
	matcher.Change
	Tenant *config.Tenant
	// At is the change's event time: the triggering record's modification
	// (its Kafka timestamp when it has none).
	At time.Time
	// Echo: the triggering event is marked as the echo of leadconv's own
	// write (record.Event.Echo). A LifecyclePlanner plans nothing from it
	// for a cluster it emitted commands for (lifecycle.Change.Echo).
	Echo bool
	// Conversion is set when the triggering event reports a lead converted.
	Conversion *Conversion
}

// Conversion is a lead the CRM reports converted, with the contact and
// account it went into: the echo of leadconv's conversion when leadconv
// converted it.
type Conversion struct {
	Lead, Contact, Account string
}

// The lead fields naming what a converted lead went into, as Salesforce
// names them (and the reference writer writes them).
const (
	FieldConvertedContactID = "ConvertedContactId"
	FieldConvertedAccountID = "ConvertedAccountId"
)

// conversionOf returns the conversion a lead's event reports, nil when it
// reports none.
func conversionOf(t *config.Tenant, ev *record.Event) *Conversion {
	if ev.Object != record.Lead || t.Rules == nil || !t.Rules.Converted(&ev.Record) {
		return nil
	}
	c := &Conversion{Lead: ev.ID, Contact: ev.Fields.Str(FieldConvertedContactID), Account: ev.Fields.Str(FieldConvertedAccountID)}
	if c.Contact == "" {
		return nil
	}
	return c
}

// Planned is one cluster's plan.
type Planned struct {
	Commands []engine.Command
	// At is the time of the cluster's latest change: the commands'
	// CloudEvents time.
	At time.Time
}

// AccountResolver looks a tenant's account values up (the store's
// ResolveAccounts).
type AccountResolver func(ctx context.Context, tenant string, values []string) (map[string]string, error)

// LifecyclePlanner plans through one lifecycle.Lifecycle per tenant: plans
// compose with what was emitted before, and a cluster is planned once its
// settle window passed, only its latest state. It is safe for concurrent
// use; planning is serial.
type LifecyclePlanner struct {
	// Options returns a tenant's lifecycle options.
	Options func(*config.Tenant) lifecycle.Options
	// Now is the planning clock; nil plans by event time: the latest
	// change seen so far (simulate, replay: deterministic).
	Now func() time.Time
	// Tenants starts the lifecycle of a tenant a mass-conversion request
	// reaches before any change did (Emitted).
	Tenants Tenants

	mu        sync.Mutex
	tenants   map[string]*tenantLifecycle
	watermark time.Time
}

type tenantLifecycle struct {
	lc  *lifecycle.Lifecycle
	cfg *engine.Config
}

// Immediate is the options of a lifecycle without settle window: every
// batch's latest cluster states are planned at once.
func Immediate(*config.Tenant) lifecycle.Options { return lifecycle.Options{} }

// Settled is the options of a tenant's configured settle window.
func Settled(t *config.Tenant) lifecycle.Options {
	return lifecycle.Options{Settle: time.Duration(t.Engine.Settle), MaxSettle: time.Duration(t.Engine.MaxSettle)}
}

// Plan records the changes and plans what is due (Planner).
func (lp *LifecyclePlanner) Plan(ctx context.Context, changes []Changed, accounts AccountResolver) ([]Planned, error) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	if lp.tenants == nil {
		lp.tenants = map[string]*tenantLifecycle{}
	}
	for _, c := range changes {
		tl := lp.tenants[c.Change.Tenant]
		if tl == nil {
			opts := Immediate
			if lp.Options != nil {
				opts = lp.Options
			}
			tl = &tenantLifecycle{lc: lifecycle.New(opts(c.Tenant)), cfg: c.Tenant.Engine}
			lp.tenants[c.Change.Tenant] = tl
		}
		tl.lc.Change(lifecycle.Change{
			Cluster: engine.Cluster{Tenant: c.Change.Tenant, ID: c.ClusterID, Version: c.Version, Records: c.Members, Accounts: c.Accounts},
			At:      c.At, Removed: c.Removed, MergedInto: c.MergedInto, Echo: echo(tl.lc, c),
		})
		if c.At.After(lp.watermark) {
			lp.watermark = c.At
		}
	}
	now := lp.now()
	return lp.planAll(ctx, accounts, slices.Sorted(maps.Keys(lp.tenants)), func(l *lifecycle.Lifecycle) []lifecycle.Ready { return l.Due(now) })
}

// echo reconciles a change that reports a conversion leadconv emitted and
// reports whether the change echoes leadconv's own write: marked so, or the
// conversion of a lead pending conversion (a CRM that marks nothing). An
// echo that joins a cluster commands were emitted for into another is
// planned like any change: no plan accounted for those records together
// (the record's own new cluster, joined at once, is no such join).
func echo(lc *lifecycle.Lifecycle, c Changed) bool {
	ours := false
	if v := c.Conversion; v != nil {
		ours = lc.Echo(v.Lead, v.Contact, v.Account)
	}
	if !c.Echo && !ours {
		return false
	}
	for _, id := range c.MergedFrom {
		if lc.Emitted(id) {
			return false
		}
	}
	return true
}

// Result reconciles a writer's result with the tenant's pending state and
// plans what that made due: a failed command's cluster is released and,
// once its settle window from at passed, planned again (ResultPlanner). A
// result of a command this planner does not await changes nothing.
func (lp *LifecyclePlanner) Result(ctx context.Context, tenant string, r lifecycle.Result, at time.Time, accounts AccountResolver) ([]Planned, error) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	tl := lp.tenants[tenant]
	if tl == nil || !tl.lc.Result(r, at) {
		return nil, nil
	}
	if at.After(lp.watermark) {
		lp.watermark = at
	}
	now := lp.now()
	return lp.planAll(ctx, accounts, []string{tenant}, func(l *lifecycle.Lifecycle) []lifecycle.Ready { return l.Due(now) })
}

// now is the planning clock: Now, or event time.
func (lp *LifecyclePlanner) now() time.Time {
	if lp.Now != nil {
		return lp.Now()
	}
	return lp.watermark
}

// Flush plans every pending cluster (Flusher).
func (lp *LifecyclePlanner) Flush(ctx context.Context, accounts AccountResolver) ([]Planned, error) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return lp.planAll(ctx, accounts, slices.Sorted(maps.Keys(lp.tenants)), (*lifecycle.Lifecycle).Flush)
}

// planAll plans the ready clusters of the named tenants, in that order.
func (lp *LifecyclePlanner) planAll(ctx context.Context, accounts AccountResolver, names []string, pick func(*lifecycle.Lifecycle) []lifecycle.Ready) ([]Planned, error) {
	var items []planItem
	for _, name := range names {
		tl := lp.tenants[name]
		for _, r := range pick(tl.lc) {
			items = append(items, planItem{cfg: tl.cfg, ready: r, done: func(cmds []engine.Command, st engine.State, changed bool) {
				tl.lc.Planned(r, cmds, st, changed)
			}})
		}
	}
	return planItems(ctx, items, accounts)
}

// EachChange plans every change of a batch on its own, from nothing, in the
// order of the events that caused them: the pipeline's planning before
// plans composed. It is the Handler's default until the tenant's owner
// keeps the lifecycle's state durable: a LifecyclePlanner's state lives in
// one process's memory, so across a restart, a rebalance or a second
// instance it would plan from nothing again, and which versions it plans
// depends on batch boundaries.
type EachChange struct{}

// Plan plans each change that still exists (Planner). Echoes are planned
// too: without state, a plan from nothing is all it has.
func (EachChange) Plan(ctx context.Context, changes []Changed, accounts AccountResolver) ([]Planned, error) {
	items := make([]planItem, 0, len(changes))
	for _, c := range changes {
		if c.Removed {
			continue
		}
		items = append(items, planItem{cfg: c.Tenant.Engine, ready: lifecycle.Ready{
			Cluster: engine.Cluster{Tenant: c.Change.Tenant, ID: c.ClusterID, Version: c.Version, Records: c.Members, Accounts: c.Accounts},
			At:      c.At,
		}})
	}
	return planItems(ctx, items, accounts)
}

// planItem is one cluster to plan; done, when set, takes the outcome.
type planItem struct {
	cfg   *engine.Config
	ready lifecycle.Ready
	done  func(cmds []engine.Command, st engine.State, changed bool)
}

// planItems plans items in order: each cluster prepared once for its
// account lookup and its plan, one account lookup per tenant for the values
// the matcher did not resolve with the change.
func planItems(ctx context.Context, items []planItem, accounts AccountResolver) ([]Planned, error) {
	if len(items) == 0 {
		return nil, nil
	}
	preps := make([]*engine.Prepared, len(items))
	want := make([][]string, len(items))
	// Preparing and planning are pure: they run in parallel chunks, so one
	// busy tenant still uses every core; the outcomes are taken in order.
	parallel.Chunks(len(items), 16, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			preps[i] = engine.PrepareFrom(items[i].cfg, items[i].ready.Cluster, items[i].ready.History)
			want[i] = preps[i].AccountValues()
		}
	})
	values := map[string][]string{}
	for i, it := range items {
		c := &it.ready.Cluster
		for _, v := range want[i] {
			if _, ok := c.Accounts[v]; !ok {
				values[c.Tenant] = append(values[c.Tenant], v)
			}
		}
	}
	got := map[string]map[string]string{}
	for _, tenant := range slices.Sorted(maps.Keys(values)) {
		vs := values[tenant]
		slices.Sort(vs)
		m, err := accounts(ctx, tenant, slices.Compact(vs))
		if err != nil {
			return nil, fmt.Errorf("pipeline: resolve accounts of %s: %w", tenant, err)
		}
		got[tenant] = m
	}
	plans := make([]engine.Result, len(items))
	parallel.Chunks(len(items), 16, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			c := &items[i].ready.Cluster
			var acc map[string]string
			if len(want[i]) > 0 {
				acc = make(map[string]string, len(want[i]))
				for _, v := range want[i] {
					id, ok := c.Accounts[v]
					if !ok {
						id = got[c.Tenant][v]
					}
					if id != "" {
						acc[v] = id
					}
				}
			}
			plans[i] = preps[i].Plan(acc)
		}
	})
	out := make([]Planned, 0, len(items))
	for i, it := range items {
		if it.done != nil {
			st, changed := preps[i].State()
			it.done(plans[i].Commands, st, changed)
		}
		out = append(out, Planned{Commands: plans[i].Commands, At: it.ready.At})
	}
	return out, nil
}
