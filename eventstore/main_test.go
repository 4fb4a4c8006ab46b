package eventstore_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/privacy"
)

func TestMain(m *testing.M) {
	switch testenv.ChildRole() {
	case "":
		os.Exit(m.Run())
	case "hold-append":
		os.Exit(holdAppend(os.Getenv("DATABASE_URL")))
	default:
		fmt.Fprintln(os.Stderr, "unknown child role", testenv.ChildRole())
		os.Exit(2)
	}
}

// holdAppend is a process of the service's kind (its session settings, its
// append code) that is in the middle of an append — its stream's row locked,
// positions drawn, not yet committed — says so and then stays there.
func holdAppend(url string) int {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	eventstore.TuneSession(cfg)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	key, err := privacy.NewMasterKey([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	s, err := eventstore.New(eventstore.Config{Pool: pool, MasterKey: key})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	tx, err := pool.Begin(ctx)
	if err == nil {
		_, err = s.AppendTx(ctx, tx, req(order("KH-HOLDER", "SO-1", "10.00")))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("locked")
	select {}
}
