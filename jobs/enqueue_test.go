package jobs_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/jobs"
	"github.com/shiftcast/shiftcast/store"
	"github.com/shiftcast/shiftcast/testenv"
	"github.com/shiftcast/shiftcast/testenv/teststore"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestPipeline_EnqueueFor checks what the event transactions of one window
// leave for its fan-out: a mark per (facility, profession), even when the
// profession's fan-out job was already inserted by an earlier transaction,
// one fan-out job per profession, and each worker's notify job; and, for a
// transaction committing after the window's fan-outs were due, a job of the
// late pair's own.
func TestPipeline_EnqueueFor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := teststore.Open(t)
	// Window 1000 of 30 s: its fan-outs are due at 30,031 s (its end and
	// the second of grace).
	const window = 1000
	var clock atomic.Int64
	clock.Store(30_010)
	p, err := jobs.New(st.Pool(), jobs.Config{Store: st, Logger: testenv.Logger(t),
		Window: 30 * time.Second, Now: func() time.Time { return time.Unix(clock.Load(), 0) }})
	require.NoError(t, err)
	require.EqualValues(t, window, p.Window(time.Unix(clock.Load(), 0)))

	apply := func(eff store.Effect) {
		t.Helper()
		require.NoError(t, pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
			return p.EnqueueFor(window)(ctx, tx, eff)
		}))
		p.Committed(eff, window)
	}
	cna := func(facility int64) store.Fanout { return store.Fanout{FacilityID: facility, Profession: domain.CNA} }
	apply(store.Effect{Fanouts: []store.Fanout{cna(1)}})
	apply(store.Effect{Fanouts: []store.Fanout{cna(2)}}) // CNA's job is in: only the mark
	apply(store.Effect{Fanouts: []store.Fanout{cna(2), {FacilityID: 2, Profession: domain.RN}}, NotifyWorkers: []int64{9, 7}})
	// Committing after the window's fan-outs were due: CNA's may have run,
	// so the late pair gets a job of its own.
	clock.Store(30_032)
	apply(store.Effect{Fanouts: []store.Fanout{cna(3), cna(1)}})

	query := func(sql string) []string {
		t.Helper()
		rows, err := st.Pool().Query(ctx, sql)
		require.NoError(t, err)
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return got
	}
	require.Equal(t, []string{"CNA 1", "CNA 2", "CNA 3", "RN 2"}, query(`
		SELECT profession || ' ' || facility_id FROM shiftcast.fanout_marks WHERE notify_window = 1000 ORDER BY 1`))
	require.Equal(t, []string{"CNA 0", "CNA 3", "RN 0"}, query(`
		SELECT (args->>'profession') || ' ' || (args->>'facility_id') FROM river_job
		WHERE kind = 'shiftcast.fanout' AND (args->>'window')::bigint = 1000 ORDER BY 1`))
	require.Equal(t, []string{"7", "9"}, query(`
		SELECT args->>'worker_id' FROM river_job WHERE kind = 'shiftcast.notify' ORDER BY 1`))
	// Jobs for the window's end wait as available jobs not yet due, which
	// River does not fetch early, rather than as scheduled ones, which its
	// scheduler would have to move (dueWithoutScheduler).
	require.Equal(t, []string{"shiftcast.fanout available 30031", "shiftcast.fanout available 30031",
		"shiftcast.notify available 30031", "shiftcast.notify available 30031"}, query(`
		SELECT kind || ' ' || state || ' ' || extract(epoch FROM scheduled_at)::bigint FROM river_job
		WHERE (args->>'facility_id')::int IS DISTINCT FROM 3 ORDER BY 1`))
}
