package main

import (
	"fmt"
	"sync"

	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/requests"
)

// verifiers holds the request-token verifiers of the tenants' keys, one per
// distinct key source.
type verifiers struct {
	getenv func(string) string
	mu     sync.Mutex
	byKey  map[config.TokenKey]*requests.Verifier
}

// loadVerifiers loads the key of every tenant the file lists, so that a
// missing key file or variable stops start-up naming the tenant; the
// defaults' key (for tenants not listed) loads on first use.
func loadVerifiers(cfg *config.File, getenv func(string) string) (*verifiers, error) {
	v := &verifiers{getenv: getenv, byKey: map[config.TokenKey]*requests.Verifier{}}
	for _, name := range cfg.Tenants() {
		t, err := cfg.Tenant(name)
		if err != nil {
			return nil, err
		}
		if _, err := v.of(t.MassConversion.Token); err != nil {
			return nil, fmt.Errorf("tenants.%s.mass_conversion.token: %w", name, err)
		}
	}
	return v, nil
}

// of returns the verifier of k; nil for no key, which rejects every request.
func (v *verifiers) of(k *config.TokenKey) (*requests.Verifier, error) {
	if k == nil {
		return nil, nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if ver, ok := v.byKey[*k]; ok {
		return ver, nil
	}
	ver, err := requests.NewVerifier(requests.KeySource{HMACSecretFile: k.HMACSecretFile, HMACSecretEnv: k.HMACSecretEnv,
		PublicKeyFile: k.PublicKeyFile, JWKSFile: k.JWKSFile}, v.getenv)
	if err != nil {
		return nil, err
	}
	v.byKey[*k] = ver
	return ver, nil
}
