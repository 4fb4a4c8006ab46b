package testenv

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// childEnv names the role a re-executed test binary plays (see ChildRole).
const childEnv = "SEGMENTS_TEST_CHILD"

// ChildRole is the role this test binary was started in by StartChild, ""
// in a normal test run. A package's TestMain runs the role and exits.
func ChildRole() string { return os.Getenv(childEnv) }

// Child is a separate process — this test binary re-executed in a role —
// that a test can freeze (SIGSTOP), thaw and kill: a real frozen or dead
// process, with its own connections.
type Child struct {
	t   testing.TB
	cmd *exec.Cmd

	mu    sync.Mutex
	lines []string
	added chan struct{} // closed and replaced on every line
	done  chan struct{}
}

// StartChild starts the role with extra environment (KEY=value); its
// standard output is collected line by line. It is killed at cleanup.
func StartChild(t testing.TB, role string, env ...string) *Child {
	t.Helper()
	cmd := exec.CommandContext(context.Background(), os.Args[0], "-test.run=^$") //nolint:gosec // G204: this test binary
	cmd.Env = append(append(os.Environ(), childEnv+"="+role), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child %s: %v", role, err)
	}
	c := &Child{t: t, cmd: cmd, added: make(chan struct{}), done: make(chan struct{})}
	go c.read(out)
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return c
}

func (c *Child) read(r io.Reader) {
	defer close(c.done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		c.mu.Lock()
		c.lines = append(c.lines, sc.Text())
		close(c.added)
		c.added = make(chan struct{})
		c.mu.Unlock()
	}
}

// WaitFor waits until the child has printed a line containing s.
func (c *Child) WaitFor(s string, within time.Duration) {
	c.t.Helper()
	deadline := time.After(within)
	seen := 0
	for {
		c.mu.Lock()
		for ; seen < len(c.lines); seen++ {
			if strings.Contains(c.lines[seen], s) {
				c.mu.Unlock()
				return
			}
		}
		added := c.added
		c.mu.Unlock()
		select {
		case <-added:
		case <-c.done:
			c.t.Fatalf("child exited without printing %q", s)
		case <-deadline:
			c.t.Fatalf("child did not print %q within %v", s, within)
		}
	}
}

// Printed says whether the child has printed a line containing s.
func (c *Child) Printed(s string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.lines {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// Freeze stops the process (SIGSTOP): it keeps its connections and locks
// but does nothing, as a process does in a long GC pause, swapped out, or
// on a host whose network is partitioned.
func (c *Child) Freeze() { c.signal(syscall.SIGSTOP) }

// Thaw lets a frozen process run on (SIGCONT).
func (c *Child) Thaw() { c.signal(syscall.SIGCONT) }

// Kill ends the process at once (SIGKILL) and waits for it.
func (c *Child) Kill() {
	c.signal(syscall.SIGKILL)
	<-c.done
}

func (c *Child) signal(s syscall.Signal) {
	c.t.Helper()
	if err := c.cmd.Process.Signal(s); err != nil {
		c.t.Fatalf("signal %v to child: %v", s, err)
	}
}
