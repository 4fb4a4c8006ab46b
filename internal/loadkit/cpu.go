package loadkit

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// CPU accounting from /proc and getrusage (Linux): who used the machine's
// cores during a measurement window. This process holds the load generator
// and the service under test (internal/service) with its embedded NATS;
// PostgreSQL runs as separate processes; "other" is everything else on the
// machine: other people's work on a shared machine shows up there, and a
// window where it is large is flagged.

// CPUSnap is one reading of the counters.
type CPUSnap struct {
	at   time.Time
	m    MachineTicks
	self time.Duration  // user+system of this process (getrusage)
	pg   map[int]uint64 // ticks of every process named postgres, by pid
	mine map[int]bool   // the given PostgreSQL backends
	ok   bool
}

// TakeCPU reads the counters; backends are the PostgreSQL backends of the
// run's own database (CPUUse.PGMine), none when nil.
func TakeCPU(backends []int) CPUSnap {
	s := CPUSnap{at: time.Now(), self: ProcessCPU(), mine: map[int]bool{}}
	m, ok := ReadMachineTicks()
	if !ok {
		return s
	}
	s.m = m
	s.pg = PostgresTicks()
	for _, pid := range backends {
		s.mine[pid] = true
	}
	s.ok = true
	return s
}

// CPUUse is the use of the machine's cores over a window, in cores
// (1.00 = one core busy for the whole window).
type CPUUse struct {
	Secs                    float64
	Self, PG, PGMine, Other float64
	Steal                   float64 // part of Other: the hypervisor ran someone else
	SelfSecs, PGMineSecs    float64
	IdlePct, IOWaitPct      float64
	OK                      bool
	// Mine says whether PGMine was measured (backends were given).
	Mine bool
}

// CPUBetween is the use between two readings.
func CPUBetween(a, b CPUSnap) CPUUse {
	if !a.ok || !b.ok {
		return CPUUse{}
	}
	secs := b.at.Sub(a.at).Seconds()
	if secs <= 0 {
		return CPUUse{}
	}
	u := CPUUse{OK: true, Secs: secs, Mine: len(a.mine)+len(b.mine) > 0}
	u.SelfSecs = (b.self - a.self).Seconds()
	u.Self = u.SelfSecs / secs
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
	u.PG = float64(pgTicks) / ClockTicks / secs
	u.PGMineSecs = float64(mine) / ClockTicks
	u.PGMine = u.PGMineSecs / secs
	var busy float64
	busy, u.IdlePct, u.IOWaitPct = b.m.Since(a.m, secs)
	u.Other = max(0, busy-u.Self-u.PG)
	u.Steal = b.m.StealSince(a.m, secs)
	return u
}

// BusyOther is the CPU (cores) other processes may use before a window is
// marked NotQuiet.
const BusyOther = 0.25

// NotQuiet marks a window that was not measured on a quiet machine.
const NotQuiet = "[NOT QUIET"

// Quiet says whether other processes left the cores alone.
func (u CPUUse) Quiet() bool { return !u.OK || u.Other <= BusyOther }

func (u CPUUse) String() string {
	if !u.OK {
		return "cpu: n/a"
	}
	mine := ""
	if u.Mine {
		mine = fmt.Sprintf(" (this run's backends %.2f)", u.PGMine)
	}
	s := fmt.Sprintf("cores: this process %.2f, postgres %.2f%s, other processes %.2f (of which stolen by the hypervisor %.2f); idle %.0f%%, iowait %.0f%%",
		u.Self, u.PG, mine, u.Other, u.Steal, u.IdlePct, u.IOWaitPct)
	if !u.Quiet() {
		if u.Steal > u.Other/2 {
			s += " " + NotQuiet + ": the hypervisor gave our CPUs to others]"
		} else {
			s += " " + NotQuiet + ": other processes used the machine]"
		}
	}
	return s
}

// ReadTrim is a small file's content without surrounding white space, "?"
// when it cannot be read.
func ReadTrim(path string) string {
	b, err := os.ReadFile(path) //nolint:gosec // G304: fixed /proc paths
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// CPUModel is the model name of the first CPU.
func CPUModel() string {
	for _, l := range strings.Split(ReadTrim("/proc/cpuinfo"), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// MemTotal is the machine's memory.
func MemTotal() string {
	for _, l := range strings.Split(ReadTrim("/proc/meminfo"), "\n") {
		if rest, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	return "?"
}
