package domain

import (
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"time"

	"github.com/google/uuid"
)

// CursorKindNotifications marks cursors of a worker's notification history.
const CursorKindNotifications = byte('n')

// Notification delivery states, as recorded on each notification.
const (
	NotificationPending   = "pending"
	NotificationDelivered = "delivered"
	NotificationFailed    = "failed"
)

// NotificationRecord is a stored notification with its delivery state: the
// notification's JSON plus "status".
type NotificationRecord struct {
	Notification
	Status string `json:"status"`
}

// FeedCursor is a position in a notification listing ordered by
// (CreatedAt, ID); ID is the notification's UUID. Notification ids are
// UUIDs, which Cursor's int64 cannot hold, hence a cursor of its own.
type FeedCursor struct {
	CreatedAt time.Time
	ID        string
}

// feedCursorLen is version, kind, created_at (unix µs), uuid, crc32.
const feedCursorLen = 1 + 1 + 8 + 16 + 4

// EncodeFeedCursor renders c as an opaque string. The checksum makes a
// hand-edited or truncated cursor fail to decode rather than page wrongly.
// c.ID must be a UUID (the store only issues those); anything else encodes
// as the nil UUID.
func EncodeFeedCursor(c FeedCursor) string {
	id, _ := uuid.Parse(c.ID)
	var b [feedCursorLen]byte
	b[0] = cursorVersion
	b[1] = CursorKindNotifications
	binary.BigEndian.PutUint64(b[2:10], uint64(c.CreatedAt.UnixMicro()))
	copy(b[10:26], id[:])
	binary.BigEndian.PutUint32(b[26:30], crc32.ChecksumIEEE(b[:26]))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// DecodeFeedCursor parses a cursor issued by EncodeFeedCursor. Any other
// input is an EINVALID error.
func DecodeFeedCursor(s string) (FeedCursor, error) {
	bad := Errorf(EINVALID, "cursor is malformed or was not issued for this listing")
	if len(s) != base64.RawURLEncoding.EncodedLen(feedCursorLen) {
		return FeedCursor{}, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != feedCursorLen || b[0] != cursorVersion || b[1] != CursorKindNotifications ||
		binary.BigEndian.Uint32(b[26:30]) != crc32.ChecksumIEEE(b[:26]) {
		return FeedCursor{}, bad
	}
	id, err := uuid.FromBytes(b[10:26])
	if err != nil {
		return FeedCursor{}, bad
	}
	return FeedCursor{
		CreatedAt: time.UnixMicro(int64(binary.BigEndian.Uint64(b[2:10]))).UTC(),
		ID:        id.String(),
	}, nil
}

// ParseNotificationID validates a notification id (a UUID) given by a
// caller, e.g. as an SSE Last-Event-ID, and returns it in canonical form.
func ParseNotificationID(name, s string) (string, error) {
	id, err := uuid.Parse(s)
	if len(s) != 36 || err != nil {
		return "", Errorf(EINVALID, "%s must be a notification id (a UUID such as 0b5c8f1e-2a4d-4c6b-9e0f-1a2b3c4d5e6f)", name)
	}
	return id.String(), nil
}
