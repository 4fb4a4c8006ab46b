package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/segments-dev/segments/notify"
)

// demoMailbox is the SMTP catcher `serve --demo` starts when no routes file
// is given, so its alerts reach a person without any setup: every mail is
// printed to the terminal and kept as an .eml file under the data
// directory (open it with any mail client). It accepts mail from loopback
// only, without TLS or authentication, like Mailpit.
type demoMailbox struct {
	srv  *smtp.Server
	addr string
	dir  string
	out  io.Writer
	log  *slog.Logger

	mu    sync.Mutex
	mails []demoMail
	// arrived is signalled (without blocking) at each mail, for tests.
	arrived chan struct{}
}

// demoMail is a received mail: envelope, decoded subject and text part.
type demoMail struct {
	From    string
	To      []string
	Subject string
	Text    string
	File    string
}

// startDemoMailbox listens on a free loopback port and keeps mails in dir.
func startDemoMailbox(ctx context.Context, dir string, out io.Writer, log *slog.Logger) (*demoMailbox, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("demo mailbox: %w", err)
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo mailbox: %w", err)
	}
	b := &demoMailbox{addr: ln.Addr().String(), dir: dir, out: out, log: log, arrived: make(chan struct{}, 1)}
	b.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &demoSession{box: b}, nil }))
	b.srv.Domain = "segments.local"
	b.srv.ReadTimeout = time.Minute
	b.srv.WriteTimeout = time.Minute
	b.srv.MaxMessageBytes = 1 << 20
	go func() { _ = b.srv.Serve(ln) }()
	return b, nil
}

func (b *demoMailbox) close() { _ = b.srv.Close() }

// received returns the mails received so far.
func (b *demoMailbox) received() []demoMail {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]demoMail(nil), b.mails...)
}

// keep decodes, files and prints one mail.
func (b *demoMailbox) keep(from string, to []string, data []byte) error {
	m := demoMail{From: from, To: to}
	subject, text, err := decodeMail(data)
	if err != nil {
		b.log.Warn("demo mailbox: a mail could not be decoded; kept as is", "err", err)
	}
	m.Subject, m.Text = subject, text
	b.mu.Lock()
	n := len(b.mails) + 1
	m.File = filepath.Join(b.dir, fmt.Sprintf("%s-%03d.eml", time.Now().Format("20060102-150405"), n))
	b.mails = append(b.mails, m)
	b.mu.Unlock()
	if err := os.WriteFile(m.File, data, 0o600); err != nil {
		return fmt.Errorf("demo mailbox: %w", err)
	}
	b.log.Info("demo: a mail arrived in the demo mailbox", "to", strings.Join(to, ","), "subject", subject, "file", m.File)
	rule := strings.Repeat("─", 72)
	_, _ = fmt.Fprintf(b.out, "%s\n收件人 To: %s\n主题 Subject: %s\n\n%s%s\n", rule, strings.Join(to, ", "), subject, text, rule)
	select {
	case b.arrived <- struct{}{}:
	default:
	}
	return nil
}

// decodeMail returns a mail's subject and its text/plain part (the whole
// body when it is not multipart).
func decodeMail(data []byte) (subject, text string, err error) {
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return "", "", err
	}
	if subject, err = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject")); err != nil {
		subject = msg.Header.Get("Subject")
	}
	mediaType, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mediaType, "multipart/") {
		body, err := decodePart(msg.Body, msg.Header.Get("Content-Transfer-Encoding"))
		return subject, body, err
	}
	r := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := r.NextPart()
		if errors.Is(err, io.EOF) {
			return subject, "", errors.New("no text/plain part")
		}
		if err != nil {
			return subject, "", err
		}
		if strings.HasPrefix(p.Header.Get("Content-Type"), "text/plain") {
			// multipart decodes quoted-printable itself and drops the header.
			body, err := decodePart(p, p.Header.Get("Content-Transfer-Encoding"))
			return subject, body, err
		}
	}
}

func decodePart(r io.Reader, encoding string) (string, error) {
	switch strings.ToLower(encoding) {
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, r)
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	}
	b, err := io.ReadAll(r)
	return string(b), err
}

// demoSession is one SMTP conversation with the demo mailbox.
type demoSession struct {
	box  *demoMailbox
	from string
	to   []string
}

func (s *demoSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}

func (s *demoSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *demoSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	return s.box.keep(s.from, s.to, data)
}

func (s *demoSession) Reset()        { s.from, s.to = "", nil }
func (s *demoSession) Logout() error { return nil }

// demoRoutes is the routes file of the demo mailbox: every alert, reminder
// and digest by email, in Chinese, linking to this instance's workbench.
// It is written next to the mails so it can be read and copied.
const demoRoutes = `# The routes of segmentd serve --demo without SEGMENTS_NOTIFY: every alert is
# mailed to the demo's embedded SMTP catcher (written by segmentd; not read back).
# For Mailpit instead: docker compose up -d mailpit
#                      SEGMENTS_NOTIFY=deploy/notify-local.yaml go run ./cmd/segmentd serve --demo
base_url: %s
channels:
  mailbox:
    type: email
    smtp: "%s"
    tls: none            # a local catcher; real servers use STARTTLS (the default)
    from: segments@segments.local
    to: [success-team@segments.local]
routes:
  - channels: [mailbox]
`

// demoDelivery starts the demo mailbox and routes every alert to it.
func (a *app) demoDelivery(ctx context.Context, baseURL string) error {
	box, err := startDemoMailbox(ctx, filepath.Join(a.cfg.DataDir, "demo-mail"), a.demoOut(), a.Log)
	if err != nil {
		return err
	}
	text := fmt.Sprintf(demoRoutes, baseURL, box.addr)
	file := filepath.Join(box.dir, "notify-demo.yaml")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		box.close()
		return fmt.Errorf("demo mailbox: %w", err)
	}
	cfg, err := notify.ParseConfig(file, []byte(text), vocabulary(a.Config.Rules, a.cfg.Location), os.LookupEnv)
	if err != nil {
		box.close()
		return err
	}
	a.Notify = cfg
	a.mailbox.Store(box)
	return nil
}

// demoOut is where the demo mailbox prints mails (stderr, like the log).
func (a *app) demoOut() io.Writer {
	if a.demoPrint != nil {
		return a.demoPrint
	}
	return os.Stderr
}
