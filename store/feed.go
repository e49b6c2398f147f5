package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shiftcast/shiftcast/domain"
)

// historySQL is one page of worker $1's notifications, newest first, before
// the position ($2, $3) when $2 is set. The worker drives the query so an
// unknown worker gives no row at all while a known one without
// notifications gives one row of NULLs: one round trip either way.
const historySQL = `
SELECT n.id::text, n.count, n.shifts, n.created_at, n.status
FROM "Worker" w
LEFT JOIN LATERAL (
    SELECT id, count, shifts, created_at, status
    FROM shiftcast.notifications
    WHERE worker_id = w.id
      AND ($2::timestamptz IS NULL OR (created_at, id) < ($2::timestamptz, $3::uuid))
    ORDER BY created_at DESC, id DESC
    LIMIT $4
) n ON true
WHERE w.id = $1`

// NotificationHistory returns one page of a worker's notifications with
// their delivery status, newest first, ordered by (created_at, id)
// descending; before, when set, resumes after that position. more tells
// whether an older page exists. An unknown worker is ENOTFOUND.
func (s *Store) NotificationHistory(ctx context.Context, workerID int64, before *domain.FeedCursor, limit int) ([]domain.NotificationRecord, bool, error) {
	if workerID < 1 || workerID > math.MaxInt32 {
		return nil, false, domain.Errorf(domain.ENOTFOUND, "worker %d not found", workerID)
	}
	if limit < 1 {
		return nil, false, domain.Errorf(domain.EINVALID, "limit must be positive, got %d", limit)
	}
	var (
		at *time.Time
		id *string
	)
	if before != nil {
		t := before.CreatedAt.UTC()
		at, id = &t, &before.ID
	}
	op := fmt.Sprintf("notification history of worker %d", workerID)
	rows, err := s.pool.Query(ctx, historySQL, workerID, at, id, limit+1)
	if err != nil {
		return nil, false, classify(op, err)
	}
	out := []domain.NotificationRecord{}
	found := false
	var (
		nid     *string
		count   *int
		shifts  []byte
		created *time.Time
		status  *string
	)
	_, err = pgx.ForEachRow(rows, []any{&nid, &count, &shifts, &created, &status}, func() error {
		found = true
		if nid == nil {
			return nil
		}
		r := domain.NotificationRecord{Status: *status}
		r.Notification = domain.Notification{ID: *nid, Type: domain.NotificationTypeShiftsAvailable, WorkerID: workerID, Count: *count, CreatedAt: created.UTC()}
		if err := decodeShifts(*nid, shifts, &r.Notification); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, false, classify(op, err)
	}
	if !found {
		return nil, false, domain.Errorf(domain.ENOTFOUND, "worker %d not found", workerID)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

// sinceSQL lists worker $1's notifications created after notification $2,
// oldest first. The anchor drives the query so an anchor that is not the
// worker's gives no row while one with nothing after it gives one row of
// NULLs.
const sinceSQL = `
SELECT n.id::text, n.count, n.shifts, n.created_at
FROM shiftcast.notifications a
LEFT JOIN LATERAL (
    SELECT id, count, shifts, created_at
    FROM shiftcast.notifications
    WHERE worker_id = a.worker_id AND (created_at, id) > (a.created_at, a.id)
    ORDER BY created_at, id
    LIMIT $3
) n ON true
WHERE a.id = $2::uuid AND a.worker_id = $1`

// NotificationsSince returns, oldest first, up to limit notifications of
// the worker created after the one with id afterID, in (created_at, id)
// order: what an SSE client that last saw afterID missed. An afterID that
// is not one of the worker's notifications is EINVALID. Page through by
// passing the last id returned until fewer than limit come back.
func (s *Store) NotificationsSince(ctx context.Context, workerID int64, afterID string, limit int) ([]domain.Notification, error) {
	id, err := domain.ParseNotificationID("last event id", afterID)
	if err != nil {
		return nil, err
	}
	notTheirs := domain.Errorf(domain.EINVALID, "last event id %s is not a notification of worker %d", id, workerID)
	if workerID < 1 || workerID > math.MaxInt32 {
		return nil, notTheirs
	}
	if limit < 1 {
		return nil, domain.Errorf(domain.EINVALID, "limit must be positive, got %d", limit)
	}
	op := fmt.Sprintf("notifications of worker %d since %s", workerID, id)
	rows, err := s.pool.Query(ctx, sinceSQL, workerID, id, limit)
	if err != nil {
		return nil, classify(op, err)
	}
	out := []domain.Notification{}
	found := false
	var (
		nid     *string
		count   *int
		shifts  []byte
		created *time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&nid, &count, &shifts, &created}, func() error {
		found = true
		if nid == nil {
			return nil
		}
		n := domain.Notification{ID: *nid, Type: domain.NotificationTypeShiftsAvailable, WorkerID: workerID, Count: *count, CreatedAt: created.UTC()}
		if err := decodeShifts(*nid, shifts, &n); err != nil {
			return err
		}
		out = append(out, n)
		return nil
	})
	if err != nil {
		return nil, classify(op, err)
	}
	if !found {
		return nil, notTheirs
	}
	return out, nil
}

// RecentNotifications returns the latest notifications of every worker
// with their delivery status, newest first, for the operator's page.
func (s *Store) RecentNotifications(ctx context.Context, limit int) ([]domain.NotificationRecord, error) {
	if limit < 1 {
		return nil, domain.Errorf(domain.EINVALID, "limit must be positive, got %d", limit)
	}
	rows, err := s.pool.Query(ctx, `
		SELECT id::text, worker_id, count, shifts, created_at, status
		FROM shiftcast.notifications
		ORDER BY created_at DESC, id DESC
		LIMIT $1`, limit)
	if err != nil {
		return nil, classify("recent notifications", err)
	}
	out := []domain.NotificationRecord{}
	var (
		r      domain.NotificationRecord
		shifts []byte
	)
	n := &r.Notification
	_, err = pgx.ForEachRow(rows, []any{&n.ID, &n.WorkerID, &n.Count, &shifts, &n.CreatedAt, &r.Status}, func() error {
		n.Type, n.CreatedAt, n.Shifts = domain.NotificationTypeShiftsAvailable, n.CreatedAt.UTC(), nil
		if err := decodeShifts(n.ID, shifts, n); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, classify("recent notifications", err)
	}
	return out, nil
}

// decodeShifts fills n.Shifts from the stored JSON, never leaving it nil so
// it encodes as [] rather than null.
func decodeShifts(id string, raw []byte, n *domain.Notification) error {
	if err := json.Unmarshal(raw, &n.Shifts); err != nil {
		return fmt.Errorf("decode notification %s shifts: %w", id, err)
	}
	if n.Shifts == nil {
		n.Shifts = []domain.NotificationShift{}
	}
	return nil
}
