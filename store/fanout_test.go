package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/store"
)

// fanoutWorld is two facilities and four workers: facility 1 requires
// nothing, facility 2 document 1, facility 3 document 2 (held by nobody).
func fanoutWorld(t *testing.T) *pipe {
	t.Helper()
	p := newPipe(t)
	p.document(t, 1)
	p.document(t, 2)
	p.facility(t, 1, true)    // every active CNA
	p.facility(t, 2, true, 1) // CNAs holding document 1
	p.facility(t, 3, true, 2) // nobody
	p.worker(t, 1, domain.CNA, true, 1)
	p.worker(t, 2, domain.CNA, true)
	p.worker(t, 3, domain.CNA, false, 1)
	p.worker(t, 4, domain.RN, true, 1)
	return p
}

// fanout runs FanoutNotify for CNA and returns the workers it scheduled.
func (p *pipe) fanout(t *testing.T, window int64, extra ...int64) []int64 {
	t.Helper()
	return handed(t, func(enqueue func(context.Context, pgx.Tx, []int64) error) (int, error) {
		return p.st.FanoutNotify(bg, store.FanoutRun{Profession: domain.CNA, Window: window, Extra: extra, Enqueue: enqueue})
	})
}

// building records that the notify jobs of workers for window start to
// build, as a digest batch does before reading.
func (p *pipe) building(t *testing.T, window int64, workers ...int64) {
	t.Helper()
	windows := make([]int64, len(workers))
	for i := range windows {
		windows[i] = window
	}
	require.NoError(t, p.st.ClaimNotify(bg, workers, windows))
}

func failEnqueue(context.Context, pgx.Tx, []int64) error { return context.Canceled }

// handed runs call with an enqueue that records what it is handed, inside
// a transaction, and requires call to report as many.
func handed[T any](t *testing.T, call func(enqueue func(context.Context, pgx.Tx, []T) error) (int, error)) []T {
	t.Helper()
	var got []T
	n, err := call(func(_ context.Context, tx pgx.Tx, items []T) error {
		require.NotNil(t, tx)
		got = append(got, items...)
		return nil
	})
	require.NoError(t, err)
	require.Len(t, got, n)
	return got
}

// mark commits fan-out marks for window, as an event transaction does.
func (p *pipe) mark(t *testing.T, window int64, fs ...store.Fanout) {
	t.Helper()
	require.NoError(t, pgx.BeginFunc(bg, p.b.pool, func(tx pgx.Tx) error {
		return p.st.MarkFanouts(bg, tx, window, fs)
	}))
}

// TestFanoutNotify_SchedulesEachWorkerOncePerWindow checks that overlapping
// fan-outs of one window hand each worker to enqueue once, that a later
// window schedules them again, and that a late fan-out of an older window
// schedules nobody a newer one already has. It uses unmarked fan-outs (a
// facility passed as extra), which expand whatever the marks say.
func TestFanoutNotify_SchedulesEachWorkerOncePerWindow(t *testing.T) {
	t.Parallel()
	p := fanoutWorld(t)

	require.Equal(t, []int64{1}, p.fanout(t, 100, 2))
	require.Equal(t, []int64{2}, p.fanout(t, 100, 1), "worker 1 already has window 100's job")
	require.Nil(t, p.fanout(t, 100, 1))
	require.Nil(t, p.fanout(t, 101, 1), "window 100's jobs have not started: they will cover window 101 too")
	p.building(t, 100, 1, 2)
	require.Equal(t, []int64{1, 2}, p.fanout(t, 101, 1), "their jobs started: a new window schedules everyone again")
	require.Nil(t, p.fanout(t, 100, 1), "a late fan-out of an older window: the newer job covers it")
	require.Nil(t, p.fanout(t, 103, 3), "a facility nobody qualifies for")

	// A failing enqueue rolls the marks back: the retry schedules them.
	p.building(t, 101, 1, 2)
	_, err := p.st.FanoutNotify(bg, store.FanoutRun{Profession: domain.CNA, Window: 102, Extra: []int64{1}, Enqueue: failEnqueue})
	require.Error(t, err)
	require.Equal(t, []int64{1, 2}, p.fanout(t, 102, 1))
}

// TestFanoutNotify_TakesEveryMarkOfItsProfession checks that the first
// fan-out of a (profession, window) expands every facility marked for it
// and for earlier windows, once, and leaves other professions' marks and
// later windows' marks to their own fan-outs.
func TestFanoutNotify_TakesEveryMarkOfItsProfession(t *testing.T) {
	t.Parallel()
	p := fanoutWorld(t)
	p.worker(t, 5, domain.CNA, true, 2)
	p.worker(t, 6, domain.CNA, true, 1, 2)

	p.mark(t, 200, store.Fanout{FacilityID: 2, Profession: domain.CNA}, store.Fanout{FacilityID: 2, Profession: domain.RN})
	p.mark(t, 199, store.Fanout{FacilityID: 3, Profession: domain.CNA})
	p.mark(t, 201, store.Fanout{FacilityID: 1, Profession: domain.CNA})
	p.mark(t, 200, store.Fanout{FacilityID: 2, Profession: domain.CNA}) // a repeat is one mark

	// A failing enqueue leaves the marks for the retry.
	_, err := p.st.FanoutNotify(bg, store.FanoutRun{Profession: domain.CNA, Window: 200, Enqueue: failEnqueue})
	require.Error(t, err)

	require.Equal(t, []int64{1, 5, 6}, p.fanout(t, 200), "facility 2 (document 1) and facility 3 (document 2), in one pass")
	require.Nil(t, p.fanout(t, 200), "the window's other fan-outs find their marks taken")
	p.building(t, 200, 1, 5, 6)
	require.Equal(t, []int64{1, 2, 5, 6}, p.fanout(t, 201), "the later window's mark, facility 1: everyone active")

	var got []int64
	_, err = p.st.FanoutNotify(bg, store.FanoutRun{Profession: domain.RN, Window: 200, Enqueue: func(_ context.Context, _ pgx.Tx, ids []int64) error {
		got = append(got, ids...)
		return nil
	}})
	require.NoError(t, err)
	require.Equal(t, []int64{4}, got, "the RN mark was left to the RN fan-out")
}

// TestFanoutNotify_Chunks checks that a fan-out schedules its workers a
// chunk at a time, pausing between chunks, and that one stopped half-way
// leaves its marks to the retry, which schedules the workers the first run
// did not reach, and only those.
func TestFanoutNotify_Chunks(t *testing.T) {
	t.Parallel()
	p := fanoutWorld(t)
	p.worker(t, 5, domain.CNA, true, 1)
	p.mark(t, 300, store.Fanout{FacilityID: 1, Profession: domain.CNA}) // CNAs 1, 2 and 5

	var got, paused, totals []int
	stop := errors.New("stopped")
	run := store.FanoutRun{Profession: domain.CNA, Window: 300, Chunk: 2,
		Enqueue: func(_ context.Context, tx pgx.Tx, ids []int64) error {
			require.NotNil(t, tx)
			for _, id := range ids {
				got = append(got, int(id))
			}
			return nil
		},
		Pause: func(_ context.Context, n, total int) error {
			paused = append(paused, n)
			totals = append(totals, total)
			return stop
		},
	}
	n, err := p.st.FanoutNotify(bg, run)
	require.ErrorIs(t, err, stop)
	require.Equal(t, 2, n)
	require.Equal(t, []int{1, 2}, got, "the first chunk, in id order")
	require.Equal(t, []int{2}, paused)
	require.Equal(t, []int{3}, totals, "the pause is told how many workers the run read")
	require.Equal(t, 1, p.marks(t), "the stopped run left its mark")

	got, paused, totals, run.Pause = nil, nil, nil, func(_ context.Context, n, total int) error {
		paused = append(paused, n)
		totals = append(totals, total)
		return nil
	}
	n, err = p.st.FanoutNotify(bg, run)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, []int{5}, got, "the retry schedules whom the first run did not reach")
	require.Equal(t, []int{0}, paused, "its first chunk scheduled nobody new; no pause after the last")
	require.Equal(t, []int{3}, totals, "the retry reads the same workers")

	require.Zero(t, p.marks(t), "the run that finished took the marks")
}

// marks counts the fan-out marks left.
func (p *pipe) marks(t *testing.T) int {
	t.Helper()
	var n int
	require.NoError(t, p.b.pool.QueryRow(bg, `SELECT count(*) FROM shiftcast.fanout_marks`).Scan(&n))
	return n
}
