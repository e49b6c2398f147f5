package jobs

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
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

func TestPipeline_FanoutRate(t *testing.T) {
	t.Parallel()
	const window = 30 * time.Second
	// Window 100's fan-outs are due at its end plus the grace, 3,031 s, and
	// window 101's at 3,061 s.
	due := time.Unix(3031, 0)
	for _, tc := range []struct {
		name   string
		now    time.Time
		spread time.Duration
		floor  float64
		total  int
		want   rate.Limit
	}{
		{"spread over its share of the window", due, 10 * time.Second, 500, 10000, 1000},
		{"never below the floor", due, 10 * time.Second, 500, 2000, 500},
		{"no floor", due, 10 * time.Second, 0, 2000, 200},
		{"a late start has less time", due.Add(25 * time.Second), 10 * time.Second, 0, 10000, 2000},
		{"past the next window's fan-outs, not paced", due.Add(31 * time.Second), 10 * time.Second, 500, 10000, rate.Inf},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := &Pipeline{cfg: Config{Window: window, Grace: time.Second, FanoutRate: tc.floor, Now: func() time.Time { return tc.now }}}
			require.InDelta(t, float64(tc.want), float64(p.fanoutRate(100, tc.spread, tc.total)), 1e-6)
		})
	}
}

func TestPipeline_FanoutSpread(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		window, set time.Duration
		wantSpread  time.Duration
	}{
		{"a third of the window by default: one fan-out per profession", 30 * time.Second, 0, 10 * time.Second},
		{"as set", 30 * time.Second, 4 * time.Second, 4 * time.Second},
		{"negative: not paced", 30 * time.Second, -1, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := &Pipeline{cfg: Config{Window: tc.window, FanoutSpread: tc.set}}
			require.Equal(t, tc.wantSpread, p.fanoutSpread())
		})
	}
}

func TestPipeline_FanoutPause(t *testing.T) {
	t.Parallel()
	due := time.Unix(3031, 0)
	var busy atomic.Bool
	p := &Pipeline{cfg: Config{Window: 30 * time.Second, Grace: time.Second, Now: func() time.Time { return due }, Busy: busy.Load}}
	// 10,000 workers over 10 s: 1,000 a second, so a second chunk of 500
	// right after the first must wait half a second.
	pause := p.fanoutPause(100, 10*time.Second)

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	require.NoError(t, pause(ctx, fanoutChunk, 10000), "no events being applied: no pause")

	busy.Store(true)
	require.Error(t, pause(ctx, fanoutChunk, 10000), "events being applied: paced, a wait longer than the context allows")
}

// A notify job is unique only while it waits or runs: the states River
// requires, and neither completed nor another finalized state, so that
// completed jobs stay out of River's unique index and its scheduler's
// comparisons.
func TestNotifyArgs_InsertOpts(t *testing.T) {
	t.Parallel()
	opts := NotifyArgs{}.InsertOpts()
	require.Equal(t, QueueNotify, opts.Queue)
	require.True(t, opts.UniqueOpts.ByArgs)
	for _, st := range []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning, rivertype.JobStateScheduled} {
		require.Contains(t, opts.UniqueOpts.ByState, st, "River requires it")
	}
	for _, st := range []rivertype.JobState{rivertype.JobStateCompleted, rivertype.JobStateCancelled, rivertype.JobStateDiscarded} {
		require.NotContains(t, opts.UniqueOpts.ByState, st)
	}
}
