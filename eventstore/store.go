// Package eventstore owns the PostgreSQL event log — the source of truth —
// and its publication to JetStream.
//
// Appends of different customers do not wait for each other: each locks the
// rows of its customers' streams (appends to one stream are serial, so
// versions and positions increase along it) and draws its positions from a
// sequence (SPEC §12: unique, gaps allowed, not in commit order). Readers
// that tail the log by position stop at a settled position (settle.go).
// Concurrent requests are batched into one transaction by group-commit
// writers, so that a group costs one fsync rather than one per request.
//
// Exactly-once recording comes from the unique event_id: a re-sent event is
// found and answered with the stored result, never stored twice (two
// writers racing with it: the loser fails on the unique index and retries).
package eventstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/privacy"
)

// Result is the outcome of one appended (or already stored) event.
type Result struct {
	EventID    uuid.UUID
	Customer   domain.CustomerCode
	Version    int64
	Position   int64
	RecordedAt time.Time
	Duplicate  bool
	// PossibleDuplicateOf lists the other customers that already stated a
	// normalised phone, email or legal name this event states for the
	// first time (SPEC §10); a warning, the event is stored.
	PossibleDuplicateOf []Duplicate
}

// Metrics receives the store's measurements; nil disables them.
type Metrics interface {
	EventsAppended(n int)
	AppendGroup(requests, events int, took time.Duration)
}

// Config configures a Store.
type Config struct {
	Pool *pgxpool.Pool
	// Keyring holds the master keys this process may unwrap with; the log
	// decides which one wraps new data keys (CheckKeyring). When nil, a
	// keyring of MasterKey alone.
	Keyring   *privacy.Keyring
	MasterKey privacy.MasterKey
	// Now is the clock; recorded_at comes from it. Defaults to time.Now.
	Now     func() time.Time
	Logger  *slog.Logger
	Metrics Metrics
	// MaxGroupEvents bounds the events committed in one group transaction.
	MaxGroupEvents int
	// Writers is the number of group transactions in flight (default 1).
	// They overlap (no global lock), and PostgreSQL flushes the commits of
	// concurrent ones together.
	Writers int
}

func (c Config) withDefaults() Config {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxGroupEvents <= 0 {
		c.MaxGroupEvents = 4000
	}
	if c.Writers <= 0 {
		c.Writers = 1
	}
	return c
}

// Store is the event store.
type Store struct {
	cfg     Config
	keys    *privacy.Keyring
	pool    *pgxpool.Pool
	calls   chan *appendCall
	closing chan struct{}
	done    chan struct{}
	// appended is signalled (non-blocking) after every commit, so an
	// in-process publisher wakes without waiting for NOTIFY.
	appended chan struct{}
	// committed carries, after every commit, the streams that received new
	// events in it (see Committed).
	committed chan []uuid.UUID
	// notifyWake and notifyAt drive runNotifier: the highest position
	// committed by this process, and a signal that it grew.
	notifyWake chan struct{}
	notifyAt   atomic.Int64
	// blind is the log's blind index once its key was loaded (blindindex.go).
	blind atomic.Pointer[privacy.BlindIndex]
}

type appendCall struct {
	ctx  context.Context
	req  domain.AppendRequest
	done chan callOutcome
}

type callOutcome struct {
	results []Result
	err     error
}

// New returns a store and starts its group-commit writer. Close stops it.
func New(cfg Config) (*Store, error) {
	if cfg.Pool == nil {
		return nil, errors.New("eventstore: Config.Pool is required")
	}
	keys := cfg.Keyring
	if keys == nil {
		if cfg.MasterKey.ID() == "" {
			return nil, errors.New("eventstore: Config.Keyring or Config.MasterKey is required")
		}
		keys = privacy.NewKeyring(cfg.MasterKey)
	}
	cfg = cfg.withDefaults()
	s := &Store{
		cfg:      cfg,
		keys:     keys,
		pool:     cfg.Pool,
		calls:    make(chan *appendCall, 1024),
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
		appended: make(chan struct{}, 1),
		// Room for a burst of small groups; a reader that falls further
		// behind loses hints, not events.
		committed:  make(chan []uuid.UUID, 256),
		notifyWake: make(chan struct{}, 1),
	}
	var notifier sync.WaitGroup
	notifier.Go(s.runNotifier)
	var writers sync.WaitGroup
	for range cfg.Writers {
		writers.Go(s.runWriter)
	}
	go func() {
		writers.Wait()
		close(s.notifyWake)
		notifier.Wait()
		close(s.done)
	}()
	return s, nil
}

// Close stops accepting appends, finishes the queued ones, and returns.
func (s *Store) Close() {
	select {
	case <-s.closing:
	default:
		close(s.closing)
	}
	<-s.done
}

// Appended is signalled after each commit made by this process.
func (s *Store) Appended() <-chan struct{} { return s.appended }

// Committed delivers, after each group transaction commits, the streams that
// received new events in it (duplicates of stored events do not count). It is
// a hint for a reader in this process, such as the projector, that wants to
// act before the events reach SEGMENTS_EVENTS: sends never block the writer,
// so when the reader falls behind (or nobody reads) hints are dropped. A
// reader must learn of every event another way too.
func (s *Store) Committed() <-chan []uuid.UUID { return s.committed }

// Pool returns the connection pool (for callers that join transactions).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Append records the request's events (all or nothing) and returns one
// result per event, in request order. Concurrent calls share a transaction
// (group commit); each call still succeeds or fails on its own.
//
// Errors: *domain.ValidationError is never returned (validate first);
// *VersionConflictError, *EventError (a rule of the stream's past),
// ErrUnavailable, ErrClosed.
func (s *Store) Append(ctx context.Context, req domain.AppendRequest) ([]Result, error) {
	if len(req.Events) == 0 {
		return nil, nil
	}
	call := &appendCall{ctx: ctx, req: req, done: make(chan callOutcome, 1)}
	select {
	case <-s.closing:
		return nil, ErrClosed
	default:
	}
	select {
	case s.calls <- call:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.closing:
		return nil, ErrClosed
	}
	select {
	case out := <-call.done:
		return out.results, out.err
	case <-ctx.Done():
		// The group may still commit it; a retry with the same event_id is
		// answered as a duplicate.
		return nil, ctx.Err()
	}
}

// AppendTx appends inside the caller's transaction, which must be READ
// COMMITTED. It locks the rows of the request's streams and holds back
// publication past its positions until it ends, so the caller should commit
// promptly; the transaction is ended by the server if it sits idle longer
// than AppendIdleTimeout.
func (s *Store) AppendTx(ctx context.Context, tx pgx.Tx, req domain.AppendRequest) ([]Result, error) {
	outs, err := s.appendInTx(ctx, tx, []domain.AppendRequest{req}, false)
	if err != nil {
		return nil, err
	}
	return outs[0].results, outs[0].err
}

// errRaced is a group that a concurrent append overtook between two of its
// statements; a retry reads what that append committed.
var errRaced = errors.New("append: overtaken by a concurrent append")

// maxRaceAttempts bounds the retries of a group that lost a race.
const maxRaceAttempts = 4

// batchSender is what an append needs from its connection: a pgx.Tx (the
// caller's transaction) or a *pgx.Conn (the group writer's own).
type batchSender interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
}

// streamWork is a stream's write state while a group is being built.
type streamWork struct {
	id       uuid.UUID
	customer domain.CustomerCode
	state    domain.StreamState
	lastHash []byte
	existed  bool
	changed  bool
	key      *keyWork
	blind    []blindRow // digests this group states for the stream
}

type keyWork struct {
	loaded    bool   // a row exists in customer_keys
	wrapped   []byte // nil when destroyed
	keyID     string // the master key that wrapped it
	wrapWith  privacy.MasterKey
	cipher    *privacy.Cipher
	insert    bool // a new key to insert
	destroyed bool // destroyed by this group
}

type snapshot struct {
	state    domain.StreamState
	orders   map[string]domain.OrderBalance
	lastHash []byte
	changed  bool
}

// appendInTx runs the requests in order inside tx. It returns one outcome per
// request (a request can fail on its own: version conflict, rule violation)
// and an error when the transaction as a whole failed.
//
// With own, tx is a connection outside any transaction: the first batch
// begins one and, when rows are written, the last batch commits it.
func (s *Store) appendInTx(ctx context.Context, tx batchSender, reqs []domain.AppendRequest, own bool) ([]callOutcome, error) {
	streams := map[uuid.UUID]*streamWork{}
	var streamIDs []uuid.UUID
	var givenIDs []uuid.UUID
	var orderStreams []uuid.UUID
	var orderIDs []string
	var keyStreams []uuid.UUID
	keyWanted := map[uuid.UUID]bool{}
	for _, r := range reqs {
		for _, e := range r.Events {
			id := e.Customer.StreamID()
			if _, ok := streams[id]; !ok {
				streams[id] = &streamWork{id: id, customer: e.Customer, lastHash: genesisHash}
				streamIDs = append(streamIDs, id)
			}
			if e.EventID != uuid.Nil {
				givenIDs = append(givenIDs, e.EventID)
			}
			if oid, ok := domain.OrderRefs(e.Data); ok {
				orderStreams = append(orderStreams, id)
				orderIDs = append(orderIDs, oid)
			}
			// Whether the customer is an individual is known only after the
			// read below, so any profile event with a name or region loads the key.
			if (domain.HasPersonalData(e.Data, true) || e.Type == domain.TypeCustomerErased) && !keyWanted[id] {
				keyWanted[id] = true
				keyStreams = append(keyStreams, id)
			}
		}
	}

	blindEntries, digests, err := s.blindEntries(ctx, reqs)
	if err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	blind := &blindGroup{owners: map[string][]blindOwner{}}

	// One round trip: mark this transaction as an appender, lock the
	// streams, read what the rules need, draw positions.
	var masterKeyID pgtype.Text
	var positions []int64
	recordedFloor := map[uuid.UUID]time.Time{}
	events := 0
	for _, req := range reqs {
		events += len(req.Events)
	}
	b := &pgx.Batch{}
	if own {
		b.Queue("BEGIN")
	}
	// This transaction holds its streams' row locks: should this process
	// freeze or lose the network with it open, the server ends it after
	// AppendIdleTimeout rather than the session default.
	b.Queue("SET LOCAL idle_in_transaction_session_timeout = '" + AppendIdleTimeout + "'")
	// Held from before the positions are drawn to the end: readers that
	// must not pass a position committed late wait for the holders
	// (settle.go). The lock conflicts with no other writer's.
	b.Queue("LOCK TABLE events IN ROW EXCLUSIVE MODE")
	// Read after the lock, so a key activation that waits for appends in
	// flight (ActivateMasterKey) covers every append that read the old key.
	b.Queue("SELECT master_key_id FROM log_head").QueryRow(func(row pgx.Row) error {
		return row.Scan(&masterKeyID)
	})
	// The row locks order appends to one stream (in stream id order: no
	// deadlock between groups); appends to other streams do not wait.
	b.Queue("SELECT stream_id, version, last_hash, registered, erased, individual, ordered, recorded_at FROM streams WHERE stream_id = ANY($1) ORDER BY stream_id FOR UPDATE", streamIDs).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id uuid.UUID
			var st domain.StreamState
			var last []byte
			var at pgtype.Timestamptz
			if err := rows.Scan(&id, &st.Version, &last, &st.Registered, &st.Erased, &st.Individual, &st.Ordered, &at); err != nil {
				return err
			}
			w := streams[id]
			w.state, w.lastHash, w.existed = st, last, true
			if at.Valid {
				recordedFloor[id] = at.Time
			}
		}
		return rows.Err()
	})
	existing := map[uuid.UUID]storedEvent{}
	if len(givenIDs) > 0 {
		b.Queue(selectStoredEvents, givenIDs).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				st, err := scanStoredEvent(rows)
				if err != nil {
					return err
				}
				existing[st.result.EventID] = st
			}
			return rows.Err()
		})
	}
	if len(orderIDs) > 0 {
		b.Queue(`SELECT o.stream_id, o.order_id, o.amount, o.refunded FROM stream_orders o
			JOIN unnest($1::uuid[], $2::text[]) AS k(stream_id, order_id) USING (stream_id, order_id)`, orderStreams, orderIDs).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var id uuid.UUID
				var oid string
				var ob domain.OrderBalance
				if err := rows.Scan(&id, &oid, &ob.Amount, &ob.Refunded); err != nil {
					return err
				}
				w := streams[id]
				if w.state.Orders == nil {
					w.state.Orders = map[string]domain.OrderBalance{}
				}
				w.state.Orders[oid] = ob
			}
			return rows.Err()
		})
	}
	if len(keyStreams) > 0 {
		b.Queue("SELECT stream_id, wrapped_key, master_key_id FROM customer_keys WHERE stream_id = ANY($1)", keyStreams).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var id uuid.UUID
				k := &keyWork{loaded: true}
				if err := rows.Scan(&id, &k.wrapped, &k.keyID); err != nil {
					return err
				}
				streams[id].key = k
			}
			return rows.Err()
		})
	}
	if len(digests) > 0 {
		queueStoredOwners(b, digests, blind.owners)
	}
	var logFloor pgtype.Timestamptz
	queueLogFloor(b, &logFloor)
	drawing := queueDrawPositions(b, events, givenIDs, &positions)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("append: read stream state: %w", mapError(err))
	}
	if len(positions) < drawing-len(existing) {
		// An event_id counted as stored by the draw was not yet visible to
		// the lookup before it: a concurrent append stored it meanwhile.
		return nil, errRaced
	}
	if err := s.loadKeysToCompare(ctx, tx, existing, streams, keyWanted); err != nil {
		return nil, err
	}
	wrapWith, err := s.wrappingKey(ctx, masterKeyID)
	if err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	for _, w := range streams {
		if w.key == nil {
			w.key = &keyWork{}
		}
		w.key.wrapWith = wrapWith
	}

	recordedAt := s.cfg.Now().Truncate(time.Microsecond)
	if logFloor.Valid && logFloor.Time.After(recordedAt) {
		recordedAt = logFloor.Time
	}
	for _, at := range recordedFloor {
		// recorded_at never decreases along a stream, even if the clock
		// steps back or another instance's clock is ahead.
		if at.After(recordedAt) {
			recordedAt = at
		}
	}
	outs := make([]callOutcome, len(reqs))
	rows := make([]eventRow, 0, events)
	newIDs := map[uuid.UUID]newEvent{}
	for ri, req := range reqs {
		var entries [][]blindEntry
		if blindEntries != nil {
			entries = blindEntries[ri]
		}
		res, reqRows, err := s.applyRequest(req, streams, existing, newIDs, positions[len(rows):], recordedAt, blind, entries)
		if err != nil {
			outs[ri] = callOutcome{err: err}
			continue
		}
		outs[ri] = callOutcome{results: res}
		rows = append(rows, reqRows...)
	}
	if len(rows) == 0 {
		return outs, nil
	}
	if err := s.write(ctx, tx, rows, streams, groupHead{recordedAt, wrapWith.ID()}, own); err != nil {
		return nil, err
	}
	return outs, nil
}

// applyRequest checks one request against the working state and builds its
// rows. On failure the working state is restored and no rows are returned.
func (s *Store) applyRequest(req domain.AppendRequest, streams map[uuid.UUID]*streamWork,
	existing map[uuid.UUID]storedEvent, newIDs map[uuid.UUID]newEvent, positions []int64, recordedAt time.Time,
	blind *blindGroup, entries [][]blindEntry,
) ([]Result, []eventRow, error) {
	results, dupOf, allDuplicates, err := s.findDuplicates(req, streams, existing, newIDs)
	if err != nil || allDuplicates {
		return results, nil, err
	}
	// Take snapshots of the touched streams so a failure leaves no trace.
	snaps := map[uuid.UUID]snapshot{}
	for _, e := range req.Events {
		id := e.Customer.StreamID()
		if _, ok := snaps[id]; ok {
			continue
		}
		w := streams[id]
		orders := make(map[string]domain.OrderBalance, len(w.state.Orders))
		for k, v := range w.state.Orders {
			orders[k] = v
		}
		snaps[id] = snapshot{state: w.state, orders: orders, lastHash: w.lastHash, changed: w.changed}
	}
	var undoBlind []func()
	restore := func() {
		for _, undo := range slices.Backward(undoBlind) {
			undo()
		}
		for id, sn := range snaps {
			w := streams[id]
			w.state, w.lastHash, w.changed = sn.state, sn.lastHash, sn.changed
			w.state.Orders = sn.orders
		}
	}
	for customer, expected := range req.Expected {
		w := streams[customer.StreamID()]
		if w.state.Version != expected {
			return nil, nil, &VersionConflictError{Customer: customer, Expected: expected, Actual: w.state.Version}
		}
	}
	rows := make([]eventRow, 0, len(req.Events))
	for i, e := range req.Events {
		if _, repeated := dupOf[i]; repeated || results[i].Duplicate {
			continue
		}
		w := streams[e.Customer.StreamID()]
		if err := w.state.Apply(&e); err != nil {
			restore()
			var re *domain.RuleError
			if errors.As(err, &re) {
				return nil, nil, &EventError{Index: i, Err: re}
			}
			return nil, nil, err
		}
		row, err := s.buildRow(e, w, positions[len(rows)], recordedAt)
		if err != nil {
			restore()
			return nil, nil, err
		}
		w.lastHash, w.changed = row.hash, true
		rows = append(rows, row)
		results[i] = Result{EventID: row.eventID, Customer: e.Customer, Version: row.version, Position: row.position, RecordedAt: recordedAt}
		if len(entries) > i && len(entries[i]) > 0 && !w.state.Erased {
			dups, undo := blind.state(w, entries[i], row.position)
			results[i].PossibleDuplicateOf = dups
			undoBlind = append(undoBlind, undo)
		}
	}
	for i, r := range results {
		if !r.Duplicate && r.EventID != uuid.Nil {
			newIDs[r.EventID] = newEvent{result: r, envelope: &req.Events[i]}
		}
	}
	for i, j := range dupOf {
		results[i] = results[j]
		results[i].Duplicate = true
	}
	return results, rows, nil
}
