package projections

import (
	"sync"

	"github.com/google/uuid"

	"github.com/segments-dev/segments/domain"
)

// DefaultProjectionCache is the number of customer projections a projector
// keeps decoded in memory between transactions (Config.ProjectionCache).
const DefaultProjectionCache = 20_000

// projCache keeps the projections this process wrote last, so the next
// transaction on the same customer need not read and decode the stored JSON
// document again (the larger part of a steady-state customer update).
//
// An entry is only used while the stored row is still the one this process
// wrote: it carries the row's xmin (the writing transaction), version and
// label change count, and the load query returns the stored document
// instead whenever any of them differs (another projector, a rebuild, a
// rolled-back write). Entries are taken out of the cache while a
// transaction works on them and put back only after it committed, so a
// projection advanced by a transaction that then failed is never reused.
// Keeping a projection in memory across events is what Rebuild does for the
// whole log, and it must agree byte for byte with the live projector, which
// decodes the stored document at every transaction.
type projCache struct {
	mu  sync.Mutex
	max int
	m   map[uuid.UUID]cacheEntry
}

type cacheEntry struct {
	xmin int64 // xmin of the stored row (transaction that wrote it)
	seq  int64 // label changes recorded (customer_projections.changes)
	proj *domain.Projection
}

func newProjCache(size int) *projCache {
	if size <= 0 {
		return nil
	}
	return &projCache{max: size, m: make(map[uuid.UUID]cacheEntry)}
}

// take removes and returns the entries of ids.
func (c *projCache) take(ids []uuid.UUID) map[uuid.UUID]cacheEntry {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) == 0 {
		return nil
	}
	out := map[uuid.UUID]cacheEntry{}
	for _, id := range ids {
		if e, ok := c.m[id]; ok {
			out[id] = e
			delete(c.m, id)
		}
	}
	return out
}

// put stores entries of committed rows, evicting arbitrary ones beyond max.
func (c *projCache) put(entries map[uuid.UUID]cacheEntry) {
	if c == nil || len(entries) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, e := range entries {
		c.m[id] = e
	}
	for id := range c.m {
		if len(c.m) <= c.max {
			break
		}
		delete(c.m, id)
	}
}

// reset drops every entry.
func (c *projCache) reset() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
}
