package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// runCLI runs a command line in-process and returns its exit code and
// what it printed on standard output and standard error.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = mainCode(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestHelpPrintsEachCommandsOwnUsageAndExitsZero(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string // in standard output
	}{
		{[]string{"--help"}, []string{"segmentd rebuild", "segmentd verify", "segmentd replay", "segmentd token new"}},
		{[]string{"-h"}, []string{"segmentd migrate", "segmentd import", "segmentd export"}},
		{[]string{"help"}, []string{"segmentd rotate-master-key"}},
		{[]string{"serve", "-h"}, []string{"Usage: segmentd serve", "-http-addr", "-roles", "-demo"}},
		{[]string{"rebuild", "-h"}, []string{"Usage: segmentd rebuild", "-rules"}},
		{[]string{"verify", "-h"}, []string{"Usage: segmentd verify [customer]", "-data-dir"}},
		{[]string{"verify", "C001", "--help"}, []string{"Usage: segmentd verify"}},
		{[]string{"replay", "-h"}, []string{"Usage: segmentd replay <customer>", "-as-of", "-format"}},
		{[]string{"replay", "C001", "-h"}, []string{"Usage: segmentd replay", "-as-of"}},
		{[]string{"migrate", "-h"}, []string{"Usage: segmentd migrate [up|list|validate]"}},
		{[]string{"migrate", "list", "-h"}, []string{"Usage: segmentd migrate"}},
		{[]string{"import", "-h"}, []string{"Usage: segmentd import FILE.xlsx|FILE.csv", "-dry-run", "-mapping"}},
		{[]string{"export", "-h"}, []string{"Usage: segmentd export --format xlsx|csv", "-unmasked", "-token-file", "-tokens"}},
		{[]string{"rotate-master-key", "-h"}, []string{"Usage: segmentd rotate-master-key", "-new-key"}},
		{[]string{"token", "new", "-h"}, []string{"Usage: segmentd token new", "-scopes", "-owner"}},
	} {
		code, stdout, stderr := runCLI(t, c.args...)
		if code != 0 {
			t.Errorf("segmentd %s: exit %d (stderr %q), want 0", strings.Join(c.args, " "), code, stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(stdout, w) {
				t.Errorf("segmentd %s: standard output lacks %q:\n%s", strings.Join(c.args, " "), w, stdout)
			}
		}
		if strings.Contains(stdout+stderr, "Usage of") {
			t.Errorf("segmentd %s printed the flag package's generic usage:\n%s", strings.Join(c.args, " "), stdout+stderr)
		}
		if c.args[0] != "serve" && strings.Contains(stdout, "-http-addr") {
			t.Errorf("segmentd %s lists serve's flags:\n%s", strings.Join(c.args, " "), stdout)
		}
	}
}

func TestACommandLineThatDoesNotParseExitsTwoWithTheUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string // in standard error
	}{
		{[]string{"bogus"}, "segmentd rotate-master-key"},
		{[]string{"--bogus"}, "Usage: segmentd serve"},
		{[]string{"serve", "extra"}, "Usage: segmentd serve"},
		{[]string{"verify", "--bogus"}, "Usage: segmentd verify"},
		{[]string{"verify", "C001", "extra"}, "Usage: segmentd verify"},
		{[]string{"rebuild", "--http-addr", "127.0.0.1:1"}, "Usage: segmentd rebuild"},
		{[]string{"replay"}, "Usage: segmentd replay"},
		{[]string{"replay", "--as-of", "2026-01-01T00:00:00+08:00"}, "Usage: segmentd replay"},
		{[]string{"migrate", "sideways"}, "Usage: segmentd migrate"},
		{[]string{"import"}, "Usage: segmentd import"},
		{[]string{"import", "x.csv", "--sheets", "A"}, "Usage: segmentd import"},
		{[]string{"rotate-master-key", "--bogus"}, "Usage: segmentd rotate-master-key"},
		{[]string{"token"}, "Usage: segmentd token new"},
		{[]string{"token", "new", "--bogus"}, "Usage: segmentd token new"},
	} {
		code, stdout, stderr := runCLI(t, c.args...)
		if code != 2 {
			t.Errorf("segmentd %s: exit %d, want 2", strings.Join(c.args, " "), code)
		}
		if !strings.Contains(stderr, c.want) || !strings.HasPrefix(stderr, "segmentd: ") {
			t.Errorf("segmentd %s: standard error lacks the error and %q:\n%s", strings.Join(c.args, " "), c.want, stderr)
		}
		if stdout != "" {
			t.Errorf("segmentd %s: printed %q on standard output", strings.Join(c.args, " "), stdout)
		}
	}
}

func TestLogsAreInTheTimeZoneTheAPISpeaks(t *testing.T) {
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		log, err := newLogger(&config{LogLevel: "info", LogFormat: format, Location: shanghai}, &buf)
		if err != nil {
			t.Fatal(err)
		}
		at := time.Date(2026, 3, 1, 1, 2, 3, 0, time.UTC)
		log.Info("started", "at", at)
		line := buf.String()
		var stamp string
		if format == "json" {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatal(err)
			}
			stamp, _ = rec["time"].(string)
		} else {
			stamp, _, _ = strings.Cut(strings.TrimPrefix(line, "time="), " ")
		}
		if !strings.HasSuffix(stamp, "+08:00") {
			t.Errorf("%s log: record time %q, want +08:00 (line %q)", format, stamp, line)
		}
		// Only the record's own time is converted: attributes stay as given.
		if !strings.Contains(line, "2026-03-01T01:02:03") || strings.Contains(line, "2026-03-01T09:02:03") {
			t.Errorf("%s log: attribute time changed: %q", format, line)
		}
	}
}
