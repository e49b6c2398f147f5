package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/consumers"
)

// Crashes, kills and several instances, on generated streams.

// world is a generated marketplace: a catalog (documents, facilities,
// requirements) published first, then workers, their documents and shifts
// interleaved. Nothing in it ever makes a (worker, shift) pair ineligible
// again, so each eligible pair is announced exactly once whatever the
// timing of digests relative to events.
type world struct {
	catalog, rest [][]byte
	want          map[int64][]int64
}

func genWorld(facilities, workers, shifts int) world {
	const docs = 3
	var w world
	for d := 1; d <= docs; d++ {
		w.catalog = append(w.catalog, line("document.created", fmt.Sprintf("doc-%d", d),
			map[string]any{"id": d, "name": fmt.Sprintf("Doc %d", d), "is_active": true}))
	}
	required := map[int][]int{} // facility → documents
	active := map[int]bool{}
	for f := 1; f <= facilities; f++ {
		active[f] = f%5 != 0
		w.catalog = append(w.catalog, line("facility.created", fmt.Sprintf("fac-%d", f),
			map[string]any{"id": f, "name": fmt.Sprintf("Facility %d", f), "is_active": active[f]}))
		switch f % 3 {
		case 1:
			required[f] = []int{f%docs + 1}
		case 2:
			required[f] = []int{1, 2}
		}
		for _, d := range required[f] {
			w.catalog = append(w.catalog, line("facility.requirement_added", fmt.Sprintf("req-%d-%d", f, d),
				map[string]any{"facility_id": f, "document_id": d}))
		}
	}
	profs := []string{"CNA", "LVN", "RN"}
	type worker struct {
		prof   string
		active bool
		docs   map[int]bool
	}
	ws := map[int]*worker{}
	var workerLines [][][]byte
	for i := 1; i <= workers; i++ {
		wk := &worker{prof: profs[i%3], active: i%7 != 0, docs: map[int]bool{}}
		ws[i] = wk
		ls := [][]byte{line("worker.created", fmt.Sprintf("wrk-%d", i),
			map[string]any{"id": i, "name": fmt.Sprintf("Worker %d", i), "profession": wk.prof, "is_active": wk.active})}
		for d := 1; d <= docs; d++ {
			if (i+d)%2 == 0 || i%4 == 0 {
				wk.docs[d] = true
				ls = append(ls, line("worker.document_added", fmt.Sprintf("wd-%d-%d", i, d),
					map[string]any{"worker_id": i, "document_id": d}))
			}
		}
		workerLines = append(workerLines, ls)
	}
	base := time.Date(2031, 12, 1, 5, 0, 0, 0, time.UTC)
	w.want = map[int64][]int64{}
	for i := range shifts {
		id := 20000 + i
		f := i%facilities + 1
		prof := profs[(i/facilities)%3]
		start := base.Add(time.Duration(i) * time.Hour)
		if i%11 == 5 {
			start = time.Date(2021, 1, 1, 5, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour) // past
		}
		// Workers arrive spread over the shifts.
		if k := i * len(workerLines) / shifts; k < len(workerLines) && workerLines[k] != nil {
			w.rest = append(w.rest, workerLines[k]...)
			workerLines[k] = nil
		}
		w.rest = append(w.rest, line("shift.created", fmt.Sprintf("sh-%d", id), map[string]any{
			"id": id, "facility_id": f, "profession": prof,
			"start": start.Format(time.RFC3339), "end": start.Add(5 * time.Hour).Format(time.RFC3339)}))
		if !active[f] || start.Before(time.Now()) {
			continue
		}
		for wid, wk := range ws {
			ok := wk.active && wk.prof == prof
			for _, d := range required[f] {
				ok = ok && wk.docs[d]
			}
			if ok {
				w.want[int64(wid)] = append(w.want[int64(wid)], int64(id))
			}
		}
	}
	for _, ls := range workerLines {
		w.rest = append(w.rest, ls...)
	}
	return w
}

func (w world) ids(t *testing.T) []string {
	return eventIDs(t, slices.Concat(w.catalog, w.rest))
}

// checkAppliedOnce checks that every event was applied exactly once: one
// record per id, all applied (none stale), and nothing else.
func (e *env) checkAppliedOnce(ids []string) {
	e.t.Helper()
	applied := e.appliedEvents()
	require.ElementsMatch(e.t, ids, keys(applied))
	for id, outcome := range applied {
		require.Equal(e.t, "applied", outcome, id)
	}
}

// redelivered returns how many deliveries the consumer made beyond one per
// message.
func (e *env) redelivered() uint64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := e.js.Consumer(ctx, consumers.StreamMarketplace, consumers.DurableName)
	require.NoError(e.t, err)
	info, err := cons.Info(ctx)
	require.NoError(e.t, err)
	return info.Delivered.Consumer - info.Delivered.Stream
}

// A crash right after an event commits, before its ack: the process exits
// with code 3; a new instance gets the unacknowledged events again,
// recognizes the committed one as a duplicate, and the announcements are
// exactly the expected ones, none twice.
func TestCrash_BetweenCommitAndAck(t *testing.T) {
	t.Parallel()
	e := setup(t)
	w := genWorld(4, 9, 40)
	const crashAt = 30
	// Jobs run in an instance of their own all along, so digests are built
	// before and after the crash, and the River leader's lease (15 s after
	// a crash) does not slow the test down; the crashing instance consumes.
	e.serve("--events=false", "--digest-size", "500")
	p := e.serve("--jobs=false", "--failpoint-crash-after-commit", fmt.Sprint(len(w.catalog)+crashAt))
	e.publish(w.catalog)
	e.settleEvents()
	e.publish(w.rest)
	require.Equal(t, 3, p.exited(t, 60*time.Second))
	crash := grepLog(p.logText(t), "failpoint: crashing after commit")
	require.Len(t, crash, 1)
	var last struct {
		EventID string `json:"event_id"`
	}
	require.NoError(t, json.Unmarshal([]byte(crash[0]), &last))
	require.Equal(t, "applied", e.appliedEvents()[last.EventID], "the event was committed before the crash")
	require.Less(t, len(e.appliedEvents()), len(w.catalog)+len(w.rest), "the crash came in the middle of the stream")

	e.serve("--digest-size", "500")
	e.expect(w.want)
	e.checkAppliedOnce(w.ids(t))
	require.NotZero(t, e.redelivered(), "the crashed instance's unacknowledged events were redelivered")
}

// A process killed (SIGKILL) in the middle of a longer stream, then
// restarted: nothing lost, nothing announced twice, every event applied
// once.
func TestKill_MidStream(t *testing.T) {
	t.Parallel()
	e := setup(t)
	w := genWorld(6, 15, 200)
	p := e.serve("--digest-size", "500")
	e.publish(w.catalog)
	e.settleEvents()
	// A third of the stream, until notifications go out; then the rest
	// trickles in, and the process is killed in its midst.
	third := len(w.rest) / 3
	e.publish(w.rest[:third])
	deadline := time.Now().Add(60 * time.Second)
	for len(e.hook.notifications()) == 0 {
		require.True(t, time.Now().Before(deadline), "no notification delivered")
		time.Sleep(20 * time.Millisecond)
	}
	published := make(chan error, 1)
	go func() {
		_, err := e.tryPublish(w.rest[third:], 10*time.Millisecond)
		published <- err
	}()
	// Kill it between two River jobs: a job killed while running is stuck
	// for an hour (see TestKill_DuringDelivery); here the point is the
	// events and the digests.
	for len(e.appliedEvents()) < len(w.catalog)+third+20 ||
		e.queryInt(`SELECT count(*) FROM river_job WHERE state = 'running'`) > 0 {
		require.True(t, time.Now().Before(deadline), "events are not being applied")
		time.Sleep(5 * time.Millisecond)
	}
	p.kill()
	applied := len(e.appliedEvents())
	t.Logf("killed after %d of %d events applied, %d notifications delivered",
		applied, len(w.catalog)+len(w.rest), len(e.hook.notifications()))
	require.Less(t, applied, len(w.catalog)+len(w.rest), "killed in the middle of the stream")
	require.NoError(t, <-published)

	e.serve("--digest-size", "500")
	e.expect(w.want)
	e.checkAppliedOnce(w.ids(t))
}

// Two instances sharing the durable consumer and the River queues: every
// event applied exactly once, every eligible pair announced exactly once.
func TestTwoInstances(t *testing.T) {
	t.Parallel()
	e := setup(t)
	w := genWorld(8, 24, 300)
	a := e.serve("--digest-size", "500")
	b := e.serve("--digest-size", "500")
	e.publish(w.catalog)
	e.settleEvents()
	e.publish(w.rest)
	e.expect(w.want)
	e.checkAppliedOnce(w.ids(t))
	t.Logf("digests built: %d by one instance, %d by the other",
		len(grepLog(a.logText(t), "digest built")), len(grepLog(b.logText(t), "digest built")))
}

// A process killed while a notification's delivery is in flight (the
// webhook receiver is slow to answer), then restarted: the delivery is
// retried by the new instance and the notification reaches the webhook,
// within a bounded time, once.
func TestKill_DuringDelivery(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.hook.mu.Lock()
	e.hook.delay = time.Minute
	e.hook.mu.Unlock()
	p := e.serve()
	e.play("webhook.jsonl")
	deadline := time.Now().Add(60 * time.Second)
	for {
		e.hook.mu.Lock()
		n := e.hook.inflight
		e.hook.mu.Unlock()
		if n > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the webhook was never called")
		time.Sleep(20 * time.Millisecond)
	}
	p.kill()
	e.hook.mu.Lock()
	e.hook.delay = 0
	e.hook.mu.Unlock()

	e.serve()
	e.expect(map[int64][]int64{1: {901, 902}})
}

// A serve bounding its digests per second (--digest-rate) builds them in
// smaller batches spread over time, and still announces every shift to
// every worker it should, once.
func TestDigestRate_StillAnnouncesEverythingOnce(t *testing.T) {
	t.Parallel()
	e := setup(t)
	w := genWorld(4, 12, 60)
	p := e.serve("--digest-rate", "4", "--digest-size", "500")
	e.publish(w.catalog)
	e.settleEvents()
	e.publish(w.rest)
	e.expect(w.want)
	e.checkAppliedOnce(w.ids(t))
	require.Empty(t, grepLog(p.logText(t), "digest admission"), "no batch failed waiting to be admitted")
}

// A serve whose events all count as slowed down (--event-wait-target 1ns)
// gives way to them: while events keep coming and digests run, it admits
// digests at a finite rate, down to --digest-floor; once the events stop
// it admits them without limit again; and every shift is still announced
// to every worker it should be, once.
func TestEventWaitTarget_DigestsGiveWayToEvents(t *testing.T) {
	t.Parallel()
	e := setup(t)
	w := genWorld(4, 12, 80)
	p := e.serve("--event-wait-target", "1ns", "--digest-floor", "2", "--digest-size", "500")
	e.publish(w.catalog)
	e.settleEvents()

	lowest := make(chan float64, 1)
	stop := make(chan struct{})
	go func() {
		low := math.Inf(1)
		defer func() { lowest <- low }()
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if r, err := admissionRate(p); err == nil {
				low = min(low, r)
			}
		}
	}()
	// Paced over several 1 s windows, so digests run while events come in.
	_, err := e.tryPublish(w.rest, 40*time.Millisecond)
	close(stop)
	require.NoError(t, err)
	require.Less(t, <-lowest, 10.0, "digests slowed down while the events were slow")

	e.expect(w.want)
	e.checkAppliedOnce(w.ids(t))
	require.Eventually(t, func() bool {
		r, err := admissionRate(p)
		return err == nil && math.IsInf(r, 1)
	}, 10*time.Second, 100*time.Millisecond, "no limit once the events stopped")
}

// admissionRate reads serve's shiftcast_digest_admission_rate.
func admissionRate(p *proc) (float64, error) {
	resp, err := http.Get(p.url + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for l := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(l, "shiftcast_digest_admission_rate "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("no shiftcast_digest_admission_rate in /metrics")
}
