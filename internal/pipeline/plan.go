package pipeline

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/internal/parallel"
	"github.com/leadconv/leadconv/lifecycle"
	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/record"
)

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

// echo reconciles a change that reports a conversion leadconv emitted and
// reports whether the change echoes leadconv's own write: marked so, or
// the conversion of a lead pending conversion (a CRM that marks nothing).
// An echo that joins clusters is planned like any change when the join
// brings records together that no plan accounted for together: a cluster
// commands were emitted for joined into another, or any cluster holding
// records besides the echoed one joined into this (leadconv's new contact
// met an existing contact there). The record's own new cluster, joined at
// once, is no such join.
func echo(lc *lifecycle.Lifecycle, marked bool, conv *Conversion, ch matcher.Change) bool {
	ours := false
	if conv != nil {
		ours = lc.Echo(conv.Lead, conv.Contact, conv.Account)
	}
	if !marked && !ours {
		return false
	}
	for _, id := range ch.MergedFrom {
		if lc.Emitted(id) {
			return false
		}
	}
	if len(ch.MergedFrom) > 0 {
		for _, m := range ch.Members {
			if r := m.Ref(); r != ch.Trigger && !slices.Contains(ch.Before, r) {
				return false
			}
		}
	}
	return true
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

// Immediate is the options of a lifecycle without settle window: every
// instant's cluster states are planned once a later instant is read.
func Immediate(*config.Tenant) lifecycle.Options { return lifecycle.Options{} }

// Settled is the options of a tenant's configured settle window (the
// Handler's default).
func Settled(t *config.Tenant) lifecycle.Options {
	return lifecycle.Options{Settle: time.Duration(t.Engine.Settle), MaxSettle: time.Duration(t.Engine.MaxSettle)}
}

// planItem is one cluster to plan.
type planItem struct {
	tenant *tenantState
	ready  lifecycle.Ready
}

// mark is a plan's outcome, to record in its tenant's lifecycle.
type mark struct {
	tenant  *tenantState
	ready   lifecycle.Ready
	cmds    []engine.Command
	st      engine.State
	changed bool
}

// planItems plans items in order: each cluster prepared once for its
// account lookup and its plan, one account lookup per tenant for the values
// the matcher did not resolve with the change. It changes no lifecycle:
// the marks are for later.
func planItems(ctx context.Context, items []planItem, accounts AccountResolver) ([]Planned, []mark, error) {
	if len(items) == 0 {
		return nil, nil, nil
	}
	preps := make([]*engine.Prepared, len(items))
	want := make([][]string, len(items))
	// Preparing and planning are pure: they run in parallel chunks, so one
	// busy tenant still uses every core; the outcomes are taken in order.
	parallel.Chunks(len(items), 16, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			preps[i] = engine.PrepareFrom(items[i].tenant.cfg.Engine, items[i].ready.Cluster, items[i].ready.History)
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
			return nil, nil, fmt.Errorf("pipeline: resolve accounts of %s: %w", tenant, err)
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
	out := make([]Planned, len(items))
	marks := make([]mark, len(items))
	for i, it := range items {
		st, changed := preps[i].State()
		marks[i] = mark{tenant: it.tenant, ready: it.ready, cmds: plans[i].Commands, st: st, changed: changed}
		out[i] = Planned{Commands: plans[i].Commands, At: it.ready.At}
	}
	return out, marks, nil
}
