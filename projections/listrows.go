package projections

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// listDecoder reads list rows straight from their binary wire form: an
// export decodes a million rows, and pgx's Scan, with a string allocated
// for every label, owner and tag, cost more than the rest of the export.
// The few distinct labels, owners and tags are shared instead (interned).
type listDecoder struct {
	intern map[string]string
	binary bool
}

func newListDecoder(rows pgx.Rows) *listDecoder {
	d := &listDecoder{intern: map[string]string{}, binary: true}
	for _, f := range rows.FieldDescriptions() {
		if f.Format != pgx.BinaryFormatCode {
			d.binary = false
		}
	}
	return d
}

var errListRow = errors.New("unexpected list row encoding")

// pgEpoch is timestamptz's zero (binary timestamps count microseconds from it).
var pgEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// row decodes the current row of rows (listRowColumns); with a text-format
// column (a pool not caching statements) it falls back to Scan.
func (d *listDecoder) row(rows pgx.Rows, r *listRow) error {
	if !d.binary {
		return rows.Scan((*uuidDst)(&r.key.id), &r.code, &r.name, &r.owner, &r.tier, &r.activity, &r.need, &r.lifecycle, &r.tags, &r.net,
			&r.lastOrder, &r.key.at, &r.dims)
	}
	v := rows.RawValues()
	if len(v) != 13 || len(v[0]) != 16 || len(v[9]) != 8 || len(v[11]) != 8 {
		return errListRow
	}
	copy(r.key.id[:], v[0])
	r.code, r.name = string(v[1]), string(v[2])
	r.owner, r.tier, r.activity, r.need, r.lifecycle = d.str(v[3]), d.str(v[4]), d.str(v[5]), d.str(v[6]), d.str(v[7])
	r.net = int64(binary.BigEndian.Uint64(v[9])) //nolint:gosec // G115: int8's two's-complement bits
	r.key.at = pgTime(v[11])
	if v[10] != nil {
		if len(v[10]) != 8 {
			return errListRow
		}
		t := pgTime(v[10])
		r.lastOrder = &t
	}
	var err error
	if r.tags, err = d.strings(v[8]); err != nil {
		return err
	}
	r.dims, err = d.strings(v[12])
	return err
}

func pgTime(b []byte) time.Time {
	micros := int64(binary.BigEndian.Uint64(b)) //nolint:gosec // G115: timestamptz's two's-complement bits
	return pgEpoch.Add(time.Duration(micros) * time.Microsecond)
}

func (d *listDecoder) str(b []byte) string {
	if s, ok := d.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(d.intern) < 10_000 {
		d.intern[s] = s
	}
	return s
}

// strings decodes a one-dimensional text[] without NULLs (tags, dims).
func (d *listDecoder) strings(b []byte) ([]string, error) {
	if len(b) < 12 {
		return nil, errListRow
	}
	ndim := binary.BigEndian.Uint32(b)
	if ndim == 0 {
		return []string{}, nil
	}
	if ndim != 1 || len(b) < 20 {
		return nil, errListRow
	}
	n := int(binary.BigEndian.Uint32(b[12:]))
	b = b[20:]
	out := make([]string, n)
	for i := range out {
		if len(b) < 4 {
			return nil, errListRow
		}
		l := int32(binary.BigEndian.Uint32(b)) //nolint:gosec // G115: int4's two's-complement bits (-1: NULL)
		if l < 0 || len(b) < 4+int(l) {
			return nil, errListRow
		}
		out[i], b = d.str(b[4:4+l]), b[4+l:]
	}
	return out, nil
}
