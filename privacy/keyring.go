package privacy

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// ErrUnknownMasterKey: a wrapped key or the log names a master key id that the
// keyring does not hold. It also matches ErrUnwrap.
var ErrUnknownMasterKey = errors.New("master key not in this keyring")

// Keyring holds the master keys a process can unwrap with, by id. Which one
// wraps new data keys is decided by the log (the store's active key id), not
// by the keyring: every process of a deployment then wraps with the same key,
// and a key stays in the keyring until no wrapped key references it.
//
// A keyring read from a file re-reads it when asked for an id it does not
// hold, so a running process picks up a key that rotation added to the file
// without a restart.
type Keyring struct {
	mu     sync.RWMutex
	keys   map[string]MasterKey
	order  []string // the source's order; order[0] is the preferred key
	reload func() ([]MasterKey, error)
}

// NewKeyring returns a fixed keyring; the first key is the preferred one.
func NewKeyring(keys ...MasterKey) *Keyring {
	k := &Keyring{}
	k.set(keys)
	return k
}

// ParseKeys decodes one or more master keys separated by newlines, commas or
// spaces (the form of SEGMENTS_MASTER_KEY and of a keyring file); lines that
// start with # are comments.
func ParseKeys(text string) ([]MasterKey, error) {
	var keys []MasterKey
	for line := range strings.SplitSeq(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, f := range strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\r' }) {
			key, err := ParseMasterKey(f)
			if err != nil {
				return nil, err
			}
			keys = append(keys, key)
		}
	}
	if len(keys) == 0 {
		return nil, ErrBadMasterKey
	}
	return keys, nil
}

// OpenKeyringFile reads the keyring file at path (one key per line, the
// preferred first). It never creates one.
func OpenKeyringFile(path string) (*Keyring, error) {
	read := func() ([]MasterKey, error) {
		b, err := os.ReadFile(path) //nolint:gosec // the operator chooses the data directory
		if err != nil {
			return nil, fmt.Errorf("read master key file: %w", err)
		}
		keys, err := ParseKeys(string(b))
		if err != nil {
			return nil, fmt.Errorf("master key file %s: %w", path, err)
		}
		return keys, nil
	}
	keys, err := read()
	if err != nil {
		return nil, err
	}
	k := &Keyring{reload: read}
	k.set(keys)
	return k, nil
}

// LoadOrCreateKeyringFile opens the keyring file at path, generating a file
// with one new key (mode 0600) when none exists; created reports the latter.
func LoadOrCreateKeyringFile(path string) (k *Keyring, created bool, err error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if _, created, err = LoadOrCreateMasterKeyFile(path); err != nil {
			return nil, false, err
		}
	}
	k, err = OpenKeyringFile(path)
	return k, created, err
}

// WriteKeyringFile replaces the file at path with keys (the preferred first),
// atomically: a reader sees the old file or the new one, never a part.
func WriteKeyringFile(path string, keys []MasterKey) error {
	var b strings.Builder
	for _, key := range keys {
		if len(key.raw) != KeySize {
			return fmt.Errorf("write keyring: key %s has no key material", key.ID())
		}
		b.WriteString(base64.StdEncoding.EncodeToString(key.raw) + "\n")
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write keyring: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write keyring: %w", err)
	}
	if _, err := tmp.WriteString(b.String()); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write keyring: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("write keyring: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write keyring: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write keyring: %w", err)
	}
	return nil
}

func (k *Keyring) set(keys []MasterKey) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys == nil {
		k.keys = map[string]MasterKey{}
	}
	for _, key := range keys {
		if _, ok := k.keys[key.ID()]; !ok {
			k.order = append(k.order, key.ID())
		}
		k.keys[key.ID()] = key
	}
}

// Key returns the key with the id; a file keyring re-reads its file once
// when the id is unknown (a key added by rotation). Keys once read stay.
func (k *Keyring) Key(id string) (MasterKey, error) {
	if key, ok := k.lookup(id); ok {
		return key, nil
	}
	if k.reload != nil {
		keys, err := k.reload()
		if err != nil {
			return MasterKey{}, fmt.Errorf("master key %s: %w", id, err)
		}
		k.set(keys)
		if key, ok := k.lookup(id); ok {
			return key, nil
		}
	}
	return MasterKey{}, fmt.Errorf("%w (%w): id %s, keyring holds %s", ErrUnknownMasterKey, ErrUnwrap, id, strings.Join(k.IDs(), ", "))
}

func (k *Keyring) lookup(id string) (MasterKey, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	key, ok := k.keys[id]
	return key, ok
}

// Add puts a key into the keyring (in memory only).
func (k *Keyring) Add(key MasterKey) { k.set([]MasterKey{key}) }

// Preferred is the key a fresh log adopts: the first of the source.
func (k *Keyring) Preferred() MasterKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.keys[k.order[0]]
}

// IDs lists the ids of the keys held, in the source's order.
func (k *Keyring) IDs() []string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return append([]string(nil), k.order...)
}

// Keys returns the keys held, in the source's order.
func (k *Keyring) Keys() []MasterKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	keys := make([]MasterKey, len(k.order))
	for i, id := range k.order {
		keys[i] = k.keys[id]
	}
	return keys
}
