package eventstore_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/segments-dev/segments/eventstore"
	"github.com/segments-dev/segments/internal/testenv"
)

func TestMain(m *testing.M) {
	switch testenv.ChildRole() {
	case "":
		os.Exit(m.Run())
	case "hold-log-head":
		os.Exit(holdLogHead(os.Getenv("DATABASE_URL")))
	default:
		fmt.Fprintln(os.Stderr, "unknown child role", testenv.ChildRole())
		os.Exit(2)
	}
}

// holdLogHead is a process of the service's kind (its session settings)
// that takes the append lock, says so and then holds it forever.
func holdLogHead(url string) int {
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
	tx, err := pool.Begin(ctx)
	if err == nil {
		_, err = tx.Exec(ctx, "SELECT position FROM log_head FOR UPDATE")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("locked")
	select {}
}
