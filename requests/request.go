// Package requests runs mass-conversion requests: a user selects a tenant's
// leads (by id or by a filter) and converts each with its duplicates in one
// go, under the tenant's strategies and the request's options. A request is
// checked (permission, limits) and planned entirely before any command is
// emitted; it ends with a request.completed event counting what became of
// every lead, or a request.rejected event naming why nothing happened.
package requests

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/leadconv/leadconv/engine"
)

// Duplicate handling toward an existing contact (Options.DuplicateHandling).
const (
	// DuplicateMerge lets the tenant's field strategies decide (default).
	DuplicateMerge = "merge"
	// DuplicateOverwrite writes the lead's non-blank values over the
	// contact's.
	DuplicateOverwrite = "overwrite"
	// DuplicateSkip leaves the lead unconverted (outcome duplicate_exists).
	DuplicateSkip = "skip"
)

// Request is one mass-conversion request (schemas/request.v1.json).
type Request struct {
	Tenant      string    `json:"tenant"`
	RequestID   string    `json:"request_id"`
	RequestedBy Requester `json:"requested_by,omitzero"`
	Select      Selection `json:"select"`
	// DryRun plans and reports without emitting commands.
	DryRun  bool    `json:"dry_run"`
	Options Options `json:"options"`
}

// Requester is the user asking and their roles, checked against the
// tenant's mass-conversion roles. Handle takes both from the request's
// verified token; a requested_by in the body is informational and ignored.
type Requester struct {
	User  string   `json:"user"`
	Roles []string `json:"roles"`
}

// Selection picks the leads: either IDs, or Where with optional creation
// bounds over the tenant's stored leads.
type Selection struct {
	IDs []string `json:"ids,omitempty"`
	// Where maps a lead field to a value or a list of values; a lead
	// matches when every field equals one of its values, compared trimmed
	// and case-insensitively ("" matches blank).
	Where map[string]Values `json:"where,omitempty"`
	// CreatedAfter and CreatedBefore bound the lead's created_at
	// (exclusive).
	CreatedAfter  *time.Time `json:"created_after,omitempty"`
	CreatedBefore *time.Time `json:"created_before,omitempty"`
}

// Values is a filter's accepted values: JSON a scalar or an array.
type Values []string

// UnmarshalJSON accepts a string, number, boolean or an array of them.
func (v *Values) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var raw []json.RawMessage
		if err := json.Unmarshal(b, &raw); err != nil {
			return err
		}
		out := make(Values, 0, len(raw))
		for _, r := range raw {
			s, err := scalar(r)
			if err != nil {
				return err
			}
			out = append(out, s)
		}
		*v = out
		return nil
	}
	s, err := scalar(b)
	if err != nil {
		return err
	}
	*v = Values{s}
	return nil
}

func scalar(b []byte) (string, error) {
	var x any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&x); err != nil {
		return "", err
	}
	switch x := x.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		return fmt.Sprint(x), nil
	case nil:
		return "", nil
	}
	return "", errors.New("a filter value must be a string, number, boolean, null or a list of them")
}

// Options override the tenant's conversion options for one request.
type Options struct {
	ConvertedStatus string                     `json:"converted_status,omitempty"`
	Opportunity     *engine.OpportunityConfig  `json:"opportunity,omitempty"`
	BlankAccount    *engine.BlankAccountConfig `json:"blank_account,omitempty"`
	// AccountFields and OpportunityFields replace the tenant's lead field
	// mappings of created accounts and opportunities.
	AccountFields     map[string]string `json:"account_fields,omitempty"`
	OpportunityFields map[string]string `json:"opportunity_fields,omitempty"`
	// DuplicateHandling is merge (default), overwrite or skip.
	DuplicateHandling string `json:"duplicate_handling,omitempty"`
}

// Decode parses and checks a request. Unknown fields are errors: a typo in
// an option must not convert leads with the tenant's defaults instead.
func Decode(b []byte) (*Request, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	r := new(Request)
	if err := d.Decode(r); err != nil {
		return nil, fmt.Errorf("requests: decode: %w", err)
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// Validate checks what the schema says, for requests built in Go.
func (r *Request) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if r.Tenant == "" || strings.ContainsAny(r.Tenant, "{} \t\n") {
		add("tenant: must be non-empty, without braces or whitespace")
	}
	if strings.TrimSpace(r.RequestID) == "" {
		add("request_id: is required")
	}
	s := r.Select
	filter := s.Where != nil || s.CreatedAfter != nil || s.CreatedBefore != nil
	switch {
	case len(s.IDs) > 0 && filter:
		add("select: either ids or a filter, not both")
	case len(s.IDs) == 0 && !filter:
		add("select: needs ids or a filter (where, created_after, created_before)")
	}
	if slices.Contains(s.IDs, "") {
		add("select.ids: empty id")
	}
	for f, vs := range s.Where {
		if strings.TrimSpace(f) == "" {
			add("select.where: empty field name")
		}
		if len(vs) == 0 {
			add("select.where.%s: needs at least one value", f)
		}
	}
	if s.CreatedAfter != nil && s.CreatedBefore != nil && !s.CreatedAfter.Before(*s.CreatedBefore) {
		add("select: created_after must be before created_before")
	}
	switch r.Options.DuplicateHandling {
	case "", DuplicateMerge, DuplicateOverwrite, DuplicateSkip:
	default:
		add("options.duplicate_handling: %q is not merge, overwrite or skip", r.Options.DuplicateHandling)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("requests: invalid request: %w", err)
	}
	return nil
}

// duplicateHandling returns the effective handling.
func (r *Request) duplicateHandling() string {
	if r.Options.DuplicateHandling == "" {
		return DuplicateMerge
	}
	return r.Options.DuplicateHandling
}

// Policy is a tenant's mass-conversion policy.
type Policy struct {
	// Roles may mass convert; a request whose token holds none of them is
	// rejected (role_not_allowed). Empty: nobody may.
	Roles []string `yaml:"roles" json:"roles"`
	// MaxRecords bounds the leads one request selects (default
	// DefaultMaxRecords).
	MaxRecords int `yaml:"max_records_per_request" json:"max_records_per_request"`
	// MaxNewRecords bounds the contacts, accounts and opportunities one
	// request would create (default DefaultMaxNewRecords): the storage guard.
	MaxNewRecords int `yaml:"max_new_records_per_request" json:"max_new_records_per_request"`
}

// Defaults of Policy.
const (
	DefaultMaxRecords    = 1000
	DefaultMaxNewRecords = 1000
)

func (p Policy) limits() (records, newRecords int) {
	records, newRecords = p.MaxRecords, p.MaxNewRecords
	if records <= 0 {
		records = DefaultMaxRecords
	}
	if newRecords <= 0 {
		newRecords = DefaultMaxNewRecords
	}
	return records, newRecords
}

func (p Policy) allows(roles []string) bool {
	for _, r := range roles {
		if slices.Contains(p.Roles, r) {
			return true
		}
	}
	return false
}

// engineConfig returns the tenant's engine configuration as the request
// changes it: every selected cluster converts (auto_convert on, a lone lead
// too), with the request's option overrides. The result is a fresh Config.
func (r *Request) engineConfig(base *engine.Config) (*engine.Config, error) {
	cfg := *base
	cfg.AutoConvert = true
	// A lone lead converts: the condition holds for every unconverted lead.
	cfg.ConvertWhen = &engine.Condition{Field: FieldIsConverted, In: []string{"", "false"}}
	o := r.Options
	if o.ConvertedStatus != "" {
		cfg.Conversion.ConvertedStatus = o.ConvertedStatus
	}
	if o.Opportunity != nil {
		cfg.Conversion.Opportunity = *o.Opportunity
	}
	if o.BlankAccount != nil {
		cfg.Conversion.BlankAccount = *o.BlankAccount
	}
	if o.AccountFields != nil {
		cfg.Conversion.AccountFields = o.AccountFields
	}
	if o.OpportunityFields != nil {
		cfg.Conversion.OpportunityFields = o.OpportunityFields
	}
	if err := cfg.Validate("options"); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// FieldIsConverted is the lead field marking a converted lead (as the
// writer maintains it): converted leads are never selected.
const FieldIsConverted = "IsConverted"
