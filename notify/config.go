package notify

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/segments-dev/segments/internal/yamlpos"
)

// Config is a loaded routes file: channels ready to send, routes, the
// escalation chain and the people's addresses.
type Config struct {
	// BaseURL is the workbench's address; messages link to
	// <BaseURL>/#/customers/<code>.
	BaseURL string
	// Location is the rules' time zone unless the file names one; due times
	// and the daily digest are in it.
	Location *time.Location
	// ReminderBefore is how long before an alert's due time its owner is
	// reminded (default 2 h; 0 in the file turns reminders off).
	ReminderBefore time.Duration
	// DigestHour and DigestMinute are the local time of the daily digest.
	DigestHour, DigestMinute int
	Channels                 map[string]*Channel
	Routes                   []Route
	// Escalation maps an owner to their manager (a manager's own entry is
	// the second level).
	Escalation map[string]string
	// People are the email addresses of owners and managers.
	People map[string]string
}

// Vocabulary is what the rules know, for refusing routes that can match
// nothing: alert kinds, value tiers and tags of every rule version.
type Vocabulary struct {
	Kinds, ValueTiers, Tags []string
	Location                *time.Location
}

// ConfigError names the place of a routes file that cannot be used.
type ConfigError struct {
	File    string
	Line    int
	Field   string
	Message string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Field, e.Message)
}

// ErrConfig: a routes file that cannot be used (errors.Is on any ConfigError).
var ErrConfig = errors.New("invalid routes file")

func (e *ConfigError) Unwrap() error { return ErrConfig }

type fileConfig struct {
	BaseURL        string                    `yaml:"base_url"`
	TimeZone       string                    `yaml:"time_zone"`
	ReminderBefore *string                   `yaml:"reminder_before"`
	DigestAt       string                    `yaml:"digest_at"`
	Channels       map[string]*channelConfig `yaml:"channels"`
	Routes         []routeConfig             `yaml:"routes"`
	Escalation     map[string]string         `yaml:"escalation"`
	People         map[string]personConfig   `yaml:"people"`
}

type channelConfig struct {
	Type          string   `yaml:"type"`
	Language      string   `yaml:"language"`
	RatePerMinute *int     `yaml:"rate_per_minute"`
	URL           string   `yaml:"url"`
	URLEnv        string   `yaml:"url_env"`
	URLFile       string   `yaml:"url_file"`
	SecretEnv     string   `yaml:"secret_env"`
	SecretFile    string   `yaml:"secret_file"`
	SMTP          string   `yaml:"smtp"`
	TLS           string   `yaml:"tls"`
	CAFile        string   `yaml:"ca_file"`
	From          string   `yaml:"from"`
	To            []string `yaml:"to"`
	ToOwner       bool     `yaml:"to_owner"`
	UsernameEnv   string   `yaml:"username_env"`
	PasswordEnv   string   `yaml:"password_env"`
	PasswordFile  string   `yaml:"password_file"`
}

type routeConfig struct {
	Name     string      `yaml:"name"`
	Match    matchConfig `yaml:"match"`
	Channels []string    `yaml:"channels"`
}

type matchConfig struct {
	Kind      []string `yaml:"kind"`
	ValueTier []string `yaml:"value_tier"`
	Owner     []string `yaml:"owner"`
	Tags      []string `yaml:"tags"`
}

type personConfig struct {
	Email string `yaml:"email"`
}

// Channel types of the routes file.
const (
	TypeWebhook  = "webhook"
	TypeDingTalk = "dingtalk"
	TypeWeCom    = "wecom"
	TypeFeishu   = "feishu"
	TypeSlack    = "slack"
	TypeEmail    = "email"
)

var channelTypes = []string{TypeWebhook, TypeDingTalk, TypeWeCom, TypeFeishu, TypeSlack, TypeEmail}

// robotRate is the default per-minute limit of IM robots (DingTalk, WeCom
// and Feishu allow about 20 messages a minute per robot).
const robotRate = 20

// LoadConfig reads and checks a routes file. env looks up the environment
// variables that hold secrets (os.LookupEnv in segmentd).
func LoadConfig(path string, vocab Vocabulary, env func(string) (string, bool)) (*Config, error) {
	data, err := os.ReadFile(path) //nolint:gosec // G304: the operator names the routes file
	if err != nil {
		return nil, fmt.Errorf("SEGMENTS_NOTIFY: %w", err)
	}
	return ParseConfig(path, data, vocab, env)
}

// ParseConfig checks a routes file's content; name is used in errors.
func ParseConfig(name string, data []byte, vocab Vocabulary, env func(string) (string, bool)) (*Config, error) {
	p := &configParser{name: name, data: data, env: env}
	var f fileConfig
	if err := yaml.UnmarshalWithOptions(data, &f, yaml.Strict()); err != nil {
		ce := &ConfigError{File: name, Field: "$", Message: yaml.FormatError(err, false, false)}
		var ye yaml.Error
		if errors.As(err, &ye) && ye.GetToken() != nil {
			ce.Line = ye.GetToken().Position.Line
		}
		return nil, ce
	}
	c := &Config{BaseURL: strings.TrimRight(f.BaseURL, "/"), Location: vocab.Location, ReminderBefore: 2 * time.Hour,
		DigestHour: 9, Channels: map[string]*Channel{}, Escalation: f.Escalation, People: map[string]string{}}
	if err := p.general(&f, c); err != nil {
		return nil, err
	}
	for who, person := range f.People {
		if _, err := mail.ParseAddress(person.Email); err != nil {
			return nil, p.errf("$.people."+who+".email", "invalid address %q", person.Email)
		}
		c.People[who] = person.Email
	}
	if len(f.Channels) == 0 {
		return nil, p.errf("$.channels", "no channels")
	}
	for _, name := range sortedKeys(f.Channels) {
		ch, err := p.channel(name, f.Channels[name], c)
		if err != nil {
			return nil, err
		}
		c.Channels[name] = ch
	}
	if len(f.Routes) == 0 {
		return nil, p.errf("$.routes", "no routes")
	}
	for i, rc := range f.Routes {
		r, err := p.route(i, rc, c, vocab)
		if err != nil {
			return nil, err
		}
		c.Routes = append(c.Routes, r)
	}
	return c, nil
}

func (p *configParser) general(f *fileConfig, c *Config) error {
	if f.BaseURL != "" {
		if err := checkURL(f.BaseURL); err != nil {
			return p.errf("$.base_url", "%v", err)
		}
	}
	if f.TimeZone != "" {
		loc, err := time.LoadLocation(f.TimeZone)
		if err != nil {
			return p.errf("$.time_zone", "unknown time zone %q", f.TimeZone)
		}
		c.Location = loc
	}
	if c.Location == nil {
		c.Location = time.UTC
	}
	if f.ReminderBefore != nil {
		d, err := time.ParseDuration(*f.ReminderBefore)
		if err != nil || d < 0 {
			return p.errf("$.reminder_before", "want a duration such as 2h, got %q", *f.ReminderBefore)
		}
		c.ReminderBefore = d
	}
	if f.DigestAt != "" {
		at, err := time.Parse("15:04", f.DigestAt)
		if err != nil {
			return p.errf("$.digest_at", "want HH:MM, got %q", f.DigestAt)
		}
		c.DigestHour, c.DigestMinute = at.Hour(), at.Minute()
	}
	for owner, manager := range f.Escalation {
		if manager == "" || manager == owner {
			return p.errf("$.escalation."+owner, "an owner's manager must be another person")
		}
	}
	return nil
}

func (p *configParser) route(i int, rc routeConfig, c *Config, vocab Vocabulary) (Route, error) {
	path := fmt.Sprintf("$.routes[%d]", i)
	r := Route{Name: rc.Name, Kinds: rc.Match.Kind, ValueTiers: rc.Match.ValueTier, Owners: rc.Match.Owner, Tags: rc.Match.Tags}
	if r.Name == "" {
		r.Name = fmt.Sprintf("routes[%d]", i)
	}
	for field, values := range map[string][2][]string{
		"kind": {rc.Match.Kind, vocab.Kinds}, "value_tier": {rc.Match.ValueTier, vocab.ValueTiers}, "tags": {rc.Match.Tags, vocab.Tags},
	} {
		for j, v := range values[0] {
			if !slices.Contains(values[1], v) {
				return r, p.errf(fmt.Sprintf("%s.match.%s[%d]", path, field, j),
					"%q matches nothing: the rules know %s", v, strings.Join(values[1], ", "))
			}
		}
	}
	if len(rc.Channels) == 0 {
		return r, p.errf(path+".channels", "a route needs at least one channel")
	}
	for j, name := range rc.Channels {
		if _, ok := c.Channels[name]; !ok {
			return r, p.errf(fmt.Sprintf("%s.channels[%d]", path, j), "unknown channel %q (defined: %s)",
				name, strings.Join(sortedKeys(c.Channels), ", "))
		}
	}
	r.Channels = rc.Channels
	return r, nil
}

type configParser struct {
	name string
	data []byte
	env  func(string) (string, bool)
}

func (p *configParser) errf(path, format string, args ...any) error {
	return &ConfigError{File: p.name, Line: p.line(path), Field: strings.TrimPrefix(path, "$."), Message: fmt.Sprintf(format, args...)}
}

// secret reads a secret from the named environment variable or file; the
// YAML itself never holds one. field is the YAML path for errors.
func (p *configParser) secret(field, envName, file string) (string, error) {
	switch {
	case envName != "":
		v, ok := p.env(envName)
		if !ok || v == "" {
			return "", p.errf(field+"_env", "environment variable %s is not set", envName)
		}
		return v, nil
	case file != "":
		b, err := os.ReadFile(file) //nolint:gosec // G304: the operator names the secret file
		if err != nil {
			return "", p.errf(field+"_file", "cannot read %s: %v", file, errors.Unwrap(err))
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return "", p.errf(field+"_file", "%s is empty", file)
		}
		return v, nil
	}
	return "", p.errf(field+"_env", "missing: give %s_env or %s_file", lastKey(field), lastKey(field))
}

func (p *configParser) channel(name string, cc *channelConfig, c *Config) (*Channel, error) {
	path := "$.channels." + name
	if cc == nil {
		return nil, p.errf(path, "empty channel")
	}
	if !slices.Contains(channelTypes, cc.Type) {
		return nil, p.errf(path+".type", "unknown channel type %q (want %s)", cc.Type, strings.Join(channelTypes, ", "))
	}
	ch := &Channel{Name: name, Type: cc.Type, Language: LangZH}
	switch cc.Language {
	case "", "zh", "zh-CN":
	case "en":
		ch.Language = LangEN
	default:
		return nil, p.errf(path+".language", "want zh or en, got %q", cc.Language)
	}
	if cc.RatePerMinute != nil {
		if *cc.RatePerMinute < 0 {
			return nil, p.errf(path+".rate_per_minute", "must not be negative")
		}
		ch.RatePerMinute = *cc.RatePerMinute
	} else if cc.Type == TypeDingTalk || cc.Type == TypeWeCom || cc.Type == TypeFeishu {
		ch.RatePerMinute = robotRate
	}
	var err error
	if cc.Type == TypeEmail {
		ch.sender, err = p.emailSender(path, cc, c)
	} else {
		ch.sender, err = p.httpSender(path, cc)
	}
	if err != nil {
		return nil, err
	}
	return ch, nil
}

// httpSender builds the sender of an HTTP channel. A robot's or Slack's
// address carries its key, so it is a secret (url_env/url_file); a generic
// webhook's address may be in the file, its signing key may not.
func (p *configParser) httpSender(path string, cc *channelConfig) (sender, error) {
	address := cc.URL
	if cc.Type != TypeWebhook {
		if cc.URL != "" {
			return nil, p.errf(path+".url", "a %s address carries its key: give url_env or url_file", cc.Type)
		}
		var err error
		if address, err = p.secret(path+".url", cc.URLEnv, cc.URLFile); err != nil {
			return nil, err
		}
	} else if address == "" {
		return nil, p.errf(path+".url", "missing")
	}
	if err := checkURL(address); err != nil {
		return nil, p.errf(path+".url", "%v", err)
	}
	var secret string
	if cc.Type == TypeWebhook || cc.Type == TypeDingTalk || cc.Type == TypeFeishu {
		var err error
		if secret, err = p.secret(path+".secret", cc.SecretEnv, cc.SecretFile); err != nil {
			return nil, err
		}
	}
	return newHTTPSender(cc.Type, address, secret), nil
}

func (p *configParser) emailSender(path string, cc *channelConfig, c *Config) (sender, error) {
	host, port, err := net.SplitHostPort(cc.SMTP)
	if err != nil || host == "" || port == "" {
		return nil, p.errf(path+".smtp", "want host:port, got %q", cc.SMTP)
	}
	if _, err := mail.ParseAddress(cc.From); err != nil {
		return nil, p.errf(path+".from", "invalid address %q", cc.From)
	}
	for i, to := range cc.To {
		if _, err := mail.ParseAddress(to); err != nil {
			return nil, p.errf(fmt.Sprintf("%s.to[%d]", path, i), "invalid address %q", to)
		}
	}
	if len(cc.To) == 0 && !cc.ToOwner {
		return nil, p.errf(path+".to", "no recipients: give to or to_owner: true")
	}
	e := &emailSender{host: host, port: port, from: cc.From, to: cc.To, toOwner: cc.ToOwner, people: c.People}
	switch cc.TLS {
	case "", "starttls":
		e.tls = tlsStartTLS
	case "none":
		e.tls = tlsNone
	default:
		return nil, p.errf(path+".tls", "want starttls or none, got %q", cc.TLS)
	}
	if cc.CAFile != "" {
		pem, err := os.ReadFile(cc.CAFile)
		roots := x509.NewCertPool()
		if err != nil || !roots.AppendCertsFromPEM(pem) {
			return nil, p.errf(path+".ca_file", "no PEM certificate readable in %s", cc.CAFile)
		}
		e.tlsConfig = &tls.Config{ServerName: host, RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	if cc.UsernameEnv != "" {
		if e.username, err = p.secret(path+".username", cc.UsernameEnv, ""); err != nil {
			return nil, err
		}
		if e.password, err = p.secret(path+".password", cc.PasswordEnv, cc.PasswordFile); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("invalid address: want an http or https URL")
	}
	return nil
}

func lastKey(path string) string { return path[strings.LastIndexByte(path, '.')+1:] }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// line finds the line of a YAML path (yamlpos.Line).
func (p *configParser) line(path string) int { return yamlpos.Line(p.data, path) }
