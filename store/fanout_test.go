package store_test

import (
	"context"
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
		return p.st.FanoutNotify(bg, domain.CNA, window, extra, enqueue)
	})
}

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
	require.Equal(t, []int64{1, 2}, p.fanout(t, 101, 1), "a new window schedules everyone again")
	require.Nil(t, p.fanout(t, 100, 1), "a late fan-out of an older window: the newer job covers it")
	require.Nil(t, p.fanout(t, 103, 3), "a facility nobody qualifies for")

	// A failing enqueue rolls the marks back: the retry schedules them.
	_, err := p.st.FanoutNotify(bg, domain.CNA, 102, []int64{1}, func(context.Context, pgx.Tx, []int64) error { return context.Canceled })
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
	_, err := p.st.FanoutNotify(bg, domain.CNA, 200, nil, func(context.Context, pgx.Tx, []int64) error { return context.Canceled })
	require.Error(t, err)

	require.Equal(t, []int64{1, 5, 6}, p.fanout(t, 200), "facility 2 (document 1) and facility 3 (document 2), in one pass")
	require.Nil(t, p.fanout(t, 200), "the window's other fan-outs find their marks taken")
	require.Equal(t, []int64{1, 2, 5, 6}, p.fanout(t, 201), "the later window's mark, facility 1: everyone active")

	var got []int64
	_, err = p.st.FanoutNotify(bg, domain.RN, 200, nil, func(_ context.Context, _ pgx.Tx, ids []int64) error {
		got = append(got, ids...)
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, []int64{4}, got, "the RN mark was left to the RN fan-out")
}
