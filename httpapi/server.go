// Package httpapi serves shiftcast's HTTP API: the eligibility queries,
// health and readiness, and the OpenAPI document. It is a thin adapter over
// eligibility.Service: it moves path and query strings in and bytes out, and
// maps error codes to statuses.
package httpapi

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/eligibility"
	"github.com/shiftcast/shiftcast/metrics"
)

//go:embed openapi.json
var openAPIDocument []byte

// Pinger reports whether a dependency answers, for /readyz.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Config wires the server.
type Config struct {
	Addr    string
	Service *eligibility.Service
	// Ready lists the dependencies /readyz checks, by name.
	Ready map[string]Pinger
	// Admin and AdminToken enable the admin routes; without a token they
	// are not served at all.
	Admin      Admin
	AdminToken string
	// Metrics, when set, records query latency and serves /metrics.
	Metrics *metrics.Metrics
	// Feed, when set, serves workers' notification history and live stream.
	Feed FeedSource
	// Reports, when set, serves the monthly report.
	Reports ReportSource
	Logger  *zap.Logger
}

// Server is the HTTP API.
type Server struct {
	cfg    Config
	log    *zap.Logger
	srv    *http.Server
	ln     net.Listener
	bufs   sync.Pool
	closed chan struct{}
}

// New builds the server; Open starts it.
func New(cfg Config) *Server {
	s := &Server{cfg: cfg, log: cfg.Logger, closed: make(chan struct{})}
	s.bufs.New = func() any { b := make([]byte, 0, 8<<10); return &b }
	s.srv = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	return s
}

// Open listens on cfg.Addr and serves in the background.
func (s *Server) Open(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return domain.Unavailable("http listener "+s.cfg.Addr, err)
	}
	s.ln = ln
	go func() {
		defer close(s.closed)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", zap.Error(err))
		}
	}()
	return nil
}

// URL is the base URL the server listens on, e.g. http://127.0.0.1:8080.
func (s *Server) URL() string {
	addr := s.ln.Addr().(*net.TCPAddr)
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(addr.Port))
}

// Close stops accepting requests and waits, within ctx, for the in-flight
// ones to finish.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if s.ln != nil {
		<-s.closed
	}
	return err
}

// Handler returns the routes wrapped in the request-id, logging and
// panic-recovery middleware.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/workers/{worker_id}/eligible-shifts", s.handleShifts)
	mux.HandleFunc("GET /v1/shifts/{shift_id}/eligible-workers", s.handleWorkers)
	mux.HandleFunc("GET /v1/workers/{worker_id}/eligible-shifts/{shift_id}", s.handleExplain)
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPIDocument)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	mux.HandleFunc("GET /readyz", s.handleReady)
	if s.cfg.Metrics != nil {
		mux.Handle("GET /metrics", s.cfg.Metrics.Handler())
	}
	s.registerAdmin(mux)
	s.registerFeed(mux)
	s.registerReports(mux)
	s.registerUI(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, domain.Errorf(domain.ENOTFOUND, "no route for %s %s", r.Method, r.URL.Path))
	})
	return s.middleware(mux)
}

func (s *Server) handleShifts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	resp, err := s.cfg.Service.Shifts(r.Context(), eligibility.ShiftsParams{
		WorkerID: r.PathValue("worker_id"),
		From:     q.Get("from"),
		To:       q.Get("to"),
		Limit:    q.Get("limit"),
		Cursor:   q.Get("cursor"),
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	bp := s.bufs.Get().(*[]byte)
	*bp = resp.AppendJSON((*bp)[:0])
	writeJSON(w, http.StatusOK, *bp)
	s.bufs.Put(bp)
}

func (s *Server) handleWorkers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	resp, err := s.cfg.Service.Workers(r.Context(), eligibility.WorkersParams{
		ShiftID: r.PathValue("shift_id"),
		Limit:   q.Get("limit"),
		Cursor:  q.Get("cursor"),
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	bp := s.bufs.Get().(*[]byte)
	*bp = resp.AppendJSON((*bp)[:0])
	writeJSON(w, http.StatusOK, *bp)
	s.bufs.Put(bp)
}

func (s *Server) handleExplain(w http.ResponseWriter, r *http.Request) {
	v, err := s.cfg.Service.Explain(r.Context(), eligibility.ExplainParams{
		WorkerID: r.PathValue("worker_id"),
		ShiftID:  r.PathValue("shift_id"),
	})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, eligibility.VerdictJSON(v))
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	// ?check=name (repeatable) limits the checks, so a load balancer can
	// gate the query path on what it needs (postgres, migrations) while
	// the default answer covers every dependency.
	only := r.URL.Query()["check"]
	for _, name := range only {
		if _, ok := s.cfg.Ready[name]; !ok {
			s.writeError(w, r, domain.Errorf(domain.EINVALID, "unknown check %q", name))
			return
		}
	}
	checks := make(map[string]string, len(s.cfg.Ready))
	ready := true
	for name, p := range s.cfg.Ready {
		if len(only) > 0 && !slices.Contains(only, name) {
			continue
		}
		if err := p.Ping(ctx); err != nil {
			ready = false
			checks[name] = "unavailable"
			s.log.Warn("readiness check failed", zap.String("dependency", name), zap.String("request_id", requestID(r.Context())), zap.Error(err))
			continue
		}
		checks[name] = "ok"
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, eligibility.MustJSON(map[string]any{"ready": ready, "checks": checks}))
}

// writeError answers with the JSON error body and the code's status, and
// logs the failure once, here, where it is handled.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := eligibility.Status(domain.ErrorCode(err))
	fields := []zap.Field{zap.String("request_id", requestID(r.Context())), zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Int("status", status), zap.Error(err)}
	switch {
	case status >= 500:
		s.log.Error("request failed", fields...)
	default:
		s.log.Debug("request rejected", fields...)
	}
	writeJSON(w, status, eligibility.ErrorBody(err))
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// queryEndpoints names the eligibility routes in metrics, by mux pattern.
var queryEndpoints = map[string]string{
	"GET /v1/workers/{worker_id}/eligible-shifts":            "shifts",
	"GET /v1/shifts/{shift_id}/eligible-workers":             "workers",
	"GET /v1/workers/{worker_id}/eligible-shifts/{shift_id}": "explain",
}

type ctxKey struct{}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// middleware gives every request an id (the caller's X-Request-Id when it
// sends a sane one), echoes it, recovers panics as 500s and logs each
// request at debug level: at tens of thousands of requests a second an info
// line per request would cost more than the query.
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 128 || strings.ContainsFunc(id, func(c rune) bool { return c < 0x21 || c > 0x7e }) {
			id = newRequestID()
		}
		w.Header()["X-Request-Id"] = []string{id}
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, id))
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("handler panicked", zap.String("request_id", id), zap.String("path", r.URL.Path), zap.Any("panic", p), zap.Stack("stack"))
				if !rec.wrote {
					writeJSON(rec, http.StatusInternalServerError, eligibility.ErrorBody(errors.New("panic")))
				}
			}
			if endpoint, ok := queryEndpoints[r.Pattern]; ok {
				s.cfg.Metrics.Query("http", endpoint, rec.status, time.Since(start))
			}
			if ce := s.log.Check(zap.DebugLevel, "request"); ce != nil {
				ce.Write(zap.String("request_id", id), zap.String("method", r.Method), zap.String("path", r.URL.Path),
					zap.Int("status", rec.status), zap.Duration("elapsed", time.Since(start)))
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status, r.wrote = status, true
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (write
// deadlines for streams) through the recorder.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush lets streaming handlers (SSE) flush through the recorder.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
