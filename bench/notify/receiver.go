package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/segments-dev/segments/notify"
)

// receiver is a local HTTP receiver that dedupes by Idempotency-Key: it
// counts every reception of a key and keeps the first one's instant and
// body. It can go down (stop listening) and come back on the same address.
type receiver struct {
	addr  string
	reply []byte

	mu     sync.Mutex
	srv    *http.Server
	seen   map[string]int
	first  map[string]time.Time
	bodies []sentBody
	arrive []time.Time // every reception, in order (robots: messages)
	items  int         // robots: alerts the messages carried
	keep   bool        // keep bodies (for the bare loop)
}

// sentBody is a request as the notifier sent it, for the bare loop.
type sentBody struct {
	header http.Header
	body   []byte
}

func newReceiver(ctx context.Context, reply string, keep bool) (*receiver, error) {
	r := &receiver{reply: []byte(reply), keep: keep, seen: map[string]int{}, first: map[string]time.Time{}}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r.addr = ln.Addr().String()
	r.serve(ln)
	return r, nil
}

func (r *receiver) url() string { return "http://" + r.addr + "/hook" }

func (r *receiver) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(r.handle), ReadHeaderTimeout: 5 * time.Second}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// down stops listening and drops open connections.
func (r *receiver) down() {
	r.mu.Lock()
	srv := r.srv
	r.mu.Unlock()
	_ = srv.Close()
}

// up listens again on the same address.
func (r *receiver) up(ctx context.Context) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", r.addr)
	if err != nil {
		return err
	}
	r.serve(ln)
	return nil
}

// digestCount reads how many alerts a robot message carries from its
// title ("【预警汇总】N 条"; one otherwise).
var digestCount = regexp.MustCompile(`预警汇总】(\d+) 条`)

func (r *receiver) handle(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	now := time.Now()
	key := req.Header.Get(notify.HeaderIdempotencyKey)
	r.mu.Lock()
	r.seen[key]++
	if r.seen[key] == 1 {
		r.first[key] = now
		if r.keep {
			r.bodies = append(r.bodies, sentBody{header: req.Header.Clone(), body: body})
		}
	}
	r.arrive = append(r.arrive, now)
	n := 1
	if m := digestCount.FindSubmatch(body); m != nil {
		n, _ = strconv.Atoi(string(m[1]))
	}
	r.items += n
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(r.reply)
}

// stats returns distinct keys, receptions and repeated receptions.
func (r *receiver) stats() (distinct, receptions, repeats int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.seen {
		receptions += c
		repeats += c - 1
	}
	return len(r.seen), receptions, repeats
}

// busiestMinute is the most messages received in any 60 s.
func (r *receiver) busiestMinute() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	best, j := 0, 0
	for i := range r.arrive {
		for r.arrive[i].Sub(r.arrive[j]) >= time.Minute {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}
