package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// directMonthly aggregates "Shift" directly: what the rollup must equal.
const directMonthly = `
SELECT date_trunc('month', start)::date AS month, worker_id, count(*) AS shifts,
       sum(extract(epoch FROM "end" - start))::bigint AS seconds
FROM "Shift" WHERE worker_id IS NOT NULL AND NOT is_deleted GROUP BY 1, 2`

// rollupMismatches counts (month, worker) pairs where the rollup and the
// direct aggregate disagree.
func rollupMismatches(t *testing.T, b *testBundle) int64 {
	t.Helper()
	var n int64
	require.NoError(t, b.pool.QueryRow(context.Background(), `
		SELECT count(*) FROM (`+directMonthly+`) d
		FULL JOIN (SELECT month, worker_id, shifts, seconds FROM shiftcast.monthly_stats WHERE shifts <> 0 OR seconds <> 0) m
		USING (month, worker_id)
		WHERE d.shifts IS DISTINCT FROM m.shifts OR d.seconds IS DISTINCT FROM m.seconds`).Scan(&n))
	return n
}

// Five years and a million shifts, claimed, released, deleted, moved and removed in
// bulk and row by row: the trigger-kept rollup always equals the direct
// aggregate.
func TestMonthlyReport_RollupMatchesDirectAggregate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(t, `INSERT INTO "Facility" (id, name, is_active) SELECT g, 'F' || g, true FROM generate_series(1, 20) g`)
	b.exec(t, `INSERT INTO "Worker" (id, name, is_active, profession) SELECT g, 'W' || g, true, 'CNA' FROM generate_series(1, 200) g`)
	// 1,000,000 shifts over 2021-2025, a fair coin for claimed and deleted,
	// durations of 4, 8 or 12 hours.
	b.exec(t, `
		SELECT setseed(0.42);
		INSERT INTO "Shift" (start, "end", profession, is_deleted, facility_id, worker_id)
		SELECT s, s + (4 * (1 + (random() * 3)::int % 3)) * interval '1 hour', 'CNA', random() < 0.5,
		       1 + (random() * 19)::int, CASE WHEN random() < 0.5 THEN 1 + (random() * 199)::int END
		FROM (SELECT timestamp '2021-01-01' + random() * interval '1826 days' AS s FROM generate_series(1, 1000000)) g`)
	var months int64
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT count(DISTINCT month) FROM shiftcast.monthly_stats`).Scan(&months))
	require.Equal(t, int64(60), months, "five years of months")
	require.Zero(t, rollupMismatches(t, b), "after the bulk insert")

	for _, stmt := range []string{
		`UPDATE "Shift" SET worker_id = 1 + (id % 199) WHERE id % 7 = 0 AND worker_id IS NULL`,                        // claims
		`UPDATE "Shift" SET worker_id = NULL WHERE id % 11 = 0`,                                                       // releases
		`UPDATE "Shift" SET is_deleted = NOT is_deleted WHERE id % 13 = 0`,                                            // deletions and undeletions
		`UPDATE "Shift" SET start = start + interval '20 days', "end" = "end" + interval '20 days' WHERE id % 17 = 0`, // moves across months
		`UPDATE "Shift" SET worker_id = 5 WHERE id = 12345`,                                                           // one row
		`DELETE FROM "Shift" WHERE id % 19 = 0`,                                                                       // removals
	} {
		b.exec(t, stmt)
		require.Zero(t, rollupMismatches(t, b), stmt)
	}
	b.exec(t, `TRUNCATE "Shift" CASCADE`)
	require.Zero(t, rollupMismatches(t, b), "after truncate")

	rows, err := b.store.MonthlyReport(context.Background(), time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC), nil)
	require.NoError(t, err)
	require.Empty(t, rows, "nothing claimed after truncate")
}

func TestMonthlyReport_FiltersAndNotifications(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.exec(t, `INSERT INTO "Facility" (id, name, is_active) VALUES (1, 'F', true)`)
	b.exec(t, `INSERT INTO "Worker" (id, name, is_active, profession) VALUES (1, 'A', true, 'RN'), (2, 'B', true, 'RN')`)
	b.exec(t, `INSERT INTO "Shift" (start, "end", profession, facility_id, worker_id) VALUES
		('2024-01-31 20:00', '2024-02-01 04:00', 'RN', 1, 1),
		('2024-02-10 05:00', '2024-02-10 17:00', 'RN', 1, 1),
		('2024-02-11 05:00', '2024-02-11 09:30', 'RN', 1, 2),
		('2024-03-01 05:00', '2024-03-01 10:00', 'RN', 1, NULL)`)
	b.exec(t, `INSERT INTO shiftcast.notifications (worker_id, count, shifts, created_at) VALUES
		(2, 1, '[]', '2024-02-29 23:59:59+00'), (2, 1, '[]', '2024-03-01 00:00:00+00'), (1, 1, '[]', '2024-02-15 00:00:00+00')`)
	b.exec(t, `UPDATE shiftcast.notifications SET status = 'delivered' WHERE worker_id = 2`)
	b.exec(t, `UPDATE shiftcast.notifications SET status = 'failed' WHERE worker_id = 1`)
	b.exec(t, `UPDATE shiftcast.notifications SET status = 'delivered' WHERE worker_id = 2`) // not counted twice

	ctx := context.Background()
	jan, feb, mar := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	rows, err := b.store.MonthlyReport(ctx, jan, mar, nil)
	require.NoError(t, err)
	type row struct {
		month                      string
		worker, shifts, secs, nots int64
	}
	var got []row
	for _, r := range rows {
		got = append(got, row{r.Month.Format("2006-01"), r.WorkerID, r.Shifts, r.Seconds, r.Notifications})
	}
	require.Equal(t, []row{
		{"2024-01", 1, 1, 8 * 3600, 0},      // counted in its start's month
		{"2024-02", 1, 1, 12 * 3600, 0},     // the failed notification does not count
		{"2024-02", 2, 1, 4*3600 + 1800, 1}, // delivered, created in February (UTC)
		{"2024-03", 2, 0, 0, 1},             // notification only; the open shift does not count
	}, got)

	rows, err = b.store.MonthlyReport(ctx, feb, feb, []int64{2, 99, 1 << 40})
	require.NoError(t, err)
	require.Len(t, rows, 1)
	require.Equal(t, int64(2), rows[0].WorkerID)
}
