package requests

import (
	"testing"
	"time"

	"github.com/leadconv/leadconv/internal/testutil/looptest"
)

// TestClosedLoopShippedDefaults runs generated leads and contacts with
// duplicates, for three tenants, through the pipeline and the writer as
// shipped: no engine override (settle windows, merge_contacts off), three
// partitions per topic, the writer's results read by the pipeline. Half
// the records come in one burst, the rest trickle in over a few seconds, so
// settle windows open and close while results and echoes come back. The
// CRM must end with one contact per person and nothing refused
// (looptest.Check). cmd/leadconv's TestClosedLoopKill9 is the same loop
// with the processes killed.
func TestClosedLoopShippedDefaults(t *testing.T) {
	t.Parallel()
	// Quiet holds longer than the default settle window and a tick: no
	// window is pending then.
	l := newLoop(t, looptest.Options{Partitions: 3, Feedback: true, Hold: 3 * time.Second})
	sets := looptest.Sets()
	l.pipeline()
	l.writer()
	l.Feed(sets, nil)
	l.Quiet()
	l.Check(sets)
}

// TestClosedLoopSettleZero is the same loop planned at once (settle: 0, the
// immediacy some want): the new contact's echo can come after the
// converted leads left their cluster, and must still be the master when
// an existing contact meets it.
func TestClosedLoopSettleZero(t *testing.T) {
	t.Parallel()
	l := newLoop(t, looptest.Options{Partitions: 3, Feedback: true, Engine: "settle: 0s", Hold: time.Second})
	sets := looptest.Sets()
	l.pipeline()
	l.writer()
	l.Feed(sets, nil)
	l.Quiet()
	l.Check(sets)
}
