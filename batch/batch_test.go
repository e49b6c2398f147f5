package batch_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/batch"
)

// Most tests run in a synctest bubble: synctest.Wait returns once every
// goroutine of the bubble is blocked (a caller waiting for its result, Fn
// waiting to be released), which makes "the call is queued" observable
// without sleeping, and a bug that leaves goroutines blocked forever fails
// the test (synctest reports the deadlock) instead of hanging it. Time in a
// bubble is fake: it only moves when every goroutine is blocked.

// waitTimeout bounds every wait of the tests that run on real time.
const waitTimeout = 10 * time.Second

// recorder is a batch function that records the batches it runs and can
// hold them until released.
type recorder struct {
	mu      sync.Mutex
	batches [][]int

	// gate, when set, is received from before each batch returns (a closed
	// gate lets every batch through).
	gate     chan struct{}
	gateOnce sync.Once
	// fail, when set, decides a batch's error.
	fail func(items []int) error

	running, maxRunning atomic.Int32
}

// result is what the recorder's batches return for item.
func result(item int) string { return fmt.Sprintf("result of %d", item) }

func (r *recorder) fn(ctx context.Context, items []int) ([]string, error) {
	n := r.running.Add(1)
	defer r.running.Add(-1)
	for {
		m := r.maxRunning.Load()
		if n <= m || r.maxRunning.CompareAndSwap(m, n) {
			break
		}
	}
	r.mu.Lock()
	r.batches = append(r.batches, slices.Clone(items))
	r.mu.Unlock()
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if r.fail != nil {
		if err := r.fail(items); err != nil {
			return nil, err
		}
	}
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = result(it)
	}
	return out, nil
}

// gated returns a recorder whose batches wait for release. The test's
// clean-up releases them, so that a failed test does not leave them
// blocked.
func gated(t testing.TB) *recorder {
	r := &recorder{gate: make(chan struct{})}
	t.Cleanup(r.release)
	return r
}

func (r *recorder) release() { r.gateOnce.Do(func() { close(r.gate) }) }

func (r *recorder) recorded() [][]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.batches)
}

// outcome is one Do call's return.
type outcome struct {
	item int
	res  string
	err  error
}

// call runs b.Do(ctx, item) in a goroutine; its outcome arrives on the
// returned channel.
func call(ctx context.Context, b *batch.Batcher[int, string], item int) <-chan outcome {
	ch := make(chan outcome, 1)
	go func() {
		res, err := b.Do(ctx, item)
		ch <- outcome{item: item, res: res, err: err}
	}()
	return ch
}

// queue starts calls of items one at a time, each queued (blocked waiting
// for its result) before the next starts, so the queue holds them in that
// order. It must run in a bubble.
func queue(ctx context.Context, b *batch.Batcher[int, string], items ...int) []<-chan outcome {
	out := make([]<-chan outcome, len(items))
	for i, it := range items {
		out[i] = call(ctx, b, it)
		synctest.Wait()
	}
	return out
}

// done returns ch's outcome if the call has returned.
func done(ch <-chan outcome) (outcome, bool) {
	select {
	case o := <-ch:
		return o, true
	default:
		return outcome{}, false
	}
}

// await returns ch's outcome, failing the test if it takes longer than
// waitTimeout (of fake time, in a bubble).
func await(t testing.TB, ch <-chan outcome) outcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(waitTimeout):
		t.Fatal("call did not return")
		return outcome{}
	}
}

func seq(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func TestNew_SetsFields(t *testing.T) {
	t.Parallel()
	called := 0
	b := batch.New(7, 3, func(_ context.Context, items []int) ([]string, error) {
		called++
		return []string{"x"}, nil
	})
	require.Equal(t, 7, b.Max)
	require.Equal(t, 3, b.Lanes)
	require.Equal(t, 30*time.Second, b.Timeout)
	require.NotNil(t, b.Fn)
	res, err := b.Fn(context.Background(), []int{1})
	require.NoError(t, err)
	require.Equal(t, []string{"x"}, res)
	require.Equal(t, 1, called, "Fn is the function given")

	// And the batcher works as built.
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	got, err := b.Do(ctx, 5)
	require.NoError(t, err)
	require.Equal(t, "x", got)
	require.Equal(t, 2, called)
}

func TestBatcher_Do_SingleCallRunsAtOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{}
		b := batch.New(10, 2, r.fn)
		start := time.Now()
		res, err := b.Do(t.Context(), 42)
		require.NoError(t, err)
		require.Equal(t, result(42), res)
		require.Equal(t, [][]int{{42}}, r.recorded(), "one batch of one item")
		require.Zero(t, time.Since(start), "no waiting for more calls under no load")

		// The next call, after the first returned, is a batch of its own too.
		res, err = b.Do(t.Context(), 43)
		require.NoError(t, err)
		require.Equal(t, result(43), res)
		require.Equal(t, [][]int{{42}, {43}}, r.recorded())
	})
}

func TestBatcher_Do_GroupsCallsQueuedWhileABatchRuns(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := gated(t)
		b := batch.New(100, 1, r.fn)
		first := call(t.Context(), b, 0)
		synctest.Wait()
		require.Equal(t, [][]int{{0}}, r.recorded(), "the first call runs at once")

		waiting := queue(t.Context(), b, seq(1, 50)...)
		synctest.Wait()
		require.Len(t, r.recorded(), 1, "the others wait while the first batch runs")
		for _, ch := range waiting {
			_, ok := done(ch)
			require.False(t, ok)
		}

		r.release()
		o := await(t, first)
		require.NoError(t, o.err)
		require.Equal(t, result(0), o.res)
		for i, ch := range waiting {
			o := await(t, ch)
			require.NoError(t, o.err)
			require.Equal(t, result(i+1), o.res, "each caller gets its own item's result")
		}
		require.Equal(t, [][]int{{0}, seq(1, 50)}, r.recorded(),
			"every call queued meanwhile goes in the next batch, in arrival order")
	})
}

func TestBatcher_Do_RespectsMax(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		max, queued int
		want        [][]int
	}{
		{max: 8, queued: 50, want: [][]int{{0}, seq(1, 8), seq(9, 16), seq(17, 24), seq(25, 32), seq(33, 40), seq(41, 48), seq(49, 50)}},
		{max: 10, queued: 20, want: [][]int{{0}, seq(1, 10), seq(11, 20)}},
		{max: 1, queued: 3, want: [][]int{{0}, {1}, {2}, {3}}},
		{max: 5, queued: 5, want: [][]int{{0}, seq(1, 5)}},
	} {
		t.Run(fmt.Sprintf("max %d queued %d", tc.max, tc.queued), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				r := gated(t)
				b := batch.New(tc.max, 1, r.fn)
				first := call(t.Context(), b, 0)
				synctest.Wait()
				waiting := queue(t.Context(), b, seq(1, tc.queued)...)
				r.release()
				require.NoError(t, await(t, first).err)
				for i, ch := range waiting {
					o := await(t, ch)
					require.NoError(t, o.err)
					require.Equal(t, result(i+1), o.res)
				}
				require.Equal(t, tc.want, r.recorded())
			})
		})
	}
}

func TestBatcher_Do_LanesBoundConcurrentBatches(t *testing.T) {
	t.Parallel()
	for _, lanes := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("lanes %d", lanes), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				r := gated(t)
				b := batch.New(1, lanes, r.fn)
				waiting := queue(t.Context(), b, seq(1, 10)...)
				synctest.Wait()
				require.Equal(t, int32(lanes), r.running.Load(), "as many batches run as there are lanes")
				require.Len(t, r.recorded(), lanes)

				r.release()
				for i, ch := range waiting {
					o := await(t, ch)
					require.NoError(t, o.err)
					require.Equal(t, result(i+1), o.res)
				}
				require.Equal(t, int32(lanes), r.maxRunning.Load(), "never more than the lanes")
				require.Len(t, r.recorded(), 10, "Max 1: one batch per call")
			})
		})
	}
}

// On real time and real concurrency: many callers, batches of random
// duration; every caller gets its own item's result, every item runs
// exactly once, and Max and Lanes hold throughout.
func TestBatcher_Do_ConcurrentCallersGetTheirOwnResults(t *testing.T) {
	t.Parallel()
	const (
		callers = 300
		max     = 7
		lanes   = 3
	)
	var (
		running, maxRunning atomic.Int32
		mu                  sync.Mutex
		seen                = map[int]int{}
		sizes               []int
	)
	b := batch.New(max, lanes, func(ctx context.Context, items []int) ([]int, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			m := maxRunning.Load()
			if n <= m || maxRunning.CompareAndSwap(m, n) {
				break
			}
		}
		mu.Lock()
		for _, it := range items {
			seen[it]++
		}
		sizes = append(sizes, len(items))
		mu.Unlock()
		time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond)
		out := make([]int, len(items))
		for i, it := range items {
			out[i] = it * 3
		}
		return out, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	type got struct{ item, res int }
	results := make(chan got, callers)
	errs := make(chan error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			res, err := b.Do(ctx, i)
			if err != nil {
				errs <- err
				return
			}
			results <- got{i, res}
		})
	}
	wg.Wait()
	close(results)
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	n := 0
	for g := range results {
		require.Equal(t, g.item*3, g.res, "caller of item %d", g.item)
		n++
	}
	require.Equal(t, callers, n)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, seen, callers)
	for it, k := range seen {
		require.Equal(t, 1, k, "item %d ran once", it)
	}
	for _, s := range sizes {
		require.LessOrEqual(t, s, max)
		require.Positive(t, s)
	}
	require.LessOrEqual(t, maxRunning.Load(), int32(lanes))
	t.Logf("%d calls in %d batches, at most %d at once", callers, len(sizes), maxRunning.Load())
}

func TestBatcher_Do_FnErrorGoesToEveryCallerOfTheBatch(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		boom := errors.New("boom")
		r := gated(t)
		r.fail = func(items []int) error {
			if slices.Contains(items, 3) {
				return boom
			}
			return nil
		}
		b := batch.New(5, 1, r.fn)
		first := call(t.Context(), b, 0)
		synctest.Wait()
		failing := queue(t.Context(), b, 1, 2, 3, 4, 5) // one batch, with item 3
		after := queue(t.Context(), b, 6, 7)            // the next batch
		r.release()

		o := await(t, first)
		require.NoError(t, o.err)
		require.Equal(t, result(0), o.res)
		for _, ch := range failing {
			o := await(t, ch)
			require.ErrorIs(t, o.err, boom, "item %d", o.item)
			require.Empty(t, o.res, "item %d: no result with an error", o.item)
		}
		for _, ch := range after {
			o := await(t, ch)
			require.NoError(t, o.err, "a failed batch does not fail the next")
			require.Equal(t, result(o.item), o.res)
		}
		require.Equal(t, [][]int{{0}, {1, 2, 3, 4, 5}, {6, 7}}, r.recorded())
	})
}

func TestBatcher_Do_WrongNumberOfResultsFailsEveryCaller(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		count func(n int) int
	}{
		{"none", func(int) int { return 0 }},
		{"one short", func(n int) int { return n - 1 }},
		{"one extra", func(n int) int { return n + 1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				gate := make(chan struct{})
				openGate := sync.OnceFunc(func() { close(gate) })
				t.Cleanup(openGate)
				calls := 0
				b := batch.New(10, 1, func(_ context.Context, items []int) ([]string, error) {
					calls++
					if calls == 1 {
						<-gate
						return []string{result(items[0])}, nil
					}
					out := make([]string, tc.count(len(items)))
					for i := range out {
						out[i] = "wrong"
					}
					return out, nil
				})
				first := call(t.Context(), b, 0)
				synctest.Wait()
				waiting := queue(t.Context(), b, 1, 2, 3)
				openGate()
				require.NoError(t, await(t, first).err)
				for _, ch := range waiting {
					o := await(t, ch)
					require.Error(t, o.err, "item %d", o.item)
					require.ErrorContains(t, o.err, fmt.Sprintf("batch of 3 returned %d results", tc.count(3)))
					require.Empty(t, o.res, "item %d: no result with an error", o.item)
				}
				require.Equal(t, 2, calls)
			})
		})
	}
}

func TestBatcher_Do_CancelledCallerReturnsAtOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var (
			mu      sync.Mutex
			fnCtxs  []context.Context
			batches [][]int
		)
		gate := make(chan struct{})
		openGate := sync.OnceFunc(func() { close(gate) })
		t.Cleanup(openGate)
		b := batch.New(10, 1, func(ctx context.Context, items []int) ([]string, error) {
			mu.Lock()
			fnCtxs = append(fnCtxs, ctx)
			batches = append(batches, slices.Clone(items))
			mu.Unlock()
			<-gate
			out := make([]string, len(items))
			for i, it := range items {
				out[i] = result(it)
			}
			return out, nil
		})

		// Caller 0's batch is running; caller 1 is queued behind it;
		// caller 2 is queued and keeps waiting.
		ctx0, cancel0 := context.WithCancel(t.Context())
		defer cancel0()
		running := call(ctx0, b, 0)
		synctest.Wait()
		ctx1, cancel1 := context.WithCancel(t.Context())
		defer cancel1()
		queued := queue(ctx1, b, 1)[0]
		other := queue(t.Context(), b, 2)[0]

		start := time.Now()
		cancel0()
		cancel1()
		synctest.Wait()
		o, ok := done(running)
		require.True(t, ok, "a cancelled caller whose batch runs returns without waiting for it")
		require.ErrorIs(t, o.err, context.Canceled)
		require.Empty(t, o.res)
		o, ok = done(queued)
		require.True(t, ok, "a cancelled queued caller returns without waiting")
		require.ErrorIs(t, o.err, context.Canceled)
		require.Zero(t, time.Since(start))
		_, ok = done(other)
		require.False(t, ok, "the others still wait")
		mu.Lock()
		require.NoError(t, fnCtxs[0].Err(), "a caller's cancellation does not cancel the batch")
		mu.Unlock()

		openGate()
		o = await(t, other)
		require.NoError(t, o.err)
		require.Equal(t, result(2), o.res)
		mu.Lock()
		defer mu.Unlock()
		require.Equal(t, [][]int{{0}, {1, 2}}, batches, "the cancelled callers' items still run")
	})
}

func TestBatcher_Do_TimeoutBoundsTheBatch(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		type key struct{}
		var (
			deadline time.Time
			hasDL    bool
			value    any
		)
		b := batch.New(10, 1, func(ctx context.Context, items []int) ([]string, error) {
			deadline, hasDL = ctx.Deadline()
			value = ctx.Value(key{})
			<-ctx.Done() // a batch that hangs
			return nil, ctx.Err()
		})
		b.Timeout = 5 * time.Second
		ctx, cancel := context.WithTimeout(context.WithValue(t.Context(), key{}, "caller's"), time.Hour)
		defer cancel()
		start := time.Now()
		_, err := b.Do(ctx, 1)
		require.ErrorIs(t, err, context.DeadlineExceeded, "the batch's own deadline, not the caller's hour")
		require.True(t, hasDL, "Fn's context has a deadline")
		require.Equal(t, start.Add(5*time.Second), deadline, "Timeout after the batch starts")
		require.Equal(t, 5*time.Second, time.Since(start), "the hung batch ended at its timeout")
		require.Nil(t, value, "Fn does not run in a caller's context")
	})
}

// The same on real time, with New's default timeout.
func TestBatcher_Do_DefaultTimeoutOnFnContext(t *testing.T) {
	t.Parallel()
	var (
		deadline time.Time
		hasDL    bool
	)
	b := batch.New(10, 1, func(ctx context.Context, items []int) ([]string, error) {
		deadline, hasDL = ctx.Deadline()
		return make([]string, len(items)), nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	before := time.Now()
	_, err := b.Do(ctx, 1)
	after := time.Now()
	require.NoError(t, err)
	require.True(t, hasDL)
	require.False(t, deadline.Before(before.Add(30*time.Second)), "deadline %s", deadline)
	require.False(t, deadline.After(after.Add(30*time.Second)), "deadline %s", deadline)
}

func TestNewExec_ErrorGoesToEveryCall(t *testing.T) {
	t.Parallel()
	fail := errors.New("flush failed")
	var calls [][]int
	b := batch.NewExec(8, 1, func(_ context.Context, items []int) error {
		calls = append(calls, items)
		if items[0] < 0 {
			return fail
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := b.Do(ctx, 1)
	require.NoError(t, err)
	_, err = b.Do(ctx, -1)
	require.ErrorIs(t, err, fail)
	require.Equal(t, [][]int{{1}, {-1}}, calls)
}
