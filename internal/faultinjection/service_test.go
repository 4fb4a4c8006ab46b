package faultinjection_test

import (
	"context"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// service is a segmentd process started from the binary built for the test.
type service struct {
	t       *testing.T
	bin     string
	addr    string
	env     []string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// buildSegmentd compiles cmd/segmentd into a temporary directory.
func buildSegmentd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "segmentd")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/segments-dev/segments/cmd/segmentd")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build segmentd: %v\n%s", err, out)
	}
	return bin
}

func newService(t *testing.T, bin, databaseURL, natsURL string) *service {
	t.Helper()
	dir := t.TempDir()
	s := &service{
		t: t, bin: bin, addr: "127.0.0.1:" + strconv.Itoa(freePort(t)), logPath: filepath.Join(dir, "segmentd.log"),
	}
	s.env = append(os.Environ(),
		"DATABASE_URL="+databaseURL, "NATS_URL="+natsURL, "SEGMENTS_HTTP_ADDR="+s.addr,
		"SEGMENTS_DATA_DIR="+filepath.Join(dir, "data"), "SEGMENTS_ROLES=all",
		"SEGMENTS_MASTER_KEY="+hex.EncodeToString([]byte("0123456789abcdef0123456789abcdef")),
		"SEGMENTS_LOG_FORMAT=json",
	)
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			if log, err := os.ReadFile(s.logPath); err == nil {
				if len(log) > 20_000 {
					log = log[len(log)-20_000:]
				}
				t.Logf("segmentd log (tail):\n%s", log)
			}
		}
	})
	return s
}

func (s *service) base() string { return "http://" + s.addr }

// start runs segmentd and waits until /readyz says ready.
func (s *service) start() {
	s.t.Helper()
	s.launch()
	s.awaitReady(60 * time.Second)
}

// launch runs segmentd without waiting for it.
func (s *service) launch() {
	s.t.Helper()
	log, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	defer func() { _ = log.Close() }()
	s.cmd = exec.CommandContext(context.Background(), s.bin, "serve")
	s.cmd.Env, s.cmd.Stdout, s.cmd.Stderr = s.env, log, log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { _ = cmd.Wait(); close(exited) }(s.cmd, s.exited)
}

// signal sends sig (SIGSTOP freezes the process, SIGCONT thaws it).
func (s *service) signal(sig syscall.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signal %v: %v", sig, err)
	}
}

// kill ends segmentd at once (SIGKILL): no graceful shutdown.
func (s *service) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
	s.cmd = nil
}

// ready asks /readyz once.
func (s *service) ready() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.base()+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// awaitReady waits until /readyz is ready and returns how long that took.
func (s *service) awaitReady(within time.Duration) time.Duration {
	s.t.Helper()
	start := time.Now()
	for !s.ready() {
		select {
		case <-s.exited:
			s.t.Fatal("segmentd exited")
		default:
		}
		if time.Since(start) > within {
			s.t.Fatalf("segmentd not ready within %v", within)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	addr, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		t.Fatalf("listener address %v is not TCP", ln.Addr())
	}
	return addr.Port
}
