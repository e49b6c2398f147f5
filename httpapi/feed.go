package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/shiftcast/shiftcast/domain"
)

// FeedStore is the stored side of the in-app feed (store.Store has it).
type FeedStore interface {
	// NotificationHistory returns a page of the worker's notifications,
	// newest first, before the cursor when set; ENOTFOUND for an unknown
	// worker.
	NotificationHistory(ctx context.Context, workerID int64, before *domain.FeedCursor, limit int) ([]domain.NotificationRecord, bool, error)
	// NotificationsSince returns, oldest first, the worker's notifications
	// after the one with id afterID; EINVALID when afterID is not theirs.
	NotificationsSince(ctx context.Context, workerID int64, afterID string, limit int) ([]domain.Notification, error)
}

// LiveFeed is the live side of the in-app feed
// (consumers.NotificationFeed has it).
type LiveFeed interface {
	// Subscribe calls fn with each notification published for the worker
	// from the moment it returns until cancel is called.
	Subscribe(workerID int64, fn func(domain.Notification)) (cancel func(), err error)
}

// FeedSource is what the in-app feed routes need: history and replay from
// the store, new notifications as they are published.
type FeedSource interface {
	FeedStore
	LiveFeed
}

// FeedFrom joins a store and a live feed into a FeedSource.
func FeedFrom(store FeedStore, live LiveFeed) FeedSource { return feedParts{store, live} }

type feedParts struct {
	FeedStore
	LiveFeed
}

// RecentNotifications lists the latest notifications of every worker, with
// their status, for the operator page (RecentNotifier), when the store can.
func (f feedParts) RecentNotifications(ctx context.Context, limit int) (any, error) {
	r, ok := f.FeedStore.(interface {
		RecentNotifications(ctx context.Context, limit int) ([]domain.NotificationRecord, error)
	})
	if !ok {
		return nil, nil
	}
	return r.RecentNotifications(ctx, limit)
}

// The stream's limits.
const (
	// feedKeepalive is how often an idle stream sends a comment, so
	// proxies and clients can tell it from a dead one.
	feedKeepalive = 15 * time.Second
	// feedWriteTimeout bounds each write to a stream: a client that stops
	// reading is dropped instead of holding the handler forever.
	feedWriteTimeout = 30 * time.Second
	// feedBuffer is how many live notifications wait for a slow client;
	// beyond it the stream is closed and the client, reconnecting with
	// Last-Event-ID, gets them from the store.
	feedBuffer = 64
	// feedReplayMax bounds the notifications replayed on one connection;
	// a client further behind gets them, then the stream ends and it
	// resumes from the last one on reconnecting.
	feedReplayMax = 1000
	// feedSeen is how many recent event ids a stream remembers to drop
	// duplicates (a notification both replayed and published live, or
	// published twice by a delivery retry). It covers a whole replay.
	feedSeen = 1024
	// feedRetryMillis is the reconnection delay suggested to clients.
	feedRetryMillis = 2000
)

// registerFeed serves GET /v1/workers/{worker_id}/notifications and
// .../notifications/stream when cfg.Feed is set.
func (s *Server) registerFeed(mux *http.ServeMux) {
	if s.cfg.Feed == nil {
		return
	}
	mux.HandleFunc("GET /v1/workers/{worker_id}/notifications", s.handleNotifications)
	mux.HandleFunc("GET /v1/workers/{worker_id}/notifications/stream", s.handleNotificationStream)
}

// NotificationsResponse is the history route's body.
type NotificationsResponse struct {
	Notifications []domain.NotificationRecord `json:"notifications"`
	NextCursor    *string                     `json:"next_cursor"`
}

func (s *Server) handleNotifications(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	workerID, err := parseFeedWorkerID(r.PathValue("worker_id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	limit, err := parseFeedLimit(q.Get("limit"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var before *domain.FeedCursor
	if c := q.Get("cursor"); c != "" {
		fc, err := domain.DecodeFeedCursor(c)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		before = &fc
	}
	items, more, err := s.cfg.Feed.NotificationHistory(r.Context(), workerID, before, limit)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	resp := NotificationsResponse{Notifications: items}
	if resp.Notifications == nil {
		resp.Notifications = []domain.NotificationRecord{}
	}
	if more && len(items) > 0 {
		last := items[len(items)-1]
		next := domain.EncodeFeedCursor(domain.FeedCursor{CreatedAt: last.CreatedAt, ID: last.ID})
		resp.NextCursor = &next
	}
	body, err := json.Marshal(resp)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// handleNotificationStream is the in-app channel: Server-Sent Events, one
// "notification" event per notification with the notification's id as the
// event id. A client reconnecting with Last-Event-ID (or ?last_event_id=)
// first gets every notification after that one from the store, then live
// ones. The live subscription starts before the store is read and events
// are de-duplicated by id, so nothing published in between is lost.
func (s *Server) handleNotificationStream(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	workerID, err := parseFeedWorkerID(r.PathValue("worker_id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	lastID := r.Header.Get("Last-Event-ID")
	if lastID == "" {
		lastID = r.URL.Query().Get("last_event_id")
	}
	if lastID != "" {
		if lastID, err = domain.ParseNotificationID("Last-Event-ID", lastID); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	// Unknown worker: 404 before anything streams.
	if _, _, err := s.cfg.Feed.NotificationHistory(ctx, workerID, nil, 1); err != nil {
		s.writeError(w, r, err)
		return
	}

	st := &sseStream{w: w, rc: responseController(w), seen: newIDRing(feedSeen)}
	live := make(chan domain.Notification, feedBuffer)
	overflow := make(chan struct{})
	var overflowOnce sync.Once
	cancel, err := s.cfg.Feed.Subscribe(workerID, func(n domain.Notification) {
		select {
		case live <- n:
		default:
			overflowOnce.Do(func() {
				close(overflow)
				st.abort()
			})
		}
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer cancel()
	defer st.end()

	var replay []domain.Notification
	if lastID != "" {
		if replay, err = s.cfg.Feed.NotificationsSince(ctx, workerID, lastID, domain.MaxLimit); err != nil {
			s.writeError(w, r, err)
			return
		}
		st.seen.add(lastID) // a retried publish of it is not news either
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	st.buf = append(st.buf, "retry: "+strconv.Itoa(feedRetryMillis)+"\n\n"...)
	if err := st.flush(); err != nil {
		s.streamEnded(r, workerID, "write failed", err)
		return
	}

	// Replay what the client missed, page by page.
	replayed := 0
	for len(replay) > 0 {
		for _, n := range replay {
			st.event(n)
		}
		replayed += len(replay)
		if err := st.flush(); err != nil {
			s.streamEnded(r, workerID, "write failed", err)
			return
		}
		if len(replay) < domain.MaxLimit {
			break
		}
		if replayed >= feedReplayMax {
			// Further behind than one connection replays: end here and
			// let the client resume from the last event it got.
			s.streamEnded(r, workerID, "replay limit reached", nil)
			return
		}
		select {
		case <-overflow:
			s.streamEnded(r, workerID, "client too slow", nil)
			return
		default:
		}
		last := replay[len(replay)-1].ID
		if replay, err = s.cfg.Feed.NotificationsSince(ctx, workerID, last, domain.MaxLimit); err != nil {
			s.streamEnded(r, workerID, "replay failed", err)
			return
		}
	}

	keepalive := time.NewTicker(feedKeepalive)
	defer keepalive.Stop()
	for {
		select {
		case n := <-live:
			st.event(n)
			// Send whatever else is already waiting in the same write.
			for more := true; more; {
				select {
				case n := <-live:
					st.event(n)
				default:
					more = false
				}
			}
			if err := st.flush(); err != nil {
				s.streamEnded(r, workerID, "write failed", err)
				return
			}
		case <-keepalive.C:
			st.buf = append(st.buf, ": keepalive\n\n"...)
			if err := st.flush(); err != nil {
				s.streamEnded(r, workerID, "write failed", err)
				return
			}
		case <-overflow:
			// The buffer filled because the client reads too slowly: close
			// the stream; it reconnects with Last-Event-ID and the store
			// has everything it missed.
			s.streamEnded(r, workerID, "client too slow", nil)
			return
		case <-ctx.Done():
			s.streamEnded(r, workerID, "client disconnected", nil)
			return
		case <-s.closed:
			s.streamEnded(r, workerID, "server closing", nil)
			return
		}
	}
}

func (s *Server) streamEnded(r *http.Request, workerID int64, why string, err error) {
	if ce := s.log.Check(zap.DebugLevel, "notification stream ended"); ce != nil {
		ce.Write(zap.String("request_id", requestID(r.Context())), zap.Int64("worker_id", workerID), zap.String("reason", why), zap.Error(err))
	}
}

// errSlowClient ends a stream whose client fell feedBuffer events behind.
var errSlowClient = errors.New("client reads too slowly")

// sseStream writes events to one client.
type sseStream struct {
	w    http.ResponseWriter
	rc   *http.ResponseController
	buf  []byte
	seen *idRing

	mu      sync.Mutex
	aborted bool // abort was called: writes fail from now on
	ended   bool // the handler is returning: leave the connection alone
}

// abort makes a write in progress, or the next one, fail at once; the
// live subscription calls it when the client falls too far behind, since
// the handler may be blocked writing to that very client.
func (st *sseStream) abort() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.ended && !st.aborted {
		st.aborted = true
		_ = st.rc.SetWriteDeadline(time.Now())
	}
}

// end marks the handler as returning: the connection may serve another
// request next, whose deadline abort must not touch.
func (st *sseStream) end() {
	st.mu.Lock()
	st.ended = true
	st.mu.Unlock()
}

// event appends n as a "notification" event unless the stream already
// sent it.
func (st *sseStream) event(n domain.Notification) {
	if !st.seen.add(n.ID) {
		return
	}
	if n.Shifts == nil {
		n.Shifts = []domain.NotificationShift{}
	}
	n.CreatedAt = n.CreatedAt.UTC()
	data, err := json.Marshal(n)
	if err != nil { // cannot happen: the type marshals
		return
	}
	// Ids are UUIDs and compact JSON has no newlines, so each field is one
	// line as SSE requires.
	st.buf = append(st.buf, "id: "...)
	st.buf = append(st.buf, n.ID...)
	st.buf = append(st.buf, "\nevent: notification\ndata: "...)
	st.buf = append(st.buf, data...)
	st.buf = append(st.buf, "\n\n"...)
}

// flush writes what is buffered and pushes it to the client, within
// feedWriteTimeout. The server's own WriteTimeout would cut a stream, so
// the deadline moves forward with every write instead.
func (st *sseStream) flush() error {
	st.mu.Lock()
	if st.aborted {
		st.mu.Unlock()
		return errSlowClient
	}
	_ = st.rc.SetWriteDeadline(time.Now().Add(feedWriteTimeout))
	st.mu.Unlock()
	if len(st.buf) > 0 {
		if _, err := st.w.Write(st.buf); err != nil {
			return err
		}
		st.buf = st.buf[:0]
	}
	return st.rc.Flush()
}

// responseController reaches the connection through the middleware's
// recorder, which does not expose Unwrap.
func responseController(w http.ResponseWriter) *http.ResponseController {
	if rec, ok := w.(*statusRecorder); ok {
		w = rec.ResponseWriter
	}
	return http.NewResponseController(w)
}

// idRing remembers the last n ids added.
type idRing struct {
	ids  []string
	next int
	set  map[string]struct{}
}

func newIDRing(n int) *idRing {
	return &idRing{ids: make([]string, 0, n), set: make(map[string]struct{}, n)}
}

// add records id and reports whether it was new.
func (r *idRing) add(id string) bool {
	if _, ok := r.set[id]; ok {
		return false
	}
	if len(r.ids) < cap(r.ids) {
		r.ids = append(r.ids, id)
	} else {
		delete(r.set, r.ids[r.next])
		r.ids[r.next] = id
		r.next = (r.next + 1) % len(r.ids)
	}
	r.set[id] = struct{}{}
	return true
}

func parseFeedWorkerID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 1 {
		return 0, domain.Errorf(domain.EINVALID, "worker_id must be a positive integer, got %q", s)
	}
	return id, nil
}

func parseFeedLimit(s string) (int, error) {
	if s == "" {
		return domain.DefaultLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > domain.MaxLimit {
		return 0, domain.Errorf(domain.EINVALID, "limit must be an integer from 1 to %d, got %q", domain.MaxLimit, s)
	}
	return n, nil
}
