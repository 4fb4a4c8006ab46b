package loadkit

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ClockTicks is USER_HZ on Linux: the unit of the /proc CPU counters.
const ClockTicks = 100

// MachineTicks are the machine's CPU counters from /proc/stat, all CPUs.
type MachineTicks struct {
	Busy   uint64 // user+nice+system+irq+softirq+steal
	Idle   uint64
	IOWait uint64
	// Steal is the part of Busy during which the hypervisor ran someone
	// else on our virtual CPUs (seen here: a third of a core under load).
	Steal uint64
}

// ReadMachineTicks reads /proc/stat; false when it cannot (not Linux).
func ReadMachineTicks() (MachineTicks, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return MachineTicks{}, false
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return MachineTicks{}, false
	}
	v := make([]uint64, 8)
	for i := range v {
		v[i], _ = strconv.ParseUint(f[i+1], 10, 64)
	}
	// user nice system idle iowait irq softirq steal
	return MachineTicks{Busy: v[0] + v[1] + v[2] + v[5] + v[6] + v[7], Idle: v[3], IOWait: v[4], Steal: v[7]}, true
}

// ProcessCPU is this process's user + system CPU so far (getrusage), 0 when
// it cannot be read.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ProcessTicks returns utime+stime and the command name from a
// /proc/PID/stat file.
func ProcessTicks(path string) (uint64, string) {
	b, err := os.ReadFile(path) //nolint:gosec // G304: callers pass paths under /proc
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

// PostgresTicks returns the CPU ticks of every process named postgres, by pid.
func PostgresTicks() map[int]uint64 {
	out := map[int]uint64{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		t, comm := ProcessTicks(d + "/stat")
		if comm == "postgres" {
			pid, _ := strconv.Atoi(filepath.Base(d))
			out[pid] = t
		}
	}
	return out
}

// Since is the machine's use between an earlier reading a and this one,
// taken secs apart: busy cores, and the share of all ticks (%) that were
// idle and waiting for I/O.
func (m MachineTicks) Since(a MachineTicks, secs float64) (busyCores, idlePct, iowaitPct float64) {
	if secs > 0 {
		busyCores = float64(m.Busy-a.Busy) / ClockTicks / secs
	}
	if all := float64((m.Busy - a.Busy) + (m.Idle - a.Idle) + (m.IOWait - a.IOWait)); all > 0 {
		idlePct = 100 * float64(m.Idle-a.Idle) / all
		iowaitPct = 100 * float64(m.IOWait-a.IOWait) / all
	}
	return busyCores, idlePct, iowaitPct
}

// StealSince is the CPU (cores) the hypervisor took from this machine
// between an earlier reading a and this one, taken secs apart.
func (m MachineTicks) StealSince(a MachineTicks, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return float64(m.Steal-a.Steal) / ClockTicks / secs
}
