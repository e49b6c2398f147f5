package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

const cannedReply = `{"shifts":[],"next_cursor":null}`

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestPercentile(t *testing.T) {
	t.Parallel()

	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = ms(i + 1) // 1ms..100ms
	}
	ten := []time.Duration{ms(1), ms(2), ms(3), ms(4), ms(5), ms(6), ms(7), ms(8), ms(9), ms(10)}

	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"single p50", []time.Duration{ms(7)}, 50, ms(7)},
		{"single p99", []time.Duration{ms(7)}, 99, ms(7)},
		{"100 p50", hundred, 50, ms(50)},
		{"100 p95", hundred, 95, ms(95)},
		{"100 p99", hundred, 99, ms(99)},
		{"100 p100", hundred, 100, ms(100)},
		{"100 p0", hundred, 0, ms(1)},
		{"10 p50", ten, 50, ms(5)},
		{"10 p95", ten, 95, ms(10)},
		{"10 p99", ten, 99, ms(10)},
		{"10 p91", ten, 91, ms(10)},
		{"10 p90", ten, 90, ms(9)},
		{"10 p1", ten, 1, ms(1)},
		{"3 p50", []time.Duration{ms(1), ms(2), ms(3)}, 50, ms(2)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, Percentile(tc.sorted, tc.p))
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()

	c, err := QueryConfig{Transport: "HTTP"}.withDefaults()
	require.NoError(t, err)
	require.Equal(t, TransportHTTP, c.Transport)
	require.Equal(t, []int64{101, 102, 103}, c.WorkerIDs)
	require.Equal(t, 50, c.Limit)
	require.Equal(t, 32, c.Concurrency)
	require.Equal(t, 10*time.Second, c.Duration)
	require.Equal(t, 2*time.Second, c.Warmup)
	require.Equal(t, 2*time.Second, c.Timeout)
	require.Equal(t, 32, c.Connections)

	c, err = QueryConfig{Transport: "nats", Warmup: -1}.withDefaults()
	require.NoError(t, err)
	require.Zero(t, c.Warmup)
	require.Positive(t, c.Connections)
	require.LessOrEqual(t, c.Connections, c.Concurrency)

	_, err = QueryConfig{Transport: "grpc"}.withDefaults()
	require.Error(t, err)
}

func TestCheckShifts(t *testing.T) {
	t.Parallel()

	require.NoError(t, checkShifts([]byte(cannedReply), false, 50))
	require.NoError(t, checkShifts([]byte(cannedReply), true, 50))
	one := `{"shifts":[{"id":1,"facility_id":2,"profession":"CNA","start":"2025-01-01T10:00:00Z","end":"2025-01-01T18:00:00Z"}],"next_cursor":"abc"}`
	require.NoError(t, checkShifts([]byte(one), true, 50))
	require.Error(t, checkShifts([]byte(one), true, 0), "more shifts than the limit")
	// Field order differs from the cheap prefix: falls back to decoding.
	require.NoError(t, checkShifts([]byte(`{"next_cursor":null,"shifts":[]}`), false, 50))
	require.Error(t, checkShifts([]byte(`{"shifts":null}`), false, 50))
	require.Error(t, checkShifts([]byte(`{"error":{"code":"internal","message":"x"}}`), false, 50))
	require.Error(t, checkShifts([]byte(`not json`), false, 50))
	require.Error(t, checkShifts([]byte(`{"shifts":[{"id":0}]}`), true, 50))
}

func TestReportPrintAndJSON(t *testing.T) {
	t.Parallel()

	r := Report{
		Transport: "nats", Target: "nats://x", WorkerIDs: []int64{101, 102}, Limit: 50,
		Concurrency: 32, Connections: 4, Duration: 10 * time.Second,
		Requests: 120000, Errors: 1, RPS: 11999.9,
		P50: 1500 * time.Microsecond, P95: ms(3), P99: ms(5), Max: ms(20),
		FirstError: "nats: timeout",
	}
	var buf bytes.Buffer
	r.Print(&buf)
	out := buf.String()
	require.Contains(t, out, "11999.9 req/s")
	require.Contains(t, out, "p50 1.500ms")
	require.Contains(t, out, "p99 5.000ms")
	require.Contains(t, out, "workers 101,102")
	require.Contains(t, out, "nats: timeout")

	b, err := json.Marshal(r)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	for _, k := range []string{"transport", "concurrency", "duration_ns", "requests", "errors", "rps", "p50_ns", "p95_ns", "p99_ns", "max_ns", "first_error"} {
		require.Contains(t, m, k)
	}
}

func shortConfig(transport string) QueryConfig {
	return QueryConfig{
		Transport:   transport,
		Concurrency: 4,
		Duration:    300 * time.Millisecond,
		Warmup:      50 * time.Millisecond,
		Timeout:     time.Second,
	}
}

func TestRunQueryHTTP(t *testing.T) {
	t.Parallel()

	var bad atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok := r.Method == http.MethodGet && r.URL.Query().Get("limit") == "50" &&
			(r.URL.Path == "/v1/workers/101/eligible-shifts" ||
				r.URL.Path == "/v1/workers/102/eligible-shifts" ||
				r.URL.Path == "/v1/workers/103/eligible-shifts")
		if !ok {
			bad.Add(1)
			http.Error(w, `{"error":{"code":"not_found","message":"no"}}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(cannedReply))
	}))
	t.Cleanup(srv.Close)

	cfg := shortConfig(TransportHTTP)
	cfg.HTTPURL = srv.URL + "/"
	rep, err := RunQuery(context.Background(), cfg)
	require.NoError(t, err)
	require.Positive(t, rep.Requests)
	require.Zero(t, rep.Errors)
	require.Zero(t, bad.Load())
	require.Positive(t, rep.RPS)
	require.Positive(t, rep.P50)
	require.LessOrEqual(t, rep.P50, rep.P95)
	require.LessOrEqual(t, rep.P95, rep.P99)
	require.LessOrEqual(t, rep.P99, rep.Max)
	require.Equal(t, 300*time.Millisecond, rep.Duration)
	require.Equal(t, 4, rep.Concurrency)
	require.Empty(t, rep.FirstError)
}

func TestRunQueryHTTPServerError(t *testing.T) {
	t.Parallel()

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"error":{"code":"internal","message":"boom"}}`, http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)

	cfg := shortConfig(TransportHTTP)
	cfg.HTTPURL = srv.URL
	_, err := RunQuery(context.Background(), cfg)
	require.Error(t, err)
	require.Contains(t, err.Error(), "500")
}

// TestRunQueryAllFail covers the in-run path (not the preflight): a server
// that answers the preflight and then fails everything.
func TestRunQueryHTTPAllFailAfterPreflight(t *testing.T) {
	t.Parallel()

	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1) <= 3 {
			_, _ = w.Write([]byte(cannedReply))
			return
		}
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)

	cfg := shortConfig(TransportHTTP)
	cfg.HTTPURL = srv.URL
	rep, err := RunQuery(context.Background(), cfg)
	require.Error(t, err)
	require.Contains(t, err.Error(), "all")
	require.Positive(t, rep.Requests)
	require.Equal(t, rep.Requests, rep.Errors)
	require.Contains(t, rep.FirstError, "503")
}

func TestRunQueryContextCancel(t *testing.T) {
	t.Parallel()

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(cannedReply))
	}))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	cfg := shortConfig(TransportHTTP)
	cfg.HTTPURL = srv.URL
	cfg.Duration = time.Minute
	start := time.Now()
	_, err := RunQuery(ctx, cfg)
	require.Error(t, err)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 5*time.Second)
}

func startNATS(t *testing.T) string {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host:   "127.0.0.1",
		Port:   server.RANDOM_PORT,
		NoLog:  true,
		NoSigs: true,
	})
	require.NoError(t, err)
	go s.Start()
	t.Cleanup(s.Shutdown)
	require.True(t, s.ReadyForConnections(5*time.Second), "nats-server not ready")
	return s.ClientURL()
}

// respond answers eligibility.v1.shifts like the service does, failing with
// micro's error headers when failWorker asks for it or the body is wrong.
func respond(t *testing.T, url string, failWorker int64) {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	_, err = nc.Subscribe(SubjectShifts, func(m *nats.Msg) {
		var req struct {
			WorkerID int64 `json:"worker_id"`
			Limit    int   `json:"limit"`
		}
		err := json.Unmarshal(m.Data, &req)
		if err != nil || req.Limit != 50 || req.WorkerID < 101 || req.WorkerID > 103 || req.WorkerID == failWorker {
			reply := nats.NewMsg(m.Reply)
			reply.Header.Set(natsErrorHeader, "bad request")
			reply.Header.Set(natsErrorCodeHeader, "400")
			reply.Data = []byte(`{"error":{"code":"invalid_argument","message":"bad request"}}`)
			_ = m.RespondMsg(reply)
			return
		}
		_ = m.Respond([]byte(cannedReply))
	})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
}

func TestRunQueryNATS(t *testing.T) {
	t.Parallel()

	url := startNATS(t)
	respond(t, url, 0)

	cfg := shortConfig(TransportNATS)
	cfg.NATSURL = url
	cfg.Connections = 2
	rep, err := RunQuery(context.Background(), cfg)
	require.NoError(t, err)
	require.Positive(t, rep.Requests)
	require.Zero(t, rep.Errors)
	require.Positive(t, rep.RPS)
	require.Equal(t, 2, rep.Connections)
	require.LessOrEqual(t, rep.P50, rep.P99)
}

func TestRunQueryNATSServiceError(t *testing.T) {
	t.Parallel()

	url := startNATS(t)
	respond(t, url, 102)

	cfg := shortConfig(TransportNATS)
	cfg.NATSURL = url
	_, err := RunQuery(context.Background(), cfg)
	require.Error(t, err)
	require.Contains(t, err.Error(), "worker 102")
	require.Contains(t, err.Error(), "400")
}

func TestRunQueryNATSNoResponders(t *testing.T) {
	t.Parallel()

	url := startNATS(t)
	cfg := shortConfig(TransportNATS)
	cfg.NATSURL = url
	_, err := RunQuery(context.Background(), cfg)
	require.ErrorIs(t, err, nats.ErrNoResponders)
}

// TestRunQueryBaseline runs against a real database when
// SHIFTCAST_BENCH_DATABASE_URL points at one with the marketplace tables.
func TestRunQueryBaseline(t *testing.T) {
	t.Parallel()

	dsn := os.Getenv("SHIFTCAST_BENCH_DATABASE_URL")
	if dsn == "" {
		t.Skip("SHIFTCAST_BENCH_DATABASE_URL not set")
	}
	cfg := shortConfig(TransportBaseline)
	cfg.DatabaseURL = dsn
	rep, err := RunQuery(context.Background(), cfg)
	require.NoError(t, err)
	require.Positive(t, rep.Requests)
	require.Zero(t, rep.Errors)
	require.False(t, strings.Contains(rep.Target, ":postgres@"), "password must be redacted")
}
