package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/matcher/eval"
)

// matchingFile is a config file read for its match rules: the service
// config (a tenant's matching: block) or a bare rules file.
type matchingFile struct {
	service *config.File // nil for a bare rules file
	rules   matcher.Config
}

// loadMatching reads path as either kind of file: one with a top-level
// defaults: or tenants: key is the service config, anything else a bare
// rules file (the matching: block alone, as examples/eval/*.yaml).
func loadMatching(path string) (*matchingFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if config.IsServiceConfig(b) {
		f, err := config.Parse(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return &matchingFile{service: f}, nil
	}
	mc, err := eval.ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: rules file: %w", path, err)
	}
	return &matchingFile{rules: mc}, nil
}

// ruleset compiles the rules of one tenant: of a service config the named
// tenant's (the defaults when tenant is ""), which must be configured; of a
// rules file its rules, where a tenant is a usage error.
func (m *matchingFile) ruleset(tenant string) (*matcher.Ruleset, error) {
	if m.service == nil {
		if tenant != "" {
			return nil, usagef("--tenant %q: the config is a bare rules file without tenants", tenant)
		}
		rs, err := matcher.Compile(m.rules, nil)
		if err != nil {
			return nil, fmt.Errorf("compile rules: %w", err)
		}
		return rs, nil
	}
	if tenant == "" {
		t, err := m.service.Tenant("default")
		if err != nil {
			return nil, err
		}
		return t.Rules, nil
	}
	names := m.service.Tenants()
	found := false
	for _, n := range names {
		found = found || n == tenant
	}
	if !found {
		return nil, usagef("--tenant %q: not configured (tenants: %s)", tenant, strings.Join(names, ", "))
	}
	t, err := m.service.Tenant(tenant)
	if err != nil {
		return nil, err
	}
	return t.Rules, nil
}
