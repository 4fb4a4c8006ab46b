package notify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"mime"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// smtpServer is a real SMTP server (go-smtp) that requires STARTTLS before
// PLAIN authentication, as submission servers do, and keeps what it got.
type smtpServer struct {
	addr, caFile string
	mu           sync.Mutex
	mails        []receivedMail
	tlsSeen      bool
}

type receivedMail struct {
	from string
	to   []string
	data []byte
}

type smtpSession struct {
	srv  *smtpServer
	conn *smtp.Conn
	cur  receivedMail
	auth bool
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *smtpSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, username, password string) error {
		if username != "segments" || password != "mail-pass" {
			return errors.New("invalid credentials")
		}
		s.auth = true
		return nil
	}), nil
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if !s.auth {
		return smtp.ErrAuthRequired
	}
	s.cur.from = from
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.srv.mu.Lock()
	s.srv.tlsSeen = s.srv.tlsSeen || isTLS
	s.cur.data = data
	s.srv.mails = append(s.srv.mails, s.cur)
	s.srv.mu.Unlock()
	return nil
}

func (s *smtpSession) Reset()        { s.cur = receivedMail{} }
func (s *smtpSession) Logout() error { return nil }

func startSMTP(t *testing.T) *smtpServer {
	t.Helper()
	cert, pemBytes := selfSigned(t)
	srv := &smtpServer{caFile: filepath.Join(t.TempDir(), "ca.pem")}
	if err := os.WriteFile(srv.caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &smtpSession{srv: srv, conn: c}, nil }))
	s.Domain = "localhost"
	s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	s.AllowInsecureAuth = false // PLAIN only after STARTTLS
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.addr = ln.Addr().String()
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close() })
	return srv
}

func selfSigned(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func emailChannel(t *testing.T, srv *smtpServer, password string) *Channel {
	return mustChannel(t, "people:\n  张三: {email: zhangsan@example.com}\nchannels:\n  c:\n    type: email\n    smtp: \""+srv.addr+"\"\n"+
		"    ca_file: "+srv.caFile+"\n    from: segments@example.com\n    to_owner: true\n    username_env: U\n    password_env: P\nroutes:\n  - channels: [c]\n",
		map[string]string{"U": "segments", "P": password})
}

func TestEmailGoesOverSTARTTLSWithAuthenticationAsMultipartChineseTextAndHTML(t *testing.T) {
	srv := startSMTP(t)
	ch := emailChannel(t, srv, "mail-pass")
	if err := ch.Send(context.Background(), "alert-key", []Item{testItem(t)}, "http://wb", time.UTC); err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.mails) != 1 || !srv.tlsSeen {
		t.Fatalf("mails %d, over TLS %v", len(srv.mails), srv.tlsSeen)
	}
	m := srv.mails[0]
	if m.from != "segments@example.com" || len(m.to) != 1 || m.to[0] != "zhangsan@example.com" {
		t.Fatalf("envelope %s → %v", m.from, m.to)
	}
	msg, err := mail.ReadMessage(strings.NewReader(string(m.data)))
	if err != nil {
		t.Fatal(err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil || !strings.Contains(subject, "活跃度下降") {
		t.Fatalf("subject %q %v", subject, err)
	}
	if msg.Header.Get("Content-Language") != "zh-CN" || msg.Header.Get("X-Segments-Idempotency-Key") != "alert-key" ||
		!strings.HasPrefix(msg.Header.Get("Content-Type"), "multipart/alternative") {
		t.Fatalf("headers %v", msg.Header)
	}
	body, _ := io.ReadAll(msg.Body)
	if !strings.Contains(string(body), "text/plain") || !strings.Contains(string(body), "text/html") {
		t.Fatalf("not text + HTML:\n%s", body)
	}
}

func TestAnEmailRefusedForBadCredentialsIsAFailedAttempt(t *testing.T) {
	srv := startSMTP(t)
	ch := emailChannel(t, srv, "wrong")
	var se *SendError
	err := ch.Send(context.Background(), "k", []Item{testItem(t)}, "", time.UTC)
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "SMTP AUTH failed") {
		t.Fatalf("bad credentials: %v", err)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.mails) != 0 {
		t.Fatal("a mail was accepted without authentication")
	}
}
