package ops

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Progress reports how far a long run (a replay, a backfill) has come: a
// redrawn bar with rate and ETA when its writer is a terminal, periodic
// structured log lines otherwise, so a run under systemd or Kubernetes still
// shows progress in the logs.
type Progress struct {
	what  string
	w     io.Writer
	log   zerolog.Logger
	term  bool
	every time.Duration
	start time.Time
	now   func() time.Time

	done  atomic.Int64
	total atomic.Int64
}

// NewProgress reports on w (a terminal gets the bar) or log (everything
// else). what names the unit of work in the output, e.g. "events".
func NewProgress(w io.Writer, log zerolog.Logger, what string) *Progress {
	p := &Progress{what: what, w: w, log: log, term: IsTerminal(w), now: time.Now}
	p.every = 10 * time.Second
	if p.term {
		p.every = 250 * time.Millisecond
	}
	p.start = p.now()
	return p
}

// SetTotal sets the expected amount of work; 0 means unknown (no ETA).
func (p *Progress) SetTotal(n int64) { p.total.Store(n) }

// Add records n more units done.
func (p *Progress) Add(n int64) { p.done.Add(n) }

// Done returns the units done so far.
func (p *Progress) Done() int64 { return p.done.Load() }

// Run reports periodically until ctx is cancelled, then reports once more
// (ending the bar's line on a terminal).
func (p *Progress) Run(ctx context.Context) {
	t := time.NewTicker(p.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			p.report(true)
			return
		case <-t.C:
			p.report(false)
		}
	}
}

func (p *Progress) report(final bool) {
	done, total := p.done.Load(), p.total.Load()
	elapsed := p.now().Sub(p.start)
	if p.term {
		line := "\r" + Bar(p.what, done, total, elapsed, 30) + "\x1b[K"
		if final {
			line += "\n"
		}
		_, _ = io.WriteString(p.w, line)
		return
	}
	rate := Rate(done, elapsed)
	ev := p.log.Info().Int64("done", done).Float64("per_second", rate).Dur("elapsed", elapsed)
	if total > 0 {
		ev = ev.Int64("total", total)
		if eta, ok := ETA(done, total, rate); ok {
			ev = ev.Dur("eta", eta)
		}
	}
	msg := "progress"
	if final {
		msg = "progress final"
	}
	ev.Str("unit", p.what).Msg(msg)
}

// Rate returns units per second.
func Rate(done int64, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return float64(done) / elapsed.Seconds()
}

// ETA estimates the time left at the current rate; false when unknown.
func ETA(done, total int64, rate float64) (time.Duration, bool) {
	if total <= 0 || rate <= 0 {
		return 0, false
	}
	left := max(total-done, 0)
	return time.Duration(float64(left) / rate * float64(time.Second)).Round(time.Second), true
}

// Bar renders one progress line:
//
//	events [=============>                ]  45%  4500/10000  1500/s  ETA 4s
//
// With an unknown total it shows the count and rate only.
func Bar(what string, done, total int64, elapsed time.Duration, width int) string {
	rate := Rate(done, elapsed)
	if total <= 0 {
		return fmt.Sprintf("%s %d  %s/s  %s", what, done, human(rate), elapsed.Round(time.Second))
	}
	frac := min(float64(done)/float64(total), 1)
	fill := int(frac * float64(width))
	bar := strings.Repeat("=", fill)
	if fill < width {
		bar += ">" + strings.Repeat(" ", width-fill-1)
	}
	eta := "?"
	if d, ok := ETA(done, total, rate); ok {
		eta = d.String()
	}
	return fmt.Sprintf("%s [%s] %3.0f%%  %d/%d  %s/s  ETA %s", what, bar, frac*100, done, total, human(rate), eta)
}

// human renders a rate compactly: 950, 12.3k, 1.5M.
func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}
