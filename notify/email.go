package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"slices"
	"strconv"

	"github.com/wneessen/go-mail"
)

type tlsMode int

const (
	tlsStartTLS tlsMode = iota // STARTTLS required
	tlsNone                    // plain (local catchers such as Mailpit)
)

// emailSender sends multipart (text + HTML) UTF-8 mail over SMTP with
// go-mail, to the channel's fixed recipients and, with to_owner, to the
// owner's (or the escalation manager's) address from people.
type emailSender struct {
	host, port         string
	from               string
	to                 []string
	toOwner            bool
	people             map[string]string
	username, password string
	tls                tlsMode
	tlsConfig          *tls.Config
}

// ErrNoRecipient: an email delivery whose owner has no address in people
// and a channel without fixed recipients.
var ErrNoRecipient = errors.New("no email address for the recipient")

func (e *emailSender) recipients(m *outgoing) []string {
	to := append([]string(nil), e.to...)
	if !e.toOwner {
		return to
	}
	for i := range m.Items {
		who := m.Items[i].Alert.Owner
		if m.Items[i].Recipient != "" {
			who = m.Items[i].Recipient
		}
		if addr, ok := e.people[who]; ok && !slices.Contains(to, addr) {
			to = append(to, addr)
		}
	}
	return to
}

func (e *emailSender) send(ctx context.Context, m *outgoing) error {
	to := e.recipients(m)
	if len(to) == 0 {
		return &SendError{Err: ErrNoRecipient}
	}
	msg := mail.NewMsg(mail.WithCharset(mail.CharsetUTF8))
	if err := msg.From(e.from); err != nil {
		return err
	}
	if err := msg.To(to...); err != nil {
		return err
	}
	msg.Subject(m.Body.Title)
	lang := "zh-CN"
	if m.Lang == LangEN {
		lang = "en"
	}
	msg.SetGenHeader(mail.HeaderContentLang, lang)
	msg.SetGenHeader("X-Segments-Idempotency-Key", m.Key)
	msg.SetMessageIDWithValue(m.Key + "@segments")
	msg.SetDate()
	msg.SetBodyString(mail.TypeTextPlain, m.Body.Text)
	msg.AddAlternativeString(mail.TypeTextHTML, m.Body.HTML)
	client, err := e.client()
	if err != nil {
		return err
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		se := &SendError{Err: err}
		if sse, ok := errors.AsType[*mail.SendError](err); ok && sse.ErrorCode() != 0 {
			se.Status = sse.ErrorCode()
		}
		return se
	}
	return nil
}

func (e *emailSender) client() (*mail.Client, error) {
	port, err := strconv.Atoi(e.port)
	if err != nil {
		return nil, err
	}
	opts := []mail.Option{mail.WithPort(port)}
	switch e.tls {
	case tlsStartTLS:
		cfg := e.tlsConfig
		if cfg == nil {
			cfg = &tls.Config{ServerName: e.host, MinVersion: tls.VersionTLS12}
		}
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory), mail.WithTLSConfig(cfg))
	case tlsNone:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	}
	if e.username != "" {
		auth := mail.SMTPAuthPlain
		if e.tls == tlsNone {
			auth = mail.SMTPAuthPlainNoEnc
		}
		opts = append(opts, mail.WithSMTPAuth(auth), mail.WithUsername(e.username), mail.WithPassword(e.password))
	}
	return mail.NewClient(e.host, opts...)
}
