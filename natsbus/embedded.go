package natsbus

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedConfig configures the in-process JetStream server used when
// NATS_URL is unset.
type EmbeddedConfig struct {
	// StoreDir holds JetStream's files.
	StoreDir string
	// Addr is host:port to listen on; port 0 picks a free port.
	Addr string
	// NoSyncAlways turns off fsync-per-write. Leave it false in production:
	// with JetStream's default (fsync every 2 minutes) a power loss can lose
	// publishes that were already acknowledged to upstream systems.
	NoSyncAlways bool
	// Config is an optional nats-server configuration file (accounts, users
	// and permissions); its listen address and store dir are overridden.
	ConfigFile string
	// Credentials, when set, are the only way in: every client must
	// authenticate as one of the generated users (LoadOrCreateCredentials).
	Credentials *Credentials
	Logger      *slog.Logger
}

// ErrEmbeddedNotReady: the embedded server did not start accepting
// connections in time.
var ErrEmbeddedNotReady = errors.New("embedded NATS server did not become ready")

// StartEmbedded starts an in-process nats-server with JetStream.
func StartEmbedded(cfg EmbeddedConfig) (*server.Server, error) {
	opts := &server.Options{}
	if cfg.ConfigFile != "" {
		var err error
		opts, err = server.ProcessConfigFile(cfg.ConfigFile)
		if err != nil {
			return nil, fmt.Errorf("embedded NATS config %s: %w", cfg.ConfigFile, err)
		}
	}
	host, portText, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS address %q: %w", cfg.Addr, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS port %q: %w", portText, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts.Host, opts.Port = host, port
	if cfg.Credentials != nil {
		opts.Nkeys = append(opts.Nkeys, cfg.Credentials.nkeyUsers()...)
	}
	opts.JetStream = true
	opts.StoreDir = cfg.StoreDir
	opts.ServerName = "segments-embedded"
	opts.NoSigs = true
	// Every acknowledged write is on disk before the PubAck (see BENCHMARKS.md
	// for the measured cost); the publisher's atomic batches share one fsync.
	opts.SyncAlways = !cfg.NoSyncAlways
	opts.NoLog = cfg.Logger == nil
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	if cfg.Logger != nil {
		srv.SetLoggerV2(&slogAdapter{cfg.Logger}, false, false, false)
	}
	go srv.Start()
	if !srv.ReadyForConnections(15 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("%w on %s (is the port in use?)", ErrEmbeddedNotReady, cfg.Addr)
	}
	return srv, nil
}

// slogAdapter sends nats-server logs to slog, its text as an attribute.
type slogAdapter struct{ l *slog.Logger }

func (a *slogAdapter) Noticef(format string, v ...any) {
	a.l.Info("nats-server", "log", fmt.Sprintf(format, v...))
}
func (a *slogAdapter) Warnf(format string, v ...any) {
	a.l.Warn("nats-server", "log", fmt.Sprintf(format, v...))
}
func (a *slogAdapter) Fatalf(format string, v ...any) {
	a.l.Error("nats-server", "log", fmt.Sprintf(format, v...))
}
func (a *slogAdapter) Errorf(format string, v ...any) {
	a.l.Error("nats-server", "log", fmt.Sprintf(format, v...))
}
func (a *slogAdapter) Debugf(format string, v ...any) {
	a.l.Debug("nats-server", "log", fmt.Sprintf(format, v...))
}
func (a *slogAdapter) Tracef(format string, v ...any) {
	a.l.Debug("nats-server", "log", fmt.Sprintf(format, v...))
}
