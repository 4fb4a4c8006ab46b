// Package privacy holds the cryptography and masking of personal data
// (contact name, phone, email): envelope encryption with a per-customer data
// key wrapped by a master key, so destroying one customer's wrapped key is
// enough to make that customer's personal data unrecoverable (crypto-shredding)
// while the event log itself is never touched. It does no I/O besides reading
// or creating the master key file.
package privacy

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"
)

// SealedPrefix marks an encrypted field value in stored event data.
const SealedPrefix = "enc:v1:"

// KeySize is the size of master and data keys (AES-256).
const KeySize = 32

// Errors callers branch on.
var (
	ErrKeyDestroyed = errors.New("data key destroyed: personal data was erased")
	ErrNotSealed    = errors.New("value is not sealed")
	ErrBadMasterKey = errors.New("master key must be 32 bytes, base64 or hex encoded")
	ErrUnwrap       = errors.New("cannot unwrap data key with this master key")
)

// MasterKey wraps and unwraps per-customer data keys.
type MasterKey struct {
	id   string
	aead cipher.AEAD
	raw  []byte // kept only to write a keyring file
}

// NewMasterKey builds a master key from 32 raw bytes.
func NewMasterKey(raw []byte) (MasterKey, error) {
	if len(raw) != KeySize {
		return MasterKey{}, ErrBadMasterKey
	}
	aead, err := newAEAD(raw)
	if err != nil {
		return MasterKey{}, err
	}
	sum := sha256.Sum256(append([]byte("segments master key id\x00"), raw...))
	return MasterKey{id: hex.EncodeToString(sum[:8]), aead: aead, raw: append([]byte(nil), raw...)}, nil
}

// ParseMasterKey decodes a master key given as base64 (std or URL) or hex.
func ParseMasterKey(s string) (MasterKey, error) {
	s = strings.TrimSpace(s)
	for _, dec := range []func(string) ([]byte, error){
		base64.StdEncoding.DecodeString, base64.RawStdEncoding.DecodeString,
		base64.URLEncoding.DecodeString, base64.RawURLEncoding.DecodeString, hex.DecodeString,
	} {
		if b, err := dec(s); err == nil && len(b) == KeySize {
			return NewMasterKey(b)
		}
	}
	return MasterKey{}, ErrBadMasterKey
}

// LoadOrCreateMasterKeyFile reads the master key at path, or generates one
// there (mode 0600) when the file does not exist. created reports the latter
// so the caller can log it.
func LoadOrCreateMasterKeyFile(path string) (key MasterKey, created bool, err error) {
	b, err := os.ReadFile(path) //nolint:gosec // the operator chooses the data directory
	if err == nil {
		key, err = ParseMasterKey(string(b))
		if err != nil {
			return MasterKey{}, false, fmt.Errorf("master key file %s: %w", path, err)
		}
		return key, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return MasterKey{}, false, fmt.Errorf("read master key file: %w", err)
	}
	raw := make([]byte, KeySize)
	if _, err := rand.Read(raw); err != nil {
		return MasterKey{}, false, fmt.Errorf("generate master key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return MasterKey{}, false, fmt.Errorf("create master key directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) //nolint:gosec // the operator chooses the data directory
	if err != nil {
		return MasterKey{}, false, fmt.Errorf("create master key file: %w", err)
	}
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(raw) + "\n"); err != nil {
		_ = f.Close()
		return MasterKey{}, false, fmt.Errorf("write master key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return MasterKey{}, false, fmt.Errorf("sync master key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return MasterKey{}, false, fmt.Errorf("close master key file: %w", err)
	}
	key, err = NewMasterKey(raw)
	return key, true, err
}

// ID is a short fingerprint of the master key (a key check value: the first 8
// bytes of a domain-separated SHA-256), stored beside every wrapped key and in
// the log's head so readers pick the right key and a process holding another
// key is refused. It reveals nothing of the key.
func (m MasterKey) ID() string { return m.id }

// NewDataKey returns a fresh random data key.
func NewDataKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("generate data key: %w", err)
	}
	return k, nil
}

// Wrap encrypts a data key for the stream; the stream id is authenticated so
// a wrapped key cannot be moved to another customer.
func (m MasterKey) Wrap(dataKey []byte, stream uuid.UUID) ([]byte, error) {
	return seal(m.aead, dataKey, stream[:])
}

// Unwrap decrypts a data key wrapped for the stream.
func (m MasterKey) Unwrap(wrapped []byte, stream uuid.UUID) ([]byte, error) {
	k, err := open(m.aead, wrapped, stream[:])
	if err != nil {
		return nil, ErrUnwrap
	}
	return k, nil
}

// Cipher encrypts and decrypts one customer's personal fields.
type Cipher struct {
	aead   cipher.AEAD
	stream uuid.UUID
}

// NewCipher returns the cipher of a customer's data key.
func NewCipher(dataKey []byte, stream uuid.UUID) (*Cipher, error) {
	aead, err := newAEAD(dataKey)
	if err != nil {
		return nil, err
	}
	return &Cipher{aead: aead, stream: stream}, nil
}

// Seal encrypts a field value; field names the field ("contact.phone") and is
// authenticated so ciphertexts cannot be swapped between fields.
func (c *Cipher) Seal(field, plaintext string) (string, error) {
	ct, err := seal(c.aead, []byte(plaintext), c.aad(field))
	if err != nil {
		return "", err
	}
	return SealedPrefix + base64.RawStdEncoding.EncodeToString(ct), nil
}

// Open decrypts a value produced by Seal for the same field.
func (c *Cipher) Open(field, sealed string) (string, error) {
	if !IsSealed(sealed) {
		return "", ErrNotSealed
	}
	ct, err := base64.RawStdEncoding.DecodeString(sealed[len(SealedPrefix):])
	if err != nil {
		return "", fmt.Errorf("decode sealed %s: %w", field, err)
	}
	pt, err := open(c.aead, ct, c.aad(field))
	if err != nil {
		return "", fmt.Errorf("open sealed %s: %w", field, err)
	}
	return string(pt), nil
}

func (c *Cipher) aad(field string) []byte {
	return append(append(c.stream[:len(c.stream):len(c.stream)], 0), field...)
}

// IsSealed reports whether s is a sealed value.
func IsSealed(s string) bool { return strings.HasPrefix(s, SealedPrefix) }

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("gcm: %w", err)
	}
	return aead, nil
}

func seal(aead cipher.AEAD, plaintext, aad []byte) ([]byte, error) {
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return aead.Seal(nonce, nonce, plaintext, aad), nil
}

func open(aead cipher.AEAD, ct, aad []byte) ([]byte, error) {
	if len(ct) < aead.NonceSize()+aead.Overhead() {
		return nil, errors.New("ciphertext too short")
	}
	return aead.Open(nil, ct[:aead.NonceSize()], ct[aead.NonceSize():], aad)
}
