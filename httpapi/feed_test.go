package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/shiftcast/shiftcast/consumers"
	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/eligibility"
	"github.com/shiftcast/shiftcast/httpapi"
	"github.com/shiftcast/shiftcast/publishers"
	"github.com/shiftcast/shiftcast/testenv"
	"github.com/shiftcast/shiftcast/testenv/fixture"
	"github.com/shiftcast/shiftcast/testenv/teststore"
)

// feedWait bounds every wait of the feed tests.
const feedWait = 10 * time.Second

type feedEnv struct {
	base  string
	pool  *pgxpool.Pool
	pub   *publishers.NATSNotifier
	close func() error
}

// feedSetup serves the fixture with the feed wired as in production: the
// store for history and replay, NATS for live notifications.
func feedSetup(t *testing.T) *feedEnv {
	t.Helper()
	return feedSetupLogging(t, testenv.Logger(t))
}

func feedSetupLogging(t *testing.T, log *zap.Logger) *feedEnv {
	t.Helper()
	ctx := context.Background()
	st := teststore.Open(t)
	fixture.Load(t, st.Pool())

	natsURL := testenv.NATS(t)
	subConn, err := nats.Connect(natsURL)
	require.NoError(t, err)
	t.Cleanup(subConn.Close)
	pubConn, err := nats.Connect(natsURL)
	require.NoError(t, err)
	t.Cleanup(pubConn.Close)

	srv := httpapi.New(httpapi.Config{
		Addr:    "127.0.0.1:0",
		Service: eligibility.NewService(st),
		Feed:    httpapi.FeedFrom(st, consumers.NewNotificationFeed(subConn, log)),
		Logger:  log,
	})
	require.NoError(t, srv.Open(ctx))
	var once sync.Once
	var closeErr error
	closeSrv := func() error {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			closeErr = srv.Close(ctx)
		})
		return closeErr
	}
	// Streams still open here must not hold up the shutdown.
	t.Cleanup(func() { require.NoError(t, closeSrv()) })
	return &feedEnv{base: srv.URL(), pool: st.Pool(), pub: publishers.NewNATSNotifier(pubConn), close: closeSrv}
}

// store records a notification for worker as store.BuildDigest does.
func (e *feedEnv) store(t *testing.T, worker int64) domain.Notification {
	t.Helper()
	start := time.Date(2030, 1, 2, 8, 0, 0, 0, time.UTC)
	n := domain.Notification{
		Type: domain.NotificationTypeShiftsAvailable, WorkerID: worker, Count: 2,
		Shifts: []domain.NotificationShift{{ID: 7, FacilityID: 1, Profession: "CNA", Start: start, End: start.Add(8 * time.Hour)}},
	}
	body, err := json.Marshal(n.Shifts)
	require.NoError(t, err)
	require.NoError(t, e.pool.QueryRow(context.Background(), `
		INSERT INTO shiftcast.notifications (worker_id, count, shifts) VALUES ($1, $2, $3)
		RETURNING id::text, created_at`, worker, n.Count, body).Scan(&n.ID, &n.CreatedAt))
	n.CreatedAt = n.CreatedAt.UTC()
	return n
}

// publish delivers n on NATS as the delivery job does.
func (e *feedEnv) publish(t *testing.T, n domain.Notification) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), feedWait)
	defer cancel()
	require.NoError(t, e.pub.Deliver(ctx, n))
}

// notify records and publishes a notification for worker.
func (e *feedEnv) notify(t *testing.T, worker int64) domain.Notification {
	t.Helper()
	n := e.store(t, worker)
	e.publish(t, n)
	return n
}

// insertAt writes a notification row with a given created_at and status.
func (e *feedEnv) insertAt(t *testing.T, worker int64, at time.Time, status string) string {
	t.Helper()
	var id string
	require.NoError(t, e.pool.QueryRow(context.Background(), `
		INSERT INTO shiftcast.notifications (worker_id, count, shifts, status, created_at) VALUES ($1, 1, '[]', $2, $3)
		RETURNING id::text`, worker, status, at).Scan(&id))
	return id
}

type feedEvent struct {
	id, event, data string
}

type feedStream struct {
	resp   *http.Response
	cancel context.CancelFunc
	events chan feedEvent
	ended  chan error
}

// openFeed connects to a worker's stream; lastID, when set, is sent as
// Last-Event-ID.
func (e *feedEnv) openFeed(t *testing.T, path, lastID string) *feedStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.base+path, nil)
	require.NoError(t, err)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	// No client timeout: the stream is long-lived; every wait below is
	// bounded instead.
	resp, err := (&http.Client{Transport: &http.Transport{ResponseHeaderTimeout: feedWait}}).Do(req)
	require.NoError(t, err)
	s := &feedStream{resp: resp, cancel: cancel, events: make(chan feedEvent, 1024), ended: make(chan error, 1)}
	t.Cleanup(s.close)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	require.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))
	go s.read()
	return s
}

func (s *feedStream) read() {
	sc := bufio.NewScanner(s.resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	var ev feedEvent
	var data []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data != nil {
				ev.data = strings.Join(data, "\n")
				s.events <- ev
			}
			ev, data = feedEvent{}, nil
		case strings.HasPrefix(line, ":"):
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				ev.id = value
			case "event":
				ev.event = value
			case "data":
				data = append(data, value)
			}
		}
	}
	err := sc.Err()
	if err == nil {
		err = io.EOF
	}
	s.ended <- err
}

func (s *feedStream) close() {
	s.cancel()
	_ = s.resp.Body.Close()
}

// next returns the next notification event.
func (s *feedStream) next(t *testing.T) domain.Notification {
	t.Helper()
	select {
	case ev := <-s.events:
		require.Equal(t, "notification", ev.event)
		var n domain.Notification
		require.NoError(t, json.Unmarshal([]byte(ev.data), &n), ev.data)
		require.Equal(t, n.ID, ev.id, "the event id is the notification id")
		return n
	case err := <-s.ended:
		t.Fatalf("stream ended: %v", err)
	case <-time.After(feedWait):
		t.Fatal("no event within", feedWait)
	}
	return domain.Notification{}
}

// quiet asserts that no event arrives for a while.
func (s *feedStream) quiet(t *testing.T) {
	t.Helper()
	select {
	case ev := <-s.events:
		t.Fatalf("unexpected event %s", ev.id)
	case <-time.After(300 * time.Millisecond):
	}
}

func equalNotification(t *testing.T, want, got domain.Notification) {
	t.Helper()
	require.Equal(t, want.ID, got.ID)
	require.Equal(t, want.WorkerID, got.WorkerID)
	require.Equal(t, want.Count, got.Count)
	require.Equal(t, want.Shifts, got.Shifts)
	require.True(t, want.CreatedAt.Equal(got.CreatedAt), "%s != %s", want.CreatedAt, got.CreatedAt)
}

func TestFeed_HistoryPagesAcrossEqualTimes(t *testing.T) {
	t.Parallel()
	e := feedSetup(t)
	base := time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC)
	older := e.insertAt(t, 1, base.Add(-time.Minute), "delivered")
	same := map[string]bool{}
	for range 5 {
		same[e.insertAt(t, 1, base, "pending")] = true
	}
	newer := e.insertAt(t, 1, base.Add(time.Minute), "failed")
	e.insertAt(t, 2, base, "pending") // another worker's

	var got []string
	next := e.base + "/v1/workers/1/notifications?limit=2"
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10)
		var resp httpapi.NotificationsResponse
		status, _ := get(t, next, &resp)
		require.Equal(t, http.StatusOK, status)
		require.LessOrEqual(t, len(resp.Notifications), 2)
		for _, n := range resp.Notifications {
			got = append(got, n.ID)
			require.Equal(t, int64(1), n.WorkerID)
		}
		if resp.NextCursor == nil {
			break
		}
		next = e.base + "/v1/workers/1/notifications?limit=2&cursor=" + url.QueryEscape(*resp.NextCursor)
	}
	require.Len(t, got, 7)
	require.Equal(t, newer, got[0])
	require.Equal(t, older, got[6])
	middle := map[string]bool{}
	for i, id := range got[1:6] {
		middle[id] = true
		if i > 0 {
			require.Greater(t, got[i], id, "equal created_at: id descending")
		}
	}
	require.Equal(t, same, middle, "each notification exactly once")

	// The item's shape: the notification and its delivery status.
	var raw struct {
		Notifications []map[string]any `json:"notifications"`
		NextCursor    *string          `json:"next_cursor"`
	}
	get(t, e.base+"/v1/workers/1/notifications?limit=1", &raw)
	require.NotNil(t, raw.NextCursor)
	require.Len(t, raw.Notifications, 1)
	item := raw.Notifications[0]
	require.Equal(t, newer, item["id"])
	require.Equal(t, "shifts.available", item["type"])
	require.EqualValues(t, 1, item["worker_id"])
	require.EqualValues(t, 1, item["count"])
	require.Equal(t, []any{}, item["shifts"])
	require.Equal(t, "failed", item["status"])
	require.Equal(t, "2024-05-01T09:01:00Z", item["created_at"])

	// A known worker without notifications; the default limit.
	var empty httpapi.NotificationsResponse
	status, _ := get(t, e.base+"/v1/workers/3/notifications", &empty)
	require.Equal(t, http.StatusOK, status)
	require.Empty(t, empty.Notifications)
	require.Nil(t, empty.NextCursor)
	_, err := e.pool.Exec(context.Background(), `
		INSERT INTO shiftcast.notifications (worker_id, count, shifts) SELECT 4, 1, '[]' FROM generate_series(1, 51)`)
	require.NoError(t, err)
	var page httpapi.NotificationsResponse
	get(t, e.base+"/v1/workers/4/notifications", &page)
	require.Len(t, page.Notifications, domain.DefaultLimit)
	require.NotNil(t, page.NextCursor)
	get(t, e.base+"/v1/workers/4/notifications?limit=500", &page)
	require.Len(t, page.Notifications, 51)
	require.Nil(t, page.NextCursor)
}

func TestFeed_BadInput(t *testing.T) {
	t.Parallel()
	e := feedSetup(t)
	e.insertAt(t, 1, time.Now(), "pending")
	e.insertAt(t, 1, time.Now(), "pending")
	theirs := e.insertAt(t, 2, time.Now(), "pending")

	var first httpapi.NotificationsResponse
	get(t, e.base+"/v1/workers/1/notifications?limit=1", &first)
	require.NotNil(t, first.NextCursor)
	cursor := *first.NextCursor
	flipped := []byte(cursor)
	flipped[len(flipped)/2] ^= 1
	shiftsCursor := domain.EncodeCursor(domain.CursorKindShifts, domain.Cursor{Start: time.Now(), ID: 1})

	for _, tc := range []struct {
		path   string
		status int
		code   string
	}{
		{"/v1/workers/1/notifications?limit=0", 400, domain.EINVALID},
		{"/v1/workers/1/notifications?limit=501", 400, domain.EINVALID},
		{"/v1/workers/1/notifications?limit=-1", 400, domain.EINVALID},
		{"/v1/workers/1/notifications?limit=ten", 400, domain.EINVALID},
		{"/v1/workers/1/notifications?cursor=" + url.QueryEscape(string(flipped)), 400, domain.EINVALID},
		{"/v1/workers/1/notifications?cursor=" + url.QueryEscape(cursor[:len(cursor)-1]), 400, domain.EINVALID},
		{"/v1/workers/1/notifications?cursor=" + url.QueryEscape(shiftsCursor), 400, domain.EINVALID},
		{"/v1/workers/1/notifications?cursor=not-a-cursor", 400, domain.EINVALID},
		{"/v1/workers/abc/notifications", 400, domain.EINVALID},
		{"/v1/workers/0/notifications", 400, domain.EINVALID},
		{"/v1/workers/-3/notifications", 400, domain.EINVALID},
		{"/v1/workers/99/notifications", 404, domain.ENOTFOUND},
		{"/v1/workers/99999999999/notifications", 404, domain.ENOTFOUND},
		{"/v1/workers/abc/notifications/stream", 400, domain.EINVALID},
		{"/v1/workers/99/notifications/stream", 404, domain.ENOTFOUND},
		{"/v1/workers/1/notifications/stream?last_event_id=nope", 400, domain.EINVALID},
		{"/v1/workers/1/notifications/stream?last_event_id=" + theirs, 400, domain.EINVALID},
		{"/v1/workers/1/notifications/stream?last_event_id=0b5c8f1e-2a4d-4c6b-9e0f-1a2b3c4d5e6f", 400, domain.EINVALID},
	} {
		var body errorBody
		status, _ := get(t, e.base+tc.path, &body)
		require.Equal(t, tc.status, status, tc.path)
		require.Equal(t, tc.code, body.Error.Code, tc.path)
		require.NotEmpty(t, body.Error.Message, tc.path)
	}

	// The header is checked like the query parameter.
	req, err := http.NewRequest(http.MethodGet, e.base+"/v1/workers/1/notifications/stream", nil)
	require.NoError(t, err)
	req.Header.Set("Last-Event-ID", "12")
	resp, err := (&http.Client{Timeout: feedWait}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
}

func TestFeed_StreamLiveResumeAndNoDuplicates(t *testing.T) {
	t.Parallel()
	e := feedSetup(t)

	// Live: a notification published on NATS arrives with its id; other
	// workers' do not.
	s1 := e.openFeed(t, "/v1/workers/1/notifications/stream", "")
	n1 := e.notify(t, 1)
	e.notify(t, 2)
	equalNotification(t, n1, s1.next(t))
	s1.quiet(t)
	s1.close()

	// Two more while disconnected.
	n2 := e.notify(t, 1)
	n3 := e.notify(t, 1)

	// Reconnecting with Last-Event-ID replays exactly the missed two, in
	// order, then goes live.
	s2 := e.openFeed(t, "/v1/workers/1/notifications/stream", n1.ID)
	equalNotification(t, n2, s2.next(t))
	equalNotification(t, n3, s2.next(t))
	n4 := e.notify(t, 1)
	equalNotification(t, n4, s2.next(t))
	s2.quiet(t)

	// Recorded but not yet published (its delivery is on the way): the
	// replay has it, and when the live copy arrives it is not sent again.
	n5 := e.store(t, 1)
	s2.close()
	s3 := e.openFeed(t, "/v1/workers/1/notifications/stream?last_event_id="+n4.ID, "")
	equalNotification(t, n5, s3.next(t))
	e.publish(t, n5)
	e.publish(t, n4) // the one the client already had, redelivered
	n6 := e.notify(t, 1)
	equalNotification(t, n6, s3.next(t))
	e.publish(t, n6) // a delivery retry publishing it twice
	s3.quiet(t)

	// The header wins over the query parameter.
	s4 := e.openFeed(t, "/v1/workers/1/notifications/stream?last_event_id="+n1.ID, n5.ID)
	equalNotification(t, n6, s4.next(t))
	s4.quiet(t)
}

func TestFeed_StreamEndsOnShutdown(t *testing.T) {
	t.Parallel()
	e := feedSetup(t)
	s := e.openFeed(t, "/v1/workers/1/notifications/stream", "")
	start := time.Now()
	require.NoError(t, e.close())
	require.Less(t, time.Since(start), 3*time.Second)
	select {
	case err := <-s.ended:
		require.ErrorIs(t, err, io.EOF)
	case <-time.After(feedWait):
		t.Fatal("stream still open after shutdown")
	}
}

// A client that stops reading is cut off once feedBuffer notifications
// wait for it, instead of holding the handler and its memory; it would
// resume from the store on reconnecting.
func TestFeed_SlowClientDisconnected(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zap.DebugLevel)
	e := feedSetupLogging(t, zap.New(zapcore.NewTee(core, testenv.Logger(t).Core())))
	ctx, cancel := context.WithTimeout(context.Background(), 3*feedWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.base+"/v1/workers/1/notifications/stream", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	// 25 KB notifications while the client reads nothing, until the
	// server gives up on it: once socket buffers and the stream's buffer
	// are full.
	big := domain.Notification{Type: domain.NotificationTypeShiftsAvailable, WorkerID: 1, Count: 200, CreatedAt: time.Now().UTC()}
	start := time.Date(2030, 1, 2, 8, 0, 0, 0, time.UTC)
	for i := range 200 {
		big.Shifts = append(big.Shifts, domain.NotificationShift{ID: int64(i + 1), FacilityID: 1, Profession: "CNA", Start: start, End: start.Add(time.Hour)})
	}
	ended := func() bool { return logs.FilterMessage("notification stream ended").Len() > 0 }
	sent := 0
	for ; !ended(); sent++ {
		require.Less(t, sent, 4000, "the stream was never cut off")
		big.ID = fmt.Sprintf("00000000-0000-4000-8000-%012d", sent)
		require.NoError(t, e.pub.Deliver(ctx, big))
	}
	entry := logs.FilterMessage("notification stream ended").All()[0]
	require.Contains(t, []string{"client too slow", "write failed"}, entry.ContextMap()["reason"])

	// Reading now, the client gets part of them, then the end of the
	// stream.
	events := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 256<<10), 4<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "id: ") {
			events++
		}
	}
	require.False(t, errors.Is(sc.Err(), context.DeadlineExceeded), "the stream was not closed")
	require.Less(t, events, sent)
}

// The server's WriteTimeout (30s) does not cut a stream: each write moves
// the deadline forward, and keepalives keep an idle stream writing.
func TestFeed_StreamOutlivesWriteTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("waits past the server's 30s WriteTimeout")
	}
	t.Parallel()
	e := feedSetup(t)
	s := e.openFeed(t, "/v1/workers/1/notifications/stream", "")
	select {
	case err := <-s.ended:
		t.Fatalf("stream ended while idle: %v", err)
	case <-time.After(33 * time.Second):
	}
	n := e.notify(t, 1)
	equalNotification(t, n, s.next(t))
}
