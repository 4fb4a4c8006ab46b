package main

import (
	"fmt"
	"time"

	"github.com/segments-dev/segments/internal/loadkit"
)

// CPU accounting from /proc (Linux): who used the machine's cores during a
// measurement window. The load process holds the HTTP clients, the service
// (API, store, publisher) and the embedded NATS server; PostgreSQL runs as
// separate processes; "other" is everything else on the machine.

const clockTicks = loadkit.ClockTicks

type cpuSnap struct {
	at   time.Time
	m    loadkit.MachineTicks
	self uint64 // utime+stime of this process
	pg   uint64 // utime+stime of processes named postgres
	ok   bool
}

func takeCPU() cpuSnap {
	s := cpuSnap{at: time.Now()}
	m, ok := loadkit.ReadMachineTicks()
	if !ok {
		return s
	}
	s.m = m
	s.self, _ = loadkit.ProcessTicks("/proc/self/stat")
	for _, t := range loadkit.PostgresTicks() {
		s.pg += t
	}
	s.ok = true
	return s
}

// cpuUse is the use of the machine's cores over a window, in cores.
type cpuUse struct {
	self, pg, other float64
	steal           float64 // part of other: the hypervisor ran someone else
	idlePct, iowait float64
	ok              bool
}

func cpuBetween(a, b cpuSnap) cpuUse {
	if !a.ok || !b.ok {
		return cpuUse{}
	}
	secs := b.at.Sub(a.at).Seconds()
	if secs <= 0 {
		return cpuUse{}
	}
	cores := func(ticks uint64) float64 { return float64(ticks) / clockTicks / secs }
	u := cpuUse{ok: true}
	u.self = cores(b.self - a.self)
	if b.pg >= a.pg {
		u.pg = cores(b.pg - a.pg)
	}
	var busy float64
	busy, u.idlePct, u.iowait = b.m.Since(a.m, secs)
	u.other = max(0, busy-u.self-u.pg)
	u.steal = b.m.StealSince(a.m, secs)
	return u
}

func (u cpuUse) String() string {
	if !u.ok {
		return "cpu: n/a"
	}
	s := fmt.Sprintf("cpu cores: load process %.2f, postgres %.2f, other %.2f (of which stolen by the hypervisor %.2f); idle %.0f%%, iowait %.0f%%",
		u.self, u.pg, u.other, u.steal, u.idlePct, u.iowait)
	if u.other > busyOther {
		s += " " + notQuiet
	}
	return s
}

// busyOther is the CPU (cores) other processes may use before a window is
// marked as not measured on a quiet machine.
const (
	busyOther = 0.25
	notQuiet  = "[NOT QUIET]"
)
