package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segments-dev/segments/auth"
	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/httpapi"
	"github.com/segments-dev/segments/internal/service"
	"github.com/segments-dev/segments/notify"
)

// config is read from the environment (only here, in cmd) with flags
// mirroring it.
type config struct {
	DatabaseURL string
	NATSURL     string
	DataDir     string
	HTTPAddr    string
	// AllowedHosts are the names the API answers to in the Host header.
	AllowedHosts     []string
	EmbeddedNATSAddr string
	Roles            []string
	MasterKey        string
	TimeZone         string
	LogLevel         string
	LogFormat        string
	Demo             bool
	RulesFile        string
	TokensFile       string
	// NotifyFile is the routes file of the notifier role (SEGMENTS_NOTIFY);
	// without it alerts are published but delivered to no one.
	NotifyFile string
	// EmbeddedNATSConfig is a nats-server config file (accounts, users,
	// permissions) for the embedded server.
	EmbeddedNATSConfig string
	// StreamReplicas is the replica count of the streams created at start
	// (1 for the embedded server, 3 recommended on a NATS cluster); an
	// existing stream keeps the count it has.
	StreamReplicas int
	// Location is TimeZone's: the API's times and the logs' are in it.
	Location *time.Location

	// rolesText and replicasText are Roles and StreamReplicas as given.
	rolesText, replicasText string
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// configFlag registers one flag that mirrors a setting of the environment;
// each command names the ones it uses, so its usage lists only those.
type configFlag func(fs *flag.FlagSet, c *config)

func dataDirFlag(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "data directory: embedded NATS store, master key file (SEGMENTS_DATA_DIR)")
}

func logLevelFlag(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error (SEGMENTS_LOG_LEVEL)")
}

func rulesFlag(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.RulesFile, "rules", c.RulesFile, "rules file (SEGMENTS_RULES); the built-in rule set when empty")
}

func tokensFlag(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.TokensFile, "tokens", c.TokensFile, "file of bearer tokens, \"name scopes sha256-hash\" per line (SEGMENTS_TOKENS); none: open API on loopback only")
}

// serveFlags are every flag of serve.
var serveFlags = []configFlag{dataDirFlag, logLevelFlag, rulesFlag, tokensFlag, func(fs *flag.FlagSet, c *config) {
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "HTTP listen address (SEGMENTS_HTTP_ADDR)")
	fs.StringVar(&c.rolesText, "roles", c.rolesText, "comma-separated roles: api, ingest, notifier, projector, publisher, scheduler, or all (SEGMENTS_ROLES)")
	fs.StringVar(&c.NotifyFile, "notify", c.NotifyFile, "routes and channels of alert delivery (SEGMENTS_NOTIFY); none: alerts are not delivered")
	fs.StringVar(&c.replicasText, "stream-replicas", c.replicasText, "replicas of the NATS streams created at start, 1 to 5; 3 on a NATS cluster (SEGMENTS_STREAM_REPLICAS)")
	fs.BoolVar(&c.Demo, "demo", false, "record a demo data set from the seed templates and print what is published")
}}

// serveFlagSet is serve's flag set.
func serveFlagSet() *flag.FlagSet {
	return newFlagSet("serve", "[flags]\n\nRun the service: HTTP API, NATS ingest, projector, publisher, scheduler, notifier (by role).")
}

// loadServeConfig reads serve's configuration: the environment and every
// flag mirroring it.
func loadServeConfig(fs *flag.FlagSet, args []string) (config, error) {
	return loadConfig(fs, args, serveFlags...)
}

// loadConfig reads the environment, then the given flags (no positional
// arguments).
func loadConfig(fs *flag.FlagSet, args []string, flags ...configFlag) (config, error) {
	c := configFromEnv()
	for _, f := range flags {
		f(fs, &c)
	}
	if err := parseFlags(fs, args, false); err != nil {
		return c, err
	}
	err := c.check()
	return c, err
}

func configFromEnv() config {
	return config{
		DatabaseURL:        envOr("DATABASE_URL", eventstore.DefaultDatabaseURL),
		NATSURL:            os.Getenv("NATS_URL"),
		DataDir:            envOr("SEGMENTS_DATA_DIR", "data"),
		HTTPAddr:           envOr("SEGMENTS_HTTP_ADDR", "127.0.0.1:8080"),
		EmbeddedNATSAddr:   envOr("SEGMENTS_EMBEDDED_NATS_ADDR", "127.0.0.1:4223"),
		MasterKey:          os.Getenv("SEGMENTS_MASTER_KEY"),
		TimeZone:           envOr("SEGMENTS_TIMEZONE", "Asia/Shanghai"),
		LogLevel:           envOr("SEGMENTS_LOG_LEVEL", "info"),
		LogFormat:          envOr("SEGMENTS_LOG_FORMAT", "text"),
		RulesFile:          os.Getenv("SEGMENTS_RULES"),
		TokensFile:         os.Getenv("SEGMENTS_TOKENS"),
		NotifyFile:         os.Getenv("SEGMENTS_NOTIFY"),
		EmbeddedNATSConfig: os.Getenv("SEGMENTS_EMBEDDED_NATS_CONFIG"),
		rolesText:          envOr("SEGMENTS_ROLES", "all"),
		replicasText:       envOr("SEGMENTS_STREAM_REPLICAS", "1"),
	}
}

// check parses and checks what the environment and the flags gave.
func (c *config) check() error {
	c.AllowedHosts = allowedHosts(os.Getenv("SEGMENTS_ALLOWED_HOSTS"), c.HTTPAddr)
	var err error
	if c.Roles, err = parseRoles(c.rolesText); err != nil {
		return err
	}
	if c.StreamReplicas, err = parseReplicas(c.replicasText); err != nil {
		return err
	}
	if c.Location, err = time.LoadLocation(c.TimeZone); err != nil {
		return fmt.Errorf("SEGMENTS_TIMEZONE %q: %w", c.TimeZone, err)
	}
	if c.DataDir, err = filepath.Abs(c.DataDir); err != nil {
		return fmt.Errorf("SEGMENTS_DATA_DIR: %w", err)
	}
	return nil
}

// allowedHosts reads SEGMENTS_ALLOWED_HOSTS (comma-separated names); by
// default the listen address's host (unless it is a wildcard) and the
// loopback names.
func allowedHosts(list, httpAddr string) []string {
	var out []string
	for h := range strings.SplitSeq(list, ",") {
		if h = strings.TrimSpace(h); h != "" {
			out = append(out, h)
		}
	}
	if len(out) > 0 {
		return out
	}
	out = append(out, httpapi.DefaultAllowedHosts...)
	if host, _, err := net.SplitHostPort(httpAddr); err == nil {
		if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) && !slices.Contains(out, host) {
			out = append(out, host)
		}
	}
	return out
}

func parseRoles(s string) ([]string, error) {
	var out []string
	for _, r := range strings.Split(s, ",") {
		r = strings.TrimSpace(r)
		switch {
		case r == "all":
			out = append(out, service.AllRoles...)
		case slices.Contains(service.AllRoles, r):
			out = append(out, r)
		case r == "":
		default:
			return nil, fmt.Errorf("unknown role %q (want %s or all)", r, strings.Join(service.AllRoles, ", "))
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no roles given")
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// ErrStreamReplicas: JetStream keeps 1 to 5 replicas of a stream.
var ErrStreamReplicas = errors.New("want a whole number from 1 to 5")

func parseReplicas(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > 5 {
		return 0, fmt.Errorf("SEGMENTS_STREAM_REPLICAS %q: %w", s, ErrStreamReplicas)
	}
	return n, nil
}

func (c *config) has(role string) bool { return slices.Contains(c.Roles, role) }

// newLogger is the one logger of a process: records' times are in the time
// zone the API speaks (SEGMENTS_TIMEZONE), not in slog's UTC.
func newLogger(cfg *config, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("SEGMENTS_LOG_LEVEL %q: %w", cfg.LogLevel, err)
	}
	loc := cfg.Location
	opts := &slog.HandlerOptions{Level: l, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey && a.Value.Kind() == slog.KindTime {
			a.Value = slog.TimeValue(a.Value.Time().In(loc))
		}
		return a
	}}
	switch cfg.LogFormat {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("SEGMENTS_LOG_FORMAT %q: want text or json", cfg.LogFormat)
}

// loadRules reads the rules file, or returns the built-in rules.
func loadRules(path string) (*domain.RuleBook, error) {
	if path == "" {
		return domain.DefaultRuleBook(), nil
	}
	data, err := os.ReadFile(path) //nolint:gosec // the operator names the rules file
	if err != nil {
		return nil, fmt.Errorf("SEGMENTS_RULES: %w", err)
	}
	book, err := domain.ParseRulesFile(path, data)
	if err != nil {
		return nil, fmt.Errorf("SEGMENTS_RULES: %w", err)
	}
	return book, nil
}

// checkRoutesAgainstRules refuses rules that remove (or never define) an
// alert kind, value tier or tag a notify route matches on, before the rules
// are recorded or the routes used.
func checkRoutesAgainstRules(book *domain.RuleBook, notifyFile string) error {
	if notifyFile == "" {
		return nil
	}
	routes, err := notify.ReadRouteRefs(notifyFile)
	if err != nil {
		return err
	}
	kinds := map[string]string{"kind": domain.RefAlertKind, "value_tier": domain.RefValueTier, "tags": domain.RefTag}
	refs := make([]domain.Reference, 0, len(routes))
	for _, r := range routes {
		refs = append(refs, domain.Reference{Kind: kinds[r.Field], Name: r.Value, By: r.Where})
	}
	if err := book.CheckReferences(refs); err != nil {
		return fmt.Errorf("SEGMENTS_RULES: %w", err)
	}
	return nil
}

// loadTokens reads the tokens file (an empty set when none is configured).
func loadTokens(path string) (*auth.Set, error) {
	if path == "" {
		return &auth.Set{}, nil
	}
	f, err := os.Open(path) //nolint:gosec // the operator names the tokens file
	if err != nil {
		return nil, fmt.Errorf("SEGMENTS_TOKENS: %w", err)
	}
	defer func() { _ = f.Close() }()
	set, err := auth.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("SEGMENTS_TOKENS %s: %w", path, err)
	}
	if set.Empty() {
		return nil, fmt.Errorf("SEGMENTS_TOKENS %s holds no token", path)
	}
	return set, nil
}

// ErrOpenNonLoopback: without tokens the API is open, so it may only listen
// on a loopback address.
var ErrOpenNonLoopback = errors.New("no tokens configured (SEGMENTS_TOKENS), so the API is open and may only listen on loopback; configure tokens or use 127.0.0.1")

// ErrOpenNATS: without tokens the embedded NATS server has no users unless
// a config file gives it some, so it may only listen on loopback then.
var ErrOpenNATS = errors.New("the embedded NATS server is open without SEGMENTS_TOKENS (which make it require generated credentials) or SEGMENTS_EMBEDDED_NATS_CONFIG, so it may only listen on loopback")

// checkEmbeddedNATS refuses a non-loopback embedded NATS address when the
// server would accept anyone.
func checkEmbeddedNATS(cfg *config, tokens *auth.Set) error {
	if cfg.NATSURL != "" || cfg.EmbeddedNATSConfig != "" || !tokens.Empty() {
		return nil
	}
	if err := checkListen(cfg.EmbeddedNATSAddr, &auth.Set{}); err != nil {
		return fmt.Errorf("SEGMENTS_EMBEDDED_NATS_ADDR %q: %w", cfg.EmbeddedNATSAddr, ErrOpenNATS)
	}
	return nil
}

// checkListen refuses a non-loopback address when no token is configured.
func checkListen(addr string, tokens *auth.Set) error {
	if !tokens.Empty() {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("SEGMENTS_HTTP_ADDR %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("SEGMENTS_HTTP_ADDR %q: %w", addr, ErrOpenNonLoopback)
	}
	return nil
}
