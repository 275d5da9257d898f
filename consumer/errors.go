package consumer

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Coded is the one classification of errors in leadconv: a stable
// snake_case code (for dead-letter headers, metric labels and logs) and
// whether retrying can cure the failure. Input decoders (schemas, events,
// ingest), the matcher's Redis errors and the pipeline implement it; the
// worker decides with it what a handler error means.
type Coded interface {
	error
	ErrorCode() string
	// Transient reports a failed dependency (Redis, the broker): the
	// batch is retried with bounded backoff for as long as the outage
	// lasts. A permanent failure is retried at most a few times, then its
	// records are dead-lettered with the code.
	Transient() bool
}

// Codes of the errors Classify names without a Coded error.
const (
	// CodeHandlerFailed is the dead-letter code of a record whose handler
	// failed with a permanent or unclassified error.
	CodeHandlerFailed = "handler_failed"
	// CodeUnavailable is an I/O failure of some dependency: a network
	// error, an I/O deadline, a connection closed under the call.
	CodeUnavailable = "unavailable"
)

// Classify returns the code of err and whether it is transient: a Coded
// error says so itself; a broker error (kerr) is transient when Kafka
// calls it retriable; network errors, I/O deadlines and connections closed
// mid-call are transient whatever raised them.
//
// Anything else is permanent (CodeHandlerFailed): an error nobody
// classified is a bug or bad input far more often than an outage, and
// retrying bad input forever stalls its partition; a dependency whose
// outages surface as unclassified errors must wrap them in a Coded error.
func Classify(err error) (code string, transient bool) {
	var c Coded
	if errors.As(err, &c) {
		return c.ErrorCode(), c.Transient()
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return strings.ToLower(ke.Message), ke.Retriable
	}
	if IOFailure(err) {
		return CodeUnavailable, true
	}
	return CodeHandlerFailed, false
}

// IOFailure reports an error of the transport rather than of the request:
// a network error, an I/O deadline, a connection refused, reset or closed
// mid-call. Retrying the same request can succeed.
func IOFailure(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
