package projections_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/natsbus"
	"github.com/segments-dev/segments/projections"
)

func TestMain(m *testing.M) {
	switch testenv.ChildRole() {
	case "":
		os.Exit(m.Run())
	case "relay":
		if err := childRelay(os.Getenv("DATABASE_URL"), os.Getenv("NATS_URL")); err != nil {
			fmt.Fprintln(os.Stderr, "child relay:", err)
			os.Exit(1)
		}
		os.Exit(0)
	default:
		fmt.Fprintln(os.Stderr, "unknown child role", testenv.ChildRole())
		os.Exit(2)
	}
}

// relayLeaseTTL is the relays' lease in the leadership test.
const relayLeaseTTL = time.Second

// childRelay runs the SEGMENTS_CHANGES relay in a process of its own,
// logging to standard output (which the test reads).
func childRelay(databaseURL, natsURL string) error {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return err
	}
	eventstore.TuneSession(cfg)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stdout, nil))
	nc, js, err := natsbus.Connect(natsURL, nil, "child-relay", log)
	if err != nil {
		return err
	}
	r := projections.NewRelay(pool, natsbus.NewStreamSink(nc, js, natsbus.StreamChanges), projections.StreamChanges, log)
	r.LeaseTTL = relayLeaseTTL
	for {
		err := r.Run(ctx)
		log.Info("relay stopped", "err", err)
		time.Sleep(100 * time.Millisecond)
	}
}
