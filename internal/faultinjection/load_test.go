package faultinjection_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
)

// load is a set of clients that record events over HTTP, each event with
// its own event_id, re-sent until acknowledged (a 2xx).
type load struct {
	bases  []string // instances; each request goes to the next that answers
	client *http.Client
	// hangsAllowed: a request that times out is sent to another instance
	// instead of counting as a problem (a frozen instance does not answer;
	// a load balancer would route around it).
	hangsAllowed bool

	mu       sync.Mutex
	acked    map[uuid.UUID]bool
	statuses map[int]int
	problems []string // a 500, or a request that hung
	dbDown   bool     // the database is down: count what was answered then
	whileDB  map[int]int
}

// requestTimeout is how long an answer may take before the request counts
// as hung.
const requestTimeout = 8 * time.Second

func newLoad(bases ...string) *load {
	return &load{
		bases: bases, client: &http.Client{Timeout: requestTimeout},
		acked: map[uuid.UUID]bool{}, statuses: map[int]int{}, whileDB: map[int]int{},
	}
}

// run sends, until ctx ends, two orders per customer (a small one, then one
// that lifts the customer's value tier and so raises an alert).
func (l *load) run(ctx context.Context, client int) {
	for c := 0; ctx.Err() == nil; c++ {
		customer := fmt.Sprintf("KH-FAULT-%d-%d", client, c)
		for i, amount := range []string{"100.00", "2000000.00"} {
			id := uuid.New()
			body := fmt.Sprintf(`{"event_id":%q,"type":"OrderPlaced","customer":%q,"data":{"order_id":"SO-%d","amount":%q,"channel":"online"}}`,
				id, customer, i, amount)
			for try := client; ctx.Err() == nil && !l.send(ctx, l.bases[try%len(l.bases)], id, body); try++ {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
}

// send posts one event and reports whether it was acknowledged.
func (l *load) send(ctx context.Context, base string, id uuid.UUID, body string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/events", bytes.NewBufferString(body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := l.client.Do(req)
	if err != nil {
		// Refused or reset while segmentd is killed and restarting; a
		// timeout is a hang.
		if ctx.Err() == nil && !l.hangsAllowed && (errors.Is(err, context.DeadlineExceeded) || time.Since(start) >= requestTimeout) {
			l.problem(fmt.Sprintf("POST /v1/events hung for %v: %v", time.Since(start).Round(time.Millisecond), err))
		}
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.statuses[resp.StatusCode]++
	if l.dbDown {
		l.whileDB[resp.StatusCode]++
	}
	switch {
	case resp.StatusCode/100 == 2:
		l.acked[id] = true
		return true
	case resp.StatusCode == http.StatusServiceUnavailable:
		if resp.Header.Get("Retry-After") == "" {
			l.problems = append(l.problems, "503 without Retry-After")
		}
	default:
		l.problems = append(l.problems, fmt.Sprintf("POST /v1/events answered %d", resp.StatusCode))
	}
	return false
}

func (l *load) problem(p string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.problems = append(l.problems, p)
}

func (l *load) setDatabaseDown(down bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dbDown = down
}

// ackedCount is the number of acknowledged events so far.
func (l *load) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}
