package domain

import (
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"time"
)

// Cursor kinds bind a cursor to the listing that issued it, so a cursor from
// one listing handed to another is rejected instead of silently misread.
const (
	cursorVersion     = 1
	CursorKindShifts  = byte('s')
	CursorKindWorkers = byte('w')
)

// Cursor is a position in a listing ordered by (Start, ID); listings ordered
// by ID alone leave Start zero. It travels as an opaque string.
type Cursor struct {
	Start time.Time
	ID    int64
}

// cursorLen is version, kind, start (unix µs), id, crc32.
const cursorLen = 1 + 1 + 8 + 8 + 4

// EncodeCursor renders c for a listing of the given kind. The checksum makes
// a hand-edited or truncated cursor fail to decode rather than page wrongly.
func EncodeCursor(kind byte, c Cursor) string {
	var b [cursorLen]byte
	b[0] = cursorVersion
	b[1] = kind
	binary.BigEndian.PutUint64(b[2:10], uint64(c.Start.UnixMicro()))
	binary.BigEndian.PutUint64(b[10:18], uint64(c.ID))
	binary.BigEndian.PutUint32(b[18:22], crc32.ChecksumIEEE(b[:18]))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// DecodeCursor parses a cursor issued by EncodeCursor for the same kind. Any
// other input is an EINVALID error.
func DecodeCursor(kind byte, s string) (Cursor, error) {
	bad := Errorf(EINVALID, "cursor is malformed or was not issued for this listing")
	if len(s) != base64.RawURLEncoding.EncodedLen(cursorLen) {
		return Cursor{}, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != cursorLen || b[0] != cursorVersion || b[1] != kind ||
		binary.BigEndian.Uint32(b[18:22]) != crc32.ChecksumIEEE(b[:18]) {
		return Cursor{}, bad
	}
	id := int64(binary.BigEndian.Uint64(b[10:18]))
	if id < 0 {
		return Cursor{}, bad
	}
	return Cursor{Start: time.UnixMicro(int64(binary.BigEndian.Uint64(b[2:10]))).UTC(), ID: id}, nil
}
