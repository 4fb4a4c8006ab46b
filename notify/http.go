package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json"
)

// Headers of the generic webhook.
const (
	// HeaderSignature is "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">"
	// with the channel's secret (SPEC §8).
	HeaderSignature = "X-Segments-Signature"
	// HeaderIdempotencyKey is the same for every attempt of one delivery.
	HeaderIdempotencyKey = "Idempotency-Key"
)

// httpSender posts to a webhook, a group robot or Slack, each in its own
// format (see the body and reply functions for the source of each).
type httpSender struct {
	kind    string
	address string
	secret  string
	client  *http.Client
	now     func() time.Time
}

func newHTTPSender(kind, address, secret string) *httpSender {
	return &httpSender{kind: kind, address: address, secret: secret, now: time.Now,
		client: &http.Client{Timeout: 10 * time.Second}}
}

func (s *httpSender) send(ctx context.Context, m *outgoing) error {
	address, body, header, err := s.request(m)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, address, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header = header
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set(HeaderIdempotencyKey, m.Key)
	resp, err := s.client.Do(req)
	if err != nil {
		return &SendError{Err: redactURL(err)}
	}
	defer func() { _ = resp.Body.Close() }()
	reply, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return s.reply(resp, reply)
}

// redactURL drops the address from a transport error: robot addresses
// carry their keys.
func redactURL(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

func (s *httpSender) request(m *outgoing) (string, []byte, http.Header, error) {
	header := http.Header{}
	address := s.address
	var body any
	switch s.kind {
	case TypeWebhook:
		alerts := make([]any, len(m.Items))
		for i := range m.Items {
			alerts[i] = webhookItem{Purpose: m.Items[i].Purpose, Recipient: m.Items[i].Recipient, Alert: &m.Items[i].Alert, Customer: &m.Items[i].Customer}
		}
		body = map[string]any{"idempotency_key": m.Key, "title": m.Body.Title, "text": m.Body.Text, "alerts": alerts}
	case TypeDingTalk:
		// DingTalk custom robot ("自定义机器人", open.dingtalk.com/document/
		// robots/custom-robot-access): POST …/robot/send?access_token=…
		// &timestamp=<ms>&sign=<urlencoded base64 HMAC-SHA256 of
		// "<timestamp>\n<secret>" keyed by the secret>; markdown body.
		ts := strconv.FormatInt(s.now().UnixMilli(), 10)
		address = withQuery(address, url.Values{"timestamp": {ts}, "sign": {DingTalkSign(ts, s.secret)}})
		body = map[string]any{"msgtype": "markdown", "markdown": map[string]string{"title": m.Body.Title, "text": m.Body.Markdown}}
	case TypeWeCom:
		// WeCom group robot ("群机器人", developer.work.weixin.qq.com/document/
		// path/91770): POST …/cgi-bin/webhook/send?key=…; the key in the
		// address is the only credential; markdown content ≤ 4096 bytes.
		body = map[string]any{"msgtype": "markdown", "markdown": map[string]string{"content": truncateUTF8(m.Body.Markdown, 4096)}}
	case TypeFeishu:
		// Feishu custom bot ("自定义机器人", open.feishu.cn/document/
		// client-docs/bot-v3/add-custom-bot): timestamp (seconds) and sign in
		// the body; sign = base64 HMAC-SHA256 keyed by "<timestamp>\n<secret>"
		// over an empty message.
		ts := strconv.FormatInt(s.now().Unix(), 10)
		body = map[string]any{"timestamp": ts, "sign": FeishuSign(ts, s.secret), "msg_type": "text",
			"content": map[string]string{"text": m.Body.Text}}
	case TypeSlack:
		// Slack incoming webhook (api.slack.com/messaging/webhooks): "text"
		// is the notification fallback, "blocks" the message in mrkdwn.
		body = map[string]any{"text": m.Body.Title, "blocks": []any{map[string]any{"type": "section",
			"text": map[string]string{"type": "mrkdwn", "text": slackMarkdown(m.Body.Markdown)}}}}
	}
	data, err := json.Marshal(body, json.Deterministic(true))
	if err != nil {
		return "", nil, nil, err
	}
	if s.kind == TypeWebhook {
		ts := strconv.FormatInt(s.now().Unix(), 10)
		header.Set(HeaderSignature, "t="+ts+",v1="+WebhookSignature(ts, data, s.secret))
	}
	return address, data, header, nil
}

type webhookItem struct {
	Purpose   string        `json:"purpose"`
	Recipient string        `json:"recipient,omitempty"`
	Alert     *Alert        `json:"alert"`
	Customer  *CustomerInfo `json:"customer"`
}

// WebhookSignature is the hex HMAC-SHA256 of "<t>.<body>" under secret.
func WebhookSignature(t string, body []byte, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(t + "."))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// DingTalkSign is base64 HMAC-SHA256 of "<timestamp>\n<secret>" keyed by secret.
func DingTalkSign(timestamp, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp + "\n" + secret))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// FeishuSign is base64 HMAC-SHA256 keyed by "<timestamp>\n<secret>" over
// an empty message.
func FeishuSign(timestamp, secret string) string {
	mac := hmac.New(sha256.New, []byte(timestamp+"\n"+secret))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func withQuery(address string, q url.Values) string {
	sep := "?"
	if strings.Contains(address, "?") {
		sep = "&"
	}
	return address + sep + q.Encode()
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// slackMarkdown turns "[text](url)" links and "### " headings into Slack's
// mrkdwn ("<url|text>", bold).
func slackMarkdown(md string) string {
	var b strings.Builder
	for l := range strings.Lines(md) {
		if h, ok := strings.CutPrefix(l, "### "); ok {
			l = "*" + strings.TrimRight(h, "\n") + "*\n"
		}
		for {
			i := strings.Index(l, "](")
			open := strings.LastIndex(l[:max(i, 0)], "[")
			end := strings.Index(l[max(i, 0):], ")")
			if i < 0 || open < 0 || end < 0 {
				break
			}
			end += i
			l = l[:open] + "<" + l[i+2:end] + "|" + l[open+1:i] + ">" + l[end+1:]
		}
		b.WriteString(l)
	}
	return b.String()
}

// robotReply is the JSON reply of DingTalk and WeCom ({errcode, errmsg})
// and Feishu ({code, msg}, older versions {StatusCode, StatusMessage}).
type robotReply struct {
	ErrCode       *int   `json:"errcode"`
	ErrMsg        string `json:"errmsg"`
	Code          *int   `json:"code"`
	Msg           string `json:"msg"`
	StatusCode    *int   `json:"StatusCode"`
	StatusMessage string `json:"StatusMessage"`
}

// Service error codes meaning "too many messages": DingTalk 130101 (send
// too fast), WeCom 45009 (api freq out of limit), Feishu 11232 (frequency
// limited).
var rateLimitCodes = map[string]int{TypeDingTalk: 130101, TypeWeCom: 45009, TypeFeishu: 11232}

func (s *httpSender) reply(resp *http.Response, body []byte) error {
	se := &SendError{Status: resp.StatusCode}
	if resp.StatusCode == http.StatusTooManyRequests {
		se.RateLimited = true
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
			se.RetryAfter = time.Duration(secs) * time.Second
		}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		se.Message = strings.TrimSpace(truncateUTF8(string(body), 200))
		return se
	}
	if s.kind == TypeWebhook || s.kind == TypeSlack {
		return nil // Slack answers 200 "ok"; errors come as 4xx
	}
	var r robotReply
	if err := json.Unmarshal(body, &r); err != nil {
		se.Message = "unreadable reply: " + truncateUTF8(string(body), 200)
		return se
	}
	code, msg := 0, ""
	switch {
	case r.ErrCode != nil:
		code, msg = *r.ErrCode, r.ErrMsg
	case r.Code != nil:
		code, msg = *r.Code, r.Msg
	case r.StatusCode != nil:
		code, msg = *r.StatusCode, r.StatusMessage
	}
	if code == 0 {
		return nil
	}
	se.Code, se.Message = code, msg
	if code == rateLimitCodes[s.kind] {
		se.RateLimited = true
	}
	return se
}
