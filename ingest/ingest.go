// Package ingest reads the CRM change streams leadconv consumes in their own
// formats and turns each input message into leadconv record events: the
// native record event (decoded by the pipeline itself), Salesforce Change
// Data Capture events as JSON, and Debezium change events of the tables of
// self-hosted CRMs. Which topic carries which format, and how its objects,
// tenant and field names map, is configuration (the `inputs:` list of the
// service's configuration file).
//
// One message may name several records (a Salesforce change event lists
// every record that had the same change), so a message decodes to zero or
// more events, plus the resync requests a gap event calls for. Whatever does
// not fit is an *Error: a dead-letter code and the failing field path with
// the rule it broke, never a value.
package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/events"
	"github.com/leadconv/leadconv/record"
)

// Dead-letter codes of input messages; the native decoder uses the same.
const (
	CodeOversize        = "oversize"
	CodeNotJSON         = "not_json"
	CodeSchemaViolation = "schema_violation"
	CodeUnknownObject   = "unknown_object"
	CodeUnknownOp       = "unknown_op"
)

// Error is an input message that can never be decoded. Detail names the
// offending field path and rule, never a value.
type Error struct {
	Code   string
	Detail string
}

func (e *Error) Error() string { return "decode: " + e.Code + ": " + e.Detail }

// ErrorCode returns Code; with Transient and ErrorReason it classifies the
// error (consumer.Coded): a message never decodes on retry.
func (e *Error) ErrorCode() string { return e.Code }

// Transient is false.
func (e *Error) Transient() bool { return false }

// ErrorReason returns Detail: the field path and rule, never a value.
func (e *Error) ErrorReason() string { return e.Detail }

func violation(at, rule string) error { return &Error{CodeSchemaViolation, at + ": " + rule} }

// Format names the wire format of an input topic.
type Format string

// The input formats.
const (
	Native        Format = "native"
	SalesforceCDC Format = "salesforce_cdc"
	Debezium      Format = "debezium"
)

// Formats lists the formats, as configuration errors name them.
var Formats = []Format{Native, SalesforceCDC, Debezium}

// Defaults of an input's options.
const (
	DefaultResyncTopic = "leadconv.resync"
	DefaultEchoClient  = "leadconv"
	DefaultIDColumn    = "id"
)

// Config is one input topic (an item of the configuration file's `inputs:`).
type Config struct {
	Topic  string `yaml:"topic"`
	Format Format `yaml:"format"`
	// Tenant is the tenant of every message of the topic; TenantHeader
	// instead names the Kafka header that holds it. Exactly one is set for
	// the CRM formats; native events name their tenant themselves.
	Tenant       string `yaml:"tenant"`
	TenantHeader string `yaml:"tenant_header"`
	// Objects maps Salesforce entity names to objects (default Lead,
	// Contact and Account).
	Objects map[string]record.Object `yaml:"objects"`
	// Tables maps Debezium tables ("schema.table" or "db.table", or the
	// bare table name) to their object and columns.
	Tables map[string]Table `yaml:"tables"`
	// Fields renames CRM fields (columns) to the names the rules and the
	// engine use; "-" drops a field. Unlisted fields keep their names.
	Fields map[string]string `yaml:"fields"`
	// ResyncTopic receives the resync requests of Salesforce gap events
	// (default leadconv.resync).
	ResyncTopic string `yaml:"resync_topic"`
	// EchoClient is the API client id leadconv's writer sets in
	// Salesforce's Call Options header; changes whose changeOrigin names it
	// are marked as echoes (default leadconv).
	EchoClient string `yaml:"echo_client"`
}

// Table maps one Debezium table.
type Table struct {
	Object record.Object `yaml:"object"`
	// ID is the primary key column (default id).
	ID string `yaml:"id"`
	// CreatedAt and ModifiedAt are the record's creation and last
	// modification columns (required).
	CreatedAt  string `yaml:"created_at"`
	ModifiedAt string `yaml:"modified_at"`
	// Deleted, when set, is a soft-delete column: a row whose value is
	// true, a non-zero number or a non-empty string other than "0" and
	// "false" is a delete.
	Deleted string `yaml:"deleted"`
	// TimeUnit is the unit of numeric time columns when the messages carry
	// no schema: ms (default), us or ns. With the schema, its semantic
	// types decide.
	TimeUnit string `yaml:"time_unit"`
	// Fields renames this table's columns, over the input's Fields.
	Fields map[string]string `yaml:"fields"`
}

// Validate checks c, naming errors under path (inputs[0]).
func (c *Config) Validate(path string) error {
	var errs []error
	fail := func(at, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", path, at, fmt.Sprintf(format, a...)))
	}
	if strings.TrimSpace(c.Topic) == "" {
		fail("topic", "required: the Kafka topic this input reads")
	}
	if !slices.Contains(Formats, c.Format) {
		fail("format", "%q is not a format (allowed: %s)", c.Format, joinFormats())
	}
	only := func(key string, set bool, f Format) {
		if set && c.Format != f {
			fail(key, "only for format %s", f)
		}
	}
	only("objects", c.Objects != nil, SalesforceCDC)
	only("resync_topic", c.ResyncTopic != "", SalesforceCDC)
	only("echo_client", c.EchoClient != "", SalesforceCDC)
	only("tables", c.Tables != nil, Debezium)
	if c.Format == Native {
		for key, set := range map[string]bool{"tenant": c.Tenant != "", "tenant_header": c.TenantHeader != "", "fields": c.Fields != nil} {
			if set {
				fail(key, "not for format native: record events name their tenant and fields themselves")
			}
		}
		return errors.Join(errs...)
	}
	switch {
	case c.Tenant == "" && c.TenantHeader == "" && slices.Contains(Formats, c.Format):
		fail("tenant", "required (or tenant_header): the tenant of the topic's records")
	case c.Tenant != "" && c.TenantHeader != "":
		fail("tenant", "set tenant or tenant_header, not both")
	case c.Tenant != "" && !validTenant(c.Tenant):
		fail("tenant", "%q must be 1 to 128 characters without braces or whitespace", c.Tenant)
	}
	checkRenames("fields", c.Fields, fail)
	for _, name := range sortedKeys(c.Objects) {
		if o := c.Objects[name]; !o.Valid() {
			fail("objects."+name, "%q is not an object (allowed: lead, contact, account)", o)
		}
	}
	if c.Format == Debezium {
		if len(c.Tables) == 0 {
			fail("tables", "required: at least one table mapped to an object")
		}
		for _, name := range sortedKeys(c.Tables) {
			t := c.Tables[name]
			at := "tables." + name
			if !t.Object.Valid() {
				fail(at+".object", "%q is not an object (allowed: lead, contact, account)", t.Object)
			}
			if t.CreatedAt == "" {
				fail(at+".created_at", "required: the column of the record's creation time")
			}
			if t.ModifiedAt == "" {
				fail(at+".modified_at", "required: the column of the record's last modification time")
			}
			if !slices.Contains([]string{"", "ms", "us", "ns"}, t.TimeUnit) {
				fail(at+".time_unit", "%q is not a unit (allowed: ms, us, ns)", t.TimeUnit)
			}
			checkRenames(at+".fields", t.Fields, fail)
		}
	}
	return errors.Join(errs...)
}

func checkRenames(at string, m map[string]string, fail func(at, format string, a ...any)) {
	for _, k := range sortedKeys(m) {
		if strings.TrimSpace(k) == "" || strings.TrimSpace(m[k]) == "" {
			fail(at, "field names must not be empty")
			return
		}
	}
}

func joinFormats() string {
	s := make([]string, len(Formats))
	for i, f := range Formats {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}

// ValidateAll checks every input and that no topic is read twice.
func ValidateAll(path string, cs []Config) error {
	var errs []error
	seen := map[string]int{}
	for i := range cs {
		at := fmt.Sprintf("%s[%d]", path, i)
		if err := cs[i].Validate(at); err != nil {
			errs = append(errs, err)
		}
		if j, dup := seen[cs[i].Topic]; dup && cs[i].Topic != "" {
			errs = append(errs, fmt.Errorf("%s.topic: %q is already read by %s[%d]", at, cs[i].Topic, path, j))
		}
		seen[cs[i].Topic] = i
	}
	return errors.Join(errs...)
}

// Decoded is what one input message yields.
type Decoded struct {
	Events []record.Event
	// Out are records to produce before the message is committed: the
	// resync requests of gap events.
	Out []*kgo.Record
}

// Decoder decodes the messages of one input topic of a CRM format.
type Decoder struct {
	cfg    Config
	resync events.Encoder
	// mu guards schemas, Debezium's parsed schemas by their JSON text.
	mu      sync.RWMutex
	schemas map[string]map[string]colType
}

// New returns the decoder of a validated input of a CRM format; structured
// selects structured-mode CloudEvents for the resync requests.
func New(c Config, structured bool) (*Decoder, error) {
	if err := c.Validate("input"); err != nil {
		return nil, err
	}
	if c.Format == Native {
		return nil, errors.New("ingest: native record events are decoded by the pipeline")
	}
	if c.Format == SalesforceCDC {
		if c.Objects == nil {
			c.Objects = map[string]record.Object{"Lead": record.Lead, "Contact": record.Contact, "Account": record.Account}
		}
		if c.ResyncTopic == "" {
			c.ResyncTopic = DefaultResyncTopic
		}
		if c.EchoClient == "" {
			c.EchoClient = DefaultEchoClient
		}
	}
	return &Decoder{cfg: c, resync: events.Encoder{Topic: c.ResyncTopic, Structured: structured}, schemas: map[string]map[string]colType{}}, nil
}

// Topic is the input topic.
func (d *Decoder) Topic() string { return d.cfg.Topic }

// Decode decodes one message of the topic. maxBytes > 0 bounds its value.
func (d *Decoder) Decode(r *kgo.Record, maxBytes int) (Decoded, error) {
	if maxBytes > 0 && len(r.Value) > maxBytes {
		return Decoded{}, &Error{CodeOversize, "record value over the limit"}
	}
	tenant := d.cfg.Tenant
	if h := d.cfg.TenantHeader; h != "" {
		v, ok := header(r, h)
		switch {
		case !ok:
			return Decoded{}, violation("header "+h, "required")
		case !validTenant(string(v)):
			return Decoded{}, violation("header "+h, "pattern")
		}
		tenant = string(v)
	}
	if r.Value == nil && d.cfg.Format == Debezium {
		// The tombstone after a delete, for log compaction: the delete
		// event before it did the work.
		return Decoded{}, nil
	}
	b, err := events.Payload(r)
	if err != nil {
		return Decoded{}, err
	}
	switch d.cfg.Format {
	case SalesforceCDC:
		return d.salesforce(b, tenant, r)
	default:
		return d.debezium(b, tenant, r.Key)
	}
}

func header(r *kgo.Record, key string) ([]byte, bool) {
	for _, h := range r.Headers {
		if strings.EqualFold(h.Key, key) {
			return h.Value, true
		}
	}
	return nil, false
}

// validTenant applies the matcher's rule for tenant ids (they become Redis
// hash tags) and the record event's length bound.
func validTenant(s string) bool {
	n := utf8.RuneCountInString(s)
	return n > 0 && n <= 128 && utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == '{' || r == '}' })
}

// checkID applies the record event's rule for ids.
func checkID(at, id string) error {
	if n := utf8.RuneCountInString(id); n == 0 || n > 256 {
		return violation(at, "length")
	}
	if strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' }) {
		return violation(at, "pattern")
	}
	return nil
}

// object decodes b, a single JSON document, as an object with numbers as
// json.Number.
func object(b []byte, at string) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, &Error{CodeNotJSON, "value is not a single JSON document"}
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, &Error{CodeNotJSON, "value is not a single JSON document"}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, violation(at, "type")
	}
	return m, nil
}

// value decodes one valid JSON value with numbers as json.Number.
func value(raw json.RawMessage) (any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, &Error{CodeNotJSON, "value is not a single JSON document"}
	}
	return v, nil
}

// rename applies a rename map: the new name, or "" to drop the field.
func rename(maps []map[string]string, name string) string {
	for _, m := range maps {
		if to, ok := m[name]; ok {
			if to == "-" {
				return ""
			}
			return to
		}
	}
	return name
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// timeAt checks that t fits a record event's date-time (years 0 to 9999).
func timeAt(t time.Time, at string) (time.Time, error) {
	if y := t.Year(); y < 0 || y > 9999 {
		return time.Time{}, violation(at, "range")
	}
	return t, nil
}
