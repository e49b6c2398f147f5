package store_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/store"
)

// schedule runs ScheduleNotify in a transaction of its own and returns the
// workers that need a job.
func (p *pipe) schedule(t *testing.T, window int64, workers ...int64) []int64 {
	t.Helper()
	var got []int64
	require.NoError(t, pgx.BeginFunc(bg, p.b.pool, func(tx pgx.Tx) error {
		var err error
		got, err = p.st.ScheduleNotify(bg, tx, window, workers)
		return err
	}))
	return got
}

// A worker whose newest notify job has not started to build gets no other
// job, whatever window schedules them, until that job starts (its digest
// covers what came meanwhile) or has waited PendingWindows (presumed lost).
func TestScheduleNotify_CoalescesUntilClaimed(t *testing.T) {
	t.Parallel()
	p := newPipe(t)

	require.Equal(t, []int64{1, 2, 3}, p.schedule(t, 5, 3, 1, 2), "new: every one, in id order")
	require.Equal(t, []int64{4}, p.schedule(t, 5, 1, 2, 3, 4), "window 5's jobs are in")
	require.Empty(t, p.schedule(t, 6, 1, 2, 3, 4), "window 5's jobs have not started: they cover window 6")

	p.building(t, 5, 1, 2)
	require.Equal(t, []int64{1, 2}, p.schedule(t, 6, 1, 2, 3), "1 and 2 started to build: window 6 needs jobs")
	require.Empty(t, p.schedule(t, 6, 1, 2), "once per window")

	// An older window's job starting says nothing of the newer one's.
	p.building(t, 5, 1)
	require.Empty(t, p.schedule(t, 7, 1), "window 6's job for worker 1 has not started")
	// A batch holding two of a worker's jobs claims the newer.
	require.NoError(t, p.st.ClaimNotify(bg, []int64{2, 2}, []int64{6, 5}))
	require.Equal(t, []int64{2}, p.schedule(t, 7, 2))

	// Worker 3's window-5 job never starts (lost): after PendingWindows
	// windows it is scheduled again.
	require.Empty(t, p.schedule(t, 5+store.PendingWindows, 3))
	require.Equal(t, []int64{3}, p.schedule(t, 5+store.PendingWindows+1, 3))

	// A late scheduler of an older window changes nothing.
	require.Empty(t, p.schedule(t, 4, 1, 2, 3, 4))
	// Claiming a worker with no schedule (a job from before schedules
	// were kept) is a no-op, and the worker is then scheduled as new.
	require.NoError(t, p.st.ClaimNotify(bg, []int64{9}, []int64{7}))
	require.Equal(t, []int64{9}, p.schedule(t, 7, 9))
}

// The property coalescing rests on: a digest that starts while a scheduler
// (an event, a fan-out chunk) holds a worker's schedule row reads only
// after that scheduler commits. Whether the scheduler coalesced (the job
// about to build will read its change) or inserted a job, ClaimNotify
// waits for its commit.
func TestClaimNotify_WaitsForSchedulerHoldingTheRow(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	require.Equal(t, []int64{1, 2}, p.schedule(t, 5, 1, 2))
	p.building(t, 5, 2)

	for _, c := range []struct {
		worker int64
		want   []int64
		what   string
	}{
		{1, nil, "coalesced into the waiting window-5 job"},
		{2, []int64{2}, "window 5's job started: a job of its own"},
	} {
		tx, err := p.b.pool.Begin(bg)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(bg) }() // a no-op once committed; frees the row if a check fails first
		got, err := p.st.ScheduleNotify(bg, tx, 6, []int64{c.worker})
		require.NoError(t, err)
		require.ElementsMatch(t, c.want, got, c.what)

		claimed := make(chan error, 1)
		go func() { claimed <- p.st.ClaimNotify(bg, []int64{c.worker}, []int64{6}) }()
		select {
		case err := <-claimed:
			t.Fatalf("%s: ClaimNotify returned (%v) while the scheduler's transaction was open", c.what, err)
		case <-time.After(300 * time.Millisecond):
		}
		require.NoError(t, tx.Commit(bg))
		select {
		case err := <-claimed:
			require.NoError(t, err, c.what)
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: ClaimNotify still waiting 10s after the scheduler committed", c.what)
		}
	}
	require.Equal(t, []int64{1, 2}, p.schedule(t, 7, 1, 2), "both claimed for window 6")
}
