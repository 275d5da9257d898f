package pipeline

import (
	"encoding/json"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// HeaderTick marks a record of the owned topic as a tick: a tenant's clock
// moved on with the wall clock, with no input, to At. The owner that found
// a window closed on the wall clock (Tick) produces the tick to its own
// partition, keyed by the tenant like the tenant's events, and plans the
// window when it reads the tick back: a window closes at the tick's place
// in the partition's log, so a replay of the log, which has no wall clock,
// closes it at the same place and plans the same states to the same ids.
const HeaderTick = "leadconv_tick"

// CodeBadTick: a record marked HeaderTick whose value is not a tick.
const CodeBadTick = "bad_tick"

// tick is a tick record's value.
type tick struct {
	Tenant string    `json:"tenant"`
	At     time.Time `json:"at"`
}

// tickRecord is the tick of tenant at at, for topic.
func tickRecord(topic, tenant string, at time.Time) *kgo.Record {
	b, _ := json.Marshal(tick{Tenant: tenant, At: at}) // cannot fail: a string and a time of the clock
	return &kgo.Record{Topic: topic, Key: []byte(tenant), Value: b, Headers: []kgo.RecordHeader{{Key: HeaderTick, Value: []byte("1")}}}
}

func isTick(r *kgo.Record) bool { return hasHeader(r, HeaderTick) }

// decodeTick decodes a tick record's value.
func decodeTick(b []byte) (tick, error) {
	var t tick
	if err := json.Unmarshal(b, &t); err != nil {
		return t, &DecodeError{Code: CodeBadTick, Detail: "value: an object {tenant, at (RFC 3339)}"}
	}
	if t.Tenant == "" || t.At.IsZero() {
		return t, &DecodeError{Code: CodeBadTick, Detail: "/tenant, /at: required"}
	}
	return t, nil
}
