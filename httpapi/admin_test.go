package httpapi_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/admin"
	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/eligibility"
	"github.com/shiftcast/shiftcast/httpapi"
	"github.com/shiftcast/shiftcast/metrics"
	"github.com/shiftcast/shiftcast/store"
	"github.com/shiftcast/shiftcast/testenv"
)

// recordingAdmin stands in for the pipeline's controls, which the e2e tests
// exercise against real NATS and River; here the point is the HTTP edge.
type recordingAdmin struct {
	mu    sync.Mutex
	calls []string
}

func (a *recordingAdmin) Status(context.Context) (admin.Status, error) {
	return admin.Status{Paused: map[string]bool{"events": true}, Notifications: map[string]int64{"failed": 2}}, nil
}

func (a *recordingAdmin) Pause(_ context.Context, target string) error {
	return a.record("pause", target)
}

func (a *recordingAdmin) Resume(_ context.Context, target string) error {
	return a.record("resume", target)
}

func (a *recordingAdmin) record(op, target string) error {
	if target != "events" && target != "notifications" && target != "all" {
		return domain.Errorf(domain.EINVALID, "bad target %q", target)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, op+" "+target)
	return nil
}

func serveAdmin(t *testing.T, token string, adm httpapi.Admin) string {
	t.Helper()
	st, err := store.Open(context.Background(), "postgres://postgres@127.0.0.1:1/postgres", store.Config{})
	require.NoError(t, err)
	t.Cleanup(st.Close)
	srv := httpapi.New(httpapi.Config{
		Addr: "127.0.0.1:0", Service: eligibility.NewService(st), Admin: adm, AdminToken: token,
		Metrics: metrics.New(), Logger: testenv.Logger(t),
	})
	require.NoError(t, srv.Open(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, srv.Close(ctx))
	})
	return srv.URL()
}

func do(t *testing.T, method, url, token, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func TestServer_Admin(t *testing.T) {
	t.Parallel()
	adm := &recordingAdmin{}
	base := serveAdmin(t, "s3cret", adm)
	tests := []struct {
		method, path, token, body string
		status                    int
	}{
		{"GET", "/v1/admin/status", "", "", 401},
		{"GET", "/v1/admin/status", "wrong", "", 401},
		{"GET", "/v1/admin/status", "s3cret-longer", "", 401},
		{"GET", "/v1/admin/status", "s3cret", "", 200},
		{"POST", "/v1/admin/pause", "", `{"target":"events"}`, 401},
		{"POST", "/v1/admin/pause", "s3cret", `{"target":"events"}`, 200},
		{"POST", "/v1/admin/resume", "s3cret", `{"target":"all"}`, 200},
		{"POST", "/v1/admin/pause", "s3cret", `{"target":"everything"}`, 400},
		{"POST", "/v1/admin/pause", "s3cret", `not json`, 400},
		{"POST", "/v1/admin/pause", "s3cret", `{"target":"events","extra":1}`, 400},
		{"POST", "/v1/admin/pause", "s3cret", `{"target":"` + strings.Repeat("x", 8<<10) + `"}`, 400},
	}
	for _, tt := range tests {
		require.Equal(t, tt.status, do(t, tt.method, base+tt.path, tt.token, tt.body), "%s %s token=%q body=%.40s", tt.method, tt.path, tt.token, tt.body)
	}
	require.Equal(t, []string{"pause events", "resume all"}, adm.calls, "only authorized, valid requests reach the controls")

	var status admin.Status
	req, err := http.NewRequest(http.MethodGet, base+"/v1/admin/status", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.NoError(t, decodeJSON(resp, &status))
	require.True(t, status.Paused["events"])
	require.Equal(t, int64(2), status.Notifications["failed"])
}

func TestServer_AdminDisabledWithoutToken(t *testing.T) {
	t.Parallel()
	base := serveAdmin(t, "", &recordingAdmin{})
	require.Equal(t, 404, do(t, "GET", base+"/v1/admin/status", "", ""))
	require.Equal(t, 404, do(t, "POST", base+"/v1/admin/pause", "anything", `{"target":"events"}`))
}

func TestServer_Metrics(t *testing.T) {
	t.Parallel()
	base := serveAdmin(t, "", &recordingAdmin{})
	require.Equal(t, 503, do(t, "GET", base+"/v1/workers/1/eligible-shifts", "", ""))
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Contains(t, string(b), `shiftcast_query_seconds_count{endpoint="shifts",status="503",transport="http"} 1`)
	require.Contains(t, string(b), "go_goroutines")
}
