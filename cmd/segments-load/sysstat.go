package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CPU accounting from /proc (Linux): who used the machine's cores during a
// measurement window. The load process holds the HTTP clients, the service
// (API, store, publisher) and the embedded NATS server; PostgreSQL runs as
// separate processes; "other" is everything else on the machine.

const clockTicks = 100 // USER_HZ on Linux

type cpuSnap struct {
	at     time.Time
	busy   uint64 // user+nice+system+irq+softirq+steal, all CPUs
	idle   uint64
	iowait uint64
	self   uint64 // utime+stime of this process
	pg     uint64 // utime+stime of processes named postgres
	ok     bool
}

func takeCPU() cpuSnap {
	s := cpuSnap{at: time.Now()}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return s
	}
	v := make([]uint64, 8)
	for i := range v {
		v[i], _ = strconv.ParseUint(f[i+1], 10, 64)
	}
	// user nice system idle iowait irq softirq steal
	s.busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
	s.idle, s.iowait = v[3], v[4]
	s.self, _ = procTicks("/proc/self/stat")
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		t, comm := procTicks(d + "/stat")
		if comm == "postgres" {
			s.pg += t
		}
	}
	s.ok = true
	return s
}

// procTicks returns utime+stime and the command name from a /proc/PID/stat.
func procTicks(path string) (uint64, string) {
	b, err := os.ReadFile(path) //nolint:gosec // G304: paths under /proc built by this file
	if err != nil {
		return 0, ""
	}
	open, closing := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return 0, ""
	}
	comm := string(b[open+1 : closing])
	f := strings.Fields(string(b[closing+1:]))
	// After the command: state(0) ppid(1) ... utime(11) stime(12).
	if len(f) < 13 {
		return 0, comm
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return u + st, comm
}

// cpuUse is the use of the machine's cores over a window, in cores.
type cpuUse struct {
	self, pg, other float64
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
	busy := cores(b.busy - a.busy)
	u.other = max(0, busy-u.self-u.pg)
	all := float64((b.busy - a.busy) + (b.idle - a.idle) + (b.iowait - a.iowait))
	if all > 0 {
		u.idlePct = 100 * float64(b.idle-a.idle) / all
		u.iowait = 100 * float64(b.iowait-a.iowait) / all
	}
	return u
}

func (u cpuUse) String() string {
	if !u.ok {
		return "cpu: n/a"
	}
	s := fmt.Sprintf("cpu cores: load process %.2f, postgres %.2f, other %.2f; idle %.0f%%, iowait %.0f%%",
		u.self, u.pg, u.other, u.idlePct, u.iowait)
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
