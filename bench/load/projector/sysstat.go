package projectorload

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Memory of this process, which holds the load generator and the service
// under test: resident set (/proc) and the Go heap.

// rssBytes reads this process's resident set size.
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// memSampler records the peak RSS and Go heap of this process while it runs.
type memSampler struct {
	mu               sync.Mutex
	maxRSS, maxHeap  int64
	lastRSS, lastHep int64
	stop             chan struct{}
	done             chan struct{}
}

func startMemSampler(every time.Duration) *memSampler {
	m := &memSampler{stop: make(chan struct{}), done: make(chan struct{})}
	m.sample()
	go func() {
		defer close(m.done)
		var tick <-chan time.Time
		if every > 0 {
			t := time.NewTicker(every)
			defer t.Stop()
			tick = t.C
		}
		for {
			select {
			case <-m.stop:
				m.sample()
				return
			case <-tick:
				m.sample()
			}
		}
	}()
	return m
}

func (m *memSampler) sample() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss := rssBytes()
	m.mu.Lock()
	defer m.mu.Unlock()
	inUse := int64(ms.HeapInuse) //nolint:gosec // G115: heap sizes fit in int64
	m.lastRSS, m.lastHep = rss, inUse
	m.maxRSS = max(m.maxRSS, rss)
	m.maxHeap = max(m.maxHeap, inUse)
}

// finish stops sampling and returns peak RSS and peak heap in use.
func (m *memSampler) finish() (rss, heap int64) {
	close(m.stop)
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.maxRSS, m.maxHeap
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
