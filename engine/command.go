// Package engine is leadconv's pure decision core: given a duplicate cluster
// and a tenant's configuration it picks the master record, computes every
// field of the surviving contact, applies the conversion options and plans
// the commands a CRM writer executes. It does no I/O, reads no clock and
// never logs: decisions and reason codes are returned.
package engine

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/leadconv/leadconv/record"
)

// Cluster is one duplicate cluster at one version.
type Cluster struct {
	Tenant  string
	ID      string
	Version int64
	// Records are the cluster's leads and contacts as stored (contact fields
	// under contact names). Accounts among them are ignored.
	Records []record.Record
	// Accounts maps a value of the account field, as it appears on the
	// records, to the id of the existing account it resolves to.
	Accounts map[string]string
}

// Command kinds.
const (
	KindLeadConvert      = "lead.convert"
	KindRecordsMerge     = "records.merge"
	KindConversionFailed = "conversion.failed"
	KindReviewRequested  = "review.requested"
)

// Kinds lists every command kind.
var Kinds = []string{KindLeadConvert, KindRecordsMerge, KindConversionFailed, KindReviewRequested}

// Reason codes of conversion.failed and review.requested.
const (
	ReasonBlankAccount      = "blank_account"
	ReasonClusterTooLarge   = "cluster_too_large"
	ReasonMasterTie         = "master_tie"
	ReasonMasterNoCandidate = "master_no_candidate"
	// ReasonCommandTooLarge: a command of the plan would exceed the
	// producer's record limit (ReviewRequested.Size and Limit in bytes):
	// the cluster goes to a person instead (TooLargeReview).
	ReasonCommandTooLarge = "command_too_large"
	// ReasonWriterFailed: a writer reported a conversion or merge of the
	// record failed (ReviewRequested.WriterReason says why); it is not
	// planned again until it changes.
	ReasonWriterFailed = "writer_failed"
)

// Reasons a plan holds no command (Result.Reason).
const (
	NothingNoRecords     = "no_records"
	NothingNoLead        = "no_lead"
	NothingNoDuplicates  = "no_duplicates"
	NothingAutoConvert   = "auto_convert_off"
	NothingNoConvertWhen = "convert_when_not_matched"
	// NothingEmitted: everything in the cluster was planned before
	// (PrepareFrom).
	NothingEmitted = "already_planned"
)

// Result is the plan of one cluster version.
type Result struct {
	// Commands run in order.
	Commands []Command
	// Master is the surviving record; zero when none was chosen.
	Master record.Ref
	// Reason says why Commands is empty (Nothing* codes), or repeats the
	// reason of a single conversion.failed / review.requested command.
	Reason string
}

// Command is one step for a CRM writer. Its JSON form is the CloudEvent data
// validated by schemas/<kind>.v1.json.
type Command struct {
	Kind           string `json:"kind"`
	ID             string `json:"command_id"`
	Tenant         string `json:"tenant"`
	ClusterID      string `json:"cluster_id"`
	ClusterVersion int64  `json:"cluster_version"`
	// Seq is the command's position in the plan, from 0.
	Seq int `json:"seq"`
	// Subject names what the command acts on: the lead id, the merged-away
	// ids, or the cluster id.
	Subject string `json:"subject"`
	// RequestID names the mass-conversion request that emitted the command
	// (empty for the live pipeline's): a writer copies it into its
	// command.result, so the request's summary can count the outcomes.
	RequestID string `json:"request_id,omitempty"`
	// Data is *LeadConvert, *RecordsMerge, *ConversionFailed or
	// *ReviewRequested, per Kind.
	Data any `json:"data"`
	// Explain is shared by all commands of one plan.
	Explain *Explain `json:"explain"`
}

// Type is the command's CloudEvents type, io.leadconv.<kind>.v1.
func (c Command) Type() string { return "io.leadconv." + c.Kind + ".v1" }

// UnmarshalJSON decodes Data into the type its Kind names.
func (c *Command) UnmarshalJSON(b []byte) error {
	type plain Command
	var raw struct {
		plain
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*c = Command(raw.plain)
	var data any
	switch c.Kind {
	case KindLeadConvert:
		data = new(LeadConvert)
	case KindRecordsMerge:
		data = new(RecordsMerge)
	case KindConversionFailed:
		data = new(ConversionFailed)
	case KindReviewRequested:
		data = new(ReviewRequested)
	default:
		return fmt.Errorf("engine: unknown command kind %q", c.Kind)
	}
	if err := json.Unmarshal(raw.Data, data); err != nil {
		return fmt.Errorf("engine: %s data: %w", c.Kind, err)
	}
	c.Data = data
	return nil
}

// Target names a contact or account: an existing id, the one created by
// converting a lead (FromLead), or, for the first conversion, a new one.
type Target struct {
	ID       string `json:"id,omitempty"`
	FromLead string `json:"from_lead,omitempty"`
	// Create is set on the conversion that creates the record.
	Create bool `json:"create,omitempty"`
}

// AccountTarget is the account a lead converts into.
type AccountTarget struct {
	Target
	// Name and Fields describe the account to create (Create only).
	Name   string        `json:"name,omitempty"`
	Fields record.Fields `json:"fields,omitempty"`
}

// Opportunity is the opportunity a conversion creates.
type Opportunity struct {
	// Name is empty when it should be named after an existing account whose
	// name only the CRM knows (NameSource "account").
	Name string `json:"name"`
	// NameSource is "field" (conversion.opportunity.name_from) or
	// "account".
	NameSource string        `json:"name_source"`
	Fields     record.Fields `json:"fields,omitempty"`
}

// LeadConvert converts one lead.
type LeadConvert struct {
	LeadID string `json:"lead_id"`
	// Batch groups conversions the writer may send in one call; batches run
	// in order and respect the CRM's convert batch limit. The conversion that
	// creates the contact is alone in batch 0.
	Batch   int           `json:"batch"`
	Contact Target        `json:"contact"`
	Account AccountTarget `json:"account"`
	// Opportunity is nil when none is created; only the first conversion of
	// a plan creates one.
	Opportunity     *Opportunity `json:"opportunity"`
	ConvertedStatus string       `json:"converted_status"`
	// Fields are the master contact's final values, under contact names;
	// nil clears a field.
	Fields record.Fields `json:"fields"`
}

// RecordsMerge merges records into the master.
type RecordsMerge struct {
	Object record.Object `json:"object"`
	Master Target        `json:"master"`
	// MergedIDs are merged into Master and disappear; with MergedFromLeads
	// at most the CRM's merge limit minus one.
	MergedIDs []string `json:"merged_ids"`
	// MergedFromLeads are contacts created by converting these leads (the
	// pending master of a cluster joined into this one), merged too.
	MergedFromLeads []string      `json:"merged_from_leads,omitempty"`
	Batch           int           `json:"batch"`
	Fields          record.Fields `json:"fields"`
}

// ConversionFailed reports a cluster that cannot convert.
type ConversionFailed struct {
	Reason  string       `json:"reason"`
	Master  record.Ref   `json:"master"`
	Records []record.Ref `json:"records"`
}

// ReviewRequested hands a cluster to a person.
type ReviewRequested struct {
	Reason  string       `json:"reason"`
	Records []record.Ref `json:"records"`
	// Size and Limit are set for cluster_too_large (records) and
	// command_too_large (bytes).
	Size  int `json:"size,omitempty"`
	Limit int `json:"limit,omitempty"`
	// WriterReason is the writer's reason of writer_failed.
	WriterReason string `json:"writer_reason,omitempty"`
}

// Explain answers "why did this record win?" from the command alone.
type Explain struct {
	Master  MasterExplain   `json:"master"`
	Fields  []FieldExplain  `json:"fields"`
	Account *AccountExplain `json:"account,omitempty"`
}

// MasterExplain records the master decision.
type MasterExplain struct {
	Strategy string `json:"strategy"`
	Field    string `json:"field,omitempty"`
	// Candidates lists every record with the value the strategy compared.
	Candidates []Candidate `json:"candidates"`
	// Fallback is set when the primary strategy could not decide:
	// FallbackReason is "no_candidate" or "tie".
	Fallback       string `json:"fallback,omitempty"`
	FallbackReason string `json:"fallback_reason,omitempty"`
	// TieBreak names the rule that settled a remaining tie:
	// "newest_modified" (most_complete, most_attachments) or "smallest_id".
	TieBreak string     `json:"tie_break,omitempty"`
	Winner   record.Ref `json:"winner"`
	// Kept is set when an earlier plan chose the master: "emitted" (it
	// stays), "joined" (clusters each with a master joined; the candidates
	// are those masters), "moved" (leadconv's own contact gives way to an
	// existing contact that joined, prefer_existing_contact).
	Kept string `json:"kept,omitempty"`
	// PreferExistingContact is set when the candidates were limited to the
	// cluster's existing contacts (prefer_existing_contact).
	PreferExistingContact bool `json:"prefer_existing_contact,omitempty"`
}

// Candidate is one record as the master strategy saw it.
type Candidate struct {
	Object record.Object `json:"object"`
	ID     string        `json:"id"`
	// Value is the compared value as text: the date, the matched value, the
	// count of non-blank fields or of related items.
	Value string `json:"value"`
	// Qualified: the record held a usable value. Top: it was among the best.
	Qualified  bool      `json:"qualified"`
	Top        bool      `json:"top"`
	ModifiedAt time.Time `json:"modified_at"`
	CreatedAt  time.Time `json:"created_at"`
}

// FieldExplain records how one field of the result was computed.
type FieldExplain struct {
	// Field is the contact field name written.
	Field    string `json:"field"`
	Strategy string `json:"strategy"`
	// From lists the records the value came from (several for
	// combine_values).
	From []record.Ref `json:"from"`
	// MasterKept: no record offered a usable value, the master's stays.
	MasterKept bool `json:"master_kept,omitempty"`
}

// AccountExplain records how the account was chosen.
type AccountExplain struct {
	// Source is "emitted" (the account of an earlier plan's conversions),
	// "contact" (the existing master contact's account),
	// "existing" (resolved by name), "create", "use_existing" (blank
	// account strategy) or "blank".
	Source string `json:"source"`
	ID     string `json:"id,omitempty"`
	// From names the lead whose account value named the account when the
	// master, an existing contact, had neither an account nor a value.
	From *record.Ref `json:"from,omitempty"`
}
