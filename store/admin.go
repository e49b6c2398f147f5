package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// JobCounts returns River's jobs counted by queue and state.
func (s *Store) JobCounts(ctx context.Context) (map[string]map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT queue, state::text, count(*) FROM river_job GROUP BY 1, 2`)
	if err != nil {
		return nil, classify("count jobs", err)
	}
	out := map[string]map[string]int64{}
	var (
		queue, state string
		n            int64
	)
	_, err = pgx.ForEachRow(rows, []any{&queue, &state, &n}, func() error {
		if out[queue] == nil {
			out[queue] = map[string]int64{}
		}
		out[queue][state] = n
		return nil
	})
	if err != nil {
		return nil, classify("count jobs", err)
	}
	return out, nil
}

// NotificationCounts returns notifications counted by delivery status.
func (s *Store) NotificationCounts(ctx context.Context) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT status, count(*) FROM shiftcast.notifications GROUP BY 1`)
	if err != nil {
		return nil, classify("count notifications", err)
	}
	out := map[string]int64{"pending": 0, "delivered": 0, "failed": 0}
	var (
		status string
		n      int64
	)
	_, err = pgx.ForEachRow(rows, []any{&status, &n}, func() error { out[status] = n; return nil })
	if err != nil {
		return nil, classify("count notifications", err)
	}
	return out, nil
}
