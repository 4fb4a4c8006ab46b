package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/google/uuid"
)

// robotServer is a receiver that checks what the real service checks and
// answers as it does; reply decides the answer to an accepted request.
type robotServer struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	bodies []map[string]any
	keys   []string
}

func (r *robotServer) received() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]map[string]any(nil), r.bodies...)
}

func startRobot(t *testing.T, check func(req *http.Request, body []byte) (int, string)) *robotServer {
	r := &robotServer{t: t}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		status, reply := check(req, body)
		if status == http.StatusOK {
			var m map[string]any
			if err := json.Unmarshal(body, &m, json.MatchCaseInsensitiveNames(true)); err != nil {
				t.Errorf("body is not JSON: %v", err)
			}
			r.mu.Lock()
			r.bodies = append(r.bodies, m)
			r.keys = append(r.keys, req.Header.Get(HeaderIdempotencyKey))
			r.mu.Unlock()
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, reply)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func testItem(t *testing.T) Item {
	t.Helper()
	due := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	return Item{Purpose: PurposeAlert, Customer: CustomerInfo{MaskedName: "李某", ValueTier: "key"}, Alert: Alert{
		ID: uuid.New(), Customer: "C001", Kind: "activity_dropped", Display: "活跃度下降", From: "high", To: "low",
		Reason: "近 30 天无订单", ReasonEN: "no order in 30 days", DueAt: &due, Owner: "张三", Playbook: "电话回访",
	}}
}

func mustChannel(t *testing.T, yamlText string, env map[string]string) *Channel {
	t.Helper()
	cfg, err := ParseConfig("notify.yaml", []byte(yamlText), testVocabulary, mapEnv(env))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Channels["c"]
}

var testVocabulary = Vocabulary{Kinds: []string{"activity_dropped", "churn_risk", "followup_overdue"},
	ValueTiers: []string{"strategic", "key", "potential"}, Tags: []string{"流失预警"}, Location: time.UTC}

func mapEnv(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func channelYAML(typ, extra string) string {
	return "base_url: http://workbench.test\nchannels:\n  c:\n    type: " + typ + "\n" + extra + "routes:\n  - channels: [c]\n"
}

func TestTheGenericWebhookIsSignedOverTimestampAndBodyAndCarriesTheIdempotencyKey(t *testing.T) {
	const secret = "s3cret"
	r := startRobot(t, func(req *http.Request, body []byte) (int, string) {
		sig := req.Header.Get(HeaderSignature)
		ts, v1, ok := strings.Cut(strings.TrimPrefix(sig, "t="), ",v1=")
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(ts + "." + string(body)))
		if !ok || !hmac.Equal([]byte(v1), []byte(hex.EncodeToString(mac.Sum(nil)))) {
			return http.StatusUnauthorized, "bad signature"
		}
		return http.StatusOK, ""
	})
	ch := mustChannel(t, channelYAML("webhook", "    url: "+r.srv.URL+"\n    secret_env: HOOK\n"), map[string]string{"HOOK": secret})
	it := testItem(t)
	if err := ch.Send(context.Background(), "k-1", []Item{it}, "http://workbench.test", time.UTC); err != nil {
		t.Fatal(err)
	}
	got := r.received()
	if len(got) != 1 || r.keys[0] != "k-1" || got[0]["idempotency_key"] != "k-1" {
		t.Fatalf("received %v keys %v", got, r.keys)
	}
	alerts := got[0]["alerts"].([]any)
	if alerts[0].(map[string]any)["alert"].(map[string]any)["alert_id"] != it.Alert.ID.String() {
		t.Fatalf("body %v", got[0])
	}
	text := got[0]["text"].(string)
	for _, want := range []string{"C001 李某", "high → low", "近 30 天无订单", "2026-12-04 10:00", "张三", "电话回访", "http://workbench.test/#/customers/C001"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	wrong := mustChannel(t, channelYAML("webhook", "    url: "+r.srv.URL+"\n    secret_env: HOOK\n"), map[string]string{"HOOK": "other"})
	var se *SendError
	if err := wrong.Send(context.Background(), "k-2", []Item{it}, "", time.UTC); !errors.As(err, &se) || se.Status != http.StatusUnauthorized {
		t.Fatalf("a wrong key: %v", err)
	}
}

// dingTalk checks a request as DingTalk's custom robot does: timestamp in
// ms within an hour, sign = base64 HMAC-SHA256("ts\nsecret"), msgtype.
func dingTalk(secret string, tooFast *bool) func(*http.Request, []byte) (int, string) {
	return func(req *http.Request, body []byte) (int, string) {
		q := req.URL.Query()
		ts, _ := strconv.ParseInt(q.Get("timestamp"), 10, 64)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(q.Get("timestamp") + "\n" + secret))
		if q.Get("access_token") != "tok" || time.Since(time.UnixMilli(ts)).Abs() > time.Hour ||
			q.Get("sign") != base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
			return http.StatusOK, `{"errcode":310000,"errmsg":"sign not match"}`
		}
		var m struct {
			Msgtype  string `json:"msgtype"`
			Markdown struct{ Title, Text string }
		}
		if json.Unmarshal(body, &m, json.MatchCaseInsensitiveNames(true)) != nil || m.Msgtype != "markdown" || m.Markdown.Title == "" || m.Markdown.Text == "" {
			return http.StatusOK, `{"errcode":40035,"errmsg":"缺少参数 json"}`
		}
		if tooFast != nil && *tooFast {
			return http.StatusOK, `{"errcode":130101,"errmsg":"send too fast, exceed 20 times per minute"}`
		}
		return http.StatusOK, `{"errcode":0,"errmsg":"ok"}`
	}
}

func TestDingTalkMessagesAreSignedAsTheRobotChecksAndSendTooFastIsRateLimiting(t *testing.T) {
	tooFast := false
	r := startRobot(t, dingTalk("SECabc", &tooFast))
	env := map[string]string{"DING_URL": r.srv.URL + "/robot/send?access_token=tok", "DING_SECRET": "SECabc"}
	ch := mustChannel(t, channelYAML("dingtalk", "    url_env: DING_URL\n    secret_env: DING_SECRET\n"), env)
	if err := ch.Send(context.Background(), "k", []Item{testItem(t)}, "", time.UTC); err != nil {
		t.Fatal(err)
	}
	if got := r.received(); len(got) != 1 || !strings.Contains(got[0]["markdown"].(map[string]any)["text"].(string), "近 30 天无订单") {
		t.Fatalf("received %v", got)
	}
	tooFast = true
	var se *SendError
	if err := ch.Send(context.Background(), "k", []Item{testItem(t)}, "", time.UTC); !errors.As(err, &se) || !se.RateLimited || se.Code != 130101 {
		t.Fatalf("send too fast: %v", err)
	}
	env["DING_SECRET"] = "SECwrong"
	bad := mustChannel(t, channelYAML("dingtalk", "    url_env: DING_URL\n    secret_env: DING_SECRET\n"), env)
	if err := bad.Send(context.Background(), "k", []Item{testItem(t)}, "", time.UTC); !errors.As(err, &se) || se.Code != 310000 || se.RateLimited {
		t.Fatalf("a wrong secret: %v", err)
	}
}

func TestFeishuMessagesCarryTimestampAndSignInTheBody(t *testing.T) {
	const secret = "fs-secret"
	r := startRobot(t, func(_ *http.Request, body []byte) (int, string) {
		var m struct {
			Timestamp, Sign string
			MsgType         string `json:"msg_type"`
			Content         struct{ Text string }
		}
		if err := json.Unmarshal(body, &m, json.MatchCaseInsensitiveNames(true)); err != nil {
			return http.StatusBadRequest, `{"code":9499,"msg":"Bad Request"}`
		}
		ts, _ := strconv.ParseInt(m.Timestamp, 10, 64)
		mac := hmac.New(sha256.New, []byte(m.Timestamp+"\n"+secret))
		if time.Since(time.Unix(ts, 0)).Abs() > time.Hour || m.Sign != base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
			return http.StatusOK, `{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}`
		}
		if m.MsgType != "text" || !strings.Contains(m.Content.Text, "张三") {
			return http.StatusOK, `{"code":9499,"msg":"Bad Request"}`
		}
		return http.StatusOK, `{"code":0,"msg":"success","data":{}}`
	})
	ch := mustChannel(t, channelYAML("feishu", "    url_env: FS_URL\n    secret_file: "+writeFile(t, secret)+"\n"), map[string]string{"FS_URL": r.srv.URL})
	if err := ch.Send(context.Background(), "k", []Item{testItem(t)}, "", time.UTC); err != nil {
		t.Fatal(err)
	}
	bad := mustChannel(t, channelYAML("feishu", "    url_env: FS_URL\n    secret_env: S\n"), map[string]string{"FS_URL": r.srv.URL, "S": "x"})
	var se *SendError
	if err := bad.Send(context.Background(), "k", []Item{testItem(t)}, "", time.UTC); !errors.As(err, &se) || se.Code != 19021 {
		t.Fatalf("a wrong secret: %v", err)
	}
}

func TestWeComMessagesAreMarkdownWithTheKeyInTheAddressAndFrequencyLimitIsRateLimiting(t *testing.T) {
	limited := false
	r := startRobot(t, func(req *http.Request, body []byte) (int, string) {
		if req.URL.Query().Get("key") != "good-key" {
			return http.StatusOK, `{"errcode":93000,"errmsg":"invalid webhook url"}`
		}
		var m struct {
			Msgtype  string `json:"msgtype"`
			Markdown struct{ Content string }
		}
		if json.Unmarshal(body, &m, json.MatchCaseInsensitiveNames(true)) != nil || m.Msgtype != "markdown" || m.Markdown.Content == "" || len(m.Markdown.Content) > 4096 {
			return http.StatusOK, `{"errcode":40008,"errmsg":"invalid message type"}`
		}
		if limited {
			return http.StatusOK, `{"errcode":45009,"errmsg":"api freq out of limit"}`
		}
		return http.StatusOK, `{"errcode":0,"errmsg":"ok"}`
	})
	ch := mustChannel(t, channelYAML("wecom", "    url_env: WX\n"), map[string]string{"WX": r.srv.URL + "/cgi-bin/webhook/send?key=good-key"})
	if err := ch.Send(context.Background(), "k", []Item{testItem(t)}, "", time.UTC); err != nil {
		t.Fatal(err)
	}
	limited = true
	var se *SendError
	if err := ch.Send(context.Background(), "k", []Item{testItem(t)}, "", time.UTC); !errors.As(err, &se) || !se.RateLimited || se.Code != 45009 {
		t.Fatalf("frequency limit: %v", err)
	}
	bad := mustChannel(t, channelYAML("wecom", "    url_env: WX\n"), map[string]string{"WX": r.srv.URL + "/cgi-bin/webhook/send?key=bad"})
	if err := bad.Send(context.Background(), "k", []Item{testItem(t)}, "", time.UTC); !errors.As(err, &se) || se.Code != 93000 || strings.Contains(err.Error(), "key=bad") {
		t.Fatalf("a bad key: %v", err)
	}
}

func TestSlackMessagesHaveFallbackTextAndMrkdwnBlocksInEnglishWhenAsked(t *testing.T) {
	r := startRobot(t, func(req *http.Request, body []byte) (int, string) {
		if !strings.HasPrefix(req.URL.Path, "/services/") {
			return http.StatusNotFound, "no_service"
		}
		var m struct {
			Text   string
			Blocks []struct {
				Type string
				Text struct{ Type, Text string }
			}
		}
		if json.Unmarshal(body, &m, json.MatchCaseInsensitiveNames(true)) != nil || m.Text == "" || len(m.Blocks) != 1 || m.Blocks[0].Text.Type != "mrkdwn" {
			return http.StatusBadRequest, "invalid_payload"
		}
		return http.StatusOK, "ok"
	})
	ch := mustChannel(t, channelYAML("slack", "    language: en\n    url_env: SLACK\n"), map[string]string{"SLACK": r.srv.URL + "/services/T/B/X"})
	if err := ch.Send(context.Background(), "k", []Item{testItem(t)}, "http://wb", time.UTC); err != nil {
		t.Fatal(err)
	}
	text := r.received()[0]["blocks"].([]any)[0].(map[string]any)["text"].(map[string]any)["text"].(string)
	if !strings.Contains(text, "no order in 30 days") || !strings.Contains(text, "<http://wb/#/customers/C001|") {
		t.Fatalf("mrkdwn %q", text)
	}
	bad := mustChannel(t, channelYAML("slack", "    url_env: SLACK\n"), map[string]string{"SLACK": r.srv.URL + "/hooks/x"})
	var se *SendError
	if err := bad.Send(context.Background(), "k", []Item{testItem(t)}, "", time.UTC); !errors.As(err, &se) || se.Status != http.StatusNotFound {
		t.Fatalf("a wrong address: %v", err)
	}
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	f, err := createTemp(t)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content + "\n"); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	return f.Name()
}
