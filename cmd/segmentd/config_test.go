package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/segments-dev/segments/auth"
	"github.com/segments-dev/segments/internal/testenv"
)

func tokenSet(t *testing.T) *auth.Set {
	t.Helper()
	_, line, err := auth.New("ops", []auth.Scope{auth.ScopeRead})
	if err != nil {
		t.Fatal(err)
	}
	set, err := auth.Parse(strings.NewReader(line))
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func TestCheckListen(t *testing.T) {
	t.Parallel()
	open := &auth.Set{}
	secured := tokenSet(t)
	for _, c := range []struct {
		addr       string
		openOK     bool // allowed without tokens
		badAddress bool // not host:port at all
	}{
		{addr: "127.0.0.1:8080", openOK: true},
		{addr: "127.0.0.1:0", openOK: true},
		{addr: "127.8.9.10:8080", openOK: true},
		{addr: "[::1]:8080", openOK: true},
		{addr: "localhost:8080", openOK: true},
		{addr: "0.0.0.0:8080"},
		{addr: ":8080"},
		{addr: "[::]:8080"},
		{addr: "192.168.1.10:8080"},
		{addr: "10.0.0.1:80"},
		{addr: "[fe80::1%eth0]:8080"},
		{addr: "example.com:8080"},
		{addr: "localhost.example.com:8080"},
		{addr: "8080", badAddress: true},
		{addr: "127.0.0.1", badAddress: true},
	} {
		err := checkListen(c.addr, open)
		switch {
		case c.openOK && err != nil:
			t.Errorf("open API on %s: %v, want allowed", c.addr, err)
		case !c.openOK && err == nil:
			t.Errorf("open API on %s: allowed, want refused", c.addr)
		case !c.openOK && !c.badAddress && !errors.Is(err, ErrOpenNonLoopback):
			t.Errorf("open API on %s: %v, want ErrOpenNonLoopback", c.addr, err)
		}
		if err != nil && !strings.Contains(err.Error(), "SEGMENTS_HTTP_ADDR") {
			t.Errorf("error %q does not name SEGMENTS_HTTP_ADDR", err)
		}
		// With tokens configured any address may be used.
		if err := checkListen(c.addr, secured); err != nil {
			t.Errorf("secured API on %s: %v", c.addr, err)
		}
	}
	// A nil set is "no tokens" too.
	if err := checkListen("0.0.0.0:8080", nil); !errors.Is(err, ErrOpenNonLoopback) {
		t.Errorf("nil tokens on 0.0.0.0: %v", err)
	}
}

func TestLoadTokens(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	set, err := loadTokens("")
	if err != nil || !set.Empty() {
		t.Errorf("no tokens file: %v, %v; want an empty set", set, err)
	}

	secret, line, err := auth.New("crm", []auth.Scope{auth.ScopeIngest})
	if err != nil {
		t.Fatal(err)
	}
	set, err = loadTokens(write("good", "# tokens\n"+line+"\n"))
	if err != nil || set.Len() != 1 {
		t.Fatalf("good file: %v, %v", set, err)
	}
	if tok, err := set.Authenticate("Bearer "+secret, auth.ScopeIngest); err != nil || tok.Name != "crm" {
		t.Errorf("token from file: %+v, %v", tok, err)
	}

	// A configured but empty file is a mistake, not an open API.
	if _, err := loadTokens(write("empty", "# nothing yet\n")); err == nil || !strings.Contains(err.Error(), "no token") {
		t.Errorf("empty tokens file: %v", err)
	}
	if _, err := loadTokens(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "SEGMENTS_TOKENS") {
		t.Errorf("missing tokens file: %v", err)
	}
	bad := write("bad", line+"\nops read,root "+auth.Hash("x")+"\n")
	if _, err := loadTokens(bad); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad tokens file: %v, want the file and line named", err)
	}
}

// TestServeRefusesAnOpenAPIOffLoopback: without tokens, segmentd does not
// start the API on a public address (and refuses before touching anything).
func TestServeRefusesAnOpenAPIOffLoopback(t *testing.T) {
	t.Parallel()
	cfg, err := loadServeConfig(serveFlagSet(), []string{"--data-dir", t.TempDir(), "--http-addr", "0.0.0.0:0", "--roles", "api"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.TokensFile = ""
	cfg.DatabaseURL = "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=1"
	if _, err := start(context.Background(), &cfg, testenv.Logger(t)); !errors.Is(err, ErrOpenNonLoopback) {
		t.Fatalf("start: %v, want ErrOpenNonLoopback", err)
	}
	// Without the api role there is nothing to refuse: the failure is then
	// the unreachable database, not the address.
	cfg.Roles = []string{"ingest"}
	if _, err := start(context.Background(), &cfg, testenv.Logger(t)); err == nil || errors.Is(err, ErrOpenNonLoopback) {
		t.Fatalf("start without api role: %v, want a database error", err)
	}
}

func TestStreamReplicasComeFromTheEnvironmentWithOneByDefault(t *testing.T) {
	dir := t.TempDir()
	load := func(args ...string) (config, error) {
		return loadServeConfig(serveFlagSet(), append([]string{"--data-dir", dir}, args...))
	}
	t.Setenv("SEGMENTS_STREAM_REPLICAS", "")
	if cfg, err := load(); err != nil || cfg.StreamReplicas != 1 {
		t.Errorf("unset: %d replicas, %v; want 1", cfg.StreamReplicas, err)
	}
	t.Setenv("SEGMENTS_STREAM_REPLICAS", "3")
	if cfg, err := load(); err != nil || cfg.StreamReplicas != 3 {
		t.Errorf("SEGMENTS_STREAM_REPLICAS=3: %d replicas, %v", cfg.StreamReplicas, err)
	}
	if cfg, err := load("--stream-replicas", "5"); err != nil || cfg.StreamReplicas != 5 {
		t.Errorf("--stream-replicas 5: %d replicas, %v", cfg.StreamReplicas, err)
	}
	for _, bad := range []string{"0", "6", "-1", "three"} {
		t.Setenv("SEGMENTS_STREAM_REPLICAS", bad)
		if _, err := load(); !errors.Is(err, ErrStreamReplicas) || !strings.Contains(err.Error(), "SEGMENTS_STREAM_REPLICAS") {
			t.Errorf("SEGMENTS_STREAM_REPLICAS=%s: %v, want ErrStreamReplicas naming the variable", bad, err)
		}
	}
}

func TestAllowedHostsDefaultToTheListenHostAndLoopbackNames(t *testing.T) {
	for _, c := range []struct {
		list, addr string
		want       []string
	}{
		{"", "127.0.0.1:8080", []string{"localhost", "127.0.0.1", "::1"}},
		{"", "10.1.2.3:8080", []string{"localhost", "127.0.0.1", "::1", "10.1.2.3"}},
		{"", "segments.internal:8080", []string{"localhost", "127.0.0.1", "::1", "segments.internal"}},
		{"", "0.0.0.0:8080", []string{"localhost", "127.0.0.1", "::1"}},
		{"", ":8080", []string{"localhost", "127.0.0.1", "::1"}},
		{" crm.example.com , 10.0.0.5 ", "0.0.0.0:8080", []string{"crm.example.com", "10.0.0.5"}},
	} {
		if got := allowedHosts(c.list, c.addr); !slices.Equal(got, c.want) {
			t.Errorf("allowedHosts(%q, %q) = %v, want %v", c.list, c.addr, got, c.want)
		}
	}
}
