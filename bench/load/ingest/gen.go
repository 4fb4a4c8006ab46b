package ingestload

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/internal/loadkit"
)

// The load's events are OrderPlaced events of customers drawn uniformly
// from a fixed set of codes, each with a fresh event_id and a unique order_id.

var (
	categories = []string{"电子元件", "机械设备", "办公用品", "化工原料", "软件服务"}
	channels   = []string{"online", "offline"}
	genSeq     atomic.Int64
	runTag     = loadkit.RandomHex(4)
	cst        = time.FixedZone("CST", 8*3600)
)

// gen draws events. One gen per goroutine.
type gen struct {
	rng       *mrand.Rand
	prefix    string // order ids: prefix + sequence, unique in the run
	seq       int64
	customers int
}

func newGen(customers int) *gen {
	id := genSeq.Add(1)
	var seed [16]byte
	_, _ = rand.Read(seed[:])
	src := mrand.NewPCG(uint64FromBytes(seed[:8]), uint64FromBytes(seed[8:]))
	return &gen{
		rng:       mrand.New(src), //nolint:gosec // G404: load data, not secrets
		prefix:    "LD" + runTag + "-" + strconv.FormatInt(id, 36) + "-",
		customers: customers,
	}
}

func uint64FromBytes(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// order is one generated OrderPlaced event.
type order struct {
	eventID  uuid.UUID
	customer int
	orderID  string
	fen      int64
	category string
	channel  string
	occurred time.Time
}

func (g *gen) next(now time.Time) order {
	g.seq++
	var id uuid.UUID
	binary.LittleEndian.PutUint64(id[:8], g.rng.Uint64())
	binary.LittleEndian.PutUint64(id[8:], g.rng.Uint64())
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	return order{
		eventID:  id,
		customer: g.rng.IntN(g.customers),
		orderID:  g.prefix + strconv.FormatInt(g.seq, 10),
		fen:      100 + g.rng.Int64N(5_000_000),
		category: categories[g.rng.IntN(len(categories))],
		channel:  channels[g.rng.IntN(len(channels))],
		occurred: now.Add(-time.Duration(g.rng.IntN(3600)) * time.Second).Truncate(time.Second),
	}
}

// customerCode is the code of customer n: "LD" and 6 digits.
func customerCode(n int) string {
	s := strconv.Itoa(n)
	const width = 6
	if len(s) < width {
		s = "000000"[:width-len(s)] + s
	}
	return "LD" + s
}

func appendMoney(buf []byte, fen int64) []byte {
	buf = strconv.AppendInt(buf, fen/100, 10)
	buf = append(buf, '.')
	c := fen % 100
	if c < 10 {
		buf = append(buf, '0')
	}
	return strconv.AppendInt(buf, c, 10)
}

// appendEnvelope writes the event as an upstream system sends it (SPEC §2).
func appendEnvelope(buf []byte, o *order) []byte {
	buf = append(buf, `{"event_id":"`...)
	buf = append(buf, o.eventID.String()...)
	buf = append(buf, `","type":"OrderPlaced","customer":"`...)
	buf = append(buf, customerCode(o.customer)...)
	buf = append(buf, `","occurred_at":"`...)
	buf = o.occurred.In(cst).AppendFormat(buf, time.RFC3339)
	buf = append(buf, `","source":"segments-load","data":`...)
	buf = appendStoredData(buf, o)
	return append(buf, '}')
}

// appendBatch writes {"events":[...]} with n events.
func (g *gen) appendBatch(buf []byte, n int, now time.Time) []byte {
	buf = append(buf, `{"events":[`...)
	for i := range n {
		if i > 0 {
			buf = append(buf, ',')
		}
		o := g.next(now)
		buf = appendEnvelope(buf, &o)
	}
	return append(buf, "]}"...)
}

// appendStoredData writes the event's data exactly as the store encodes it
// (checked against domain.EncodeData by checkStoredData).
func appendStoredData(buf []byte, o *order) []byte {
	buf = append(buf, `{"order_id":"`...)
	buf = append(buf, o.orderID...)
	buf = append(buf, `","amount":"`...)
	buf = appendMoney(buf, o.fen)
	buf = append(buf, `","category":"`...)
	buf = append(buf, o.category...)
	buf = append(buf, `","channel":"`...)
	buf = append(buf, o.channel...)
	return append(buf, `"}`...)
}

// storedMetadata is what the store keeps as metadata for these events.
var storedMetadata = []byte(`{"source":"segments-load"}`)

// checkStoredData makes sure the raw baseline writes the very bytes the store
// would: it decodes a generated envelope as the API does and compares.
func checkStoredData() error {
	g := newGen(100)
	for range 20 {
		o := g.next(time.Now())
		env, err := domain.DecodeEnvelope(appendEnvelope(nil, &o), time.Now())
		if err != nil {
			return fmt.Errorf("generated envelope is invalid: %w", err)
		}
		want, err := domain.EncodeData(env.Data)
		if err != nil {
			return err
		}
		if got := appendStoredData(nil, &o); !bytes.Equal(got, want) {
			return fmt.Errorf("stored data differs from domain.EncodeData: %s vs %s", got, want)
		}
		if env.EventID != o.eventID || string(env.Customer) != customerCode(o.customer) {
			return errors.New("generated envelope decodes to other ids")
		}
	}
	return nil
}
