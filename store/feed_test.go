package store_test

import (
	"context"
	"math"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/domain"
)

// feedRow is a notification as the tests insert it.
type feedRow struct {
	id      string
	worker  int64
	at      time.Time
	status  string
	count   int
	shiftID int64
}

func (b *testBundle) feedWorkers(t *testing.T, ids ...int64) {
	t.Helper()
	for _, id := range ids {
		b.exec(t, `INSERT INTO "Worker" (id, name, is_active, profession) VALUES ($1, 'W', true, 'CNA')`, id)
	}
}

// insertNotification writes a row as store.BuildDigest would.
func (b *testBundle) insertNotification(t *testing.T, r feedRow) {
	t.Helper()
	start := r.at.Add(24 * time.Hour)
	shifts := `[{"id":` + strconv.FormatInt(r.shiftID, 10) + `,"facility_id":1,"profession":"CNA","start":"` + start.Format(time.RFC3339) +
		`","end":"` + start.Add(8*time.Hour).Format(time.RFC3339) + `"}]`
	b.exec(t, `INSERT INTO shiftcast.notifications (id, worker_id, count, shifts, status, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		r.id, r.worker, r.count, shifts, r.status, r.at)
}

// feedRows inserts, for worker, n notifications at base (all the same
// created_at, so only the id orders them) plus one before and one after.
func (b *testBundle) feedRows(t *testing.T, worker int64, base time.Time, n int) []feedRow {
	t.Helper()
	var rows []feedRow
	add := func(at time.Time, status string) {
		r := feedRow{id: uuid.NewString(), worker: worker, at: at, status: status, count: len(rows) + 1, shiftID: int64(len(rows) + 1)}
		b.insertNotification(t, r)
		rows = append(rows, r)
	}
	add(base.Add(-time.Hour), domain.NotificationDelivered)
	for range n {
		add(base, domain.NotificationPending)
	}
	add(base.Add(time.Hour), domain.NotificationFailed)
	// (created_at, id) ascending; Postgres orders uuids bytewise, as their
	// lowercase hex strings sort.
	sort.Slice(rows, func(i, j int) bool {
		if !rows[i].at.Equal(rows[j].at) {
			return rows[i].at.Before(rows[j].at)
		}
		return rows[i].id < rows[j].id
	})
	return rows
}

func feedIDs(rows []feedRow) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.id
	}
	return out
}

func feedReversed(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

func TestNotificationHistory_PagesNewestFirstAcrossEqualTimes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.feedWorkers(t, 1, 2)
	base := time.Date(2024, 3, 1, 12, 0, 0, 123456000, time.UTC)
	rows := b.feedRows(t, 1, base, 5)
	b.feedRows(t, 2, base, 2) // another worker's: never listed

	var got []string
	var before *domain.FeedCursor
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10)
		page, more, err := b.store.NotificationHistory(ctx, 1, before, 2)
		require.NoError(t, err)
		require.LessOrEqual(t, len(page), 2)
		for _, n := range page {
			got = append(got, n.ID)
		}
		if !more {
			break
		}
		last := page[len(page)-1]
		c, err := domain.DecodeFeedCursor(domain.EncodeFeedCursor(domain.FeedCursor{CreatedAt: last.CreatedAt, ID: last.ID}))
		require.NoError(t, err)
		before = &c
	}
	require.Equal(t, feedReversed(feedIDs(rows)), got, "newest first, each once, equal created_at ordered by id")

	// One item in full.
	page, more, err := b.store.NotificationHistory(ctx, 1, nil, 1)
	require.NoError(t, err)
	require.True(t, more)
	newest := rows[len(rows)-1]
	start := newest.at.Add(24 * time.Hour)
	require.Equal(t, []domain.NotificationRecord{{
		Notification: domain.Notification{
			ID: newest.id, Type: domain.NotificationTypeShiftsAvailable, WorkerID: 1, Count: newest.count, CreatedAt: newest.at,
			Shifts: []domain.NotificationShift{{ID: newest.shiftID, FacilityID: 1, Profession: "CNA", Start: start.Truncate(time.Second), End: start.Truncate(time.Second).Add(8 * time.Hour)}},
		},
		Status: domain.NotificationFailed,
	}}, page)

	page, more, err = b.store.NotificationHistory(ctx, 1, nil, 500)
	require.NoError(t, err)
	require.False(t, more)
	require.Len(t, page, len(rows))
}

func TestNotificationHistory_UnknownAndEmptyWorkers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.feedWorkers(t, 7)

	page, more, err := b.store.NotificationHistory(ctx, 7, nil, 10)
	require.NoError(t, err, "a known worker without notifications")
	require.False(t, more)
	require.Equal(t, []domain.NotificationRecord{}, page)

	for _, w := range []int64{8, math.MaxInt32 + 1, math.MaxInt64} {
		_, _, err = b.store.NotificationHistory(ctx, w, nil, 10)
		require.Equal(t, domain.ENOTFOUND, domain.ErrorCode(err), "worker %d: %v", w, err)
	}
}

func TestNotificationsSince_OldestFirstAfterAnchor(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.feedWorkers(t, 1, 2)
	base := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	rows := b.feedRows(t, 1, base, 4)
	other := b.feedRows(t, 2, base, 1)

	for i, anchor := range rows {
		got, err := b.store.NotificationsSince(ctx, 1, anchor.id, 500)
		require.NoError(t, err)
		gotIDs := []string{}
		for _, n := range got {
			gotIDs = append(gotIDs, n.ID)
			require.Equal(t, int64(1), n.WorkerID)
			require.Equal(t, domain.NotificationTypeShiftsAvailable, n.Type)
			require.Len(t, n.Shifts, 1)
		}
		require.Equal(t, append([]string{}, feedIDs(rows[i+1:])...), gotIDs, "after row %d", i)
	}

	// Paging: limit bounds, resume from the last one.
	first, err := b.store.NotificationsSince(ctx, 1, rows[0].id, 2)
	require.NoError(t, err)
	require.Equal(t, feedIDs(rows[1:3]), []string{first[0].ID, first[1].ID})
	rest, err := b.store.NotificationsSince(ctx, 1, first[1].ID, 2)
	require.NoError(t, err)
	require.Equal(t, feedIDs(rows[3:5]), []string{rest[0].ID, rest[1].ID})

	// An anchor that is not the worker's, or no notification at all, or
	// not an id.
	for _, bad := range []string{other[0].id, uuid.NewString(), "nope", ""} {
		_, err := b.store.NotificationsSince(ctx, 1, bad, 10)
		require.Equal(t, domain.EINVALID, domain.ErrorCode(err), "anchor %q: %v", bad, err)
	}
	_, err = b.store.NotificationsSince(ctx, math.MaxInt64, rows[0].id, 10)
	require.Equal(t, domain.EINVALID, domain.ErrorCode(err))
}

func TestRecentNotifications_AllWorkersNewestFirst(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.feedWorkers(t, 1, 2)
	base := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	all := append(b.feedRows(t, 1, base, 2), b.feedRows(t, 2, base.Add(time.Minute), 1)...)
	sort.Slice(all, func(i, j int) bool {
		if !all[i].at.Equal(all[j].at) {
			return all[i].at.After(all[j].at)
		}
		return all[i].id > all[j].id
	})

	got, err := b.store.RecentNotifications(ctx, 3)
	require.NoError(t, err)
	require.Len(t, got, 3)
	for i, n := range got {
		require.Equal(t, all[i].id, n.ID)
		require.Equal(t, all[i].worker, n.WorkerID)
		require.Equal(t, all[i].status, n.Status)
		require.Len(t, n.Shifts, 1)
		require.Equal(t, all[i].shiftID, n.Shifts[0].ID, "each row decodes its own shifts")
	}
	_, err = b.store.RecentNotifications(ctx, 0)
	require.Equal(t, domain.EINVALID, domain.ErrorCode(err))
}
