// Package topics checks, at start-up, the Kafka topics a command reads and
// writes: each must exist, the co-partitioned ones must have the owned
// topic's partition count, and each output's max.message.bytes is read so
// that the producer never builds a batch the broker refuses.
package topics

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
)

// Topic is one topic a command uses.
type Topic struct {
	Name string
	// Role says what it is and where it is set ("dead-letter topic,
	// --dlq-topic"), for the messages.
	Role string
	// Output: leadconv produces to it, so its max.message.bytes bounds
	// the producer.
	Output bool
	// CoPartitioned: keyed by tenant like the owned topic, it must have as
	// many partitions, so that a tenant's records reach one owner.
	CoPartitioned bool
}

// Info is what the broker says of a topic.
type Info struct {
	Partitions int
	// MaxMessageBytes is the topic's max.message.bytes: the largest record
	// batch the broker accepts for it.
	MaxMessageBytes int
}

// DefaultMaxMessageBytes is Kafka's max.message.bytes default, assumed
// when a broker does not describe it.
const DefaultMaxMessageBytes = 1_048_588

// ErrInvalid marks a topic no wait mends (a partition count, a size limit
// that does not fit the settings): start-up stops.
var ErrInvalid = errors.New("invalid topic")

// Fatal reports whether a check's error stops start-up (ErrInvalid) rather
// than being waited out (a missing topic, a broker not answering).
func Fatal(err error) bool { return errors.Is(err, ErrInvalid) }

// ErrMissing marks a topic that does not exist (yet): something that
// creates it (a deployment's init job) mends it, so start-up waits.
var ErrMissing = errors.New("not found")

// Describe returns the partition count and max.message.bytes of every
// topic in ts. A missing topic is an error wrapping ErrMissing naming it
// and its role; a co-partitioned one whose partition count differs from
// owned's is an error naming both and their counts.
func Describe(ctx context.Context, adm *kadm.Client, owned string, ts []Topic) (map[string]Info, error) {
	names := make([]string, 0, len(ts)+1)
	for _, t := range append(ts, Topic{Name: owned}) {
		if t.Name != "" && !slices.Contains(names, t.Name) {
			names = append(names, t.Name)
		}
	}
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	var missing []string
	for _, t := range ts {
		if d, ok := details[t.Name]; t.Name != "" && (!ok || d.Err != nil) {
			missing = append(missing, fmt.Sprintf("topic %s (%s)", t.Name, t.Role))
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s: %w", strings.Join(missing, ", "), ErrMissing)
	}
	var present []string
	for _, n := range names {
		if d, ok := details[n]; ok && d.Err == nil {
			present = append(present, n)
		}
	}
	configs, err := adm.DescribeTopicConfigs(ctx, present...)
	if err != nil {
		return nil, fmt.Errorf("describe topic configs: %w", err)
	}
	out := make(map[string]Info, len(present))
	for _, n := range present {
		info := Info{Partitions: len(details[n].Partitions), MaxMessageBytes: DefaultMaxMessageBytes}
		if rc, err := configs.On(n, nil); err == nil && rc.Err == nil {
			for _, c := range rc.Configs {
				if c.Key != "max.message.bytes" || c.Value == nil {
					continue
				}
				if v, err := strconv.Atoi(*c.Value); err == nil && v > 0 {
					info.MaxMessageBytes = v
				}
			}
		}
		out[n] = info
	}
	own, ok := out[owned]
	for _, t := range ts {
		if !t.CoPartitioned || !ok || t.Name == owned {
			continue
		}
		if m := out[t.Name].Partitions; m != own.Partitions {
			return nil, fmt.Errorf("topics %s (%d partitions) and %s (%d partitions; %s) must have the same partition count: both are keyed by tenant and reach one owner per partition: %w",
				owned, own.Partitions, t.Name, m, t.Role, ErrInvalid)
		}
	}
	return out, nil
}
