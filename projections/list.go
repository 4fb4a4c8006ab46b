package projections

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/segments-dev/segments/domain"
	"github.com/segments-dev/segments/eventstore"
)

// CustomerFilter selects customers of the list (SPEC §9). Empty fields do
// not filter; Owner restricts to one owner's customers.
type CustomerFilter struct {
	ValueTier, Activity, Lifecycle, NeedOrientation, Segment, Tag, Owner string
	// Dims filters by operator-defined labels: label name -> value.
	Dims map[string]string
	// Query matches a customer code prefix or the prefix of a name that is
	// not personal data (an enterprise's).
	Query  string
	Limit  int
	Cursor string
}

// FilterError names the filter field whose value is not valid.
type FilterError struct {
	Field   string
	Message string
}

func (e *FilterError) Error() string { return e.Field + ": " + e.Message }

// CustomerCard is the compact card of one customer in the list.
type CustomerCard struct {
	Customer    string               `json:"customer"`
	Name        *string              `json:"name"`
	Owner       string               `json:"owner"`
	Labels      map[string]CardValue `json:"labels"`
	Tags        []CardTag            `json:"tags"`
	NetAmount   domain.Money         `json:"net_amount"`
	LastOrderAt *string              `json:"last_order_at"`
	ChangedAt   string               `json:"changed_at"`
	// PossibleDuplicateOf is filled for the list's pages, not for exports.
	PossibleDuplicateOf []eventstore.Duplicate `json:"possible_duplicate_of"`
}

// CardValue is a label's value and its display name.
type CardValue struct {
	Value   string `json:"value"`
	Display string `json:"display"`
}

// CardTag is a present tag and its display name.
type CardTag struct {
	Tag     string `json:"tag"`
	Display string `json:"display"`
}

// Vocabulary lists every value of each label (and every tag name) of the
// current rule set, in display order.
func (q *Queries) Vocabulary() map[string][]CardValue {
	rs := q.projector.book.Latest()
	out := map[string][]CardValue{}
	add := func(label, v, display string) { out[label] = append(out[label], CardValue{Value: v, Display: display}) }
	for _, t := range rs.ValueTiers {
		add(domain.LabelValueTier, t.Value, t.Display)
		for _, a := range activityValues {
			add(domain.LabelSegment, t.Value+"/"+a, rs.Display(domain.LabelSegment, t.Value+"/"+a))
		}
	}
	for _, a := range activityValues {
		add(domain.LabelActivity, a, rs.ActivityNames[a])
	}
	for _, n := range []string{domain.NeedProduct, domain.NeedService, domain.NeedPartnership, domain.NeedUnknown} {
		add(domain.LabelNeedOrientation, n, rs.NeedNames[n])
	}
	for _, l := range []string{domain.LifecycleProspect, domain.LifecycleIntent, domain.LifecycleCustomer, domain.LifecycleLost} {
		add(domain.LabelLifecycle, l, rs.LifecycleName[l])
	}
	for _, t := range rs.Tags {
		add("tag", t.Name, t.Display)
	}
	for _, d := range rs.Dimensions {
		for _, c := range d.Cases {
			add(d.Name, c.Value, c.Display)
		}
	}
	return out
}

// AlertKinds lists the alert kinds of the rules, built-in and
// operator-defined.
func (q *Queries) AlertKinds() []string { return q.projector.book.AlertKinds() }

// IsDimension reports whether name is an operator-defined label of the
// current rule set (a filter of the list).
func (q *Queries) IsDimension(name string) bool {
	return q.projector.book.Latest().DimensionIndex(name) >= 0
}

var activityValues = []string{domain.ActivityHigh, domain.ActivityMedium, domain.ActivityLow}

// listQuery is a validated filter as SQL conditions and arguments.
type listQuery struct {
	where []string
	args  []any
	// key, when set, is a customer_list_keys key (a tag or an
	// operator-defined label's value) that drives the query: its rows are
	// in list order, so a rare tag's page reads only its own customers.
	key string
	// after is the cursor: the page starts after this customer.
	after *listKey
}

func (l *listQuery) add(cond string, args ...any) {
	for _, a := range args {
		l.args = append(l.args, a)
		cond = strings.Replace(cond, "?", "$"+strconv.Itoa(len(l.args)), 1)
	}
	l.where = append(l.where, cond)
}

// compile validates f against the vocabulary and builds its conditions.
func (q *Queries) compile(f CustomerFilter) (*listQuery, error) {
	vocab := q.Vocabulary()
	l := &listQuery{}
	type filter struct{ field, value, column string }
	filters := make([]filter, 0, 6+len(f.Dims))
	filters = append(filters,
		filter{domain.LabelValueTier, f.ValueTier, "value_tier"}, filter{domain.LabelActivity, f.Activity, "activity"},
		filter{domain.LabelLifecycle, f.Lifecycle, "lifecycle"}, filter{domain.LabelNeedOrientation, f.NeedOrientation, "need_orientation"},
		filter{domain.LabelSegment, f.Segment, ""}, filter{"tag", f.Tag, ""})
	for _, name := range slices.Sorted(maps.Keys(f.Dims)) {
		filters = append(filters, filter{name, f.Dims[name], "dims"})
	}
	for _, c := range filters {
		if c.value == "" {
			continue
		}
		if !slices.ContainsFunc(vocab[c.field], func(v CardValue) bool { return v.Value == c.value }) {
			names := make([]string, len(vocab[c.field]))
			for i, v := range vocab[c.field] {
				names[i] = v.Value
			}
			return nil, &FilterError{Field: c.field, Message: c.field + " must be one of " + strings.Join(names, ", ")}
		}
		switch c.field {
		case domain.LabelSegment:
			tier, act, _ := strings.Cut(c.value, "/")
			l.add("value_tier = ? AND activity = ?", tier, act)
		case "tag":
			l.addKey("tag:"+c.value, "tags @> ARRAY[?::text]", c.value)
		case domain.LabelValueTier, domain.LabelActivity, domain.LabelLifecycle, domain.LabelNeedOrientation:
			l.add(c.column+" = ?", c.value)
		default:
			l.addKey("dim:"+c.field+"="+c.value, "dims @> ARRAY[?::text]", c.field+"="+c.value)
		}
	}
	if f.Owner != "" {
		l.add("owner = ?", f.Owner)
	}
	if f.Query != "" {
		if len(f.Query) > 64 || !utf8.ValidString(f.Query) {
			return nil, &FilterError{Field: "q", Message: "q must be valid text of at most 64 bytes"}
		}
		// A prefix as a range in byte order (the indexes are COLLATE "C").
		upper := f.Query + string(utf8.MaxRune)
		l.add(`((customer COLLATE "C" >= ? AND customer COLLATE "C" < ?) OR (search_name COLLATE "C" >= ? AND search_name COLLATE "C" < ?))`,
			f.Query, upper, f.Query, upper)
	}
	if f.Cursor != "" {
		at, id, err := decodeListCursor(f.Cursor)
		if err != nil {
			return nil, &FilterError{Field: "cursor", Message: "cursor is not valid; use the next value of a previous page"}
		}
		l.after = &listKey{at: at, id: id}
	}
	return l, nil
}

// addKey filters on a customer_list_keys key: the first such filter
// drives the query, any further one is a plain condition.
func (l *listQuery) addKey(key, cond string, arg any) {
	if l.key == "" {
		l.key = key
		return
	}
	l.add(cond, arg)
}

// sql is the page query (limit 0: every row): customer_projections p (joined to the keys k when
// a key drives it), newest change first, after the cursor.
func (l *listQuery) sql(columns string, limit int) (string, []any) {
	where, args := slices.Clone(l.where), slices.Clone(l.args)
	arg := func(v any) string { args = append(args, v); return "$" + strconv.Itoa(len(args)) }
	from, order := "customer_projections p", "p.changed_at DESC, p.stream_id DESC"
	keyCols := "(p.changed_at, p.stream_id)"
	if l.key != "" {
		from = "customer_projections p JOIN customer_list_keys k ON k.stream_id = p.stream_id"
		order, keyCols = "k.changed_at DESC, k.stream_id DESC", "(k.changed_at, k.stream_id)"
		where = append(where, "k.key = "+arg(l.key))
	}
	if l.after != nil {
		where = append(where, keyCols+" < ("+arg(l.after.at)+", "+arg(pgUUID(l.after.id))+")")
	}
	sql := "SELECT " + columns + " FROM " + from
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += " ORDER BY " + order
	if limit > 0 {
		sql += " LIMIT " + strconv.Itoa(limit)
	}
	return sql, args
}

func encodeListCursor(at time.Time, id uuid.UUID) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at.UnixMicro(), 10) + "." + id.String()))
}

func decodeListCursor(s string) (time.Time, uuid.UUID, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return time.Time{}, uuid.UUID{}, err
	}
	micros, id, ok := strings.Cut(string(raw), ".")
	if !ok {
		return time.Time{}, uuid.UUID{}, errors.New("no separator")
	}
	n, err := strconv.ParseInt(micros, 10, 64)
	if err != nil {
		return time.Time{}, uuid.UUID{}, err
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return time.Time{}, uuid.UUID{}, err
	}
	return time.UnixMicro(n), u, nil
}

// Customers returns one page of the list, newest change first, and the
// cursor of the next page ("" after the last).
func (q *Queries) Customers(ctx context.Context, f CustomerFilter, how eventstore.Disclosure) ([]CustomerCard, string, error) {
	l, err := q.compile(f)
	if err != nil {
		return nil, "", err
	}
	if f.Limit < 1 {
		f.Limit = 50
	}
	cards, last, err := q.listPage(ctx, l, f.Limit+1, how)
	if err != nil {
		return nil, "", err
	}
	cursor := ""
	if len(cards) > f.Limit {
		cards, cursor = cards[:f.Limit], encodeListCursor(last[f.Limit-1].at, last[f.Limit-1].id)
	}
	ids := make([]uuid.UUID, len(cards))
	for i := range cards {
		ids[i] = last[i].id
	}
	dups, err := q.pii.PossibleDuplicates(ctx, ids, time.Time{})
	if err != nil {
		return nil, "", err
	}
	for i := range cards {
		cards[i].PossibleDuplicateOf = orEmpty(dups[ids[i]])
	}
	return cards, cursor, nil
}

// EachCustomerPage calls fn with the whole filtered list in pages of size
// (newest change first): memory stays flat (a few pages) however long the
// list. One query streams every row (one round trip, one snapshot: the
// export is consistent); while fn writes a page, the next is read and its
// personal data opened, so an export costs the slowest of the three stages
// rather than their sum.
func (q *Queries) EachCustomerPage(ctx context.Context, f CustomerFilter, size int, how eventstore.Disclosure, fn func([]CustomerCard) error) error {
	f.Cursor = ""
	l, err := q.compile(f)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	raw := make(chan []listRow, 1)
	pages := make(chan []CustomerCard, 1)
	g.Go(func() error {
		defer close(raw)
		sql, args := l.sql(listRowColumns, 0)
		rows, err := q.projector.pool.Query(gctx, sql, args...)
		if err != nil {
			return fmt.Errorf("list customers: %w", eventstore.MapError(err))
		}
		defer rows.Close()
		d := newListDecoder(rows)
		for {
			list, err := scanListRows(rows, d, size)
			if err != nil || len(list) == 0 {
				return err
			}
			select {
			case raw <- list:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
	})
	g.Go(func() error {
		defer close(pages)
		for list := range raw {
			cards, err := q.cardsOf(gctx, list, how)
			if err != nil {
				return err
			}
			select {
			case pages <- cards:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	var fnErr error
	for cards := range pages {
		if fnErr == nil {
			if fnErr = fn(cards); fnErr != nil {
				cancel() // the readers stop; pages is drained until they do
			}
		}
	}
	if err := g.Wait(); fnErr == nil && err != nil {
		return err
	}
	return fnErr
}

type listKey struct {
	at time.Time
	id uuid.UUID
}

// listRowColumns are the columns of a list row (listRow).
const listRowColumns = `p.stream_id, p.customer, p.name, p.owner, p.value_tier, p.activity, p.need_orientation, p.lifecycle, p.tags,
	p.net_amount, p.last_order_at, p.changed_at, p.dims`

// listRow is a customer_projections row of the list.
type listRow struct {
	key                             listKey
	code, name, owner               string
	tier, activity, need, lifecycle string
	tags, dims                      []string
	net                             int64
	lastOrder                       *time.Time
}

// scanListRows reads up to limit rows (0: all) of a query of listRowColumns
// with d, made for rows before the first call (once the rows are read to
// the end, their connection is back in the pool and serves other queries).
func scanListRows(rows pgx.Rows, d *listDecoder, limit int) ([]listRow, error) {
	list := make([]listRow, 0, max(limit, 0))
	for (limit == 0 || len(list) < limit) && rows.Next() {
		var r listRow
		if err := d.row(rows, &r); err != nil {
			return nil, fmt.Errorf("list customers: %w", eventstore.MapError(err))
		}
		list = append(list, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list customers: %w", eventstore.MapError(err))
	}
	return list, nil
}

// listPage reads up to limit cards matching l.
func (q *Queries) listPage(ctx context.Context, l *listQuery, limit int, how eventstore.Disclosure) ([]CustomerCard, []listKey, error) {
	sql, args := l.sql(listRowColumns, limit)
	rows, err := q.projector.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("list customers: %w", eventstore.MapError(err))
	}
	list, err := scanListRows(rows, newListDecoder(rows), 0)
	rows.Close()
	if err != nil {
		return nil, nil, err
	}
	keys := make([]listKey, len(list))
	for i := range list {
		keys[i] = list[i].key
	}
	cards, err := q.cardsOf(ctx, list, how)
	return cards, keys, err
}

// cardsOf turns list rows into cards, their names opened and masked as how
// says.
func (q *Queries) cardsOf(ctx context.Context, list []listRow, how eventstore.Disclosure) ([]CustomerCard, error) {
	ids := make([]uuid.UUID, len(list))
	for i := range list {
		ids[i] = list[i].key.id
	}
	pd, err := q.pii.OpenPersonalData(ctx, ids)
	if err != nil {
		return nil, err
	}
	rs := q.projector.book.Latest()
	tagDisplay := map[string]string{}
	for _, t := range rs.Tags {
		tagDisplay[t.Name] = t.Display
	}
	ts := func(t time.Time) string { return t.In(rs.Location).Format(time.RFC3339Nano) }
	cards := make([]CustomerCard, len(list))
	for i := range list {
		r := &list[i]
		name, err := pd.Field(r.key.id, domain.PersonalName, r.name, how)
		if err != nil {
			return nil, err
		}
		seg := r.tier + "/" + r.activity
		c := CustomerCard{
			Customer: r.code, Name: name, Owner: r.owner, NetAmount: domain.Money(r.net), ChangedAt: ts(r.key.at), Tags: []CardTag{},
			Labels: map[string]CardValue{
				domain.LabelValueTier: {r.tier, rs.Display(domain.LabelValueTier, r.tier)}, domain.LabelActivity: {r.activity, rs.Display(domain.LabelActivity, r.activity)},
				domain.LabelNeedOrientation: {r.need, rs.Display(domain.LabelNeedOrientation, r.need)}, domain.LabelLifecycle: {r.lifecycle, rs.Display(domain.LabelLifecycle, r.lifecycle)},
				domain.LabelSegment: {seg, rs.Display(domain.LabelSegment, seg)},
			},
		}
		for _, t := range r.tags {
			c.Tags = append(c.Tags, CardTag{Tag: t, Display: tagDisplay[t]})
		}
		for _, d := range r.dims {
			if name, value, ok := strings.Cut(d, "="); ok {
				c.Labels[name] = CardValue{value, rs.Display(name, value)}
			}
		}
		if r.lastOrder != nil {
			v := ts(*r.lastOrder)
			c.LastOrderAt = &v
		}
		cards[i] = c
	}
	return cards, nil
}
