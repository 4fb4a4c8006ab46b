package projections

import (
	"sync"

	"github.com/google/uuid"
)

// durableVersions remembers, for customers this process projected lately,
// a version their stored projection is known to have reached durably: a
// transaction of this process wrote it and its commit is flushed to disk.
// Consume acknowledges a message whose event is at or below that version
// without a transaction (see Consume): the event is applied and nothing can
// take it back (only a rebuild rewrites projections, and it applies every
// event already in the log).
//
// It is bounded: two generations of at most limit customers each; when the
// current one is full it becomes the previous one and the oldest is
// forgotten. Forgetting costs only a transaction that finds nothing new.
type durableVersions struct {
	mu        sync.Mutex
	limit     int
	cur, prev map[uuid.UUID]int64
}

func newDurableVersions(limit int) *durableVersions {
	return &durableVersions{limit: limit, cur: make(map[uuid.UUID]int64)}
}

// durableVersionsLimit bounds each generation of durableVersions: about
// 4 MiB each, and far more customers than pass through the bus in the few
// seconds between a commit and its message reaching Consume.
const durableVersionsLimit = 1 << 16

// streamVersion is a customer's stream and a version its projection reached.
type streamVersion struct {
	stream  uuid.UUID
	version int64
}

// raise records that each stream's projection reached its version durably.
func (d *durableVersions) raise(vs []streamVersion) {
	if d == nil || len(vs) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, v := range vs {
		if old, ok := d.lookup(v.stream); ok && old >= v.version {
			continue
		}
		if len(d.cur) >= d.limit {
			d.prev, d.cur = d.cur, make(map[uuid.UUID]int64, d.limit)
		}
		d.cur[v.stream] = v.version
	}
}

// covers reports whether the stream's projection durably reached version.
func (d *durableVersions) covers(stream uuid.UUID, version int64) bool {
	if d == nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.lookup(stream)
	return ok && v >= version
}

// lookup is the newest version known for stream; d.mu is held.
func (d *durableVersions) lookup(stream uuid.UUID) (int64, bool) {
	if v, ok := d.cur[stream]; ok {
		return v, true
	}
	v, ok := d.prev[stream]
	return v, ok
}
