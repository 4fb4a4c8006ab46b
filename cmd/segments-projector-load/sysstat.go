package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segments-dev/segments/internal/loadkit"
)

// CPU and memory accounting from /proc and getrusage (Linux). This process
// holds the load generator and the components under test (store, publisher,
// embedded NATS, projector, relays, scheduler); PostgreSQL runs as separate
// processes. "other" is everything else on the machine: other people's work
// on a shared machine shows up there, and a window where it is large is
// flagged.

const clockTicks = loadkit.ClockTicks

type cpuSnap struct {
	at   time.Time
	m    loadkit.MachineTicks
	self time.Duration  // user+system of this process (getrusage)
	pg   map[int]uint64 // ticks of every process named postgres, by pid
	mine map[int]bool   // the given PostgreSQL backends
	ok   bool
}

func takeCPU(backends []int) cpuSnap {
	s := cpuSnap{at: time.Now(), self: loadkit.ProcessCPU(), mine: map[int]bool{}}
	m, ok := loadkit.ReadMachineTicks()
	if !ok {
		return s
	}
	s.m = m
	s.pg = loadkit.PostgresTicks()
	for _, pid := range backends {
		s.mine[pid] = true
	}
	s.ok = true
	return s
}

// cpuUse is the use of the machine's cores over a window, in cores
// (1.00 = one core busy for the whole window).
type cpuUse struct {
	secs                    float64
	self, pg, pgMine, other float64
	steal                   float64 // part of other: the hypervisor ran someone else
	selfSecs, pgMineSecs    float64
	idlePct, iowaitPct      float64
	ok                      bool
}

func cpuBetween(a, b cpuSnap) cpuUse {
	if !a.ok || !b.ok {
		return cpuUse{}
	}
	secs := b.at.Sub(a.at).Seconds()
	if secs <= 0 {
		return cpuUse{}
	}
	u := cpuUse{ok: true, secs: secs}
	u.selfSecs = (b.self - a.self).Seconds()
	u.self = u.selfSecs / secs
	// Per process: the ticks used between the snapshots (all of them for a
	// process that started in between; a process that ended in between is
	// missed, which undercounts short-lived backends).
	var pgTicks, mine uint64
	for pid, t := range b.pg {
		d := t
		if t0, ok := a.pg[pid]; ok {
			d = t - min(t, t0)
		}
		pgTicks += d
		if a.mine[pid] || b.mine[pid] {
			mine += d
		}
	}
	u.pg = float64(pgTicks) / clockTicks / secs
	u.pgMineSecs = float64(mine) / clockTicks
	u.pgMine = u.pgMineSecs / secs
	var busy float64
	busy, u.idlePct, u.iowaitPct = b.m.Since(a.m, secs)
	u.other = max(0, busy-u.self-u.pg)
	u.steal = b.m.StealSince(a.m, secs)
	return u
}

// busyOther is the CPU (cores) other processes may use before a window is
// marked as not measured on a quiet machine.
const busyOther = 0.25

func (u cpuUse) String() string {
	if !u.ok {
		return "cpu: n/a"
	}
	s := fmt.Sprintf("cores: this process %.2f, postgres %.2f (this run's backends %.2f), other processes %.2f (of which stolen by the hypervisor %.2f); idle %.0f%%, iowait %.0f%%",
		u.self, u.pg, u.pgMine, u.other, u.steal, u.idlePct, u.iowaitPct)
	if u.other > busyOther {
		if u.steal > u.other/2 {
			s += " [NOT QUIET: the hypervisor gave our CPUs to others]"
		} else {
			s += " [NOT QUIET: other processes used the machine]"
		}
	}
	return s
}

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
