package natsbus_test

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
	"github.com/segments-dev/segments/privacy"
)

func TestMain(m *testing.M) {
	switch testenv.ChildRole() {
	case "":
		os.Exit(m.Run())
	case "publisher":
		if err := childPublisher(os.Getenv("DATABASE_URL"), os.Getenv("NATS_URL")); err != nil {
			fmt.Fprintln(os.Stderr, "child publisher:", err)
			os.Exit(1)
		}
		os.Exit(0)
	default:
		fmt.Fprintln(os.Stderr, "unknown child role", testenv.ChildRole())
		os.Exit(2)
	}
}

// childLeaseTTL is the publishers' lease in the leadership tests.
const childLeaseTTL = time.Second

// childPublisher runs an event publisher in a process of its own, logging
// to standard output (which the test reads).
func childPublisher(databaseURL, natsURL string) error {
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
	key, err := privacy.NewMasterKey([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stdout, nil))
	s, err := eventstore.New(eventstore.Config{Pool: pool, MasterKey: key, Logger: log})
	if err != nil {
		return err
	}
	nc, js, err := natsbus.Connect(natsURL, nil, "child-publisher", log)
	if err != nil {
		return err
	}
	p := eventstore.NewPublisher(eventstore.PublisherConfig{
		Store: s, Sink: natsbus.NewEventSink(nc, js), Logger: log, IdleWake: 20 * time.Millisecond, LeaseTTL: childLeaseTTL,
	})
	for {
		err := p.Run(ctx)
		log.Info("publisher stopped", "err", err)
		time.Sleep(100 * time.Millisecond)
	}
}
