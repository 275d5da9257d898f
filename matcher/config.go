// Package matcher keeps duplicate clusters of CRM records current as record
// events arrive: match rules, normalisers and comparators (pure) and the Redis
// store of records, blocks, edges and clusters.
package matcher

// Config is a tenant's matching configuration. Placeholder: the matcher-rules
// work replaces it with rules, normaliser options and blocking limits.
type Config struct{}

// DefaultConfig returns the shipped default rules.
func DefaultConfig() Config { return Config{} }

// Validate checks c; path names the config location in error messages.
func (c Config) Validate(path string) error { return nil }
