package service

import (
	"fmt"
	"path/filepath"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/segments-dev/segments/natsbus"
)

// NATSCredentialsDir holds the embedded server's generated nkey seeds.
const NATSCredentialsDir = "nats-credentials"

// startEmbeddedNATS starts the in-process server. With tokens configured
// (and no SEGMENTS_EMBEDDED_NATS_CONFIG of the operator's own) it requires
// the generated credentials, and logs how to use them; without tokens it
// stays open, on loopback only (segmentd refuses another address). It returns the options
// segmentd's own connection needs.
func (s *Service) startEmbeddedNATS() (*server.Server, []nats.Option, error) {
	cfg, log := &s.Config, s.Log
	storeDir := filepath.Join(cfg.DataDir, "nats")
	ec := natsbus.EmbeddedConfig{StoreDir: storeDir, Addr: cfg.EmbeddedNATSAddr, ConfigFile: cfg.EmbeddedNATSConfig}
	var opts []nats.Option
	if cfg.EmbeddedNATSConfig == "" && !cfg.Tokens.Empty() {
		creds, created, err := natsbus.LoadOrCreateCredentials(filepath.Join(cfg.DataDir, NATSCredentialsDir))
		if err != nil {
			return nil, nil, err
		}
		ec.Credentials = creds
		opts = creds.ConnectOptions(natsbus.UserService)
		if len(created) > 0 {
			log.Warn("generated NATS credentials (nkey seeds, mode 0600); back them up and hand each to its user only", "users", created, "dir", filepath.Dir(creds.SeedFile(natsbus.UserService)))
		}
	}
	srv, err := natsbus.StartEmbedded(ec)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (set SEGMENTS_EMBEDDED_NATS_ADDR, or NATS_URL to use an external server)", err)
	}
	log.Info("NATS_URL is unset: started embedded NATS JetStream", "url", srv.ClientURL(), "store", storeDir, "sync", "always")
	if c := ec.Credentials; c != nil {
		url := srv.ClientURL()
		log.Info("embedded NATS requires credentials (tokens are configured): anonymous clients are refused",
			"upstream_publish", c.CLIUsage(natsbus.UserIngest, url)+" pub ingest.crm '<envelope>'",
			"upstream_rejections", c.CLIUsage(natsbus.UserIngest, url)+" sub 'rejected.>'",
			"reader_alerts", c.CLIUsage(natsbus.UserReader, url)+" sub 'alerts.>'")
	}
	return srv, opts, nil
}
