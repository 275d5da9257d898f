package writer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/events"
	"github.com/leadconv/leadconv/matcher"
	"github.com/leadconv/leadconv/record"
)

// Outcomes of a command (Result.Outcome).
const (
	OutcomeApplied          = "applied"
	OutcomeSkippedDuplicate = "skipped_duplicate"
	OutcomeStale            = "stale"
	OutcomeFailed           = "failed"
)

// Reasons of a failed command.
const (
	ReasonMissingLead       = "missing_lead"
	ReasonLeadConverted     = "lead_already_converted"
	ReasonMissingContact    = "missing_contact"
	ReasonMissingAccount    = "missing_account"
	ReasonMissingMaster     = "missing_master"
	ReasonMissingRecord     = "missing_record"
	ReasonInvalidCommand    = "invalid_command"
	ReasonUnsupportedObject = "unsupported_object"
)

// CRM field names the writer maintains on the records it emits, as
// Salesforce names them. The matcher takes converted leads out of matching by
// IsConverted and resolves accounts by Name.
const (
	FieldIsConverted            = "IsConverted"
	FieldStatus                 = "Status"
	FieldConvertedContactID     = "ConvertedContactId"
	FieldConvertedAccountID     = "ConvertedAccountId"
	FieldConvertedOpportunityID = "ConvertedOpportunityId"
	FieldAccountID              = "AccountId"
	FieldAccountName            = "Name"
)

// Result is what became of one command: the data of the command.result
// CloudEvent.
type Result = events.CommandResult

// failure is a command the mirror cannot execute: permanent, recorded as a
// failed outcome, never retried.
type failure struct {
	reason string
	ref    record.Ref
}

func (f *failure) Error() string { return "writer: " + f.reason + " " + f.ref.String() }

func fail(reason string, obj record.Object, id string) error {
	return &failure{reason: reason, ref: record.Ref{Object: obj, ID: id}}
}

// Mirror is the CRM mirror database.
type Mirror struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

// NewMirror wraps pool; Migrate must have run.
func NewMirror(pool *pgxpool.Pool) *Mirror {
	return &Mirror{pool: pool, now: time.Now}
}

// Apply executes cmd in one transaction and returns its result and the
// record events of the records it touched, in their state after the
// command. A command already applied is not executed again: its result is
// skipped_duplicate and the events give the touched records' current state,
// so a crash between commit and produce loses nothing. Errors are transient
// (database unavailable): retry the command.
func (m *Mirror) Apply(ctx context.Context, cmd *engine.Command) (Result, []record.Event, error) {
	res := Result{CommandID: cmd.ID, Kind: cmd.Kind, Tenant: cmd.Tenant, ClusterID: cmd.ClusterID,
		ClusterVersion: cmd.ClusterVersion, Seq: cmd.Seq, RequestID: cmd.RequestID}
	if err := validate(cmd); err != nil {
		res.Outcome, res.Reason = OutcomeFailed, ReasonInvalidCommand
		return res, nil, nil
	}
	var events []record.Event
	err := pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		var err error
		res, events, err = m.apply(ctx, tx, cmd, res)
		return err
	})
	if err != nil {
		return Result{}, nil, fmt.Errorf("writer: apply %s: %w", cmd.ID, err)
	}
	return res, events, nil
}

func validate(cmd *engine.Command) error {
	if cmd.ID == "" || cmd.Tenant == "" || cmd.ClusterID == "" || cmd.Data == nil {
		return errors.New("writer: command without id, tenant, cluster or data")
	}
	return nil
}

func (m *Mirror) apply(ctx context.Context, tx pgx.Tx, cmd *engine.Command, res Result) (Result, []record.Event, error) {
	var refs []record.Ref
	err := tx.QueryRow(ctx, "SELECT outcome, reason, records FROM applied_commands WHERE command_id = $1", cmd.ID).
		Scan(&res.Previous, &res.Reason, &refs)
	if err == nil {
		res.Outcome, res.Records = OutcomeSkippedDuplicate, refs
		events, err := currentEvents(ctx, tx, cmd.Tenant, refs)
		return res, events, err
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return res, nil, err
	}
	now := m.now().UTC().Truncate(time.Microsecond)
	newest, err := claimVersion(ctx, tx, cmd, now)
	if err != nil {
		return res, nil, err
	}
	a := &applier{tx: tx, cmd: cmd, tenant: cmd.Tenant, now: now}
	switch {
	case newest > cmd.ClusterVersion:
		res.Outcome, res.NewestVersion = OutcomeStale, newest
	default:
		// A savepoint: a failing command leaves nothing behind but its
		// recorded outcome.
		sp, err := tx.Begin(ctx)
		if err != nil {
			return res, nil, err
		}
		err = a.run(ctx)
		var f *failure
		switch {
		case errors.As(err, &f):
			if err := sp.Rollback(ctx); err != nil {
				return res, nil, err
			}
			res.Outcome, res.Reason, a.touched = OutcomeFailed, f.reason, nil
		case err != nil:
			return res, nil, err
		default:
			if err := sp.Commit(ctx); err != nil {
				return res, nil, err
			}
			res.Outcome = OutcomeApplied
		}
	}
	res.Records = a.touched
	if res.Records == nil {
		res.Records = []record.Ref{}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO applied_commands
		(command_id, tenant, kind, cluster_id, cluster_version, seq, outcome, reason, records, applied_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		cmd.ID, cmd.Tenant, cmd.Kind, cmd.ClusterID, cmd.ClusterVersion, cmd.Seq, res.Outcome, res.Reason, res.Records, now); err != nil {
		return res, nil, err
	}
	events, err := currentEvents(ctx, tx, cmd.Tenant, a.touched)
	return res, events, err
}

// claimVersion returns the newest version applied for the command's cluster
// and raises it to the command's version when that is newer. The row lock
// serialises commands of one cluster across writers.
func claimVersion(ctx context.Context, tx pgx.Tx, cmd *engine.Command, now time.Time) (int64, error) {
	var newest int64
	err := tx.QueryRow(ctx, `INSERT INTO cluster_versions AS v (tenant, cluster_id, version, updated_at)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (tenant, cluster_id) DO UPDATE SET version = v.version
		RETURNING version`, cmd.Tenant, cmd.ClusterID, cmd.ClusterVersion, now).Scan(&newest)
	if err != nil {
		return 0, err
	}
	if newest < cmd.ClusterVersion {
		_, err = tx.Exec(ctx, "UPDATE cluster_versions SET version = $3, updated_at = $4 WHERE tenant = $1 AND cluster_id = $2",
			cmd.Tenant, cmd.ClusterID, cmd.ClusterVersion, now)
		newest = cmd.ClusterVersion
	}
	return newest, err
}

// applier executes one command inside its transaction.
type applier struct {
	tx      pgx.Tx
	cmd     *engine.Command
	tenant  string
	now     time.Time
	touched []record.Ref
}

func (a *applier) touch(obj record.Object, id string) {
	ref := record.Ref{Object: obj, ID: id}
	if !slices.Contains(a.touched, ref) {
		a.touched = append(a.touched, ref)
	}
}

func (a *applier) run(ctx context.Context) error {
	switch d := a.cmd.Data.(type) {
	case *engine.LeadConvert:
		return a.leadConvert(ctx, d)
	case *engine.RecordsMerge:
		return a.recordsMerge(ctx, d)
	case *engine.ConversionFailed:
		return a.review(ctx, d)
	case *engine.ReviewRequested:
		return a.review(ctx, d)
	}
	return fail(ReasonInvalidCommand, "", a.cmd.ID)
}

// stamp returns the modification time of a record last modified at prev:
// now, but always after prev, so consumers that keep the newest version of a
// record (the matcher) never take the writer's change for an old one.
func (a *applier) stamp(prev time.Time) time.Time {
	if a.now.After(prev) {
		return a.now
	}
	return prev.Add(time.Microsecond)
}

// newID derives the id of a record a command creates: the same command
// always creates the same id.
func newID(prefix, commandID, part string) string {
	h := sha256.Sum256([]byte(commandID + "/" + part))
	return prefix + hex.EncodeToString(h[:10])
}

type leadRow struct {
	rec                         record.Record
	converted                   bool
	contactID, accountID, oppID *string
}

func (a *applier) lockLead(ctx context.Context, id string) (*leadRow, error) {
	l := &leadRow{rec: record.Record{Tenant: a.tenant, Object: record.Lead, ID: id}}
	err := a.tx.QueryRow(ctx, `SELECT fields, created_at, modified_at, is_converted, converted_contact_id,
		converted_account_id, converted_opportunity_id FROM leads WHERE tenant = $1 AND id = $2 FOR UPDATE`, a.tenant, id).
		Scan(&l.rec.Fields, &l.rec.CreatedAt, &l.rec.ModifiedAt, &l.converted, &l.contactID, &l.accountID, &l.oppID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return l, err
}

// lockRecord reads and locks a contact or account (nil when missing).
func (a *applier) lockRecord(ctx context.Context, obj record.Object, id string) (*record.Record, error) {
	r := &record.Record{Tenant: a.tenant, Object: obj, ID: id}
	err := a.tx.QueryRow(ctx, "SELECT fields, created_at, modified_at FROM "+table(obj)+
		" WHERE tenant = $1 AND id = $2 FOR UPDATE", a.tenant, id).Scan(&r.Fields, &r.CreatedAt, &r.ModifiedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return r, err
}

func table(obj record.Object) string {
	switch obj {
	case record.Lead:
		return "leads"
	case record.Contact:
		return "contacts"
	}
	return "accounts"
}

// convertedInto returns what lead id was converted into (contact or account
// id), or "" when the lead is missing or not converted.
func (a *applier) convertedInto(ctx context.Context, leadID string, obj record.Object) (string, error) {
	col := "converted_contact_id"
	if obj == record.Account {
		col = "converted_account_id"
	}
	var id *string
	err := a.tx.QueryRow(ctx, "SELECT "+col+" FROM leads WHERE tenant = $1 AND id = $2", a.tenant, leadID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && id == nil) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return *id, nil
}

func applyFields(dst, src record.Fields) record.Fields {
	if dst == nil {
		dst = record.Fields{}
	}
	for k, v := range src {
		if v == nil {
			delete(dst, k)
		} else {
			dst[k] = v
		}
	}
	return dst
}

func (a *applier) leadConvert(ctx context.Context, d *engine.LeadConvert) error {
	lead, err := a.lockLead(ctx, d.LeadID)
	if err != nil {
		return err
	}
	if lead == nil {
		return fail(ReasonMissingLead, record.Lead, d.LeadID)
	}
	if lead.converted {
		return fail(ReasonLeadConverted, record.Lead, d.LeadID)
	}
	accountID, err := a.account(ctx, d)
	if err != nil {
		return err
	}
	contactID, err := a.contact(ctx, d, accountID)
	if err != nil {
		return err
	}
	var oppID *string
	if d.Opportunity != nil {
		id, err := a.opportunity(ctx, d, accountID, contactID, lead)
		if err != nil {
			return err
		}
		oppID = &id
	}
	// Like Salesforce's convertLead, the lead's notes and attachments move
	// to the contact.
	if _, err := a.tx.Exec(ctx, `UPDATE related SET parent_object = 'contact', parent_id = $3
		WHERE tenant = $1 AND parent_object = 'lead' AND parent_id = $2`, a.tenant, d.LeadID, contactID); err != nil {
		return err
	}
	f := lead.rec.Fields
	if f == nil {
		f = record.Fields{}
	}
	f[FieldIsConverted] = true
	f[FieldStatus] = d.ConvertedStatus
	f[FieldConvertedContactID] = contactID
	f[FieldConvertedAccountID] = nullable(accountID)
	f[FieldConvertedOpportunityID] = nil
	if oppID != nil {
		f[FieldConvertedOpportunityID] = *oppID
	}
	if _, err := a.tx.Exec(ctx, `UPDATE leads SET fields = $3, modified_at = $4, is_converted = true, status = $5,
		converted_contact_id = $6, converted_account_id = $7, converted_opportunity_id = $8, converted_at = $9
		WHERE tenant = $1 AND id = $2`, a.tenant, d.LeadID, f, a.stamp(lead.rec.ModifiedAt), d.ConvertedStatus,
		contactID, nullable(accountID), oppID, a.now); err != nil {
		return err
	}
	a.touch(record.Lead, d.LeadID)
	a.touch(record.Contact, contactID)
	if accountID != "" {
		a.touch(record.Account, accountID)
	}
	return nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// account resolves or creates the conversion's account; "" when the plan
// names none (an existing contact without account keeps none).
func (a *applier) account(ctx context.Context, d *engine.LeadConvert) (string, error) {
	t := d.Account
	switch {
	case t.ID != "":
		r, err := a.lockRecord(ctx, record.Account, t.ID)
		if err != nil {
			return "", err
		}
		if r == nil {
			return "", fail(ReasonMissingAccount, record.Account, t.ID)
		}
		return t.ID, nil
	case t.Create:
		return a.createAccount(ctx, t)
	case t.FromLead != "":
		id, err := a.convertedInto(ctx, t.FromLead, record.Account)
		if err != nil {
			return "", err
		}
		if id == "" {
			return "", fail(ReasonMissingAccount, record.Lead, t.FromLead)
		}
		r, err := a.lockRecord(ctx, record.Account, id)
		if err != nil {
			return "", err
		}
		if r == nil {
			return "", fail(ReasonMissingAccount, record.Account, id)
		}
		return id, nil
	}
	return "", nil
}

// createAccount creates the planned account, or reuses one the matcher
// would resolve the name to (the same normalised company name, as
// matcher.NormalizeCompany folds it; for accounts stored before keys were,
// or names without a key, the same trimmed, case-folded name): the plan was
// made from the matcher's view, which may not yet know an account an
// earlier command created.
func (a *applier) createAccount(ctx context.Context, t engine.AccountTarget) (string, error) {
	if strings.TrimSpace(t.Name) != "" {
		var id string
		err := a.tx.QueryRow(ctx, `SELECT id FROM accounts WHERE tenant = $1
			AND (name_key = $3 OR (name_key IS NULL OR $3 IS NULL) AND lower(btrim(name)) = lower(btrim($2)))
			ORDER BY id LIMIT 1 FOR UPDATE`, a.tenant, t.Name, accountKey(t.Name)).Scan(&id)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return "", err
		}
	}
	id := newID("acc_", a.cmd.ID, "account")
	f := applyFields(record.Fields{}, t.Fields)
	f[FieldAccountName] = t.Name
	_, err := a.tx.Exec(ctx, `INSERT INTO accounts (tenant, id, name, name_key, fields, created_at, modified_at)
		VALUES ($1, $2, $3, $4, $5, $6, $6)`, a.tenant, id, t.Name, accountKey(t.Name), f, a.now)
	return id, err
}

// accountKey is the key an account name is reused by, nil when the name
// has none (blank, or a placeholder such as "n/a").
func accountKey(name string) *string {
	if k := matcher.NormalizeCompany(name); k != "" {
		return &k
	}
	return nil
}

// contact creates the master contact or updates the existing one with the
// plan's final field values and the account.
func (a *applier) contact(ctx context.Context, d *engine.LeadConvert, accountID string) (string, error) {
	t := d.Contact
	if t.Create {
		id := newID("con_", a.cmd.ID, "contact")
		f := applyFields(record.Fields{}, d.Fields)
		if accountID != "" {
			f[FieldAccountID] = accountID
		}
		_, err := a.tx.Exec(ctx, `INSERT INTO contacts (tenant, id, account_id, fields, created_at, modified_at)
			VALUES ($1, $2, $3, $4, $5, $5)`, a.tenant, id, nullable(accountID), f, a.now)
		return id, err
	}
	id := t.ID
	if id == "" && t.FromLead != "" {
		var err error
		if id, err = a.convertedInto(ctx, t.FromLead, record.Contact); err != nil {
			return "", err
		}
		if id == "" {
			return "", fail(ReasonMissingContact, record.Lead, t.FromLead)
		}
	}
	if id == "" {
		return "", fail(ReasonMissingContact, record.Contact, "")
	}
	c, err := a.lockRecord(ctx, record.Contact, id)
	if err != nil {
		return "", err
	}
	if c == nil {
		return "", fail(ReasonMissingContact, record.Contact, id)
	}
	f := applyFields(c.Fields, d.Fields)
	if accountID != "" {
		f[FieldAccountID] = accountID
	}
	acc, _ := f[FieldAccountID].(string)
	_, err = a.tx.Exec(ctx, "UPDATE contacts SET fields = $3, account_id = $4, modified_at = $5 WHERE tenant = $1 AND id = $2",
		a.tenant, id, f, nullable(acc), a.stamp(c.ModifiedAt))
	return id, err
}

func (a *applier) opportunity(ctx context.Context, d *engine.LeadConvert, accountID, contactID string, lead *leadRow) (string, error) {
	name := d.Opportunity.Name
	if name == "" && accountID != "" {
		// Named after an existing account whose name only the CRM knows.
		if err := a.tx.QueryRow(ctx, "SELECT name FROM accounts WHERE tenant = $1 AND id = $2", a.tenant, accountID).Scan(&name); err != nil {
			return "", err
		}
	}
	if name == "" {
		name = "Opportunity of " + lead.rec.ID
	}
	id := newID("opp_", a.cmd.ID, "opportunity")
	_, err := a.tx.Exec(ctx, `INSERT INTO opportunities (tenant, id, name, account_id, contact_id, lead_id, fields, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, a.tenant, id, name, nullable(accountID), contactID, lead.rec.ID,
		applyFields(record.Fields{}, d.Opportunity.Fields), a.now)
	return id, err
}

func (a *applier) recordsMerge(ctx context.Context, d *engine.RecordsMerge) error {
	if d.Object != record.Contact && d.Object != record.Lead {
		return fail(ReasonUnsupportedObject, d.Object, "")
	}
	masterID := d.Master.ID
	if masterID == "" && d.Master.FromLead != "" && d.Object == record.Contact {
		var err error
		if masterID, err = a.convertedInto(ctx, d.Master.FromLead, record.Contact); err != nil {
			return err
		}
	}
	if masterID == "" {
		return fail(ReasonMissingMaster, d.Object, d.Master.FromLead)
	}
	master, err := a.lockRecord(ctx, d.Object, masterID)
	if err != nil {
		return err
	}
	if master == nil {
		return fail(ReasonMissingMaster, d.Object, masterID)
	}
	merged := slices.Clone(d.MergedIDs)
	for _, l := range d.MergedFromLeads {
		// The master of a cluster joined into this one, created by
		// converting lead l.
		id, err := a.convertedInto(ctx, l, record.Contact)
		if err != nil {
			return err
		}
		if id == "" {
			return fail(ReasonMissingRecord, record.Lead, l)
		}
		merged = append(merged, id)
	}
	slices.Sort(merged)
	merged = slices.Compact(merged)
	merged = slices.DeleteFunc(merged, func(id string) bool { return id == masterID })
	latest := master.ModifiedAt
	for _, id := range merged {
		r, err := a.lockRecord(ctx, d.Object, id)
		if err != nil {
			return err
		}
		if r == nil {
			return fail(ReasonMissingRecord, d.Object, id)
		}
		if r.ModifiedAt.After(latest) {
			latest = r.ModifiedAt
		}
	}
	f := applyFields(master.Fields, d.Fields)
	if _, err := a.tx.Exec(ctx, "UPDATE "+table(d.Object)+" SET fields = $3, modified_at = $4 WHERE tenant = $1 AND id = $2",
		a.tenant, masterID, f, a.stamp(master.ModifiedAt)); err != nil {
		return err
	}
	if d.Object == record.Contact {
		if acc, ok := f[FieldAccountID].(string); ok {
			if _, err := a.tx.Exec(ctx, "UPDATE contacts SET account_id = $3 WHERE tenant = $1 AND id = $2", a.tenant, masterID, acc); err != nil {
				return err
			}
		}
	}
	a.touch(d.Object, masterID)
	if _, err := a.tx.Exec(ctx, `UPDATE related SET parent_id = $3
		WHERE tenant = $1 AND parent_object = $4 AND parent_id = ANY($2)`, a.tenant, merged, masterID, string(d.Object)); err != nil {
		return err
	}
	if d.Object == record.Contact {
		if err := a.repointContact(ctx, merged, masterID); err != nil {
			return err
		}
	}
	deletedAt := a.stamp(latest)
	for _, id := range merged {
		if _, err := a.tx.Exec(ctx, "DELETE FROM "+table(d.Object)+" WHERE tenant = $1 AND id = $2", a.tenant, id); err != nil {
			return err
		}
		if _, err := a.tx.Exec(ctx, `INSERT INTO deleted_records (tenant, object, id, merged_into, deleted_at)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, object, id)
			DO UPDATE SET merged_into = EXCLUDED.merged_into, deleted_at = EXCLUDED.deleted_at`,
			a.tenant, string(d.Object), id, masterID, deletedAt); err != nil {
			return err
		}
		a.touch(d.Object, id)
	}
	return nil
}

// repointContact makes leads converted into, and opportunities of, merged
// contacts point at the master, as a CRM's merge does.
func (a *applier) repointContact(ctx context.Context, merged []string, masterID string) error {
	rows, err := a.tx.Query(ctx, `UPDATE leads SET converted_contact_id = $3,
		fields = fields || jsonb_build_object($4::text, $3::text), modified_at = greatest($5, modified_at + interval '1 microsecond')
		WHERE tenant = $1 AND converted_contact_id = ANY($2) RETURNING id`,
		a.tenant, merged, masterID, FieldConvertedContactID, a.now)
	if err != nil {
		return err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, id := range ids {
		a.touch(record.Lead, id)
	}
	_, err = a.tx.Exec(ctx, "UPDATE opportunities SET contact_id = $3 WHERE tenant = $1 AND contact_id = ANY($2)",
		a.tenant, merged, masterID)
	return err
}

func (a *applier) review(ctx context.Context, data any) error {
	reason := ""
	switch d := data.(type) {
	case *engine.ConversionFailed:
		reason = d.Reason
	case *engine.ReviewRequested:
		reason = d.Reason
	}
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	_, err = a.tx.Exec(ctx, `INSERT INTO cluster_reviews (command_id, tenant, kind, cluster_id, cluster_version, reason, data, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, a.cmd.ID, a.tenant, a.cmd.Kind, a.cmd.ClusterID, a.cmd.ClusterVersion,
		reason, b, a.now)
	return err
}

// querier is what reading needs from a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// currentEvents returns the record events giving refs' current state: an
// upsert for a live record, a delete for a deleted one.
func currentEvents(ctx context.Context, q querier, tenant string, refs []record.Ref) ([]record.Event, error) {
	events := make([]record.Event, 0, len(refs))
	for _, ref := range refs {
		rec, ok, err := readRecord(ctx, q, tenant, ref)
		if err != nil {
			return nil, err
		}
		if ok {
			events = append(events, record.Event{Record: rec, Op: record.OpUpsert})
			continue
		}
		var at time.Time
		err = q.QueryRow(ctx, "SELECT deleted_at FROM deleted_records WHERE tenant = $1 AND object = $2 AND id = $3",
			tenant, string(ref.Object), ref.ID).Scan(&at)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, err
		}
		events = append(events, record.Event{Record: record.Record{Tenant: tenant, Object: ref.Object, ID: ref.ID,
			CreatedAt: at, ModifiedAt: at, Fields: record.Fields{}}, Op: record.OpDelete})
	}
	return events, nil
}

func readRecord(ctx context.Context, q querier, tenant string, ref record.Ref) (record.Record, bool, error) {
	r := record.Record{Tenant: tenant, Object: ref.Object, ID: ref.ID}
	err := q.QueryRow(ctx, "SELECT fields, created_at, modified_at, (SELECT count(*) FROM related WHERE tenant = $1 AND parent_object = $3 AND parent_id = $2) FROM "+
		table(ref.Object)+" WHERE tenant = $1 AND id = $2", tenant, ref.ID, string(ref.Object)).
		Scan(&r.Fields, &r.CreatedAt, &r.ModifiedAt, &r.RelatedCount)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("writer: read %s: %w", ref, err)
	}
	if r.Fields == nil {
		r.Fields = record.Fields{}
	}
	return r, true, nil
}

// Get returns a record's current state; ok is false when it does not exist.
func (m *Mirror) Get(ctx context.Context, tenant string, ref record.Ref) (record.Record, bool, error) {
	return readRecord(ctx, m.pool, tenant, ref)
}

// Put stores records as the CRM holds them before leadconv acts (fixtures,
// an initial load). A lead's conversion columns follow its fields.
func (m *Mirror) Put(ctx context.Context, recs ...record.Record) error {
	batch := &pgx.Batch{}
	for _, r := range recs {
		f := r.Fields
		if f == nil {
			f = record.Fields{}
		}
		switch r.Object {
		case record.Lead:
			conv, _ := f[FieldIsConverted].(bool)
			batch.Queue(`INSERT INTO leads (tenant, id, fields, created_at, modified_at, is_converted, status, converted_contact_id, converted_account_id)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (tenant, id) DO UPDATE SET fields = EXCLUDED.fields,
				created_at = EXCLUDED.created_at, modified_at = EXCLUDED.modified_at, is_converted = EXCLUDED.is_converted,
				status = EXCLUDED.status, converted_contact_id = EXCLUDED.converted_contact_id, converted_account_id = EXCLUDED.converted_account_id`,
				r.Tenant, r.ID, f, r.CreatedAt, r.ModifiedAt, conv, nullable(f.Str(FieldStatus)),
				nullable(f.Str(FieldConvertedContactID)), nullable(f.Str(FieldConvertedAccountID)))
		case record.Contact:
			batch.Queue(`INSERT INTO contacts (tenant, id, account_id, fields, created_at, modified_at)
				VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant, id) DO UPDATE SET account_id = EXCLUDED.account_id,
				fields = EXCLUDED.fields, created_at = EXCLUDED.created_at, modified_at = EXCLUDED.modified_at`,
				r.Tenant, r.ID, nullable(f.Str(FieldAccountID)), f, r.CreatedAt, r.ModifiedAt)
		case record.Account:
			batch.Queue(`INSERT INTO accounts (tenant, id, name, name_key, fields, created_at, modified_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant, id) DO UPDATE SET name = EXCLUDED.name,
				name_key = EXCLUDED.name_key, fields = EXCLUDED.fields, created_at = EXCLUDED.created_at,
				modified_at = EXCLUDED.modified_at`,
				r.Tenant, r.ID, f.Str(FieldAccountName), accountKey(f.Str(FieldAccountName)), f, r.CreatedAt, r.ModifiedAt)
		default:
			return fmt.Errorf("writer: put %s: unknown object", r.Ref())
		}
	}
	if err := m.pool.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("writer: put: %w", err)
	}
	return nil
}

// AddRelated attaches a note, attachment, doc or file to a record.
func (m *Mirror) AddRelated(ctx context.Context, tenant, id, kind string, parent record.Ref) error {
	_, err := m.pool.Exec(ctx, `INSERT INTO related (tenant, id, parent_object, parent_id, kind, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, tenant, id, string(parent.Object), parent.ID, kind, m.now())
	if err != nil {
		return fmt.Errorf("writer: add related %s: %w", id, err)
	}
	return nil
}

// List returns a tenant's records of one object, by id.
func (m *Mirror) List(ctx context.Context, tenant string, obj record.Object) ([]record.Record, error) {
	rows, err := m.pool.Query(ctx, `SELECT t.id, t.fields, t.created_at, t.modified_at, count(r.id)
		FROM `+table(obj)+` t LEFT JOIN related r ON r.tenant = t.tenant AND r.parent_object = $2 AND r.parent_id = t.id
		WHERE t.tenant = $1 GROUP BY t.id, t.fields, t.created_at, t.modified_at ORDER BY t.id`, tenant, string(obj))
	if err != nil {
		return nil, fmt.Errorf("writer: list: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (record.Record, error) {
		r := record.Record{Tenant: tenant, Object: obj}
		err := row.Scan(&r.ID, &r.Fields, &r.CreatedAt, &r.ModifiedAt, &r.RelatedCount)
		if r.Fields == nil {
			r.Fields = record.Fields{}
		}
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("writer: list: %w", err)
	}
	return out, nil
}

// Leads calls fn with each of a tenant's leads, by id, converted ones
// included, without related counts (Get reads those): mass-conversion
// requests select from them.
func (m *Mirror) Leads(ctx context.Context, tenant string, fn func(record.Record) error) error {
	rows, err := m.pool.Query(ctx, "SELECT id, fields, created_at, modified_at FROM leads WHERE tenant = $1 ORDER BY id", tenant)
	if err != nil {
		return fmt.Errorf("writer: leads: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r := record.Record{Tenant: tenant, Object: record.Lead}
		if err := rows.Scan(&r.ID, &r.Fields, &r.CreatedAt, &r.ModifiedAt); err != nil {
			return fmt.Errorf("writer: leads: %w", err)
		}
		if r.Fields == nil {
			r.Fields = record.Fields{}
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("writer: leads: %w", err)
	}
	return nil
}
