package store_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/domain"
)

// TestFanoutNotify_SchedulesEachWorkerOncePerWindow checks that overlapping
// fan-outs of one window hand each worker to enqueue once, that a later
// window schedules them again, and that a late fan-out of an older window
// schedules nobody a newer one already has.
func TestFanoutNotify_SchedulesEachWorkerOncePerWindow(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	p.document(t, 1)
	p.facility(t, 1, true)    // every active CNA
	p.facility(t, 2, true, 1) // CNAs holding document 1
	p.worker(t, 1, domain.CNA, true, 1)
	p.worker(t, 2, domain.CNA, true)
	p.worker(t, 3, domain.CNA, false, 1)
	p.worker(t, 4, domain.RN, true, 1)

	fanout := func(facility, window int64) []int64 {
		t.Helper()
		var got []int64
		n, err := p.st.FanoutNotify(bg, facility, domain.CNA, window, func(_ context.Context, tx pgx.Tx, ids []int64) error {
			require.NotNil(t, tx)
			got = append(got, ids...)
			return nil
		})
		require.NoError(t, err)
		require.Len(t, got, n)
		return got
	}

	require.Equal(t, []int64{1}, fanout(2, 100))
	require.Equal(t, []int64{2}, fanout(1, 100), "worker 1 already has window 100's job")
	require.Nil(t, fanout(1, 100))
	require.Equal(t, []int64{1, 2}, fanout(1, 101), "a new window schedules everyone again")
	require.Nil(t, fanout(1, 100), "a late fan-out of an older window: the newer job covers it")

	// A failing enqueue rolls the marks back: the retry schedules them.
	_, err := p.st.FanoutNotify(bg, 1, domain.CNA, 102, func(context.Context, pgx.Tx, []int64) error { return context.Canceled })
	require.Error(t, err)
	require.Equal(t, []int64{1, 2}, fanout(1, 102))
}
