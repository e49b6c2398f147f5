// Package batch turns the calls of many goroutines into few batched calls,
// as a database's group commit does. shiftcast uses it where many
// concurrent units of work (River jobs, event messages) each need the same
// kind of round trip: a digest, a delivery record, a WAL flush, a NATS
// flush.
package batch

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Batcher runs calls in batches: a call waits while the batches before it
// run, then goes with every call that arrived meanwhile (up to Max). Under
// light load a batch is one call and adds no delay; under heavy load
// batches grow, and the per-call cost shrinks, exactly when it matters.
// It needs no goroutine of its own: one is started while calls are
// queued. It is safe for concurrent use.
type Batcher[T, R any] struct {
	// Max bounds a batch; Lanes is how many batches may run at once (more
	// than one overlaps one batch's round trips with another's work).
	Max, Lanes int
	// Timeout bounds one batch: it runs for many callers, so it does not
	// take any one caller's context.
	Timeout time.Duration
	// Fn runs one batch and returns one result per item, in order.
	Fn func(ctx context.Context, items []T) ([]R, error)

	mu      sync.Mutex
	queue   []*batchCall[T, R]
	running int
}

// New returns a Batcher of at most max items per batch, lanes batches at a
// time, each bounded by 30 seconds.
func New[T, R any](max, lanes int, fn func(ctx context.Context, items []T) ([]R, error)) *Batcher[T, R] {
	return &Batcher[T, R]{Max: max, Lanes: lanes, Timeout: 30 * time.Second, Fn: fn}
}

// NewExec returns a Batcher for calls that return nothing but an error:
// fn runs a batch and its error goes to every call in it.
func NewExec[T any](max, lanes int, fn func(ctx context.Context, items []T) error) *Batcher[T, struct{}] {
	return New(max, lanes, func(ctx context.Context, items []T) ([]struct{}, error) {
		return make([]struct{}, len(items)), fn(ctx, items)
	})
}

type batchCall[T, R any] struct {
	item T
	res  R
	err  error
	done chan struct{}
}

// Do runs item in the next batch and returns its result. If ctx ends
// first, Do returns ctx's error; the batch still runs (callers of its
// results must tolerate that, as River jobs do by being retried).
func (b *Batcher[T, R]) Do(ctx context.Context, item T) (R, error) {
	c := &batchCall[T, R]{item: item, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, c)
	if b.running < b.Lanes {
		b.running++
		go b.drain()
	}
	b.mu.Unlock()
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
		var zero R
		return zero, ctx.Err()
	}
}

// drain runs batches until the queue is empty.
func (b *Batcher[T, R]) drain() {
	for {
		b.mu.Lock()
		if len(b.queue) == 0 {
			b.running--
			b.mu.Unlock()
			return
		}
		n := min(len(b.queue), b.Max)
		batch := b.queue[:n:n]
		b.queue = b.queue[n:]
		b.mu.Unlock()
		b.run(batch)
	}
}

func (b *Batcher[T, R]) run(batch []*batchCall[T, R]) {
	items := make([]T, len(batch))
	for i, c := range batch {
		items[i] = c.item
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.Timeout)
	res, err := b.Fn(ctx, items)
	cancel()
	if err == nil && len(res) != len(items) {
		err = fmt.Errorf("batch of %d returned %d results", len(items), len(res))
	}
	for i, c := range batch {
		if err != nil {
			c.err = err
		} else {
			c.res = res[i]
		}
		close(c.done)
	}
}
