package admission

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNext(t *testing.T) {
	t.Parallel()
	cfg := Config{Target: 50 * time.Millisecond}
	cfg.defaults()
	inf := math.Inf(1)
	sec := time.Second
	for _, tc := range []struct {
		name      string
		cur, pace float64
		iv        interval
		want      float64
	}{
		{"no events: no limit", 120, 100, interval{Elapsed: sec}, inf},
		{"none committed, some being handled: a stall", 200, 210, interval{Waiting: 3, Elapsed: sec}, 150},
		{"fast events, no limit yet: none", inf, 900, interval{Events: 1000, Slow: 10, Elapsed: sec}, inf},
		{"slowed events: down from the pace the work had", inf, 400, interval{Events: 1000, Slow: 11, Elapsed: sec}, 300},
		{"slowed events under a limit above the pace: from the pace", 800, 400, interval{Events: 1000, Slow: 50, Elapsed: sec}, 300},
		{"slowed events under a binding limit: from the limit", 200, 210, interval{Events: 1000, Slow: 50, Elapsed: sec}, 150},
		{"never below the floor", 55, 55, interval{Events: 1000, Slow: 900, Elapsed: sec}, 50},
		{"slowed events, elastic work idle: not its doing, held", 200, 0, interval{Events: 1000, Slow: 900, Elapsed: sec}, 200},
		{"fast events under a limit: one floor up", 200, 199, interval{Events: 1000, Slow: 3, Elapsed: sec}, 250},
		{"few events, one slow: more than the share", 200, 210, interval{Events: 20, Slow: 1, Elapsed: sec}, 150},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.InDelta(t, tc.want, next(cfg, tc.cur, tc.pace, tc.iv), 1e-9)
		})
	}
}

func TestGovernor_adjust(t *testing.T) {
	t.Parallel()
	start := time.Unix(1000, 0)
	g := New(Config{Target: 50 * time.Millisecond, Floor: 10, Interval: time.Second})
	g.last = start
	require.True(t, math.IsInf(g.Rate(), 1), "no limit until the events slow down")

	// A second of work at 100 items/s, with 2 of 100 events slowed.
	require.NoError(t, g.WaitN(context.Background(), 100))
	for i := range 100 {
		g.Observe(time.Duration(i) * time.Millisecond / 2) // 0 to 49.5 ms: none slow
	}
	g.Observe(60 * time.Millisecond)
	g.Observe(time.Second)
	g.adjust(start.Add(time.Second))
	require.InDelta(t, 75, g.Rate(), 1e-9, "a quarter below the work's pace")
	require.Equal(t, 75, g.lim.Burst(), "an interval's worth at once")

	// Events fast again: one floor up per interval.
	for range 100 {
		g.Observe(time.Millisecond)
	}
	g.adjust(start.Add(2 * time.Second))
	require.InDelta(t, 85, g.Rate(), 1e-9)

	// No events at all: nothing to protect.
	g.adjust(start.Add(3 * time.Second))
	require.True(t, math.IsInf(g.Rate(), 1))
}

func TestGovernor_WaitNInInstallments(t *testing.T) {
	t.Parallel()
	g := New(Config{Target: 50 * time.Millisecond, Floor: 1000, Interval: 10 * time.Millisecond})
	g.set(1000) // 10 at once, then one per millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	require.NoError(t, g.WaitN(ctx, 60), "more than the burst goes in installments, not as an error")
	require.GreaterOrEqual(t, time.Since(start), 40*time.Millisecond, "50 beyond the burst at 1,000/s take 50 ms")
	require.Equal(t, int64(60), g.done.Load())

	short, cancelShort := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancelShort()
	require.Error(t, g.WaitN(short, 100), "a wait the context cannot cover fails")
}

func TestGovernor_Disabled(t *testing.T) {
	t.Parallel()
	g := New(Config{Ceiling: 5})
	g.Observe(time.Hour)
	g.adjust(time.Now())
	require.InDelta(t, 5, g.Rate(), 1e-9, "without a target only the ceiling applies")
	require.Zero(t, g.events.Load(), "without a target nothing is counted")

	g = New(Config{})
	require.True(t, math.IsInf(g.Rate(), 1))
	require.NoError(t, g.WaitN(context.Background(), 1_000_000), "no limit at all")
}

func TestGovernor_adjustStall(t *testing.T) {
	t.Parallel()
	var waiting int
	start := time.Unix(1000, 0)
	g := New(Config{Target: 50 * time.Millisecond, Floor: 10, Interval: time.Second, Waiting: func() int { return waiting }})
	g.last = start
	g.set(200)

	waiting = 4
	require.NoError(t, g.WaitN(context.Background(), 100))
	g.adjust(start.Add(time.Second))
	require.InDelta(t, 75, g.Rate(), 1e-9, "nothing committed while events were being handled: a stall, not a lull")

	waiting = 0
	g.adjust(start.Add(2 * time.Second))
	require.True(t, math.IsInf(g.Rate(), 1), "nothing committed and nothing being handled: idle")
}
