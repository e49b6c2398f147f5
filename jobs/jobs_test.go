package jobs

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFanoutSet(t *testing.T) {
	t.Parallel()
	var s fanoutSet
	a := FanoutArgs{FacilityID: 1, Profession: "RN", Window: 10}
	require.False(t, s.seen(a), "nothing committed yet")
	s.add(a)
	require.True(t, s.seen(a))
	require.False(t, s.seen(FanoutArgs{FacilityID: 2, Profession: "RN", Window: 10}))
	require.False(t, s.seen(FanoutArgs{FacilityID: 1, Profession: "RN", Window: 11}), "another window is another job")

	s.add(FanoutArgs{FacilityID: 1, Profession: "RN", Window: 11})
	require.False(t, s.seen(a), "older windows are forgotten, so the set stays one window small")
	s.add(a)
	require.False(t, s.seen(a), "a late commit for an older window is not recorded")
}

func TestDigestLimiter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name            string
		perSecond       float64
		batch, wantSize int
		wantLimit       bool
	}{
		{"no limit", 0, 500, 500, false},
		{"a second's worth caps the batch", 100, 500, 100, true},
		{"the batch caps the burst", 1000, 500, 500, true},
		{"below one per second still one at a time", 0.5, 500, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			limit, size := digestLimiter(tc.perSecond, tc.batch)
			require.Equal(t, tc.wantSize, size)
			if !tc.wantLimit {
				require.Nil(t, limit)
				return
			}
			require.NotNil(t, limit)
			require.Equal(t, size, limit.Burst())
			// A full batch passes at once; the next one must wait for the
			// rate, which WaitN reports, within its context's deadline, as
			// an error rather than a wait.
			ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
			defer cancel()
			require.NoError(t, limit.WaitN(ctx, size))
			require.Error(t, limit.WaitN(ctx, size), "a second batch right away exceeds the rate")
		})
	}
}
