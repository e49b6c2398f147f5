package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/admin"
	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/httpapi"
	"github.com/shiftcast/shiftcast/metrics"
	"github.com/shiftcast/shiftcast/testenv"
)

// uiAdmin is a stub of the pipeline's controls whose status changes from
// one call to the next (the lag counts the calls), optionally failing.
type uiAdmin struct {
	calls atomic.Int64
	fail  atomic.Bool
}

func (a *uiAdmin) Status(context.Context) (admin.Status, error) {
	n := a.calls.Add(1)
	if a.fail.Load() {
		return admin.Status{}, domain.Unavailable("postgres", errors.New("connection refused"))
	}
	return admin.Status{
		Events:        admin.EventsStatus{Paused: true, Lag: uint64(n), DeadLettered: 2},
		Jobs:          admin.JobsStatus{Pending: 3, Failed: 1},
		Notifications: map[string]int64{"pending": 1, "delivered": 5, "failed": 0},
		Paused:        map[string]bool{"events": true, "notifications": false},
	}, nil
}

func (a *uiAdmin) Pause(context.Context, string) error  { return nil }
func (a *uiAdmin) Resume(context.Context, string) error { return nil }

// uiRecentAdmin also lists recent notifications.
type uiRecentAdmin struct{ uiAdmin }

func (a *uiRecentAdmin) RecentNotifications(_ context.Context, limit int) (any, error) {
	return []domain.Notification{{ID: "n-1", Type: "shifts.available", WorkerID: 7, Count: 2, CreatedAt: time.Unix(1700000000, 0).UTC()}}[:min(limit, 1)], nil
}

type uiServer struct {
	srv *httpapi.Server
	url string
	m   *metrics.Metrics
}

func serveUI(t *testing.T, token string, adm httpapi.Admin) *uiServer {
	t.Helper()
	m := metrics.New()
	srv := httpapi.New(httpapi.Config{
		Addr: "127.0.0.1:0", Admin: adm, AdminToken: token, Metrics: m, Logger: testenv.Logger(t),
	})
	require.NoError(t, srv.Open(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Close(ctx)
	})
	return &uiServer{srv: srv, url: srv.URL(), m: m}
}

func uiGet(t *testing.T, url, token string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func TestUI_PageAndAssets(t *testing.T) {
	t.Parallel()
	s := serveUI(t, "s3cret", &uiAdmin{})
	tests := []struct {
		path, ctype, contains string
	}{
		{"/", "text/html; charset=utf-8", `id="lookup-form"`},
		{"/ui/app.js", "text/javascript; charset=utf-8", "/v1/admin/stream"},
		{"/ui/style.css", "text/css; charset=utf-8", ".tiles"},
		{"/ui/config.json", "application/json", `{"admin_enabled":true}`},
	}
	for _, tt := range tests {
		resp, body := uiGet(t, s.url+tt.path, "")
		require.Equal(t, http.StatusOK, resp.StatusCode, tt.path)
		require.Equal(t, tt.ctype, resp.Header.Get("Content-Type"), tt.path)
		require.Contains(t, body, tt.contains, tt.path)
		require.NotContains(t, body, "http://", "%s loads nothing from elsewhere", tt.path)
		require.NotContains(t, body, "https://", "%s loads nothing from elsewhere", tt.path)
	}
	resp, body := uiGet(t, s.url+"/", "")
	require.Contains(t, resp.Header.Get("Content-Security-Policy"), "script-src 'self'")
	require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	for _, id := range []string{"token", "events-rate", "events-total", "deliveries-rate", "notifications-rate", "lag",
		"redelivered", "dead-lettered", "jobs-pending", "jobs-failed", "events-state", "pause-events", "resume-events",
		"notifications-state", "pause-notifications", "resume-notifications", "recent", "lookup-worker", "lookup-shift", "lookup-result"} {
		require.Contains(t, body, `id="`+id+`"`)
	}
	for _, path := range []string{"/ui/", "/ui/missing.js", "/index.html", "/nothing"} {
		resp, body := uiGet(t, s.url+path, "")
		require.Equal(t, http.StatusNotFound, resp.StatusCode, path)
		require.Contains(t, body, `"not_found"`, path)
	}
}

func TestUI_StreamRequiresToken(t *testing.T) {
	t.Parallel()
	s := serveUI(t, "s3cret", &uiAdmin{})
	for _, token := range []string{"", "wrong", "s3cret-longer"} {
		resp, body := uiGet(t, s.url+"/v1/admin/stream", token)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "token %q", token)
		require.Contains(t, body, "unauthenticated")
	}
}

func TestUI_DisabledWithoutToken(t *testing.T) {
	t.Parallel()
	s := serveUI(t, "", &uiAdmin{})
	resp, _ := uiGet(t, s.url+"/", "")
	require.Equal(t, http.StatusOK, resp.StatusCode, "the page is served; it explains how to enable admin")
	_, body := uiGet(t, s.url+"/ui/config.json", "")
	require.JSONEq(t, `{"admin_enabled":false}`, body)
	resp, _ = uiGet(t, s.url+"/v1/admin/stream", "anything")
	require.Equal(t, http.StatusNotFound, resp.StatusCode)

	s = serveUI(t, "s3cret", nil)
	_, body = uiGet(t, s.url+"/ui/config.json", "")
	require.JSONEq(t, `{"admin_enabled":false}`, body, "no admin controls wired: disabled too")
}

// snapshotEvent mirrors the data of one `snapshot` event.
type snapshotEvent struct {
	Time        time.Time        `json:"time"`
	Counters    metrics.Snapshot `json:"counters"`
	Status      *admin.Status    `json:"status"`
	StatusError string           `json:"status_error"`
	Recent      json.RawMessage  `json:"recent"`
}

// openStream opens the admin stream and returns a function reading the
// next snapshot event.
func openStream(t *testing.T, ctx context.Context, url, token string) (*http.Response, func() snapshotEvent) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/admin/stream", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	require.Equal(t, http.StatusOK, resp.StatusCode)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	return resp, func() snapshotEvent {
		t.Helper()
		var event, data string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if event == "snapshot" && data != "" {
					var ev snapshotEvent
					require.NoError(t, json.Unmarshal([]byte(data), &ev), data)
					return ev
				}
				event, data = "", ""
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data += strings.TrimPrefix(line, "data: ")
			}
		}
		t.Fatalf("stream ended: %v", sc.Err())
		return snapshotEvent{}
	}
}

func TestUI_StreamSnapshots(t *testing.T) {
	t.Parallel()
	adm := &uiAdmin{}
	s := serveUI(t, "s3cret", adm)
	s.m.EventHandled("shift.created", "applied", time.Millisecond)
	s.m.EventHandled("shift.created", "applied", time.Millisecond)
	s.m.EventHandled("worker.created", "duplicate", time.Millisecond)
	s.m.NotificationBuilt(3)
	s.m.Delivery("webhook", true)
	s.m.Delivery("nats", false)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, next := openStream(t, ctx, s.url, "s3cret")
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))

	start := time.Now()
	first := next()
	require.Equal(t, uint64(2), first.Counters.EventsHandled["applied"])
	require.Equal(t, uint64(1), first.Counters.EventsHandled["duplicate"])
	require.Equal(t, uint64(0), first.Counters.EventsHandled["stale"], "every outcome is present")
	require.Equal(t, uint64(1), first.Counters.NotificationsBuilt)
	require.Equal(t, uint64(3), first.Counters.AnnouncedShifts)
	require.Equal(t, map[string]uint64{"delivered": 1, "failed": 1}, first.Counters.Deliveries)
	require.NotNil(t, first.Status)
	require.True(t, first.Status.Paused["events"])
	require.Equal(t, uint64(2), first.Status.Events.DeadLettered)
	require.Equal(t, "null", string(first.Recent), "no RecentNotifier configured")

	s.m.EventHandled("shift.created", "applied", time.Millisecond)
	second := next()
	require.WithinDuration(t, start.Add(time.Second), time.Now(), 500*time.Millisecond, "a snapshot a second")
	require.True(t, second.Time.After(first.Time))
	require.Equal(t, uint64(3), second.Counters.EventsHandled["applied"], "counters are read afresh")
	require.Greater(t, second.Status.Events.Lag, first.Status.Events.Lag, "status is read afresh")

	adm.fail.Store(true)
	third := next()
	require.Nil(t, third.Status)
	require.Equal(t, "postgres is unavailable", third.StatusError, "a failing status is reported, the stream goes on")
	adm.fail.Store(false)
	require.NotNil(t, next().Status)
}

func TestUI_StreamRecentNotifications(t *testing.T) {
	t.Parallel()
	s := serveUI(t, "s3cret", &uiRecentAdmin{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, next := openStream(t, ctx, s.url, "s3cret")
	var recent []domain.Notification
	require.NoError(t, json.Unmarshal(next().Recent, &recent))
	require.Len(t, recent, 1)
	require.Equal(t, "n-1", recent[0].ID)
	require.Equal(t, int64(7), recent[0].WorkerID)
}

func TestUI_StreamEndsOnShutdown(t *testing.T) {
	t.Parallel()
	s := serveUI(t, "s3cret", &uiAdmin{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, next := openStream(t, ctx, s.url, "s3cret")
	next()
	start := time.Now()
	closeCtx, closeCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer closeCancel()
	require.NoError(t, s.srv.Close(closeCtx), "an open stream does not hold up shutdown")
	require.Less(t, time.Since(start), 2*time.Second)
	_, err := io.Copy(io.Discard, resp.Body)
	require.NoError(t, err, "the stream ends cleanly")
}

// uiEmptyRecentAdmin has no notifications yet, and says so with a nil slice.
type uiEmptyRecentAdmin struct{ uiAdmin }

func (a *uiEmptyRecentAdmin) RecentNotifications(context.Context, int) (any, error) {
	var none []domain.Notification
	return none, nil
}

func TestUI_StreamNoRecentNotificationsYet(t *testing.T) {
	t.Parallel()
	s := serveUI(t, "s3cret", &uiEmptyRecentAdmin{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, next := openStream(t, ctx, s.url, "s3cret")
	require.Equal(t, "[]", string(next().Recent), "configured but empty is [], not null")
}
