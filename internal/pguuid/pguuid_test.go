package pguuid_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/segments-dev/segments/internal/testenv"
)

// The pools the service opens (testenv uses the service's TuneSession)
// must send, store and return uuid.UUID values unchanged in every form the
// code uses: scalar and array parameters, COPY, scans (NULL included), and
// the text format of the simple protocol.
func TestUUIDsRoundTripThroughPostgreSQL(t *testing.T) {
	t.Parallel()
	db := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ids := []uuid.UUID{uuid.New(), uuid.NewSHA1(uuid.NameSpaceOID, []byte("KH1")), uuid.Nil}
	if _, err := db.Pool.Exec(ctx, "CREATE TABLE ids (n int PRIMARY KEY, id uuid)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, "INSERT INTO ids SELECT n, id FROM unnest($1::uuid[]) WITH ORDINALITY AS u(id, n)", ids); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.CopyFrom(ctx, pgx.Identifier{"ids"}, []string{"n", "id"}, pgx.CopyFromRows([][]any{{10, ids[0]}, {11, nil}})); err != nil {
		t.Fatal(err)
	}
	for i, want := range ids {
		var got uuid.UUID
		var text string
		if err := db.Pool.QueryRow(ctx, "SELECT id, id::text FROM ids WHERE n = $1 AND id = $2", i+1, want).Scan(&got, &text); err != nil {
			t.Fatalf("id %d (%s): %v", i, want, err)
		}
		if got != want || text != want.String() {
			t.Errorf("id %d: scanned %s, stored as %s, want %s", i, got, text, want)
		}
	}
	var fromCopy uuid.UUID
	if err := db.Pool.QueryRow(ctx, "SELECT id FROM ids WHERE n = 10").Scan(&fromCopy); err != nil || fromCopy != ids[0] {
		t.Errorf("COPY: %s, %v; want %s", fromCopy, err, ids[0])
	}
	// NULL leaves the target unchanged, as uuid.UUID.Scan does.
	kept := ids[1]
	if err := db.Pool.QueryRow(ctx, "SELECT id FROM ids WHERE n = 11").Scan(&kept); err != nil || kept != ids[1] {
		t.Errorf("NULL scan: %s, %v; want the target unchanged (%s)", kept, err, ids[1])
	}
	var all []uuid.UUID
	if err := db.Pool.QueryRow(ctx, "SELECT array_agg(id ORDER BY n) FROM ids WHERE n <= 3").Scan(&all); err != nil {
		t.Fatal(err)
	}
	if len(all) != len(ids) || all[0] != ids[0] || all[1] != ids[1] || all[2] != ids[2] {
		t.Errorf("array scan %v, want %v", all, ids)
	}
	var simple uuid.UUID
	if err := db.Pool.QueryRow(ctx, "SELECT id FROM ids WHERE id = $1", pgx.QueryExecModeSimpleProtocol, ids[1]).Scan(&simple); err != nil || simple != ids[1] {
		t.Errorf("simple protocol: %s, %v; want %s", simple, err, ids[1])
	}
}

// The service's connections encode and scan uuid.UUID directly in binary.
// pgx's own path also ends in a correct value, but by way of a failed plan,
// an error message, the text form and a parse (about 20 allocations and
// 1.7 µs per id instead of one allocation and 60 ns): what is checked here
// is that the direct path is the one taken.
func TestServiceConnectionsHaveBinaryUUIDPlans(t *testing.T) { // not parallel: it counts allocations
	db := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := db.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	m := conn.Conn().TypeMap()
	u := uuid.NewSHA1(uuid.NameSpaceOID, []byte("KH1"))
	buf := make([]byte, 0, 64)
	var encErr error
	encAllocs := testing.AllocsPerRun(100, func() {
		buf, encErr = m.Encode(pgtype.UUIDOID, pgtype.BinaryFormatCode, u, buf[:0])
	})
	if encErr != nil || !bytes.Equal(buf, u[:]) {
		t.Fatalf("binary encode: %x, %v; want %x", buf, encErr, u[:])
	}
	if encAllocs > 2 {
		t.Errorf("encoding a uuid.UUID took %.0f allocations: not the binary codec", encAllocs)
	}
	var got uuid.UUID
	var scanErr error
	scanAllocs := testing.AllocsPerRun(100, func() {
		scanErr = m.Scan(pgtype.UUIDOID, pgtype.BinaryFormatCode, u[:], &got)
	})
	if scanErr != nil || got != u {
		t.Fatalf("binary scan: %s, %v; want %s", got, scanErr, u)
	}
	if scanAllocs > 0 {
		t.Errorf("scanning a uuid.UUID took %.0f allocations: not the binary codec", scanAllocs)
	}
}
