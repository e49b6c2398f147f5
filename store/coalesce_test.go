package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/domain"
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

// A job that never starts (lost) does not hold its worker's news forever:
// once it has waited more than PendingWindows, LostSchedules moves the
// worker to the current window and enqueues a job for it, and the next
// windows coalesce into that one.
func TestLostSchedules_ReschedulesJobsThatNeverStarted(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	require.Equal(t, []int64{1, 2, 3}, p.schedule(t, 5, 1, 2, 3, 3), "a repeated worker is scheduled once")
	p.building(t, 5, 2)

	lost := func(window int64, limit int) []int64 {
		t.Helper()
		return handed(t, func(enqueue func(context.Context, pgx.Tx, []int64) error) (int, error) {
			return p.st.LostSchedules(bg, window, limit, enqueue)
		})
	}
	require.Empty(t, lost(5+store.PendingWindows, 10), "not yet presumed lost")
	require.Equal(t, []int64{1}, lost(5+store.PendingWindows+1, 1), "a batch at a time, in id order")
	require.Equal(t, []int64{3}, lost(5+store.PendingWindows+1, 10), "worker 2's job started; worker 1 is done")
	require.Empty(t, lost(5+store.PendingWindows+1, 10))
	require.Empty(t, p.schedule(t, 5+store.PendingWindows+2, 1, 3), "the new jobs have not started: they cover later windows")
	require.Equal(t, []int64{2}, p.schedule(t, 5+store.PendingWindows+2, 2))

	// A failing enqueue leaves the rows as they were, for the next sweep.
	_, err := p.st.LostSchedules(bg, 100, 10, func(context.Context, pgx.Tx, []int64) error { return context.Canceled })
	require.Error(t, err)
	require.Equal(t, []int64{1, 2, 3}, lost(100, 10), "all three jobs since never started")
}

// Resetting the pipeline's state keeps the workers' schedules (River's
// jobs outlive the reset) but counts their jobs as started, so the next
// window schedules its own rather than coalescing into jobs that ran.
func TestResetPipelineState_SchedulesAgain(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	require.Equal(t, []int64{1, 2}, p.schedule(t, 5, 1, 2))
	require.Empty(t, p.schedule(t, 6, 1, 2), "coalesced into window 5's waiting jobs")
	require.NoError(t, p.st.ResetPipelineState(bg))
	// The reset's own window schedules its workers again: their jobs may
	// be gone with the reset (a benchmark run's deliveries reached 861
	// fewer workers than they should have when the previous run had
	// scheduled them in the same window).
	require.Equal(t, []int64{1, 2}, p.schedule(t, 5, 1, 2), "the present window schedules anew after a reset")
	require.Empty(t, p.schedule(t, 5, 1, 2))
}

// After DIGEST_WINDOW is made longer, window numbers restart lower: the
// schedules and fan-out marks numbered with the shorter window would look
// years ahead, keeping their workers from ever being scheduled again.
// RenumberWindows brings them back, and the present window works as usual.
func TestRenumberWindows_AfterALongerWindow(t *testing.T) {
	t.Parallel()
	p := fanoutWorld(t)
	const old, now = 2000, 1000 // the same instant, numbered with a window half as long
	require.Equal(t, []int64{1, 2}, p.schedule(t, old, 1, 2))
	p.building(t, old, 2)
	p.mark(t, old, store.Fanout{FacilityID: 1, Profession: domain.CNA})
	p.mark(t, now+1, store.Fanout{FacilityID: 2, Profession: domain.CNA}) // a clock a window ahead
	require.Empty(t, p.schedule(t, now, 1, 2), "numbered ahead: nobody would be scheduled")

	n, err := p.st.RenumberWindows(bg, now)
	require.NoError(t, err)
	require.Equal(t, int64(3), n, "two schedules and one mark")
	require.Equal(t, []int64{1, 2}, p.fanout(t, now), "facility 1's mark is now the present window's")
	require.Empty(t, p.schedule(t, now, 1, 2))
	p.building(t, now, 1, 2)
	require.Equal(t, []int64{1}, p.fanout(t, now+1), "the mark a window ahead was left alone")

	n, err = p.st.RenumberWindows(bg, now+1)
	require.NoError(t, err)
	require.Zero(t, n, "nothing ahead any more")
}
