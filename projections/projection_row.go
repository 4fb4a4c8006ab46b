package projections

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// projectionRow is a customer_projections row.
type projectionRow struct {
	customer                             string
	version                              int64
	ruleVersion                          int
	evaluatedAt                          time.Time
	nextAt                               *time.Time
	document                             []byte // binary document (codec_binary.go)
	valueTier, activity, need, lifecycle string
	tags                                 []string
	netAmount                            int64
	owner                                string
	changes                              int64
	changedAt                            time.Time  // latest label or tag change
	lastOrderAt                          *time.Time // nil before the first order
	name                                 string     // as the projection holds it (sealed for individuals)
	searchName                           *string    // the name when it is not personal data
	dims                                 []string   // operator-defined labels as "name=value"
	orders                               int        // order count (RFM frequency)
	rfmSegment, nps                      string     // "" when not scored / no recommendation
}

// projectionColumns are customer_projections' columns in the order of
// projectionRow.values.
var projectionColumns = []string{"stream_id", "customer", "version", "rule_version", "evaluated_at", "next_at", "projection",
	"value_tier", "activity", "need_orientation", "lifecycle", "tags", "net_amount", "owner", "changes",
	"changed_at", "last_order_at", "name", "search_name", "dims", "orders", "rfm_segment", "nps"}

// projectionRow is w's row; ok is false for a customer never evaluated
// (no row is stored for it).
func (p *Projector) projectionRow(w *customerWork) (projectionRow, bool) {
	if w.proj.RuleVersion == 0 {
		return projectionRow{}, false
	}
	tags := tagNames(p.book, w.proj)
	pairs := dimPairs(p.book, w.proj)
	raw := encodeProjection(w.proj, tags, pairs)
	l := &w.proj.Labels
	r := projectionRow{
		customer: string(w.proj.State.Customer), version: w.proj.State.Version, ruleVersion: w.proj.RuleVersion,
		evaluatedAt: w.proj.EvaluatedAt, document: raw,
		valueTier: l.ValueTier, activity: l.Activity, need: l.NeedOrientation, lifecycle: l.Lifecycle,
		tags: tags, netAmount: int64(w.proj.State.NetAmount), owner: w.proj.State.Profile.Owner, changes: w.seq,
		changedAt: w.proj.EvaluatedAt, name: w.proj.State.Profile.Name, dims: []string{},
		orders: len(w.proj.State.Orders), rfmSegment: w.proj.Facts.RFMSegment(), nps: w.proj.Facts.NPS(),
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		r.dims = append(r.dims, pairs[i]+"="+pairs[i+1])
	}
	listColumns(&r, w.proj)
	if n := p.book.NextInstant(w.proj); !n.IsZero() {
		r.nextAt = &n
	}
	return r, true
}

// values is the row in projectionColumns order, for COPY.
func (r *projectionRow) values(stream uuid.UUID) []any {
	return []any{pgUUID(stream), r.customer, r.version, r.ruleVersion, r.evaluatedAt, r.nextAt, r.document,
		r.valueTier, r.activity, r.need, r.lifecycle, r.tags, r.netAmount, r.owner, r.changes,
		r.changedAt, r.lastOrderAt, r.name, r.searchName, r.dims, r.orders, r.rfmSegment, r.nps}
}

// queueProjections queues the writes of the customers' projections (w.seq
// already counts their label changes); each row's new xmin is set on its
// customerWork when the batch's results are read.
//
// Customers whose row the transaction loaded are updated, the others
// inserted. An upsert (INSERT … ON CONFLICT DO UPDATE) would first try the
// insert, find the conflict in the index and lock the row, writing a WAL
// record for the lock, before updating it; the row cannot vanish in between
// (the customers' advisory locks are held, and a rebuild's TRUNCATE waits
// for this transaction).
func (p *Projector) queueProjections(b *pgx.Batch, order []*customerWork, work map[uuid.UUID]*customerWork) error {
	var updates, inserts projectionArrays
	var earliest *time.Time
	for _, w := range order {
		if w.applied == 0 && !w.advanced && len(w.changes) == 0 && len(w.alerts) == 0 && w.existed {
			continue
		}
		r, ok := p.projectionRow(w)
		if !ok {
			continue
		}
		if r.nextAt != nil && (earliest == nil || r.nextAt.Before(*earliest)) {
			earliest = r.nextAt
		}
		if w.existed {
			updates.add(w.streamID, &r)
		} else {
			inserts.add(w.streamID, &r)
		}
	}
	if earliest != nil {
		// Wake sleeping schedulers: this boundary may be earlier than the one
		// they wait for. Delivered at commit.
		b.Queue("SELECT pg_notify($1, $2)", NotifyNextAt, earliest.UTC().Format(time.RFC3339Nano))
	}
	// The rows' new xmin (for the projection cache).
	readXmins := func(want int) func(rows pgx.Rows) error {
		return func(rows pgx.Rows) error {
			n := 0
			for rows.Next() {
				var id uuid.UUID
				var xmin int64
				if err := rows.Scan((*uuidDst)(&id), &xmin); err != nil {
					return fmt.Errorf("save projections: %w", err)
				}
				if w := work[id]; w != nil {
					w.xmin = xmin
				}
				n++
			}
			if err := rows.Err(); err != nil {
				return fmt.Errorf("save projections: %w", err)
			}
			if n != want {
				return fmt.Errorf("save projections: %d of %d rows written", n, want)
			}
			return nil
		}
	}
	if n := len(updates.ids); n > 0 {
		b.Queue(`UPDATE customer_projections p SET version = u.version, rule_version = u.rule_version,
				evaluated_at = u.evaluated_at, next_at = u.next_at, projection = u.projection,
				value_tier = u.value_tier, activity = u.activity, need_orientation = u.need_orientation,
				lifecycle = u.lifecycle, tags = string_to_array(u.tags, ','),
				net_amount = u.net_amount, owner = u.owner, changes = u.changes,
				changed_at = u.changed_at, last_order_at = u.last_order_at, name = u.name, search_name = u.search_name,
				dims = string_to_array(u.dims, ','), orders = u.orders, rfm_segment = u.rfm_segment, nps = u.nps
			FROM `+projectionArraysFrom+`
			WHERE p.stream_id = u.stream_id
			RETURNING p.stream_id, p.xmin::text::bigint`, updates.args()...).Query(readXmins(n))
	}
	if n := len(inserts.ids); n > 0 {
		b.Queue(`INSERT INTO customer_projections (stream_id, customer, version, rule_version, evaluated_at, next_at, projection,
				value_tier, activity, need_orientation, lifecycle, tags, net_amount, owner, changes,
				changed_at, last_order_at, name, search_name, dims, orders, rfm_segment, nps)
			SELECT u.stream_id, u.customer, u.version, u.rule_version, u.evaluated_at, u.next_at, u.projection,
				u.value_tier, u.activity, u.need_orientation, u.lifecycle, string_to_array(u.tags, ','), u.net_amount, u.owner, u.changes,
				u.changed_at, u.last_order_at, u.name, u.search_name, string_to_array(u.dims, ','), u.orders, u.rfm_segment, u.nps
			FROM `+projectionArraysFrom+`
			RETURNING stream_id, xmin::text::bigint`, inserts.args()...).Query(readXmins(n))
	}
	return nil
}

// projectionArraysFrom is the FROM item of projectionArrays.args.
const projectionArraysFrom = `unnest($1::uuid[], $2::text[], $3::bigint[], $4::int[], $5::timestamptz[], $6::timestamptz[], $7::bytea[],
		$8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bigint[], $14::text[], $15::bigint[],
		$16::timestamptz[], $17::timestamptz[], $18::text[], $19::text[], $20::text[], $21::int[], $22::text[], $23::text[])
		AS u(stream_id, customer, version, rule_version, evaluated_at, next_at, projection, value_tier, activity,
			need_orientation, lifecycle, tags, net_amount, owner, changes, changed_at, last_order_at, name, search_name, dims,
			orders, rfm_segment, nps)`

// projectionArrays are customer_projections rows as column arrays.
type projectionArrays struct {
	ids                                          []pgtype.UUID
	customers, tiers, acts, needs, lifes, owners []string
	versions, nets, seqs                         []int64
	ruleVersions                                 []int
	evaluated                                    []time.Time
	nexts                                        []*time.Time
	tagLists                                     []string
	projs                                        [][]byte // documents as encoded, not copied into strings
	changedAts                                   []time.Time
	lastOrderAts                                 []*time.Time
	names                                        []string
	searchNames                                  []*string
	dimLists                                     []string
	orders                                       []int
	rfmSegments, npss                            []string
}

func (a *projectionArrays) add(stream uuid.UUID, r *projectionRow) {
	// Tag names are [A-Za-z0-9_.-] (domain.ValidCustomerCode, checked when
	// a rule set is loaded), so a comma separates them; SQL splits the list
	// with string_to_array, which gives {} for the empty string.
	tags := strings.Join(r.tags, ",")
	a.ids, a.customers, a.versions = append(a.ids, pgUUID(stream)), append(a.customers, r.customer), append(a.versions, r.version)
	a.ruleVersions, a.evaluated, a.nexts = append(a.ruleVersions, r.ruleVersion), append(a.evaluated, r.evaluatedAt), append(a.nexts, r.nextAt)
	a.projs, a.tiers, a.acts = append(a.projs, r.document), append(a.tiers, r.valueTier), append(a.acts, r.activity)
	a.needs, a.lifes, a.tagLists = append(a.needs, r.need), append(a.lifes, r.lifecycle), append(a.tagLists, tags)
	a.nets, a.owners, a.seqs = append(a.nets, r.netAmount), append(a.owners, r.owner), append(a.seqs, r.changes)
	a.changedAts, a.lastOrderAts = append(a.changedAts, r.changedAt), append(a.lastOrderAts, r.lastOrderAt)
	a.names, a.searchNames = append(a.names, r.name), append(a.searchNames, r.searchName)
	a.dimLists = append(a.dimLists, strings.Join(r.dims, ","))
	a.orders, a.rfmSegments, a.npss = append(a.orders, r.orders), append(a.rfmSegments, r.rfmSegment), append(a.npss, r.nps)
}

// args are the arrays in the order of projectionArraysFrom.
func (a *projectionArrays) args() []any {
	return []any{a.ids, a.customers, a.versions, a.ruleVersions, a.evaluated, a.nexts, a.projs, a.tiers, a.acts, a.needs, a.lifes,
		a.tagLists, a.nets, a.owners, a.seqs, a.changedAts, a.lastOrderAts, a.names, a.searchNames, a.dimLists,
		a.orders, a.rfmSegments, a.npss}
}

// ErrNotFound: no projection for that customer.
var ErrNotFound = errors.New("customer not found")
