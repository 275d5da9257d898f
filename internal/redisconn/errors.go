package redisconn

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// CodeUnavailable is the code of a Redis failure that retrying can cure.
const CodeUnavailable = "redis_unavailable"

// Error is a Redis failure that retrying can cure: the server unreachable,
// the connection lost mid-call, a pool or I/O timeout, a server that is
// loading its data, read-only or without its cluster (a failover), busy
// with a script, or out of memory (an operator's to mend: dead-lettering
// every record meanwhile would empty the stream into the DLQ). It is
// transient in consumer.Classify's sense (ErrorCode, Transient).
type Error struct{ err error }

func (e *Error) Error() string { return "redis unavailable: " + e.err.Error() }

// Unwrap returns the client's error.
func (e *Error) Unwrap() error { return e.err }

// ErrorCode is CodeUnavailable.
func (e *Error) ErrorCode() string { return CodeUnavailable }

// Transient is true.
func (e *Error) Transient() bool { return true }

// Classify wraps err in *Error when it is a Redis failure retrying can
// cure; any other error (a script error, a reply the caller cannot parse)
// comes back as it is. Every adapter calls it on what Redis returned, so
// that an outage is retried and bad data is not.
func Classify(err error) error {
	var e *Error
	if err == nil || errors.As(err, &e) || !unavailable(err) {
		return err
	}
	return &Error{err}
}

func unavailable(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, redis.ErrPoolTimeout) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	return redis.IsLoadingError(err) || redis.IsReadOnlyError(err) || redis.IsClusterDownError(err) ||
		redis.IsTryAgainError(err) || redis.IsMasterDownError(err) || redis.IsMaxClientsError(err) ||
		redis.IsOOMError(err) || redis.HasErrorPrefix(err, "BUSY ")
}
