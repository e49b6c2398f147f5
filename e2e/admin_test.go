package e2e_test

import (
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
