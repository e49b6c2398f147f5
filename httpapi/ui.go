package httpapi

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/shiftcast/shiftcast/admin"
	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/metrics"
)

// The operator page: plain HTML, CSS and JavaScript embedded in the binary,
// no build step and nothing loaded from elsewhere. It reads its numbers from
// GET /v1/admin/stream, an admin-authenticated Server-Sent Events stream of
// one snapshot a second, and drives the admin and eligibility routes.

//go:embed ui/index.html ui/app.js ui/style.css
var uiFiles embed.FS

// uiAssets are the files served under /ui/, with their content types (set
// here rather than guessed: the system's MIME table varies).
var uiAssets = map[string]string{
	"app.js":    "text/javascript; charset=utf-8",
	"style.css": "text/css; charset=utf-8",
}

// uiCSP allows the page its own origin and nothing else: no inline script,
// no third-party resources, no framing.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// RecentNotifier lists the most recent notifications, newest first, for the
// operator page. The result is sent as JSON; the page shows, when present,
// each item's id, worker_id, count (or shifts), status and created_at.
type RecentNotifier interface {
	RecentNotifications(ctx context.Context, limit int) (any, error)
}

// RecentNotifierFunc adapts a function, e.g. a closure over the store's
// typed RecentNotifications, to RecentNotifier.
type RecentNotifierFunc func(ctx context.Context, limit int) (any, error)

// RecentNotifications calls f.
func (f RecentNotifierFunc) RecentNotifications(ctx context.Context, limit int) (any, error) {
	return f(ctx, limit)
}

// recentNotifier is where the page's recent notifications come from: the
// feed source or the admin controls, whichever also implements
// RecentNotifier; nil shows none.
func (s *Server) recentNotifier() RecentNotifier {
	if r, ok := s.cfg.Feed.(RecentNotifier); ok {
		return r
	}
	if r, ok := s.cfg.Admin.(RecentNotifier); ok {
		return r
	}
	return nil
}

const (
	// streamInterval is how often the stream sends a snapshot.
	streamInterval = time.Second
	// streamMaxAge ends a stream after a while (the page reconnects at
	// once), so connections and their deadlines are renewed.
	streamMaxAge = 10 * time.Minute
	// streamQueryTimeout bounds each snapshot's status and recent queries.
	streamQueryTimeout = 2 * time.Second
	// maxStreams bounds concurrent streams: each costs a status query a
	// second.
	maxStreams = 32
	// recentLimit is how many recent notifications a snapshot carries.
	recentLimit = 10
)

// streamSnapshot is the data of one `snapshot` event.
type streamSnapshot struct {
	Time        time.Time        `json:"time"`
	Counters    metrics.Snapshot `json:"counters"`
	Status      *admin.Status    `json:"status"`
	StatusError string           `json:"status_error,omitempty"`
	// Recent is null when no RecentNotifier is configured.
	Recent      any    `json:"recent"`
	RecentError string `json:"recent_error,omitempty"`
}

// registerUI serves the operator's live page at / and its data stream.
func (s *Server) registerUI(mux *http.ServeMux) {
	index, err := uiFiles.ReadFile("ui/index.html")
	if err != nil {
		panic(err) // embedded: cannot happen
	}
	adminOn := s.cfg.Admin != nil && s.cfg.AdminToken != ""
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		serveUIFile(w, r, "index.html", "text/html; charset=utf-8", index)
	})
	for name, ctype := range uiAssets {
		b, err := uiFiles.ReadFile("ui/" + name)
		if err != nil {
			panic(err)
		}
		mux.HandleFunc("GET /ui/"+name, func(w http.ResponseWriter, r *http.Request) {
			serveUIFile(w, r, name, ctype, b)
		})
	}
	config := []byte(`{"admin_enabled":` + strconv.FormatBool(adminOn) + `}`)
	mux.HandleFunc("GET /ui/config.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, config)
	})
	if !adminOn {
		return // the page explains how to enable the admin routes
	}
	slots := make(chan struct{}, maxStreams)
	mux.HandleFunc("GET /v1/admin/stream", s.requireAdmin(func(w http.ResponseWriter, r *http.Request) {
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
		default:
			w.Header().Set("Retry-After", "5")
			writeJSON(w, http.StatusServiceUnavailable, []byte(`{"error":{"code":"unavailable","message":"too many admin streams"}}`))
			return
		}
		s.handleStream(w, r)
	}))
}

func serveUIFile(w http.ResponseWriter, r *http.Request, name, ctype string, b []byte) {
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if name == "index.html" {
		h.Set("Content-Security-Policy", uiCSP)
		h.Set("X-Frame-Options", "DENY")
	}
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
}

// handleStream sends a snapshot event now and every streamInterval until
// the client goes, the server shuts down or streamMaxAge passes.
func (s *Server) handleStream(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		s.writeError(w, r, domain.Errorf(domain.EINTERNAL, "streaming unsupported"))
		return
	}
	// The server's read and write timeouts are for ordinary requests: lift
	// the read deadline (its expiry would cancel the request) and move the
	// write deadline along with each event. Where the connection's
	// deadlines cannot be reached, end before the write timeout instead.
	rc := http.NewResponseController(unwrapRecorder(w))
	maxAge := streamMaxAge
	if err := rc.SetReadDeadline(time.Time{}); err != nil && s.srv != nil && s.srv.ReadTimeout > 0 {
		maxAge = min(maxAge, s.srv.ReadTimeout*3/4)
	}
	extend := func() {
		if err := rc.SetWriteDeadline(time.Now().Add(streamInterval + 10*time.Second)); err != nil && s.srv != nil && s.srv.WriteTimeout > 0 {
			maxAge = min(maxAge, s.srv.WriteTimeout*3/4)
		}
	}
	extend()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(": shiftcast admin stream\n\n"))
	flusher.Flush()

	ctx := r.Context()
	end := time.NewTimer(maxAge)
	defer end.Stop()
	tick := time.NewTicker(streamInterval)
	defer tick.Stop()
	recent := s.recentNotifier()
	var (
		buf     bytes.Buffer
		lastErr error
	)
	for seq := 1; ; seq++ {
		snap, err := s.snapshot(ctx, recent)
		if ctx.Err() != nil {
			return
		}
		// The page shows the caller-safe message; the log has the cause,
		// once per change rather than once a second.
		if err != nil && (lastErr == nil || err.Error() != lastErr.Error()) {
			s.log.Warn("admin stream: snapshot incomplete", zap.String("request_id", requestID(ctx)), zap.Error(err))
		}
		lastErr = err
		body, err := json.Marshal(snap)
		if err != nil {
			s.log.Error("admin stream: encode snapshot", zap.Error(err))
			return
		}
		buf.Reset()
		buf.WriteString("event: snapshot\nid: ")
		buf.WriteString(strconv.Itoa(seq))
		buf.WriteString("\ndata: ")
		buf.Write(body) // compact JSON: no newlines
		buf.WriteString("\n\n")
		extend()
		if _, err := w.Write(buf.Bytes()); err != nil {
			return
		}
		flusher.Flush()
		select {
		case <-ctx.Done():
			return
		case <-s.closed: // shutting down: let Shutdown finish
			return
		case <-end.C:
			return
		case <-tick.C:
		}
	}
}

// snapshot gathers one stream event. Failures are reported in the event,
// not by ending the stream: a dependency down is what operators watch for.
func (s *Server) snapshot(ctx context.Context, recent RecentNotifier) (streamSnapshot, error) {
	snap := streamSnapshot{Time: time.Now().UTC(), Counters: s.cfg.Metrics.Snapshot()}
	qctx, cancel := context.WithTimeout(ctx, streamQueryTimeout)
	defer cancel()
	var errs []error
	if st, err := s.cfg.Admin.Status(qctx); err != nil {
		snap.StatusError = domain.ErrorMessage(err)
		errs = append(errs, fmt.Errorf("status: %w", err))
	} else {
		snap.Status = &st
	}
	if recent != nil {
		items, err := recent.RecentNotifications(qctx, recentLimit)
		if err != nil {
			snap.RecentError = domain.ErrorMessage(err)
			errs = append(errs, fmt.Errorf("recent notifications: %w", err))
		}
		if v := reflect.ValueOf(items); !v.IsValid() || (v.Kind() == reflect.Slice && v.IsNil()) {
			items = []any{} // none yet: null would read as "not configured"
		}
		snap.Recent = items
	}
	return snap, errors.Join(errs...)
}

// unwrapRecorder returns the connection's own ResponseWriter from behind
// the middleware's recorder, so its deadlines can be set.
func unwrapRecorder(w http.ResponseWriter) http.ResponseWriter {
	if rec, ok := w.(*statusRecorder); ok {
		return rec.ResponseWriter
	}
	return w
}
