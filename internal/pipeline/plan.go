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
	"github.com/leadconv/leadconv/lifecycle"
	"github.com/leadconv/leadconv/matcher"
)

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

// Changed is one cluster change of a batch.
type Changed struct {
	matcher.Change
	Tenant *config.Tenant
	// At is the change's event time: the triggering record's modification
	// (its Kafka timestamp when it has none).
	At time.Time
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
			At:      c.At, Removed: c.Removed, MergedInto: c.MergedInto, SplitFrom: c.SplitFrom,
		})
		if c.At.After(lp.watermark) {
			lp.watermark = c.At
		}
	}
	now := lp.watermark
	if lp.Now != nil {
		now = lp.Now()
	}
	return lp.planAll(ctx, accounts, func(l *lifecycle.Lifecycle) []lifecycle.Ready { return l.Due(now) })
}

// Flush plans every pending cluster (Flusher).
func (lp *LifecyclePlanner) Flush(ctx context.Context, accounts AccountResolver) ([]Planned, error) {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return lp.planAll(ctx, accounts, (*lifecycle.Lifecycle).Flush)
}

// planAll plans the ready clusters of every tenant, tenants in name order:
// each cluster prepared once for its account lookup and its plan, one
// account lookup per tenant for what the matcher did not resolve with the
// change.
func (lp *LifecyclePlanner) planAll(ctx context.Context, accounts AccountResolver, pick func(*lifecycle.Lifecycle) []lifecycle.Ready) ([]Planned, error) {
	var out []Planned
	for _, name := range slices.Sorted(maps.Keys(lp.tenants)) {
		tl := lp.tenants[name]
		ready := pick(tl.lc)
		if len(ready) == 0 {
			continue
		}
		preps := make([]*engine.Prepared, len(ready))
		want := make([][]string, len(ready))
		var values []string
		for i, r := range ready {
			preps[i] = engine.PrepareFrom(tl.cfg, r.Cluster, r.History)
			want[i] = preps[i].AccountValues()
			for _, v := range want[i] {
				if _, ok := r.Cluster.Accounts[v]; !ok {
					values = append(values, v)
				}
			}
		}
		var got map[string]string
		if len(values) > 0 {
			slices.Sort(values)
			var err error
			if got, err = accounts(ctx, name, slices.Compact(values)); err != nil {
				return nil, fmt.Errorf("pipeline: resolve accounts of %s: %w", name, err)
			}
		}
		for i, r := range ready {
			var acc map[string]string
			if len(want[i]) > 0 {
				acc = make(map[string]string, len(want[i]))
				for _, v := range want[i] {
					id, ok := r.Cluster.Accounts[v]
					if !ok {
						id = got[v]
					}
					if id != "" {
						acc[v] = id
					}
				}
			}
			res := preps[i].Plan(acc)
			st, changed := preps[i].State()
			tl.lc.Planned(r, res.Commands, st, changed)
			out = append(out, Planned{Commands: res.Commands, At: r.At})
		}
	}
	return out, nil
}
