// Package admission gives the event path priority over elastic work.
//
// shiftcast does two kinds of work on the same machine. Applying events is
// latency-bound: the query path answers from what has been applied, and a
// shift claimed a second ago must not be offered again. Building and
// delivering digests is elastic: a worker's push may come a little later,
// and a late push loses nothing, because a worker's news coalesces into one
// notify job until its digest is built (store.ScheduleNotify). When the two
// need more CPU than the machine has, the events should win.
//
// A Governor admits elastic work at a rate it adjusts from what the events
// see, as congestion control does (additive increase, multiplicative
// decrease): every interval it counts the events that waited longer than a
// target, from their storing in the stream to their commit; while more than
// a small share did (or none committed while some were being handled), it
// cuts the elastic work's rate by a quarter (from what was actually done),
// and while fewer did, it raises it step by step. Without events it admits
// everything at once. A floor keeps the elastic work going
// however busy the events are.
package admission

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Config configures a Governor. A zero Target turns it off; any other
// field left zero takes its default.
type Config struct {
	// Target is how long an event may wait, from its storing in the stream
	// to its commit, before it counts as slowed down by the elastic work.
	// Zero disables the governor: elastic work is admitted at Ceiling.
	Target time.Duration
	// SlowShare is the share of an interval's events allowed over Target
	// before the elastic work backs off (default 0.01: the events' 99th
	// percentile is kept under Target).
	SlowShare float64
	// Floor is the least rate, in items per second, elastic work is
	// admitted at (default 50): under a flood of events the digests slow
	// down but never stop.
	Floor float64
	// Ceiling, when positive, caps the rate at all times.
	Ceiling float64
	// Interval is how often the rate is adjusted (default 500ms).
	Interval time.Duration
	// Waiting, when set, reports how many events are being handled at the
	// moment: an interval in which none committed while some were being
	// handled is a stall, and counts as slowed down, not as idle.
	Waiting func() int
}

func (c *Config) defaults() {
	if c.SlowShare <= 0 {
		c.SlowShare = 0.01
	}
	if c.Floor <= 0 {
		c.Floor = 50
	}
	if c.Ceiling > 0 {
		c.Floor = min(c.Floor, c.Ceiling)
	}
	if c.Interval <= 0 {
		c.Interval = 500 * time.Millisecond
	}
}

// Governor admits elastic work at a rate adjusted to the events' waits. Its
// methods are safe for concurrent use.
type Governor struct {
	cfg Config
	lim *rate.Limiter

	events, slow, done atomic.Int64

	mu     sync.Mutex
	last   time.Time   // of the last adjustment
	recent [8]interval // the last intervals, for the pace of the work done
	n      int         // intervals seen
}

// New returns a Governor admitting everything (up to cfg.Ceiling) until
// the events slow down.
func New(cfg Config) *Governor {
	cfg.defaults()
	g := &Governor{cfg: cfg, lim: rate.NewLimiter(rate.Inf, 1)}
	g.set(math.Inf(1))
	return g
}

// Observe records one event's wait, from its storing in the stream to its
// commit.
func (g *Governor) Observe(waited time.Duration) {
	if g.cfg.Target <= 0 {
		return
	}
	g.events.Add(1)
	if waited > g.cfg.Target {
		g.slow.Add(1)
	}
}

// WaitN blocks until n items of elastic work may go, or ctx ends. n may
// exceed what the rate admits at once: the items then go in installments.
func (g *Governor) WaitN(ctx context.Context, n int) error {
	for left := n; left > 0; {
		k := left
		if g.lim.Limit() != rate.Inf {
			k = min(left, max(1, g.lim.Burst()))
		}
		if err := g.lim.WaitN(ctx, k); err != nil {
			if ctx.Err() == nil && k > g.lim.Burst() {
				continue // the rate came down meanwhile: smaller installments
			}
			return fmt.Errorf("admit %d items: %w", n, err)
		}
		left -= k
		g.done.Add(int64(k))
	}
	return nil
}

// Floor returns the least rate the governor ever admits at (items per
// second): the floor, or the ceiling when lower.
func (g *Governor) Floor() float64 { return g.cfg.Floor }

// Rate returns the current rate in items per second (+Inf: no limit).
func (g *Governor) Rate() float64 {
	if l := g.lim.Limit(); l != rate.Inf {
		return float64(l)
	}
	return math.Inf(1) // rate.Inf is the largest float64
}

// Run adjusts the rate every interval until ctx ends.
func (g *Governor) Run(ctx context.Context) {
	if g.cfg.Target <= 0 {
		return
	}
	t := time.NewTicker(g.cfg.Interval)
	defer t.Stop()
	g.mu.Lock()
	g.last = time.Now()
	g.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			g.adjust(now)
		}
	}
}

// adjust takes the counts since the last adjustment and sets the rate from
// them. Run calls it every interval; tests call it directly.
func (g *Governor) adjust(now time.Time) {
	g.mu.Lock()
	elapsed := now.Sub(g.last)
	g.last = now
	iv := interval{Events: g.events.Swap(0), Slow: g.slow.Swap(0), Done: g.done.Swap(0), Elapsed: elapsed}
	if iv.Events == 0 && g.cfg.Waiting != nil {
		iv.Waiting = g.cfg.Waiting()
	}
	g.recent[g.n%len(g.recent)] = iv
	g.n++
	var done int64
	var span time.Duration
	for _, r := range g.recent[:min(g.n, len(g.recent))] {
		done, span = done+r.Done, span+r.Elapsed
	}
	g.mu.Unlock()
	pace := math.Inf(1)
	if span > 0 {
		pace = float64(done) / span.Seconds()
	}
	g.set(next(g.cfg, g.Rate(), pace, iv))
}

// interval is what one adjustment interval saw.
type interval struct {
	// Events applied, and how many of them waited over the target.
	Events, Slow int64
	// Done is the elastic work admitted.
	Done int64
	// Waiting is how many events were being handled at its end (read only
	// when none committed during it).
	Waiting int
	// Elapsed is the interval's length.
	Elapsed time.Duration
}

// next is the rate after an interval that saw iv at rate cur, the work
// having been done at pace (items per second, over the last few seconds).
func next(cfg Config, cur, pace float64, iv interval) float64 {
	switch {
	case iv.Events == 0 && iv.Waiting == 0:
		// Nothing to protect.
		return math.Inf(1)
	case iv.Events == 0, float64(iv.Slow) > cfg.SlowShare*float64(iv.Events):
		// Down from what the work actually did when that is below the
		// limit (no limit at first): a limit far above the work's own
		// pace would take many intervals to come down to where it binds.
		// Not halved: a digest batch admitted in one interval slows the
		// events in the next ones, so a congestion is seen several
		// intervals running, and each one backs off again.
		if pace <= 0 {
			// The elastic work did nothing lately: the events are slow
			// for another reason, and cutting would only starve the work
			// when it comes.
			return cur
		}
		return max(cfg.Floor, min(cur, pace)*backoff)
	case math.IsInf(cur, 1):
		return cur
	default:
		// One floor's worth per interval: from the floor to a few
		// hundred a second in a few seconds.
		return cur + cfg.Floor
	}
}

// backoff is the factor the rate is cut by in an interval where the events
// were slowed down.
const backoff = 0.75

// set applies rate r, capped by the ceiling, with a burst of one
// interval's worth (a batch of that many goes at once).
func (g *Governor) set(r float64) {
	if g.cfg.Ceiling > 0 {
		r = min(r, g.cfg.Ceiling)
	}
	if math.IsInf(r, 1) {
		g.lim.SetLimit(rate.Inf)
		return
	}
	g.lim.SetBurst(max(1, int(r*g.cfg.Interval.Seconds())))
	g.lim.SetLimit(rate.Limit(r))
}
