// Command load measures Segments on this machine, each figure beside its
// same-run reference, with the service assembled as `segmentd serve`
// assembles it (internal/service):
//
//	go run ./bench/load ingest    [-duration 20s] [-scenario all|copy,batch,single,instances,publish,latency,nats-sync] …
//	go run ./bench/load projector [-scenario backlog,lag,rebuild,scheduler] …
//
// ingest: HTTP batches and single events against raw COPY and INSERT, 1–3
// instances, publication, latency, NATS sync cost. projector: the
// projector's backlog, the lag at a steady load, rebuild, the scheduler.
// Both create their own databases (dropped at the end) and embedded NATS
// servers, talk only to loopback addresses, and bound every phase in time;
// `load <command> -h` lists the flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // the reports' times are in Asia/Shanghai on machines without zoneinfo

	ingestload "github.com/segments-dev/segments/bench/load/ingest"
	projectorload "github.com/segments-dev/segments/bench/load/projector"
)

var commands = map[string]func(context.Context, []string) error{
	"ingest":    ingestload.Main,
	"projector": projectorload.Main,
}

func main() {
	if len(os.Args) < 2 || commands[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: load ingest|projector [flags]   (load <command> -h for its flags)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := commands[os.Args[1]](ctx, os.Args[2:])
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "load %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
