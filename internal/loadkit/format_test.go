package loadkit

import "testing"

func TestGrouped(t *testing.T) {
	for _, c := range []struct {
		in   float64
		want string
	}{
		{0, "0"}, {999, "999"}, {1000, "1,000"}, {12345.6, "12,346"}, {1234567, "1,234,567"},
		{-123, "-123"}, {-1234, "-1,234"}, {-123456, "-123,456"},
	} {
		if got := Grouped(c.in); got != c.want {
			t.Errorf("Grouped(%v) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestMachineTicksSince(t *testing.T) {
	a := MachineTicks{Busy: 1000, Idle: 500, IOWait: 100}
	b := MachineTicks{Busy: 1300, Idle: 600, IOWait: 100} // 2 s: 1.5 cores busy
	busy, idle, iowait := b.Since(a, 2)
	if busy != 1.5 || idle != 25 || iowait != 0 {
		t.Errorf("Since = %v cores, %v%% idle, %v%% iowait; want 1.5, 25, 0", busy, idle, iowait)
	}
	if busy, idle, _ := a.Since(a, 0); busy != 0 || idle != 0 {
		t.Errorf("an empty window gave %v cores, %v%% idle", busy, idle)
	}
}

func TestMachineTicksStealSince(t *testing.T) {
	a := MachineTicks{Busy: 1000, Steal: 40}
	b := MachineTicks{Busy: 1300, Steal: 100} // 2 s: 0.3 cores stolen
	if got := b.StealSince(a, 2); got != 0.3 {
		t.Errorf("StealSince = %v cores, want 0.3", got)
	}
	if got := b.StealSince(a, 0); got != 0 {
		t.Errorf("an empty window gave %v cores", got)
	}
}

func TestReadMachineTicksReadsSteal(t *testing.T) {
	m, ok := ReadMachineTicks()
	if !ok {
		t.Fatal("cannot read /proc/stat")
	}
	if m.Steal > m.Busy || m.Busy == 0 {
		t.Errorf("steal %d of busy %d ticks", m.Steal, m.Busy)
	}
}
