package topics_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
	"github.com/leadconv/leadconv/internal/topics"
)

// kfake describes max.message.bytes (Kafka's default when not set), and
// Describe reads it, the partition counts, the missing topics and the
// co-partitioning.
func TestDescribe(t *testing.T) {
	c := kafkatest.New(t, 2, "owned", "out", "small", "keyed")
	adm := kadm.NewClient(c.Client())
	v := "70000"
	res, err := adm.AlterTopicConfigs(t.Context(), []kadm.AlterConfig{{Name: "max.message.bytes", Value: &v}}, "small")
	if err == nil {
		_, err = res.On("small", nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	ts := []topics.Topic{{Name: "owned", Role: "owned"}, {Name: "out", Role: "o", Output: true}, {Name: "small", Role: "s", Output: true},
		{Name: "keyed", Role: "k", CoPartitioned: true}}
	infos, err := topics.Describe(t.Context(), adm, "owned", ts)
	if err != nil {
		t.Fatal(err)
	}
	if got := infos["out"]; got.Partitions != 2 || got.MaxMessageBytes != topics.DefaultMaxMessageBytes {
		t.Errorf("out: %+v, want 2 partitions and Kafka's default limit", got)
	}
	if got := infos["small"].MaxMessageBytes; got != 70000 {
		t.Errorf("small: max.message.bytes %d, want 70000", got)
	}

	_, err = topics.Describe(t.Context(), adm, "owned", append(ts, topics.Topic{Name: "gone", Role: "results topic, --results-topic"}))
	if !errors.Is(err, topics.ErrMissing) || topics.Fatal(err) || err.Error() != "topic gone (results topic, --results-topic): not found" {
		t.Errorf("missing topic: %v", err)
	}

	if _, err := adm.CreateTopic(t.Context(), 3, 1, nil, "keyed3"); err != nil {
		t.Fatal(err)
	}
	_, err = topics.Describe(t.Context(), adm, "owned", []topics.Topic{{Name: "keyed3", Role: "requests", CoPartitioned: true}})
	if !topics.Fatal(err) || !strings.Contains(err.Error(), "topics owned (2 partitions) and keyed3 (3 partitions; requests)") {
		t.Errorf("co-partitioning: %v", err)
	}
}
