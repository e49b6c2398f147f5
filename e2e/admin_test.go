package e2e_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func adminPost(t *testing.T, base, token, op, target string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/v1/admin/"+op, strings.NewReader(`{"target":"`+target+`"}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s %s", op, target)
}

// Pausing events stops consumption on every instance: events published
// meanwhile wait in the stream (the lag shows them), nothing is applied, and
// after resuming each is applied once and the announcements are exact.
// Pausing notifications lets events apply but holds digests and deliveries
// until resumed.
func TestAdmin_PauseResume(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const token = "e2e-admin"
	a := e.serve("--admin-token", token)
	b := e.serve("--admin-token", token) // a second instance: the pause is cluster-wide
	lines := readLines(t, "basic.jsonl")
	const world = 9
	e.publish(lines[:world])
	e.settleEvents()
	applied := e.queryInt(`SELECT count(*) FROM shiftcast.applied_events`)

	adminPost(t, a.url, token, "pause", "events")
	require.True(t, adminStatus(t, b.url, token).Paused["events"], "every instance sees the pause")
	e.publish(lines[world:])
	deadline := time.Now().Add(10 * time.Second)
	for adminStatus(t, a.url, token).Events.Lag < uint64(len(lines)-world) {
		require.True(t, time.Now().Before(deadline), "the paused events should show as lag")
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // several digest windows: nothing may move
	require.Equal(t, applied, e.queryInt(`SELECT count(*) FROM shiftcast.applied_events`), "nothing consumed while paused")
	require.Empty(t, e.hook.announced())

	// Notifications paused, events resumed: events apply, nothing is sent.
	adminPost(t, b.url, token, "pause", "notifications")
	adminPost(t, b.url, token, "resume", "events")
	e.settleEvents()
	require.Equal(t, applied+int64(len(lines)-world), e.queryInt(`SELECT count(*) FROM shiftcast.applied_events`), "nothing lost")
	st := adminStatus(t, a.url, token)
	require.True(t, st.Paused["notifications"])
	require.False(t, st.Paused["events"])
	time.Sleep(3 * time.Second) // windows end, but the queues are paused
	require.Empty(t, e.hook.announced(), "no digests or deliveries while notifications are paused")

	adminPost(t, a.url, token, "resume", "all")
	e.expect(map[int64][]int64{1: {101, 102}, 2: {102}, 3: {103}})
	e.checkNotifications()
}

// A backlog of digests coalesces: while a worker's notify job waits (here,
// notifications paused), events of later windows that give the worker new
// shifts add no job of their own, and the waiting job, once it runs,
// announces everything in one notification. Without it, a sustained
// overload would queue a job per worker and window, without bound.
func TestBacklog_CoalescesIntoOneJobPerWorker(t *testing.T) {
	t.Parallel()
	e := setup(t)
	const token = "e2e-admin"
	// 2 s windows: the four windows below stay well inside the ten after
	// which a waiting job is presumed lost and its worker rescheduled.
	s := e.serve("--admin-token", token, "--digest-window", "2s")
	start := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Hour)
	var catalog [][]byte
	for i := int64(1); i <= 3; i++ {
		catalog = append(catalog,
			line("document.created", fmt.Sprintf("coalesce-doc-%d", i), map[string]any{"id": i, "name": fmt.Sprintf("doc %d", i), "is_active": true}),
			line("facility.created", fmt.Sprintf("coalesce-fac-%d", i), map[string]any{"id": i, "name": fmt.Sprintf("facility %d", i), "is_active": true}),
			line("facility.requirement_added", fmt.Sprintf("coalesce-req-%d", i), map[string]any{"facility_id": i, "document_id": i}),
			line("shift.created", fmt.Sprintf("coalesce-shift-%d", i), map[string]any{"id": 10 + i, "facility_id": i, "profession": "CNA",
				"start": start.Add(time.Duration(i) * time.Hour), "end": start.Add(time.Duration(i+8) * time.Hour)}))
	}
	e.publish(catalog)
	e.settle()

	adminPost(t, s.url, token, "pause", "notifications")
	steps := [][]byte{
		line("worker.created", "coalesce-worker", map[string]any{"id": 1, "name": "w", "profession": "CNA", "is_active": true}),
		line("worker.document_added", "coalesce-add-1", map[string]any{"worker_id": 1, "document_id": 1}),
		line("worker.document_added", "coalesce-add-2", map[string]any{"worker_id": 1, "document_id": 2}),
		line("worker.document_added", "coalesce-add-3", map[string]any{"worker_id": 1, "document_id": 3}),
	}
	for i, l := range steps {
		if i > 0 {
			time.Sleep(2200 * time.Millisecond) // the next digest window
		}
		e.publish([][]byte{l})
		e.settleEvents()
	}
	// Windows are whole 2 s periods of the epoch.
	require.Equal(t, int64(len(steps)), e.queryInt(`SELECT count(DISTINCT floor(extract(epoch FROM applied_at) / 2)) FROM shiftcast.applied_events
		WHERE event_id = 'coalesce-worker' OR event_id LIKE 'coalesce-add-%'`), "each event in a window of its own")
	require.Equal(t, int64(1), e.queryInt(`SELECT count(*) FROM river_job WHERE kind = 'shiftcast.notify' AND (args->>'worker_id')::int = 1`),
		"one job for worker 1 across the four windows of its events")

	adminPost(t, s.url, token, "resume", "all")
	e.expect(map[int64][]int64{1: {11, 12, 13}})
	var mine []int
	for _, n := range e.hook.notifications() {
		if n.WorkerID == 1 {
			mine = append(mine, n.Count)
		}
	}
	require.Equal(t, []int{3}, mine, "one notification with the three shifts")
	e.checkNotifications()
}
