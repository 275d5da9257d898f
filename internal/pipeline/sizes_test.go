package pipeline_test

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/consumer"
	"github.com/leadconv/leadconv/engine"
	"github.com/leadconv/leadconv/internal/config"
	"github.com/leadconv/leadconv/internal/pipeline"
	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
	"github.com/leadconv/leadconv/internal/testutil/redistest"
	"github.com/leadconv/leadconv/matcher/gen"
	"github.com/leadconv/leadconv/schemas"
)

// A 1.1 MB input record, over both --max-record-bytes and the producer's
// limit, is dead-lettered as oversize with a bounded prefix of its value
// (it used to be retried forever, the dead letter being as large), and the
// partition moves on: its offset is committed and the records after it
// are processed.
func TestOversizeInputMovesOn(t *testing.T) {
	e := newEnv(t, 1)
	limit := "4000000"
	res, err := kadm.NewClient(e.kc.Client()).AlterTopicConfigs(t.Context(),
		[]kadm.AlterConfig{{Name: "max.message.bytes", Value: &limit}}, recordsTopic)
	if err == nil {
		_, err = res.On(recordsTopic, nil)
	}
	if err != nil {
		t.Fatalf("raise the records topic's limit: %v", err)
	}
	big := fmt.Sprintf(`{"tenant":"acme","object":"lead","id":"big","op":"upsert","fields":{"Notes":%q}}`, strings.Repeat("x", 1_100_000))
	recs := append([]*kgo.Record{{Topic: recordsTopic, Key: []byte("big"), Value: []byte(big)}}, data(50)...)
	p := e.kc.Client(kgo.ProducerBatchMaxBytes(4_000_000))
	if err := p.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	stop := e.start(e.pipeline(e.owners(redistest.Namespace(t)), prometheus.NewRegistry(),
		func(c *pipeline.Config) { c.MaxRecordBytes = 0 })) // the default
	kafkatest.WaitFor(t, 30*time.Second, "every record committed", func() bool { return e.done(int64(len(recs))) && e.settled() })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got, want := e.routed(), int64(len(recs)-1); got != want {
		t.Fatalf("%d records routed, want the %d after the oversize one", got, want)
	}
	if len(e.commandIDs()) == 0 {
		t.Fatal("no commands for the records after the oversize one")
	}
	dead := e.kc.ReadAll(dlqTopic)
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dead))
	}
	d := dead[0]
	if got := string(kafkatest.Header(d, consumer.HeaderErrorCode)); got != pipeline.CodeOversize {
		t.Errorf("code %q, want %s", got, pipeline.CodeOversize)
	}
	if got := string(kafkatest.Header(d, consumer.HeaderValueTruncated)); got != strconv.Itoa(len(big)) {
		t.Errorf("truncated header %q, want the original size %d", got, len(big))
	}
	if len(d.Value) == 0 || len(d.Value) > 64<<10 || !bytes.HasPrefix([]byte(big), d.Value) {
		t.Errorf("dead letter value of %d bytes, want a bounded prefix of the input", len(d.Value))
	}
	if got := string(kafkatest.Header(d, consumer.HeaderSourceOffset)); got != "0" {
		t.Errorf("offset header %q, want 0", got)
	}
}

// A record limit that would not fit the producer's once dead-lettered is
// refused when the pipeline is built.
func TestRecordLimitMustFitTheProducer(t *testing.T) {
	e := newEnv(t, 1)
	cfg := pipeline.Config{Brokers: e.kc.Addrs(), MaxRecordBytes: 1 << 20}
	_, err := pipeline.New(cfg, e.owners("x"), e.cfg)
	if err == nil || !strings.Contains(err.Error(), "MaxRecordBytes 1048576: at most 995916") {
		t.Fatalf("error %v, want the limit named", err)
	}
}

// A valid lead of 615 KB with one duplicate plans a lead.convert of about
// twice that, over the producer's limit: the cluster gets a
// review.requested (command_too_large) instead, nothing is dead-lettered
// (the input was valid), and the partition moves on.
func TestOversizeCommandBecomesReview(t *testing.T) {
	e := newEnv(t, 1)
	// Fields no mapping names carry over to the created account: the
	// description is then in the contact's fields and the account's.
	var yml strings.Builder
	yml.WriteString("defaults:\n  engine:\n    conversion:\n      unmapped_fields: carry_over\n  contact_fields:\n")
	fields := gen.ContactFields()
	for _, c := range slices.Sorted(maps.Keys(fields)) {
		fmt.Fprintf(&yml, "    %s: %s\n", c, fields[c])
	}
	cfg, err := config.Parse([]byte(yml.String()))
	if err != nil {
		t.Fatal(err)
	}
	e.cfg = cfg
	notes := strings.Repeat("n", 615_000)
	lead := func(id, notes string) *kgo.Record {
		return &kgo.Record{Topic: recordsTopic, Key: []byte("acme"), Value: []byte(fmt.Sprintf(
			`{"tenant":"acme","object":"lead","id":%q,"op":"upsert","created_at":"2026-01-02T03:04:05Z","modified_at":"2026-01-02T03:04:05Z","fields":{"FirstName":"Pat","LastName":"Lee","Email":"pat@acme.example","Company":"ACME Inc","Description":%q}}`, id, notes))}
	}
	recs := append([]*kgo.Record{lead("L1", notes), lead("L2", "")}, data(20)...)
	e.kc.Produce(recs...)
	stop := e.start(e.pipeline(e.owners(redistest.Namespace(t)), prometheus.NewRegistry(),
		func(c *pipeline.Config) { c.MaxRecordBytes = 0 })) // the default, 960 KiB
	kafkatest.WaitFor(t, 30*time.Second, "every record committed", func() bool { return e.done(int64(len(recs))) && e.settled() })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := e.kc.EndOffsets(dlqTopic); n != 0 {
		t.Fatalf("%d dead letters, want none: the input was valid", n)
	}
	var reviews []*engine.ReviewRequested
	for _, r := range e.kc.ReadAll(commandsTopic) {
		if len(r.Value) > consumer.DefaultMaxProduceBytes {
			t.Fatalf("a command of %d bytes was produced", len(r.Value))
		}
		ce, err := kafkatest.CloudEvent(r)
		if err != nil {
			t.Fatal(err)
		}
		var cmd engine.Command
		if err := ce.DataAs(&cmd); err != nil {
			t.Fatal(err)
		}
		if err := schemas.ValidateJSON(cmd.Kind, ce.Data()); err != nil {
			t.Fatalf("%s: %v", cmd.Kind, err)
		}
		if rr, ok := cmd.Data.(*engine.ReviewRequested); ok && rr.Reason == engine.ReasonCommandTooLarge {
			reviews = append(reviews, rr)
		}
	}
	if len(reviews) != 1 {
		t.Fatalf("%d command_too_large reviews, want 1", len(reviews))
	}
	rr := reviews[0]
	if rr.Size <= rr.Limit || rr.Limit >= consumer.DefaultMaxProduceBytes || len(rr.Records) != 2 || rr.Records[0].ID != "L1" || rr.Records[1].ID != "L2" {
		t.Fatalf("review %+v, want L1 and L2 with the size over the limit", rr)
	}
}
