// Package ops holds what every long-running leadconv command shares for
// operations: the root logger, the HTTP server for /metrics, /healthz and
// /readyz, and progress reporting for long runs.
package ops

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
)

// Log formats accepted by NewLogger.
const (
	FormatAuto    = "auto"
	FormatJSON    = "json"
	FormatConsole = "console"
)

// NewLogger returns the root logger writing to w. Format "auto" picks the
// human-readable console writer when w is a terminal and JSON otherwise, so
// log shippers always get JSON. Level is a zerolog level name.
func NewLogger(w io.Writer, level, format string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Nop(), fmt.Errorf("ops: log level %q: allowed values are trace, debug, info, warn, error", level)
	}
	switch format {
	case FormatAuto:
		if IsTerminal(w) {
			w = consoleWriter(w)
		}
	case FormatConsole:
		w = consoleWriter(w)
	case FormatJSON:
	default:
		return zerolog.Nop(), fmt.Errorf("ops: log format %q: allowed values are auto, json, console", format)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

func consoleWriter(w io.Writer) io.Writer {
	return zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly, NoColor: !IsTerminal(w)}
}

// IsTerminal reports whether w is a character device such as a terminal.
// The standard library's file mode is enough; no isatty dependency needed.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
