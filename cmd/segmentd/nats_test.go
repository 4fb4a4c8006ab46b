package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/segments-dev/segments/auth"
	"github.com/segments-dev/segments/internal/service"
	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/natsbus"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestWithTokensTheEmbeddedNATSRequiresGeneratedCredentials: the issue's
// `nats stream get SEGMENTS_INGEST 1` without credentials must fail once
// the API itself requires tokens.
func TestWithTokensTheEmbeddedNATSRequiresGeneratedCredentials(t *testing.T) {
	t.Parallel()
	db := testenv.Postgres(t)
	dir := t.TempDir()
	_, line, err := auth.New("ops", []auth.Scope{auth.ScopeAdmin})
	if err != nil {
		t.Fatal(err)
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadServeConfig(serveFlagSet(), []string{"--data-dir", dir, "--http-addr", "127.0.0.1:0", "--roles", "ingest", "--tokens", tokens})
	if err != nil {
		t.Fatal(err)
	}
	cfg.DatabaseURL = db.URL
	cfg.EmbeddedNATSAddr = "127.0.0.1:0"
	logs := &lockedBuffer{}
	a, err := start(context.Background(), &cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)

	url := a.NATSServer.ClientURL()
	if nc, err := nats.Connect(url, nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("an anonymous client connected to the embedded server")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("anonymous: %v, want an authorization violation", err)
	}
	// The service itself is connected and created its streams.
	if err := natsbus.StreamsPresent(context.Background(), a.JS); err != nil {
		t.Fatal(err)
	}
	// The seeds are under the data dir, owner-only, and the log says how to
	// use them with the nats CLI.
	for _, user := range natsbus.Users {
		seed := filepath.Join(dir, service.NATSCredentialsDir, user+".nk")
		st, err := os.Stat(seed)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("seed of %s: %v %v", user, st, err)
		}
		if user != natsbus.UserService && !strings.Contains(logs.String(), "--nkey "+seed+" --inbox-prefix _INBOX_"+user) {
			t.Errorf("the log does not say how to use %s's seed:\n%s", user, logs.String())
		}
	}
	opt, err := nats.NkeyOptionFromSeed(filepath.Join(dir, service.NATSCredentialsDir, natsbus.UserIngest+".nk"))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, opt, nats.CustomInboxPrefix(natsbus.InboxPrefixOf(natsbus.UserIngest)), nats.MaxReconnects(0))
	if err != nil {
		t.Fatalf("connect with the ingest seed file: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(context.Background(), "ingest.crm", []byte(`{}`)); err != nil {
		t.Fatalf("an upstream with the ingest seed publishes: %v", err)
	}
}

func TestAnEmbeddedNATSOffLoopbackNeedsTokensOrAConfig(t *testing.T) {
	t.Parallel()
	cfg := config{EmbeddedNATSAddr: "0.0.0.0:4223"}
	if err := checkEmbeddedNATS(&cfg, &auth.Set{}); !errors.Is(err, ErrOpenNATS) {
		t.Errorf("open on 0.0.0.0: %v", err)
	}
	if err := checkEmbeddedNATS(&cfg, tokenSet(t)); err != nil {
		t.Errorf("with tokens (credentials generated): %v", err)
	}
	cfg.EmbeddedNATSAddr = "127.0.0.1:4223"
	if err := checkEmbeddedNATS(&cfg, &auth.Set{}); err != nil {
		t.Errorf("open on loopback: %v", err)
	}
}
