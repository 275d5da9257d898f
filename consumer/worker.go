package consumer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// maxQueued is the number of fetched batches a worker may have waiting
// before its partition's fetching is paused; it resumes once the worker
// caught up.
const maxQueued = 4

// worker owns one partition: it processes that partition's batches in order.
type worker struct {
	c         *Consumer
	topic     string
	partition int32
	log       zerolog.Logger

	// The poll loop queues batches without ever waiting on the worker; a
	// full queue pauses the partition's fetching instead, so a busy or
	// failing partition holds up no other.
	mu     sync.Mutex
	queue  [][]*kgo.Record
	paused bool
	wake   chan struct{}
	quit   chan struct{}
	done   chan struct{}
	// ctx is cancelled when the worker must abandon its batch (grace expired,
	// partition lost).
	ctx    context.Context
	cancel context.CancelFunc
	// retrying is set while the current batch waits out a transient
	// failure (Consumer.Retrying).
	retrying atomic.Pointer[retryState]
}

func (c *Consumer) newWorker(topic string, p int32) *worker {
	w := &worker{
		c: c, topic: topic, partition: p,
		log:  c.log.With().Str("topic", topic).Int32("partition", p).Logger(),
		wake: make(chan struct{}, 1),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	w.ctx, w.cancel = context.WithCancel(c.base)
	return w
}

// enqueue hands the worker a fetched batch; it never blocks. It pauses the
// partition's fetching when the worker has fallen maxQueued batches behind.
func (w *worker) enqueue(recs []*kgo.Record) {
	w.mu.Lock()
	w.queue = append(w.queue, recs)
	pause := len(w.queue) >= maxQueued && !w.paused
	if pause {
		w.paused = true
		w.c.cl.PauseFetchPartitions(map[string][]int32{w.topic: {w.partition}})
	}
	w.mu.Unlock()
	if pause {
		w.log.Debug().Msg("partition paused: its worker is behind")
		if m := w.c.metrics; m != nil {
			m.Paused.Inc()
		}
	}
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// next takes the oldest queued batch, resuming the partition's fetching
// once the queue drained; nil when empty.
func (w *worker) next() []*kgo.Record {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) == 0 {
		return nil
	}
	recs := w.queue[0]
	w.queue[0] = nil
	w.queue = w.queue[1:]
	if w.paused && len(w.queue) == 0 {
		w.paused = false
		w.c.cl.ResumeFetchPartitions(map[string][]int32{w.topic: {w.partition}})
	}
	return recs
}

// unpause resumes a stopped worker's partition, so that it is fetched
// again should it come back to this member.
func (w *worker) unpause() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.paused {
		w.paused = false
		w.c.cl.ResumeFetchPartitions(map[string][]int32{w.topic: {w.partition}})
	}
}

func (w *worker) run() {
	defer close(w.done)
	defer w.endRetry()
	for {
		// A stop request wins over queued batches: they stay uncommitted and
		// the next owner of the partition reads them again.
		select {
		case <-w.quit:
			return
		default:
		}
		recs := w.next()
		if recs == nil {
			tick, ok := w.idle()
			if !ok {
				return
			}
			if tick && !w.process(nil) {
				return
			}
			continue
		}
		if !w.process(recs) {
			return
		}
	}
}

// idle waits for a batch (false, true), a stop (false, false) or, with a
// Ticker handler, the time its Due reported (true, true); at least MinTick.
func (w *worker) idle() (tick, ok bool) {
	var timer <-chan time.Time
	if tk, isTicker := w.c.h.(Ticker); isTicker {
		if at, due := tk.Due(w.topic, w.partition); due {
			t := time.NewTimer(max(time.Until(at), MinTick))
			defer t.Stop()
			timer = t.C
		}
	}
	select {
	case <-w.quit:
		return false, false
	case <-w.wake:
		return false, true
	case <-timer:
		return true, true
	}
}

// process handles, produces and marks one batch, or with recs nil ticks
// (Ticker) and produces the tick's Result, with nothing to mark. It returns
// false when the batch was abandoned because the worker was cancelled.
func (w *worker) process(recs []*kgo.Record) bool {
	res, ok := w.handle(recs)
	if !ok {
		return false
	}
	// The input a command too large is dead-lettered with: the batch's
	// last record, for a tick the partition alone.
	last := &kgo.Record{Topic: w.topic, Partition: w.partition, Offset: -1}
	if len(recs) > 0 {
		last = recs[len(recs)-1]
	}
	pending := make([]*kgo.Record, 0, len(res.Out)+len(res.Poison))
	pending = append(pending, res.Out...)
	for _, p := range res.Poison {
		pending = append(pending, DeadLetter(w.c.cfg.DLQTopic, p, w.c.Limit(w.c.cfg.DLQTopic)))
	}
	for attempt := 0; len(pending) > 0; attempt++ {
		results := w.c.cl.ProduceSync(w.ctx, pending...)
		var failed []*kgo.Record
		var ferr error
		for _, r := range results {
			if r.Err == nil {
				continue
			}
			// A record too large is refused on every attempt: it is
			// replaced by a smaller dead letter instead of retried.
			if tooLarge(r.Err) {
				if dl := w.shrink(r.Record, last); dl != nil {
					failed = append(failed, dl)
					continue
				}
			}
			failed = append(failed, r.Record)
			// The input topic is the worker's; the error names the output.
			ferr = fmt.Errorf("produce to %s: %w", r.Record.Topic, r.Err)
			if m := w.c.metrics; m != nil {
				m.ProduceErrors.WithLabelValues(r.Record.Topic).Inc()
			}
		}
		pending = failed
		// Every other produce error is the broker's (unavailable, a topic
		// missing, refused): the commands must not be lost, so they are
		// retried for as long as it lasts, the partition named in Retrying.
		if ferr != nil {
			code, transient := Classify(ferr)
			if !transient && code == CodeHandlerFailed {
				code = codeProduceFailed // not the handler's
			}
			if !w.retry(attempt, "produce", code, true, ferr) {
				return false
			}
		}
	}
	w.recovered()
	if w.ctx.Err() != nil {
		return false
	}
	if recs == nil {
		return true
	}
	w.c.cl.MarkCommitOffsets(map[string]map[int32]kgo.EpochOffset{
		w.topic: {w.partition: {Epoch: last.LeaderEpoch, Offset: last.Offset + 1}},
	})
	if f := w.c.cfg.Processed; f != nil {
		f(w.topic, w.partition, recs)
	}
	if m := w.c.metrics; m != nil {
		now := time.Now()
		for _, r := range recs {
			m.Latency.Observe(now.Sub(r.Timestamp).Seconds())
		}
		for _, p := range res.Poison {
			m.DeadLetters.WithLabelValues(p.Code).Inc()
		}
	}
	for _, p := range res.Poison {
		w.log.Warn().Int64("offset", p.Record.Offset).Str("code", p.Code).Str("reason", p.Reason).Msg("record sent to the dead-letter topic")
	}
	return true
}

// abandon stops fetching the partition of a worker that can never process
// it (ErrPartitionLost), which then ends
// with nothing marked: the partition stays paused here until the group
// revokes it (stop resumes it then, for a later owner in this process).
func (w *worker) abandon(err error) {
	w.mu.Lock()
	if !w.paused {
		w.paused = true
		w.c.cl.PauseFetchPartitions(map[string][]int32{w.topic: {w.partition}})
	}
	w.mu.Unlock()
	if m := w.c.metrics; m != nil {
		m.Lost.Inc()
	}
	w.log.Error().Err(err).Msg("partition stopped without committing until the group reassigns it")
}

// codeProduceFailed labels the retries of a produce error that names no
// Kafka error code (a record timeout, the client closing).
const codeProduceFailed = "produce_failed"

// maxAttempts bounds the attempts at a batch that fails permanently.
const maxAttempts = 3

// handle returns what the handler made of recs. A transient failure is
// retried for as long as it lasts; a permanent one at most maxAttempts
// times, then each record is handled alone (once: the batch's attempts
// showed the failure is not passing), so that only those that fail again
// are dead-lettered, with the error's code, and the partition moves on.
// false means the batch was abandoned (cancelled, ErrPartitionLost).
func (w *worker) handle(recs []*kgo.Record) (Result, bool) {
	res, code, err := w.attempt(recs, maxAttempts)
	switch {
	case err == nil:
		return res, true
	case w.ctx.Err() != nil || errors.Is(err, ErrPartitionLost):
		return Result{}, false
	case recs == nil:
		// A tick has no record to dead-letter: what it failed on stays
		// with the handler, tried again at the next tick.
		w.log.Error().Err(err).Str("code", code).Msg("tick failed permanently")
		return Result{}, true
	case len(recs) == 1:
		return w.deadLetter(recs[0], code, err), true
	}
	w.log.Warn().Str("code", code).Int("records", len(recs)).Msg("batch failed permanently: handling its records one by one")
	var all Result
	for _, r := range recs {
		one := []*kgo.Record{r}
		res, code, err := w.attempt(one, 1)
		switch {
		case err == nil:
		case w.ctx.Err() != nil || errors.Is(err, ErrPartitionLost):
			return Result{}, false
		default:
			res = w.deadLetter(r, code, err)
		}
		all.Out = append(all.Out, res.Out...)
		all.Poison = append(all.Poison, res.Poison...)
	}
	return all, true
}

// deadLetter is the result of a record the handler failed on permanently.
func (w *worker) deadLetter(r *kgo.Record, code string, err error) Result {
	w.log.Error().Err(err).Str("code", code).Int64("offset", r.Offset).Msg("handler failed permanently: record dead-lettered")
	return Result{Poison: []Poison{{Record: r, Code: code}}}
}

// attempt calls the handler until it succeeds, fails permanently
// maxPermanent times (the code and last error are returned), or the worker
// is cancelled or its partition lost (the error returned).
func (w *worker) attempt(recs []*kgo.Record, maxPermanent int) (Result, string, error) {
	failed := 0
	for n := 0; ; n++ {
		var res Result
		var err error
		if recs == nil {
			res, err = w.c.h.(Ticker).Tick(w.ctx, w.topic, w.partition)
		} else {
			res, err = w.c.h.Handle(w.ctx, w.topic, w.partition, recs)
		}
		if err == nil {
			w.recovered()
			return res, "", nil
		}
		if errors.Is(err, ErrPartitionLost) {
			w.abandon(err)
			return Result{}, "", err
		}
		code, transient := Classify(err)
		if !transient {
			if failed++; failed >= maxPermanent {
				w.endRetry()
				return Result{}, code, err
			}
		}
		if !w.retry(n, "handle", code, transient, err) {
			return Result{}, code, err
		}
	}
}

// retryState is why a worker's batch is waiting for a dependency.
type retryState struct {
	code  string
	err   error
	since time.Time
}

// retry logs a failure and waits before the next attempt; false means the
// worker was cancelled meanwhile. While a transient failure lasts the
// partition is named by Consumer.Retrying (readiness).
func (w *worker) retry(attempt int, stage, code string, transient bool, err error) bool {
	if w.ctx.Err() != nil {
		return false
	}
	if m := w.c.metrics; m != nil {
		m.Retries.WithLabelValues(stage, code).Inc()
	}
	if transient {
		// Only this goroutine writes the state; Retrying reads it.
		old, since := w.retrying.Load(), time.Now()
		if old != nil {
			since = old.since
		}
		w.retrying.Store(&retryState{code: code, err: err, since: since})
		if m := w.c.metrics; m != nil && old == nil {
			m.Retrying.Inc()
		}
	} else {
		w.endRetry() // not waiting for a dependency any more
	}
	d := Backoff(attempt, w.c.cfg.MinBackoff, w.c.cfg.MaxBackoff, rand.Int64N)
	// Errors name ids, addresses and codes: adapters keep field values
	// out of them (the decoders' reasons are paths and rules).
	w.log.Warn().Err(err).Str("stage", stage).Str("code", code).Bool("transient", transient).
		Int("attempt", attempt+1).Dur("backoff", d).Msg("batch failed, retrying")
	return sleep(w.ctx, d)
}

// recovered ends the worker's transient retry state, if any.
func (w *worker) recovered() {
	if old := w.endRetry(); old != nil {
		w.log.Info().Str("code", old.code).Dur("after", time.Since(old.since)).Msg("partition recovered")
	}
}

// endRetry clears the retry state, returning what it was.
func (w *worker) endRetry() *retryState {
	old := w.retrying.Swap(nil)
	if m := w.c.metrics; m != nil && old != nil {
		m.Retrying.Dec()
	}
	return old
}

// Retrying returns nil unless some partition's batch is waiting out a
// transient failure; then an error naming each such partition, with the
// code, how long, and the last error (a readiness check).
func (c *Consumer) Retrying() error {
	c.mu.Lock()
	var errs []error
	for k, w := range c.workers {
		if r := w.retrying.Load(); r != nil {
			errs = append(errs, fmt.Errorf("partition %s/%d retrying (%s) for %s: %w",
				k.topic, k.partition, r.code, time.Since(r.since).Round(time.Second), r.err))
		}
	}
	c.mu.Unlock()
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// tooLarge reports a produce error no retry can cure.
func tooLarge(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)
}

// shrink returns what replaces a record the broker refused as too large: a
// command becomes a bounded dead letter (CodeCommandTooLarge) naming the
// input batch's last record, a dead letter loses its value, key and original
// headers. nil when r is already as small as it gets.
func (w *worker) shrink(r, last *kgo.Record) *kgo.Record {
	if r.Topic != w.c.cfg.DLQTopic {
		w.log.Warn().Str("command_topic", r.Topic).Int("bytes", len(r.Value)).Int64("offset", last.Offset).
			Msg("command too large for the producer, sent to the dead-letter topic")
		if m := w.c.metrics; m != nil {
			m.DeadLetters.WithLabelValues(CodeCommandTooLarge).Inc()
		}
		// The command with the coordinates of its batch's last input.
		src := &kgo.Record{Topic: last.Topic, Partition: last.Partition, Offset: last.Offset,
			Key: r.Key, Value: r.Value, Headers: append(r.Headers[:len(r.Headers):len(r.Headers)],
				kgo.RecordHeader{Key: HeaderCommandTopic, Value: []byte(r.Topic)})}
		return DeadLetter(w.c.cfg.DLQTopic, Poison{Record: src, Code: CodeCommandTooLarge}, w.c.Limit(w.c.cfg.DLQTopic))
	}
	var hs []kgo.RecordHeader
	for _, h := range r.Headers {
		switch h.Key {
		case HeaderErrorCode, HeaderErrorReason, HeaderSourceTopic, HeaderSourcePartition, HeaderSourceOffset,
			HeaderValueTruncated, HeaderCommandTopic:
			hs = append(hs, h)
		}
	}
	if r.Key == nil && r.Value == nil && len(hs) == len(r.Headers) {
		return nil
	}
	if header(hs, HeaderValueTruncated) == nil {
		hs = append(hs, kgo.RecordHeader{Key: HeaderValueTruncated, Value: []byte(strconv.Itoa(len(r.Value)))})
	}
	return &kgo.Record{Topic: r.Topic, Headers: hs}
}

func header(hs []kgo.RecordHeader, key string) []byte {
	for _, h := range hs {
		if h.Key == key {
			return h.Value
		}
	}
	return nil
}

// DeadLetter builds the dead-letter record for p: the original key, value and
// headers plus code headers naming the error and the record's origin. A
// value that would take the record over maxBytes (the producer's limit) is
// cut to a bounded prefix, with HeaderValueTruncated giving its size.
func DeadLetter(topic string, p Poison, maxBytes int) *kgo.Record {
	src := p.Record
	hs := make([]kgo.RecordHeader, 0, len(src.Headers)+6)
	hs = append(hs, src.Headers...)
	hs = append(hs,
		kgo.RecordHeader{Key: HeaderErrorCode, Value: []byte(p.Code)},
		kgo.RecordHeader{Key: HeaderSourceTopic, Value: []byte(src.Topic)},
		kgo.RecordHeader{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(int(src.Partition)))},
		kgo.RecordHeader{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(src.Offset, 10))},
	)
	if p.Reason != "" {
		hs = append(hs, kgo.RecordHeader{Key: HeaderErrorReason, Value: []byte(p.Reason)})
	}
	return fit(&kgo.Record{Topic: topic, Key: src.Key, Value: src.Value, Headers: hs}, maxBytes)
}

// fit cuts r's value to a prefix when r would not fit maxBytes with its
// framing, recording the original size in HeaderValueTruncated.
func fit(r *kgo.Record, maxBytes int) *kgo.Record {
	size := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		size += len(h.Key) + len(h.Value)
	}
	if size+DeadLetterOverhead <= maxBytes {
		return r
	}
	room := maxBytes - DeadLetterOverhead - (size - len(r.Value)) - len(HeaderValueTruncated) - 20
	room = max(0, min(room, maxDeadLetterPrefix))
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderValueTruncated, Value: []byte(strconv.Itoa(len(r.Value)))})
	r.Value = r.Value[:room:room]
	return r
}
