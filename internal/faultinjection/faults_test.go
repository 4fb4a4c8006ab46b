package faultinjection_test

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/natsbus"
)

// TestKillingTheServiceNATSAndPostgreSQLUnderLoadLosesAndDuplicatesNothing
// is the fault-injection suite: load on a real segmentd while it is killed,
// its NATS server stopped and its PostgreSQL crashed, one after the other.
func TestKillingTheServiceNATSAndPostgreSQLUnderLoadLosesAndDuplicatesNothing(t *testing.T) {
	bin := buildSegmentd(t)
	cluster := testenv.StartCluster(t)
	bus := testenv.StartNATS(t)
	svc := newService(t, bin, cluster.URL("segments"), bus.URL())
	svc.start()

	l := newLoad(svc.base())
	ctx, stopLoad := context.WithCancel(context.Background())
	var clients sync.WaitGroup
	for c := range 4 {
		clients.Go(func() { l.run(ctx, c) })
	}
	progress := func(what string) {
		t.Helper()
		n := l.ackedCount()
		testenv.Eventually(t, 60*time.Second, what, func() bool { return l.ackedCount() >= n+40 })
	}
	progress("events acknowledged under load")

	t.Log("fault 1: kill segmentd (SIGKILL) and start it again")
	svc.kill()
	svc.start()
	progress("events acknowledged after the restart")

	t.Log("fault 2: stop NATS for 2 s")
	bus.Stop()
	outage := time.Now()
	for time.Since(outage) < 2*time.Second {
		if !svc.ready() {
			t.Error("/readyz is not ready during a NATS outage")
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	progress("events acknowledged during the NATS outage")
	bus.Restart()

	t.Log("fault 3: crash PostgreSQL for 3 s")
	l.setDatabaseDown(true)
	cluster.Crash()
	down := time.Now()
	for time.Since(down) < 3*time.Second {
		if svc.ready() {
			t.Error("/readyz is ready while the database is down")
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	cluster.Start()
	l.setDatabaseDown(false)
	if took := svc.awaitReady(30 * time.Second); took > 2*time.Second {
		t.Errorf("/readyz ready %v after the database came back, want ≤ 2 s", took)
	}
	progress("events acknowledged after the database came back")

	t.Log("fault 4: kill segmentd once more")
	svc.kill()
	svc.start()
	progress("events acknowledged after the second restart")
	stopLoad()
	clients.Wait()

	l.mu.Lock()
	t.Logf("acknowledged %d events; answers %v; while the database was down %v", len(l.acked), l.statuses, l.whileDB)
	for _, p := range l.problems {
		t.Error(p)
	}
	if l.whileDB[http.StatusServiceUnavailable] == 0 {
		t.Error("no request was answered 503 while the database was down")
	}
	for status := range l.whileDB {
		if status != http.StatusServiceUnavailable && status/100 != 2 {
			t.Errorf("answered %d while the database was down, want 503", status)
		}
	}
	acked := l.acked
	l.mu.Unlock()

	db, err := cluster.Connect(context.Background(), "segments")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close(context.Background()) }()
	_, js := bus.Connect(t)
	verify(t, db, js, acked)
}

// querier is a database connection or pool.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// verify waits until publication has caught up and checks the log and the
// streams: every acknowledged event recorded, every recorded event on
// SEGMENTS_EVENTS once, in position order, every alert on SEGMENTS_ALERTS
// once. It returns SEGMENTS_EVENTS as read.
func verify(t *testing.T, db querier, js jetstream.JetStream, acked map[uuid.UUID]bool) idCount {
	t.Helper()
	ctx := context.Background()

	// Requests cancelled when the load stopped may still commit: wait until
	// the log, the read models and the streams agree, then read the log.
	var alerts int
	testenv.Eventually(t, 90*time.Second, "every event published and every alert relayed", func() bool {
		var caughtUp bool
		var events int
		err := db.QueryRow(ctx, `SELECT
				(SELECT count(*) FROM outbox) = 0
				AND (SELECT count(*) FROM streams s LEFT JOIN customer_projections p USING (stream_id)
				     WHERE p.version IS DISTINCT FROM s.version) = 0,
				(SELECT count(*) FROM events), (SELECT count(*) FROM alerts)`).Scan(&caughtUp, &events, &alerts)
		if err != nil || !caughtUp {
			return false
		}
		return streamMsgs(ctx, js, natsbus.StreamEvents) >= uint64(events) && streamMsgs(ctx, js, natsbus.StreamAlerts) >= uint64(alerts)
	})
	rows, err := db.Query(ctx, "SELECT event_id FROM events")
	if err != nil {
		t.Fatal(err)
	}
	stored, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		t.Fatal(err)
	}
	recorded := map[uuid.UUID]bool{}
	for _, id := range stored {
		recorded[id] = true
	}
	lost := 0
	for id := range acked {
		if !recorded[id] {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d acknowledged events are not in the log", lost)
	}
	if alerts == 0 {
		t.Error("the load raised no alert: SEGMENTS_ALERTS was not exercised")
	}
	events := distinctIDs(t, js, natsbus.StreamEvents)
	if events.msgs != len(stored) || events.distinct != len(stored) {
		t.Errorf("SEGMENTS_EVENTS holds %d messages, %d distinct, for %d recorded events", events.msgs, events.distinct, len(stored))
	}
	for id := range events.ids {
		if !recorded[id] {
			t.Errorf("SEGMENTS_EVENTS carries event %s, which the log does not hold", id)
			break
		}
	}
	al := distinctIDs(t, js, natsbus.StreamAlerts)
	if al.msgs != alerts || al.distinct != alerts {
		t.Errorf("SEGMENTS_ALERTS holds %d messages, %d distinct, for %d alerts", al.msgs, al.distinct, alerts)
	}
	for i := 1; i < len(events.published); i++ {
		if prev, cur := events.published[i-1], events.published[i]; cur.position <= prev.position {
			t.Errorf("SEGMENTS_EVENTS: position %d (sequence %d) after position %d", cur.position, cur.seq, prev.position)
			break
		}
	}
	t.Logf("log %d events; SEGMENTS_EVENTS %d; alerts %d; SEGMENTS_ALERTS %d", len(stored), events.msgs, alerts, al.msgs)
	return events
}

func streamMsgs(ctx context.Context, js jetstream.JetStream, stream string) uint64 {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return 0
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0
	}
	return info.State.Msgs
}

type idCount struct {
	msgs, distinct int
	ids            map[uuid.UUID]bool
	published      []published // in stream order
}

// published is a message as its stream stored it.
type published struct {
	id       uuid.UUID
	seq      uint64
	at       time.Time // when the stream stored it
	position int64     // Segments-Position (0 when absent)
}

// distinctIDs reads every message of a stream and counts its Nats-Msg-Ids.
func distinctIDs(t *testing.T, js jetstream.JetStream, stream string) idCount {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := idCount{ids: map[uuid.UUID]bool{}}
	if info.State.Msgs == 0 {
		return out
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("%s message %d: %v", stream, seq, err)
		}
		out.msgs++
		id, err := uuid.Parse(m.Header.Get(jetstream.MsgIDHeader))
		if err != nil {
			t.Fatalf("%s message %d: Nats-Msg-Id %q", stream, seq, m.Header.Get(jetstream.MsgIDHeader))
		}
		out.ids[id] = true
		pos, _ := strconv.ParseInt(m.Header.Get(natsbus.HeaderPosition), 10, 64)
		out.published = append(out.published, published{id: id, seq: seq, at: m.Time, position: pos})
	}
	out.distinct = len(out.ids)
	return out
}
