package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/importer"
	"github.com/segments-dev/segments/internal/fixturegen"
	"github.com/segments-dev/segments/internal/loadkit"
)

func fixturegenWrite(path string, rows int) error { return fixturegen.WriteLargeXLSX(path, rows) }

type referenceRun struct {
	events, requests int64
	took, convert    time.Duration
}

// reference appends the events the importer makes of the workbook's rows
// (the same converter on the same cells, under the same import id)
// straight through the store: requests of batch events, clients at a time.
// The rows come from the generator, not the file; converting them runs on
// its own goroutine ahead of the appends and its time is reported.
func reference(ctx context.Context, dbs *loadkit.Databases, path string, rows, batch, clients int) (referenceRun, error) {
	store, pool, err := openStore(ctx, dbs.URLFor(dbs.NewName()))
	if err != nil {
		return referenceRun{}, err
	}
	defer pool.Close()
	defer store.Close()
	id, err := importer.Identity(path)
	if err != nil {
		return referenceRun{}, err
	}
	header, ok := importer.Mapping{}.Recognise(fixturegen.CustomerHeader)
	if !ok {
		return referenceRun{}, errors.New("the generator's header is not recognised")
	}
	conv := &importer.Converter{Location: time.UTC, Source: domain.ImportSourcePrefix + id, Now: time.Now()}
	reqs := make(chan domain.AppendRequest, 4*clients)
	var res referenceRun
	start := time.Now()
	go func() {
		defer close(reqs)
		res.convert = convertRows(conv, header, rows, batch, reqs)
	}()
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range clients {
		wg.Go(func() {
			for req := range reqs {
				out, err := store.Append(ctx, req)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				n := int64(0)
				for _, r := range out {
					if !r.Duplicate {
						n++
					}
				}
				atomic.AddInt64(&res.events, n)
				atomic.AddInt64(&res.requests, 1)
			}
		})
	}
	wg.Wait()
	res.took = time.Since(start)
	if err, ok := firstErr.Load().(error); ok {
		return res, fmt.Errorf("reference append: %w", err)
	}
	return res, nil
}

// convertRows sends the rows' events in requests of up to batch events
// (a row's events stay together, in order) and returns the time spent
// converting.
func convertRows(conv *importer.Converter, header importer.Header, rows, batch int, out chan<- domain.AppendRequest) time.Duration {
	var spent time.Duration
	var cur []domain.Envelope
	emit := func(row int, cells []string) {
		t := time.Now()
		u := conv.Convert(header, "客户信息", row, cells)
		spent += time.Since(t)
		for _, r := range u.Requests {
			cur = append(cur, r.Events...)
		}
		if len(cur) >= batch {
			out <- domain.AppendRequest{Events: cur, Batch: true}
			cur = nil
		}
	}
	for i := range rows {
		emit(i+2, fixturegen.CustomerRow(i))
	}
	next := rows + 2
	for _, b := range fixturegen.BadRows {
		emit(next, b.Cells)
		next++
	}
	for _, cells := range fixturegen.DuplicateRows(rows) {
		emit(next, cells)
		next++
	}
	if len(cur) > 0 {
		out <- domain.AppendRequest{Events: cur, Batch: true}
	}
	return spent
}
