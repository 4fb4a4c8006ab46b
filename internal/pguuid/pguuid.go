// Package pguuid teaches a pgx type map to send and receive
// github.com/google/uuid values in PostgreSQL's binary format.
//
// Without it pgx finds no binary plan for uuid.UUID, builds an error
// message for the failed attempt, falls back to its database/sql Valuer
// (text) and parses the text again on the server; scanning goes through
// sql.Scanner and text the other way. On the append and projector paths,
// which pass thousands of ids per transaction, that was a quarter of the
// Go CPU.
package pguuid

import (
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// Register replaces the map's uuid and uuid[] types with ones whose codec
// also handles uuid.UUID values and *uuid.UUID targets directly.
func Register(m *pgtype.Map) {
	t := &pgtype.Type{Name: "uuid", OID: pgtype.UUIDOID, Codec: codec{}}
	m.RegisterType(t)
	m.RegisterType(&pgtype.Type{Name: "_uuid", OID: pgtype.UUIDArrayOID, Codec: &pgtype.ArrayCodec{ElementType: t}})
}

// codec is pgx's UUIDCodec plus plans for uuid.UUID.
type codec struct{ pgtype.UUIDCodec }

func (c codec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if _, ok := value.(uuid.UUID); ok {
		switch format {
		case pgtype.BinaryFormatCode:
			return encodeBinary{}
		case pgtype.TextFormatCode:
			return encodeText{}
		}
	}
	return c.UUIDCodec.PlanEncode(m, oid, format, value)
}

func (c codec) PlanScan(m *pgtype.Map, oid uint32, format int16, target any) pgtype.ScanPlan {
	if _, ok := target.(*uuid.UUID); ok && format == pgtype.BinaryFormatCode {
		return scanBinary{}
	}
	return c.UUIDCodec.PlanScan(m, oid, format, target)
}

type encodeBinary struct{}

func (encodeBinary) Encode(value any, buf []byte) ([]byte, error) {
	u, ok := value.(uuid.UUID)
	if !ok {
		return nil, fmt.Errorf("uuid: cannot encode %T", value)
	}
	return append(buf, u[:]...), nil
}

type encodeText struct{}

func (encodeText) Encode(value any, buf []byte) ([]byte, error) {
	u, ok := value.(uuid.UUID)
	if !ok {
		return nil, fmt.Errorf("uuid: cannot encode %T", value)
	}
	return append(buf, u.String()...), nil
}

type scanBinary struct{}

// Scan leaves the target unchanged on NULL, as uuid.UUID.Scan does.
func (scanBinary) Scan(src []byte, dst any) error {
	if src == nil {
		return nil
	}
	if len(src) != 16 {
		return fmt.Errorf("uuid: %d bytes in binary format, want 16", len(src))
	}
	u, ok := dst.(*uuid.UUID)
	if !ok {
		return fmt.Errorf("uuid: cannot scan into %T", dst)
	}
	copy(u[:], src)
	return nil
}
