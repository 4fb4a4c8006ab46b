package notify

import (
	"errors"
	"strings"
	"testing"
)

func TestARoutesFileThatCannotWorkIsRefusedWithLineAndField(t *testing.T) {
	env := mapEnv(map[string]string{"HOOK": "k", "URL": "http://robot.test/send"})
	cases := []struct {
		name, yaml, field string
		line              int
	}{
		{"unknown channel type", "channels:\n  a:\n    type: pager\nroutes:\n  - channels: [a]\n", "channels.a.type", 3},
		{"unknown channel in a route", "channels:\n  a:\n    type: webhook\n    url: http://x\n    secret_env: HOOK\nroutes:\n  - channels: [a, b]\n", "routes[0].channels[1]", 7},
		{"missing secret", "channels:\n  a:\n    type: webhook\n    url: http://x\n    secret_env: NOPE\nroutes:\n  - channels: [a]\n", "channels.a.secret_env", 5},
		{"no secret given", "channels:\n  a:\n    type: dingtalk\n    url_env: URL\nroutes:\n  - channels: [a]\n", "channels.a.secret_env", 2},
		{"robot address in the file", "channels:\n  a:\n    type: wecom\n    url: http://x/?key=1\nroutes:\n  - channels: [a]\n", "channels.a.url", 4},
		{"invalid address", "channels:\n  a:\n    type: webhook\n    url: ftp://x\n    secret_env: HOOK\nroutes:\n  - channels: [a]\n", "channels.a.url", 4},
		{"invalid email address", "channels:\n  m:\n    type: email\n    smtp: mail:587\n    from: segments@example.com\n    to: [not-an-address]\nroutes:\n  - channels: [m]\n", "channels.m.to[0]", 6},
		{"route matching nothing", "channels:\n  a:\n    type: webhook\n    url: http://x\n    secret_env: HOOK\nroutes:\n  - match:\n      kind: [churn_risk, chrun_risk]\n    channels: [a]\n", "routes[0].match.kind[1]", 8},
		{"unknown tier", "channels:\n  a:\n    type: webhook\n    url: http://x\n    secret_env: HOOK\nroutes:\n  - match:\n      value_tier: [gold]\n    channels: [a]\n", "routes[0].match.value_tier[0]", 8},
		{"unknown field", "channels:\n  a:\n    type: webhook\n    url: http://x\n    secret: inline\nroutes:\n  - channels: [a]\n", "$", 5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseConfig("notify.yaml", []byte(c.yaml), testVocabulary, env)
			var ce *ConfigError
			if !errors.As(err, &ce) || !errors.Is(err, ErrConfig) {
				t.Fatalf("want a ConfigError, got %v", err)
			}
			if ce.Field != c.field || ce.Line != c.line {
				t.Fatalf("got %s (field %q line %d), want field %q line %d", err, ce.Field, ce.Line, c.field, c.line)
			}
			if !strings.HasPrefix(err.Error(), "notify.yaml:") {
				t.Fatalf("error names no file: %v", err)
			}
		})
	}
}

func TestRoutesSelectChannelsByKindTierOwnerAndTags(t *testing.T) {
	y := `channels:
  a: {type: webhook, url: "http://a", secret_env: HOOK}
  b: {type: webhook, url: "http://b", secret_env: HOOK}
  c: {type: webhook, url: "http://c", secret_env: HOOK}
routes:
  - match: {kind: [churn_risk], value_tier: [strategic, key]}
    channels: [a]
  - match: {owner: [张三], tags: [流失预警]}
    channels: [b, a]
  - channels: [c]
`
	cfg, err := ParseConfig("n.yaml", []byte(y), testVocabulary, mapEnv(map[string]string{"HOOK": "k"}))
	if err != nil {
		t.Fatal(err)
	}
	got := func(kind, owner, tier string, tags ...string) string {
		return strings.Join(cfg.ChannelsFor(&Alert{Kind: kind, Owner: owner}, &CustomerInfo{ValueTier: tier, Tags: tags}), ",")
	}
	if g := got("churn_risk", "李四", "key"); g != "a,c" {
		t.Errorf("churn of a key customer: %s", g)
	}
	if g := got("churn_risk", "李四", "potential"); g != "c" {
		t.Errorf("churn of a potential customer: %s", g)
	}
	if g := got("activity_dropped", "张三", "potential", "流失预警"); g != "b,a,c" {
		t.Errorf("tagged customer of 张三: %s", g)
	}
	if g := got("activity_dropped", "张三", "potential"); g != "c" {
		t.Errorf("untagged customer of 张三: %s", g)
	}
}
