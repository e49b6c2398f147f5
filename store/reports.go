package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// MonthlyRow is one (month, worker) line of the monthly report.
type MonthlyRow struct {
	Month         time.Time
	WorkerID      int64
	Shifts        int64
	Seconds       int64
	Notifications int64
}

// MonthlyReport returns the rollup for months [from, to] (first days of
// months, UTC), optionally for some workers only, ordered by month then
// worker. Rows with nothing to report are left out.
func (s *Store) MonthlyReport(ctx context.Context, from, to time.Time, workerIDs []int64) ([]MonthlyRow, error) {
	var ids []int32
	for _, id := range workerIDs {
		if id <= 1<<31-1 {
			ids = append(ids, int32(id))
		}
	}
	if workerIDs != nil && ids == nil {
		return []MonthlyRow{}, nil // only ids that cannot exist were asked for
	}
	rows, err := s.pool.Query(ctx, `
		SELECT month, worker_id, shifts, seconds, notifications
		FROM shiftcast.monthly_stats
		WHERE month BETWEEN $1::date AND $2::date
		  AND ($3::integer[] IS NULL OR worker_id = ANY ($3))
		  AND (shifts <> 0 OR notifications <> 0)
		ORDER BY month, worker_id`, from, to, ids)
	if err != nil {
		return nil, classify("monthly report", err)
	}
	out := []MonthlyRow{}
	var r MonthlyRow
	_, err = pgx.ForEachRow(rows, []any{&r.Month, &r.WorkerID, &r.Shifts, &r.Seconds, &r.Notifications}, func() error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, classify("monthly report", err)
	}
	return out, nil
}
