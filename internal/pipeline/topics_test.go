package pipeline_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/leadconv/leadconv/internal/pipeline"
	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
	"github.com/leadconv/leadconv/internal/testutil/redistest"
	"github.com/leadconv/leadconv/internal/topics"
)

// setLimit sets topic's max.message.bytes on the broker.
func setLimit(t *testing.T, kc *kafkatest.Cluster, topic string, limit int) {
	t.Helper()
	v := strconv.Itoa(limit)
	res, err := kadm.NewClient(kc.Client()).AlterTopicConfigs(t.Context(), []kadm.AlterConfig{{Name: "max.message.bytes", Value: &v}}, topic)
	if err == nil {
		_, err = res.On(topic, nil)
	}
	if err != nil {
		t.Fatalf("set %s's max.message.bytes: %v", topic, err)
	}
}

// Every topic the service uses must exist: a missing output (it used to
// stall the partition while every signal stayed green) is named, with its
// role, and marked as something to wait for.
func TestMissingTopicsNamed(t *testing.T) {
	e := newEnv(t, 2)
	p := e.pipeline(e.owners(redistest.Namespace(t)), nil, func(c *pipeline.Config) {
		c.ChangesTopic = "missing.changes"
		c.Topics = []topics.Topic{{Name: "missing.results", Role: "mass-conversion results, --results-topic", Output: true}}
	})
	defer p.Client().Close()
	err := p.Prepare(t.Context())
	if !errors.Is(err, topics.ErrMissing) || topics.Fatal(err) {
		t.Fatalf("Prepare = %v, want a missing topic to wait for", err)
	}
	for _, want := range []string{"topic missing.changes (changes topic)", "topic missing.results (mass-conversion results, --results-topic)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if strings.Contains(err.Error(), dlqTopic) || strings.Contains(err.Error(), commandsTopic) {
		t.Errorf("error %q names topics that exist", err)
	}
}

// An input of --max-record-bytes must fit the dead-letter topic whole: a
// smaller max.message.bytes there stops start-up, naming the flag, the
// topic and both values.
func TestRecordLimitMustFitTheDeadLetterTopic(t *testing.T) {
	e := newEnv(t, 1)
	setLimit(t, e.kc, dlqTopic, 6000)
	p := e.pipeline(e.owners(redistest.Namespace(t)), nil) // MaxRecordBytes 8 KiB
	defer p.Client().Close()
	err := p.Prepare(t.Context())
	if !topics.Fatal(err) {
		t.Fatalf("Prepare = %v, want an error stopping start-up", err)
	}
	want := "--max-record-bytes 8192 exceeds what topic " + dlqTopic + " takes (max.message.bytes 6000): at most 1904"
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q, want %q", err, want)
	}
}

// The producer is capped per topic by its max.message.bytes: a commands
// topic taking 8 KiB gets every command, none refused as too large (the
// producer's own 1 MB batches were refused whole, each command in them
// dead-lettered as command_too_large).
func TestProducerCappedByTopicLimit(t *testing.T) {
	e := newEnv(t, 1)
	setLimit(t, e.kc, commandsTopic, 8<<10)
	recs := data(400)
	e.kc.Produce(recs...)
	reg := prometheus.NewRegistry()
	p := e.pipeline(e.owners(redistest.Namespace(t)), reg)
	if err := p.Prepare(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := p.Limit(commandsTopic); got != 8<<10 {
		t.Fatalf("limit of %s = %d, want its max.message.bytes", commandsTopic, got)
	}
	stop := e.start(p)
	kafkatest.WaitFor(t, 30*time.Second, "every record committed", func() bool { return e.done(int64(len(recs))) && e.settled() })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := e.kc.EndOffsets(dlqTopic); n != 0 {
		t.Fatalf("%d dead letters, want none", n)
	}
	_, want := e.reference()
	e.sameOutcome(want)
}
