package natsbus

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// Users of the embedded server when it requires credentials (whenever
// bearer tokens are configured). Each authenticates with an nkey whose seed
// is a file in the credentials directory.
const (
	// UserService is segmentd itself: every right.
	UserService = "segmentd"
	// UserIngest is for upstream systems: publish envelopes to ingest.>,
	// read rejected.> (their rejections) through JetStream consumers.
	UserIngest = "ingest"
	// UserReader is for consumers of the outputs (a notifier, a BI job):
	// read alerts.>, segments.changed.> and customers.events.> through
	// JetStream consumers. Published events carry no personal data.
	UserReader = "reader"
)

// Users lists the generated users.
var Users = []string{UserService, UserIngest, UserReader}

// InboxPrefixOf is the reply-subject prefix a user must connect with
// (nats.CustomInboxPrefix, or the nats CLI's --inbox-prefix): replies,
// PubAcks and pulled messages go there, and no other user may subscribe to
// it, so one user never sees what another pulled.
func InboxPrefixOf(user string) string {
	if user == UserService {
		return InboxPrefix
	}
	return "_INBOX_" + user
}

// consumerAPI lists the JetStream API subjects a user needs to read stream
// through its own consumers: look the stream up, create, inspect, delete
// and pull from consumers, acknowledge, answer flow control. Not included:
// STREAM.MSG.GET / DIRECT.GET (reading any message by sequence), purge,
// delete, and every stream or consumer of another stream.
func consumerAPI(stream string) []string {
	return []string{
		"$JS.API.STREAM.INFO." + stream,
		"$JS.API.CONSUMER.CREATE." + stream,
		"$JS.API.CONSUMER.CREATE." + stream + ".>",
		"$JS.API.CONSUMER.DURABLE.CREATE." + stream + ".*",
		"$JS.API.CONSUMER.INFO." + stream + ".*",
		"$JS.API.CONSUMER.DELETE." + stream + ".*",
		"$JS.API.CONSUMER.NAMES." + stream,
		"$JS.API.CONSUMER.LIST." + stream,
		"$JS.API.CONSUMER.MSG.NEXT." + stream + ".*",
		"$JS.ACK." + stream + ".>",     // acknowledgements (v1 reply subjects)
		"$JS.ACK.*.*." + stream + ".>", // v2: $JS.ACK.<domain>.<account>.<stream>…
		"$JS.FC." + stream + ".>",
		"$JS.FC.*.*." + stream + ".>",
	}
}

// permissionsOf returns what each generated user may do; nil is everything.
func permissionsOf(user string) *server.Permissions {
	var pub []string
	sub := make([]string, 0, 4)
	switch user {
	case UserService:
		return nil
	case UserIngest:
		pub = append([]string{"ingest.>"}, consumerAPI(StreamRejected)...)
		sub = append(sub, "rejected.>")
	case UserReader:
		for _, s := range []string{StreamAlerts, StreamChanges, StreamEvents} {
			pub = append(pub, consumerAPI(s)...)
		}
		sub = append(sub, "alerts.>", "segments.changed.>", "customers.events.>")
	default:
		return &server.Permissions{Publish: &server.SubjectPermission{Deny: []string{">"}}, Subscribe: &server.SubjectPermission{Deny: []string{">"}}}
	}
	sub = append(sub, InboxPrefixOf(user)+".>")
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: sub},
	}
}

// Credentials are the nkeys of the embedded server's users.
type Credentials struct {
	dir  string
	keys map[string]nkeys.KeyPair
}

// ErrCredentialsMode: a credentials file or directory others can read.
var ErrCredentialsMode = errors.New("NATS credentials must be readable by their owner only (chmod 600 the files, 700 the directory)")

// LoadOrCreateCredentials reads the users' nkey seeds from dir
// (<user>.nk), generating the missing ones (directory 0700, files 0600).
// created lists the users whose seed was generated now.
func LoadOrCreateCredentials(dir string) (_ *Credentials, created []string, _ error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("NATS credentials directory: %w", err)
	}
	if st, err := os.Stat(dir); err != nil {
		return nil, nil, fmt.Errorf("NATS credentials directory: %w", err)
	} else if st.Mode().Perm()&0o077 != 0 {
		return nil, nil, fmt.Errorf("%s: %w", dir, ErrCredentialsMode)
	}
	c := &Credentials{dir: dir, keys: map[string]nkeys.KeyPair{}}
	for _, user := range Users {
		kp, made, err := loadOrCreateSeed(c.SeedFile(user))
		if err != nil {
			return nil, nil, fmt.Errorf("NATS credentials of %s: %w", user, err)
		}
		if made {
			created = append(created, user)
		}
		c.keys[user] = kp
	}
	return c, created, nil
}

func loadOrCreateSeed(path string) (kp nkeys.KeyPair, created bool, err error) {
	seed, err := os.ReadFile(path) //nolint:gosec // under the operator's data directory
	if err == nil {
		if st, err := os.Stat(path); err != nil {
			return nil, false, err
		} else if st.Mode().Perm()&0o077 != 0 {
			return nil, false, fmt.Errorf("%s: %w", path, ErrCredentialsMode)
		}
		kp, err = nkeys.FromSeed([]byte(strings.TrimSpace(string(seed))))
		return kp, false, err
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	if kp, err = nkeys.CreateUser(); err != nil {
		return nil, false, err
	}
	if seed, err = kp.Seed(); err != nil {
		return nil, false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) //nolint:gosec // under the operator's data directory
	if err != nil {
		return nil, false, err
	}
	_, err = f.Write(append(seed, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return kp, true, err
}

// SeedFile is the path of a user's nkey seed (the nats CLI's --nkey).
func (c *Credentials) SeedFile(user string) string { return filepath.Join(c.dir, user+".nk") }

// Public returns a user's public nkey.
func (c *Credentials) Public(user string) string {
	pub, _ := c.keys[user].PublicKey()
	return pub
}

// nkeyUsers configures the server's users.
func (c *Credentials) nkeyUsers() []*server.NkeyUser {
	out := make([]*server.NkeyUser, 0, len(Users))
	for _, user := range Users {
		out = append(out, &server.NkeyUser{Nkey: c.Public(user), Permissions: permissionsOf(user)})
	}
	return out
}

// ConnectOptions authenticate as user, with its inbox prefix.
func (c *Credentials) ConnectOptions(user string) []nats.Option {
	kp := c.keys[user]
	return []nats.Option{
		nats.Nkey(c.Public(user), kp.Sign),
		nats.CustomInboxPrefix(InboxPrefixOf(user)),
	}
}

// CLIUsage says how to use a user's credentials with the nats CLI.
func (c *Credentials) CLIUsage(user, url string) string {
	return fmt.Sprintf("nats -s %s --nkey %s --inbox-prefix %s", url, c.SeedFile(user), InboxPrefixOf(user))
}
