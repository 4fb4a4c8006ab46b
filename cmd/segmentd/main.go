// Command segmentd runs Segments — the HTTP API and workbench, the NATS
// ingest worker, the publisher, projector, scheduler and notifier, in one
// process or split by role — and its operator commands (migrate, rebuild,
// verify, replay, import, export, rotate-master-key, rules preview, token); `segmentd
// --help` lists them with their usage.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // the service formats times in Asia/Shanghai even on images without tzdata
)

const usage = `segmentd — continuously correct customer segments

Usage:
  segmentd [serve] [flags]        run the service (API, ingest worker, publisher)
  segmentd migrate [up]           create the database if needed and apply migrations
  segmentd migrate list           list migrations and when each was applied
  segmentd migrate validate       fail if a migration is pending or was changed
  segmentd rebuild                drop every projection and replay the whole event log
  segmentd verify [customer]      walk the hash chains of the log and report broken links
  segmentd replay <customer> [--as-of T] [--format text|json]
                                  an auditor's timeline: events (masked), label changes
                                  with reason, cause and rule version, alerts, final labels
  segmentd rotate-master-key [--new-key K]
                                  re-wrap every customer data key with a new master key
  segmentd import FILE.xlsx|FILE.csv [--sheet S] [--mapping M] [--dry-run] [--name N]
                                  bring in the seeds' customer, order and follow-up sheets;
                                  a per-row report goes to FILE.report.csv (docs/IMPORT.md)
  segmentd export --format xlsx|csv [--out FILE] [--unmasked --token-file F]
                                  every customer in the seeds' table layout, masked unless
                                  an admin token is given (recorded in the disclosures log)
  segmentd rules preview FILE [--format text|json]
                                  what the rules FILE's latest version would change (counts
                                  from → to, 20 examples each, alerts), writing nothing
  segmentd token new --name N --scopes read,audit
                                  create a bearer token: prints the secret once and the
                                  line to add to the SEGMENTS_TOKENS file

Configuration is read from the environment (see README): DATABASE_URL,
NATS_URL, SEGMENTS_DATA_DIR, SEGMENTS_HTTP_ADDR, SEGMENTS_ROLES,
SEGMENTS_MASTER_KEY, SEGMENTS_RULES, SEGMENTS_TOKENS, SEGMENTS_TIMEZONE, SEGMENTS_LOG_LEVEL, SEGMENTS_LOG_FORMAT.
Run "segmentd COMMAND -h" for a command's flags ("segmentd serve -h" for
the flags that mirror the environment).
`

func main() {
	os.Exit(mainCode(os.Args[1:], os.Stdout, os.Stderr))
}

// mainCode runs a command line and returns the process's exit code: 0, 1
// for a failure, 2 for a command line that does not parse (with the usage).
func mainCode(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return report(run(ctx, args), stdout, stderr)
}

func run(ctx context.Context, args []string) error {
	cmd := "serve"
	if len(args) > 0 {
		switch args[0] {
		case "help", "-h", "-help", "--help":
			return &usageError{err: flag.ErrHelp}
		}
		if args[0] != "" && args[0][0] != '-' {
			cmd, args = args[0], args[1:]
		}
	}
	switch cmd {
	case "serve":
		return serve(ctx, args)
	case "migrate":
		return migrate(ctx, args)
	case "rebuild":
		return rebuild(ctx, args)
	case "verify":
		return verify(ctx, args)
	case "token":
		return token(args)
	case "replay":
		return replay(ctx, args)
	case "import":
		return importFile(ctx, args)
	case "export":
		return exportFile(ctx, args)
	case "rotate-master-key":
		return rotateMasterKey(ctx, args)
	case "rules":
		return rulesCmd(ctx, args)
	}
	return &usageError{err: fmt.Errorf("unknown command %q", cmd)}
}
