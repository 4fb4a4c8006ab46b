package notify

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Channel is one destination of the routes file, ready to send.
type Channel struct {
	Name     string
	Type     string
	Language Lang
	// RatePerMinute limits messages per minute (0: unlimited); above it,
	// waiting deliveries are merged into one digest message.
	RatePerMinute int
	sender        sender
}

// outgoing is one message to send: the deliveries it carries (one, or
// several merged), their idempotency key and the rendered text.
type outgoing struct {
	Key   string
	Items []Item
	Body  composed
	Lang  Lang
}

type sender interface {
	send(ctx context.Context, m *outgoing) error
}

// SendError is a channel's refusal or failure, as the service reported it.
type SendError struct {
	Channel string
	// Status is the HTTP status or SMTP reply code (0 when none came).
	Status int
	// Code is the service's own error code (DingTalk/WeCom errcode,
	// Feishu code), 0 when none.
	Code    int
	Message string
	// RateLimited: the service said too many messages; RetryAfter, when
	// known, is how long it asked to wait.
	RateLimited bool
	RetryAfter  time.Duration
	Err         error
}

func (e *SendError) Error() string {
	s := e.Channel + ": "
	if e.Status != 0 {
		s += fmt.Sprintf("status %d ", e.Status)
	}
	if e.Code != 0 {
		s += fmt.Sprintf("code %d ", e.Code)
	}
	if e.Message != "" {
		s += e.Message
	}
	if e.Err != nil {
		s += e.Err.Error()
	}
	return s
}

func (e *SendError) Unwrap() error { return e.Err }

// Send delivers items on the channel under the idempotency key (tests and
// the notifier's dispatcher).
func (c *Channel) Send(ctx context.Context, key string, items []Item, baseURL string, loc *time.Location) error {
	m := &outgoing{Key: key, Items: items, Lang: c.Language,
		Body: composer{lang: c.Language, baseURL: baseURL, loc: loc}.compose(items)}
	return c.send(ctx, m)
}

// SendDaily delivers an owner's daily digest on the channel.
func (c *Channel) SendDaily(ctx context.Context, key string, d *Daily, baseURL string, loc *time.Location) error {
	m := &outgoing{Key: key, Items: d.items(), Lang: c.Language,
		Body: composer{lang: c.Language, baseURL: baseURL, loc: loc}.daily(d)}
	return c.send(ctx, m)
}

func (c *Channel) send(ctx context.Context, m *outgoing) error {
	err := c.sender.send(ctx, m)
	if se, ok := errors.AsType[*SendError](err); ok {
		se.Channel = c.Name
		return se
	}
	if err != nil {
		return &SendError{Channel: c.Name, Err: err}
	}
	return nil
}
