// Command segmentd runs Segments: the HTTP API, the NATS ingest worker and
// the event publisher, in one process or split by role.
//
//	segmentd [serve] [flags]   run the service (default)
//	segmentd migrate [up|list|validate]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
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
  segmentd token new --name N --scopes read,audit
                                  create a bearer token: prints the secret once and the
                                  line to add to the SEGMENTS_TOKENS file

Configuration is read from the environment (see README): DATABASE_URL,
NATS_URL, SEGMENTS_DATA_DIR, SEGMENTS_HTTP_ADDR, SEGMENTS_ROLES,
SEGMENTS_MASTER_KEY, SEGMENTS_RULES, SEGMENTS_TOKENS, SEGMENTS_TIMEZONE, SEGMENTS_LOG_LEVEL, SEGMENTS_LOG_FORMAT.
Run "segmentd serve -h" for the flags that mirror it.
`

func main() {
	os.Exit(mainCode())
}

func mainCode() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "segmentd:", err)
		}
		return 1
	}
	return 0
}

func run(ctx context.Context, args []string) error {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
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
	case "rotate-master-key":
		return rotateMasterKey(ctx, args)
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}
