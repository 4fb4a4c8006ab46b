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
			l.add("tags @> ARRAY[?::text]", c.value)
		case domain.LabelValueTier, domain.LabelActivity, domain.LabelLifecycle, domain.LabelNeedOrientation:
			l.add(c.column+" = ?", c.value)
		default:
			l.add("dims @> ARRAY[?::text]", c.field+"="+c.value)
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
		l.add("(changed_at, stream_id) < (?, ?)", at, pgUUID(id))
	}
	return l, nil
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
	if err != nil || len(cards) <= f.Limit {
		return cards, "", err
	}
	return cards[:f.Limit], encodeListCursor(last[f.Limit-1].at, last[f.Limit-1].id), nil
}

// EachCustomerPage calls fn with the whole filtered list in pages of size
// (newest change first): memory stays flat (two pages) however long the
// list. The next page is read while fn writes the current one, so an
// export costs the slower of the two rather than their sum.
func (q *Queries) EachCustomerPage(ctx context.Context, f CustomerFilter, size int, how eventstore.Disclosure, fn func([]CustomerCard) error) error {
	f.Cursor = ""
	base, err := q.compile(f)
	if err != nil {
		return err
	}
	type page struct {
		cards []CustomerCard
		keys  []listKey
		err   error
	}
	read := func(after *listKey) <-chan page {
		l := &listQuery{where: slices.Clone(base.where), args: slices.Clone(base.args)}
		if after != nil {
			l.add("(changed_at, stream_id) < (?, ?)", after.at, pgUUID(after.id))
		}
		ch := make(chan page, 1)
		go func() {
			cards, keys, err := q.listPage(ctx, l, size, how)
			ch <- page{cards, keys, err}
		}()
		return ch
	}
	next := read(nil)
	for next != nil {
		p := <-next
		if p.err != nil {
			return p.err
		}
		next = nil
		if len(p.cards) == size {
			next = read(&p.keys[len(p.keys)-1])
		}
		if len(p.cards) > 0 {
			if err := fn(p.cards); err != nil {
				if next != nil {
					<-next // the read under way ends before ctx may be reused
				}
				return err
			}
		}
	}
	return nil
}

type listKey struct {
	at time.Time
	id uuid.UUID
}

// listPage reads up to limit cards matching l.
func (q *Queries) listPage(ctx context.Context, l *listQuery, limit int, how eventstore.Disclosure) ([]CustomerCard, []listKey, error) {
	sql := `SELECT stream_id, customer, name, owner, value_tier, activity, need_orientation, lifecycle, tags, net_amount,
		last_order_at, changed_at, dims FROM customer_projections`
	if len(l.where) > 0 {
		sql += " WHERE " + strings.Join(l.where, " AND ")
	}
	sql += " ORDER BY changed_at DESC, stream_id DESC LIMIT " + strconv.Itoa(limit)
	rows, err := q.projector.pool.Query(ctx, sql, l.args...)
	if err != nil {
		return nil, nil, fmt.Errorf("list customers: %w", eventstore.MapError(err))
	}
	type row struct {
		key                             listKey
		code, name, owner               string
		tier, activity, need, lifecycle string
		tags, dims                      []string
		net                             int64
		lastOrder                       *time.Time
	}
	var list []row
	for rows.Next() {
		var r row
		if err := rows.Scan((*uuidDst)(&r.key.id), &r.code, &r.name, &r.owner, &r.tier, &r.activity, &r.need, &r.lifecycle, &r.tags, &r.net,
			&r.lastOrder, &r.key.at, &r.dims); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("list customers: %w", eventstore.MapError(err))
		}
		list = append(list, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("list customers: %w", eventstore.MapError(err))
	}
	ids := make([]uuid.UUID, len(list))
	for i, r := range list {
		ids[i] = r.key.id
	}
	pd, err := q.pii.OpenPersonalData(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	rs := q.projector.book.Latest()
	tagDisplay := map[string]string{}
	for _, t := range rs.Tags {
		tagDisplay[t.Name] = t.Display
	}
	ts := func(t time.Time) string { return t.In(rs.Location).Format(time.RFC3339Nano) }
	cards := make([]CustomerCard, len(list))
	keys := make([]listKey, len(list))
	for i, r := range list {
		name, err := pd.Field(r.key.id, domain.PersonalName, r.name, how)
		if err != nil {
			return nil, nil, err
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
		cards[i], keys[i] = c, r.key
	}
	return cards, keys, nil
}
