package requests

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/leadconv/leadconv/internal/testutil/kafkatest"
	"github.com/leadconv/leadconv/internal/testutil/looptest"
)

// newDefaultsLoop is the loop as shipped: no engine override (settle
// windows, merge_contacts off, prefer_existing_contact as configured by
// default), three partitions per topic, and the writer's results read by
// the pipeline.
func newDefaultsLoop(t *testing.T) *loop {
	// Hold longer than the default settle window plus a tick: quiet then
	// means no window is pending.
	return newLoop(t, looptest.Options{Partitions: 3, Feedback: true, Hold: 3 * time.Second})
}

// TestClosedLoopShippedDefaults runs generated leads and contacts with
// duplicates, for three tenants, through the pipeline and the writer with
// the shipped defaults: half in one burst, the rest trickling in over a few
// seconds so settle windows open and close while results and echoes come
// back. The CRM must end with one contact per person and nothing refused.
func TestClosedLoopShippedDefaults(t *testing.T) {
	t.Parallel()
	l := newDefaultsLoop(t)
	sets := looptest.Sets()
	l.pipeline()
	l.writer()
	l.Feed(sets, nil)
	l.Quiet()
	l.Check(sets)
}

// TestClosedLoopKilled is the same loop with the pipeline killed while
// clusters wait in their settle windows and the writer killed while it
// applies commands, both restarted.
//
// A kill is modelled in-process: from the moment of the kill the broker
// refuses the victim's offset commits (the connection is dropped, as to a
// dead process), then the victim is stopped. Whatever it did after that
// moment (a batch finished, its Redis state and commands written) is what a
// kill -9 just before its next periodic commit leaves: work done and not
// committed, redelivered to its successor. Nothing it does on the way out
// is committed, which is what distinguishes kill -9 from a graceful stop.
func TestClosedLoopKilled(t *testing.T) {
	t.Parallel()
	l := newDefaultsLoop(t)
	sets := looptest.Sets()
	killed := l.killed
	l.refuseCommits()
	stopP := l.pipeline()
	stopW := l.writer()
	var pendingAtKill, uncommittedAtKill int64
	l.Feed(sets, func(group int) {
		switch group {
		case 4:
			// Trickled records were just routed: their clusters are in
			// their settle windows.
			pendingAtKill = l.End(loopRecords) - l.Committed(looptest.PipelineGroup, loopRecords)
			killed[looptest.PipelineGroup].Store(true)
			time.Sleep(300 * time.Millisecond)
			stopP()
			killed[looptest.PipelineGroup].Store(false)
			stopP = l.pipeline()
		case 6:
			// The burst's commands come out as its settle windows close:
			// kill the writer with commands on the topic it has not
			// committed.
			kafkatest.WaitFor(t, 10*time.Second, "commands for the writer", func() bool {
				return l.End(loopCommands) > l.Committed(looptest.WriterGroup, loopCommands)+2
			})
			uncommittedAtKill = l.End(loopCommands) - l.Committed(looptest.WriterGroup, loopCommands)
			killed[looptest.WriterGroup].Store(true)
			time.Sleep(100 * time.Millisecond)
			stopW()
			killed[looptest.WriterGroup].Store(false)
			stopW = l.writer()
		}
	})
	l.Quiet()
	t.Logf("killed the pipeline with %d records uncommitted, the writer with %d commands uncommitted", pendingAtKill, uncommittedAtKill)
	l.Check(sets)
	stopP()
	stopW()
}

// refuseCommits has the broker drop the offset commits of a group while
// it is marked killed.
func (l *loop) refuseCommits() {
	l.Kafka.ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		l.Kafka.KeepControl()
		if f, ok := l.killed[req.(*kmsg.OffsetCommitRequest).Group]; ok && f.Load() {
			return nil, errors.New("killed"), true
		}
		return nil, nil, false
	})
}
