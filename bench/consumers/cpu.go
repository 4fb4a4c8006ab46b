package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuSample is this process's CPU time and the machine's busy and total
// CPU time (from /proc/stat; zero where it cannot be read).
type cpuSample struct {
	self        time.Duration
	busy, total uint64 // clock ticks
}

func sampleCPU() cpuSample {
	var s cpuSample
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	for i, f := range fields[1:] {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil || i >= 8 {
			break
		}
		s.total += v
		if i != 3 && i != 4 { // idle, iowait
			s.busy += v
		}
	}
	return s
}

// waitQuiet waits, at most -quiet-max, until other processes leave the CPUs
// alone (this machine may be shared), so that they disturb runs less; each
// run reports what they used during it.
func waitQuiet() {
	deadline := time.Now().Add(*flagQuietMax)
	for {
		a := sampleCPU()
		time.Sleep(time.Second)
		f := foreignShare(a, sampleCPU())
		if f < *flagQuiet {
			return
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "other processes still use %.0f%% of the CPUs; running anyway\n", f)
			return
		}
	}
}

// foreignShare is the share of all CPUs, in percent, that other processes
// used between a and b.
func foreignShare(a, b cpuSample) float64 {
	if b.total <= a.total {
		return 0
	}
	const hz = 100 // USER_HZ: /proc/stat counts in 1/100 s
	total := float64(b.total-a.total) / hz
	busy := float64(b.busy-a.busy) / hz
	other := busy - (b.self - a.self).Seconds()
	return max(0, 100*other/total)
}
