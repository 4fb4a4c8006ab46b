package workbench

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"sync"
	"time"

	"github.com/segments-dev/segments/auth"
)

// CookieName is the workbench's session cookie.
const CookieName = "segments_session"

// session is one logged-in browser. The store is server-side and in memory:
// the cookie holds only a random id, so a session ends with logout, expiry
// or a restart of segmentd (the user logs in again), and the bearer secret
// it stands for never leaves the server.
type session struct {
	secret  string      // the bearer token's secret; "" in open mode
	token   *auth.Token // nil in open mode
	csrf    string
	expires time.Time
}

// sessions maps the SHA-256 of a cookie value to its session.
type sessions struct {
	mu  sync.Mutex
	ttl time.Duration
	now func() time.Time
	m   map[[sha256.Size]byte]*session
}

func newSessions(ttl time.Duration, now func() time.Time) *sessions {
	return &sessions{ttl: ttl, now: now, m: map[[sha256.Size]byte]*session{}}
}

// randomID is 32 random bytes, base64url.
func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it panics instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session and returns its cookie value.
func (s *sessions) create(tok *auth.Token, secret string) (string, *session) {
	id := randomID()
	ses := &session{secret: secret, token: tok, csrf: randomID(), expires: s.now().Add(s.ttl)}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for k, v := range s.m { // expired sessions go at each login
		if now.After(v.expires) {
			delete(s.m, k)
		}
	}
	s.m[sha256.Sum256([]byte(id))] = ses
	return id, ses
}

// get returns the live session of a cookie value.
func (s *sessions) get(id string) *session {
	if id == "" {
		return nil
	}
	k := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	ses := s.m[k]
	if ses == nil {
		return nil
	}
	if s.now().After(ses.expires) {
		delete(s.m, k)
		return nil
	}
	return ses
}

func (s *sessions) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, sha256.Sum256([]byte(id)))
}

// csrfOK compares a request's CSRF header with the session's, in constant
// time.
func (ses *session) csrfOK(header string) bool {
	return header != "" && subtle.ConstantTimeCompare([]byte(header), []byte(ses.csrf)) == 1
}
