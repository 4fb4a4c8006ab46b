package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segments-dev/segments/internal/testenv"
)

func TestTheNotifierRefusesARoutesFileWhoseRouteMatchesNoAlertKindOfTheRules(t *testing.T) {
	rules, err := loadRules("")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "notify.yaml")
	text := "channels:\n  hook:\n    type: webhook\n    url: http://127.0.0.1:9/hook\n    secret_env: PATH\nroutes:\n  - match:\n      kind: [no_such_kind]\n    channels: [hook]\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = loadNotify(&config{Roles: []string{"notifier"}, NotifyFile: path}, rules, time.UTC, testenv.Logger(t))
	if err == nil || !strings.Contains(err.Error(), "notify.yaml:8: routes[0].match.kind[0]") {
		t.Fatalf("got %v", err)
	}
	text = strings.ReplaceAll(text, "no_such_kind", "churn_risk")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err := loadNotify(&config{Roles: []string{"notifier"}, NotifyFile: path}, rules, time.UTC, testenv.Logger(t)); err != nil || cfg == nil {
		t.Fatalf("a valid file: %v", err)
	}
}

func TestTheShippedRoutesFilesLoad(t *testing.T) {
	rules, err := loadRules("")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"../../deploy/notify-local.yaml", "../../deploy/notify-compose.yaml"} {
		cfg, err := loadNotify(&config{Roles: []string{"notifier"}, NotifyFile: f}, rules, time.UTC, testenv.Logger(t))
		if err != nil || cfg == nil || cfg.Channels["mailbox"] == nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
