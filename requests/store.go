package requests

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/record"
)

// Store is what a request reads: the tenant's stored leads and the clusters
// they are in.
type Store interface {
	// Lead returns a stored lead; ok is false when it does not exist.
	Lead(ctx context.Context, tenant, id string) (rec record.Record, ok bool, err error)
	// Leads calls fn with each stored lead of tenant, converted ones
	// included; an error from fn stops the walk and is returned.
	Leads(ctx context.Context, tenant string, fn func(record.Record) error) error
	// Cluster returns the cluster holding ref, as the engine plans it: id,
	// version and the members' current records, unconverted leads and
	// contacts only.
	Cluster(ctx context.Context, tenant string, ref record.Ref) (engine.Cluster, error)
	ResolveAccounts(ctx context.Context, tenant string, values []string) (map[string]string, error)
}

// Records reads records by ref and walks a tenant's leads: the CRM's data
// (writer.Mirror is one).
type Records interface {
	Get(ctx context.Context, tenant string, ref record.Ref) (record.Record, bool, error)
	Leads(ctx context.Context, tenant string, fn func(record.Record) error) error
}

// Graph is what Source needs of the matcher's store: the cluster of a record
// and account resolution.
type Graph interface {
	View(ctx context.Context, tenant string, ref record.Ref) (matcher.View, error)
	ResolveAccounts(ctx context.Context, tenant string, values []string) (map[string]string, error)
}

var _ Graph = (*matcher.Store)(nil)

// Source is a Store made of the matcher's graph (clusters, versions,
// accounts) and a record source (fields). The matcher keeps only what
// matching needs, so the members' full records come from Records.
type Source struct {
	Graph   Graph
	Records Records
}

var _ Store = (*Source)(nil)

// Lead implements Store.
func (s *Source) Lead(ctx context.Context, tenant, id string) (record.Record, bool, error) {
	return s.Records.Get(ctx, tenant, record.Ref{Object: record.Lead, ID: id})
}

// Leads implements Store.
func (s *Source) Leads(ctx context.Context, tenant string, fn func(record.Record) error) error {
	return s.Records.Leads(ctx, tenant, fn)
}

// ResolveAccounts implements Store.
func (s *Source) ResolveAccounts(ctx context.Context, tenant string, values []string) (map[string]string, error) {
	return s.Graph.ResolveAccounts(ctx, tenant, values)
}

// Cluster implements Store. A record the matcher holds in no cluster is
// planned alone under the id "<object>:<id>".
func (s *Source) Cluster(ctx context.Context, tenant string, ref record.Ref) (engine.Cluster, error) {
	v, err := s.Graph.View(ctx, tenant, ref)
	if err != nil {
		return engine.Cluster{}, fmt.Errorf("requests: cluster of %s: %w", ref, err)
	}
	c := engine.Cluster{Tenant: tenant, ID: v.Cluster, Version: v.Version}
	members := v.Members
	if c.ID == "" {
		c.ID = string(ref.Object) + ":" + ref.ID
		members = []record.Ref{ref}
	}
	for _, m := range members {
		if m.Object != record.Lead && m.Object != record.Contact {
			continue
		}
		r, ok, err := s.Records.Get(ctx, tenant, m)
		if err != nil {
			return engine.Cluster{}, fmt.Errorf("requests: member %s: %w", m, err)
		}
		if ok && !converted(r) {
			c.Records = append(c.Records, r)
		}
	}
	return c, nil
}

func converted(r record.Record) bool {
	return r.Object == record.Lead && isTrue(r.Fields[FieldIsConverted])
}

func isTrue(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case string:
		return strings.EqualFold(strings.TrimSpace(v), "true")
	}
	return false
}

// matches reports whether lead satisfies the selection's filter.
func (s *Selection) matches(lead record.Record) bool {
	if s.CreatedAfter != nil && !lead.CreatedAt.After(*s.CreatedAfter) {
		return false
	}
	if s.CreatedBefore != nil && !lead.CreatedAt.Before(*s.CreatedBefore) {
		return false
	}
	for f, want := range s.Where {
		v := lead.Fields[f]
		ok := slices.ContainsFunc(want, func(w string) bool {
			if record.IsBlank(w) {
				return record.IsBlank(v)
			}
			return !record.IsBlank(v) && strings.EqualFold(strings.TrimSpace(record.String(v)), strings.TrimSpace(w))
		})
		if !ok {
			return false
		}
	}
	return true
}
