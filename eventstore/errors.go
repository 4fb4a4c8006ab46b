package eventstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/segments-dev/segments/domain"
)

// Sentinel errors of the event store. PostgreSQL errors are mapped to them at
// this boundary so callers branch on these, never on driver types.
var (
	// ErrNotFound: no such customer stream (or row).
	ErrNotFound = errors.New("not in the log")
	// ErrVersionConflict: expected_version did not match the stream.
	ErrVersionConflict = errors.New("expected version does not match the stream")
	// ErrConflict: a uniqueness rule of the log was violated.
	ErrConflict = errors.New("conflicts with stored data")
	// ErrAppendOnly: something tried to change or delete a recorded event.
	ErrAppendOnly = errors.New("the event log is append-only")
	// ErrUnavailable: the database cannot be reached or is shutting down; the
	// operation may be retried.
	ErrUnavailable = errors.New("event store unavailable")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("event store closed")
	// ErrMasterKeyMismatch: the process's keyring lacks a master key the log
	// uses (the active one, or one still wrapping data keys).
	ErrMasterKeyMismatch = errors.New("master key does not match the log")
	// ErrNoLog: a read-only command was pointed at a database that holds no
	// log at this version's schema.
	ErrNoLog = errors.New("no Segments event log here")
)

// VersionConflictError says which stream was not at the expected version.
type VersionConflictError struct {
	Customer domain.CustomerCode
	Expected int64
	Actual   int64
}

func (e *VersionConflictError) Error() string {
	return fmt.Sprintf("customer %s: expected version %d, stream is at %d", e.Customer, e.Expected, e.Actual)
}

// Unwrap makes errors.Is(err, ErrVersionConflict) true.
func (e *VersionConflictError) Unwrap() error { return ErrVersionConflict }

// EventError is a rule violation (*domain.RuleError) of the event at Index in
// the request.
type EventError struct {
	Index int
	Err   *domain.RuleError
}

func (e *EventError) Error() string { return fmt.Sprintf("event %d: %v", e.Index, e.Err) }

// Unwrap exposes the rule error and, through it, the domain sentinel.
func (e *EventError) Unwrap() error { return e.Err }

// storeError carries a sentinel and the underlying cause.
type storeError struct {
	sentinel error
	cause    error
}

func (e *storeError) Error() string   { return e.sentinel.Error() + ": " + e.cause.Error() }
func (e *storeError) Unwrap() []error { return []error{e.sentinel, e.cause} }

// MapError translates a PostgreSQL or connection error into the package's
// sentinels, for the other readers of Segments' tables (the read side): the
// one mapping of driver errors, so a lost database is ErrUnavailable
// wherever it is met.
func MapError(err error) error { return mapError(err) }

// mapError translates PostgreSQL and connection errors into the sentinels.
// Losing the connection mid-statement surfaces as io.ErrUnexpectedEOF or
// io.EOF (the server closed the socket, e.g. killed by a crash), as
// pgconn.ErrConnClosed on a connection the driver closed, and as a
// ConnectError while the server is down.
func mapError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		// The driver's "no rows in result set" says nothing to a reader.
		return ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "23505": // unique_violation
			return &storeError{ErrConflict, err}
		case pgErr.Code == "42501": // raised by the append-only trigger
			return &storeError{ErrAppendOnly, err}
		case len(pgErr.Code) == 5 && (pgErr.Code[:2] == "08" || pgErr.Code[:2] == "57" || pgErr.Code[:2] == "53"),
			pgErr.Code == "55P03", pgErr.Code == "25P03":
			// connection exception, operator intervention (admin shutdown,
			// statement timeout, crash of another backend), insufficient
			// resources, lock_timeout, idle_in_transaction_session_timeout
			return &storeError{ErrUnavailable, err}
		}
		return err
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	if errors.As(err, &connErr) || errors.As(err, &netErr) || pgconn.SafeToRetry(err) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, puddle.ErrClosedPool) {
		return &storeError{ErrUnavailable, err}
	}
	return err
}
