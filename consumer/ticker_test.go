package consumer_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/leadconv/leadconv/consumer"
	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
)

// ticker holds one timer per partition, set by each batch: Tick produces a
// record naming the batch's last value once the timer is due, with no
// input; its first attempt fails and is retried.
type ticker struct {
	mu     sync.Mutex
	due    map[int32]time.Time
	last   map[int32]string
	calls  atomic.Int64
	failed atomic.Bool
}

func (k *ticker) Handle(_ context.Context, _ string, p int32, recs []*kgo.Record) (consumer.Result, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.due[p] = time.Now().Add(100 * time.Millisecond)
	k.last[p] = string(recs[len(recs)-1].Value)
	return consumer.Result{}, nil
}

func (k *ticker) Due(_ string, p int32) (time.Time, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	at, ok := k.due[p]
	return at, ok
}

func (k *ticker) Tick(_ context.Context, _ string, p int32) (consumer.Result, error) {
	k.calls.Add(1)
	if !k.failed.Swap(true) {
		return consumer.Result{}, errors.New("transient")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if at, ok := k.due[p]; !ok || time.Now().Before(at) {
		return consumer.Result{}, nil
	}
	delete(k.due, p)
	return consumer.Result{Out: []*kgo.Record{{Topic: out, Value: []byte("timer " + k.last[p])}}}, nil
}

// A handler's timers fire with no new input: the worker ticks when Due
// says, retries a failed tick, produces its Result, and commits nothing
// for it; with no timer due it does not tick.
func TestTickerFiresWithoutInput(t *testing.T) {
	c := kafkatest.New(t, 1, in, out, dlq)
	k := &ticker{due: map[int32]time.Time{}, last: map[int32]string{}}
	produceN(c, 3, func(i int) string { return "v" + string(rune('0'+i)) })
	stop := start(t, c, k, nil)
	kafkatest.WaitFor(t, 10*time.Second, "the timer's record", func() bool { return len(c.ReadAll(out)) == 1 })
	if got := string(c.ReadAll(out)[0].Value); got != "timer v2" {
		t.Fatalf("timer record %q", got)
	}
	kafkatest.WaitFor(t, 10*time.Second, "the input committed", func() bool { return committed(t, c) == 3 })
	// No timer left: no more ticks.
	n := k.calls.Load()
	time.Sleep(200 * time.Millisecond)
	if got := k.calls.Load(); got != n {
		t.Fatalf("%d ticks with no timer due", got-n)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if committed(t, c) != 3 || len(c.ReadAll(out)) != 1 {
		t.Fatalf("committed %d, %d outputs", committed(t, c), len(c.ReadAll(out)))
	}
}
