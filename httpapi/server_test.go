package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/eligibility"
	"github.com/shiftcast/shiftcast/httpapi"
	"github.com/shiftcast/shiftcast/reports"
	"github.com/shiftcast/shiftcast/store"
	"github.com/shiftcast/shiftcast/testenv"
	"github.com/shiftcast/shiftcast/testenv/fixture"
	"github.com/shiftcast/shiftcast/testenv/teststore"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type bundle struct {
	base string
}

// setup serves the fixture over a real listener, backed by a real database.
func setup(t testing.TB) *bundle {
	t.Helper()
	st := teststore.Open(t)
	fixture.Load(t, st.Pool())
	return &bundle{base: serve(t, st)}
}

func serve(t testing.TB, st *store.Store) string {
	t.Helper()
	srv := httpapi.New(httpapi.Config{
		Addr:    "127.0.0.1:0",
		Service: eligibility.NewService(st),
		Ready:   map[string]httpapi.Pinger{"postgres": st},
		Reports: reports.NewService(st),
		Logger:  testenv.Logger(t),
	})
	require.NoError(t, srv.Open(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, srv.Close(ctx))
	})
	return srv.URL()
}

func get(t testing.TB, rawURL string, out any) (int, http.Header) {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(rawURL)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"), string(body))
	if out != nil {
		require.NoError(t, json.Unmarshal(body, out), string(body))
	}
	return resp.StatusCode, resp.Header
}

type errorBody struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func shiftIDs(r eligibility.ShiftsResponse) []int64 {
	ids := []int64{}
	for _, s := range r.Shifts {
		ids = append(ids, s.ID)
	}
	return ids
}

func TestServer_EligibleShifts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for worker, want := range fixture.EligibleShifts {
		var resp eligibility.ShiftsResponse
		status, _ := get(t, fmt.Sprintf("%s/v1/workers/%d/eligible-shifts", b.base, worker), &resp)
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, want, shiftIDs(resp), "worker %d", worker)
		require.Nil(t, resp.NextCursor)
	}

	// Shift 1 in full: the shape the contract promises.
	var resp eligibility.ShiftsResponse
	get(t, b.base+"/v1/workers/1/eligible-shifts?limit=1", &resp)
	require.Equal(t, []eligibility.ShiftJSON{{
		ID: 1, FacilityID: 1, Profession: "CNA",
		Start: time.Date(2023, 2, 1, 5, 0, 0, 0, time.UTC), End: time.Date(2023, 2, 1, 10, 0, 0, 0, time.UTC),
	}}, resp.Shifts)
}

func TestServer_EligibleShiftsPaging(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var got []int64
	next := b.base + "/v1/workers/1/eligible-shifts?limit=1"
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10)
		var resp eligibility.ShiftsResponse
		status, _ := get(t, next, &resp)
		require.Equal(t, http.StatusOK, status)
		got = append(got, shiftIDs(resp)...)
		if resp.NextCursor == nil {
			break
		}
		next = b.base + "/v1/workers/1/eligible-shifts?limit=1&cursor=" + url.QueryEscape(*resp.NextCursor)
	}
	require.Equal(t, fixture.EligibleShifts[1], got, "shifts 1 and 2 share a start and must both appear once")

	var window eligibility.ShiftsResponse
	get(t, b.base+"/v1/workers/1/eligible-shifts?from=2023-02-01T05:00:00Z&to=2023-02-03T20:00:00Z", &window)
	require.Equal(t, []int64{1, 2}, shiftIDs(window), "from is inclusive, to exclusive")
	get(t, b.base+"/v1/workers/1/eligible-shifts?from=2023-02-01T09:00:00%2B02:00", &window)
	require.Equal(t, []int64{7}, shiftIDs(window), "offsets are converted to UTC")
}

func TestServer_EligibleWorkers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for shift, want := range fixture.EligibleWorkers {
		var resp eligibility.WorkersResponse
		status, _ := get(t, fmt.Sprintf("%s/v1/shifts/%d/eligible-workers", b.base, shift), &resp)
		require.Equal(t, http.StatusOK, status)
		got := []int64{}
		for _, w := range resp.Workers {
			got = append(got, w.ID)
			require.Equal(t, fixture.WorkerNames[w.ID], w.Name)
			require.Equal(t, "CNA", w.Profession)
		}
		require.Equal(t, want, got, "shift %d", shift)
	}

	var page1, page2 eligibility.WorkersResponse
	get(t, b.base+"/v1/shifts/2/eligible-workers?limit=2", &page1)
	require.Len(t, page1.Workers, 2)
	require.NotNil(t, page1.NextCursor)
	get(t, b.base+"/v1/shifts/2/eligible-workers?limit=2&cursor="+url.QueryEscape(*page1.NextCursor), &page2)
	require.Equal(t, []eligibility.WorkerJSON{{ID: 4, Name: "Di", Profession: "CNA"}}, page2.Workers)
	require.Nil(t, page2.NextCursor)
}

func TestServer_Explain(t *testing.T) {
	t.Parallel()
	b := setup(t)
	type reason struct {
		Code        string  `json:"code"`
		Message     string  `json:"message"`
		DocumentIDs []int64 `json:"document_ids"`
	}
	type verdict struct {
		Eligible bool     `json:"eligible"`
		Reasons  []reason `json:"reasons"`
	}
	tests := []struct {
		worker, shift int64
		eligible      bool
		codes         []string
		missing       []int64
	}{
		{1, 1, true, []string{}, nil},
		{2, 1, false, []string{"missing_documents"}, []int64{2}},
		{1, 5, false, []string{"shift_claimed"}, nil},
		{1, 4, false, []string{"shift_deleted"}, nil},
		{3, 3, false, []string{"facility_inactive", "worker_inactive", "profession_mismatch"}, nil},
		{4, 6, false, []string{"missing_documents", "profession_mismatch"}, []int64{1, 2}},
	}
	for _, tt := range tests {
		var v verdict
		status, _ := get(t, fmt.Sprintf("%s/v1/workers/%d/eligible-shifts/%d", b.base, tt.worker, tt.shift), &v)
		require.Equal(t, http.StatusOK, status)
		require.Equal(t, tt.eligible, v.Eligible)
		codes := []string{}
		var missing []int64
		for _, r := range v.Reasons {
			codes = append(codes, r.Code)
			require.NotEmpty(t, r.Message)
			if r.Code == "missing_documents" {
				missing = r.DocumentIDs
			}
		}
		require.Equal(t, tt.codes, codes, "worker %d shift %d", tt.worker, tt.shift)
		require.Equal(t, tt.missing, missing)
	}
}

func TestServer_BadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var page eligibility.ShiftsResponse
	get(t, b.base+"/v1/workers/1/eligible-shifts?limit=1", &page)
	require.NotNil(t, page.NextCursor)
	var workersPage eligibility.WorkersResponse
	get(t, b.base+"/v1/shifts/2/eligible-workers?limit=1", &workersPage)
	require.NotNil(t, workersPage.NextCursor)
	tampered := []byte(*page.NextCursor)
	tampered[5] ^= 0x20 // swaps letter case: still base64url, different bytes

	tests := []struct {
		path   string
		status int
		code   string
	}{
		{"/v1/workers/abc/eligible-shifts", 400, "invalid_argument"},
		{"/v1/workers/0/eligible-shifts", 400, "invalid_argument"},
		{"/v1/workers/-3/eligible-shifts", 400, "invalid_argument"},
		{"/v1/workers/1.5/eligible-shifts", 400, "invalid_argument"},
		{"/v1/workers/99999999999999999999999/eligible-shifts", 400, "invalid_argument"},
		{"/v1/workers/1/eligible-shifts?limit=0", 400, "invalid_argument"},
		{"/v1/workers/1/eligible-shifts?limit=501", 400, "invalid_argument"},
		{"/v1/workers/1/eligible-shifts?limit=ten", 400, "invalid_argument"},
		{"/v1/workers/1/eligible-shifts?from=yesterday", 400, "invalid_argument"},
		{"/v1/workers/1/eligible-shifts?to=2023-02-01", 400, "invalid_argument"},
		{"/v1/workers/1/eligible-shifts?from=2023-02-02T00:00:00Z&to=2023-02-01T00:00:00Z", 400, "invalid_argument"},
		{"/v1/workers/1/eligible-shifts?cursor=garbage", 400, "invalid_argument"},
		{"/v1/workers/1/eligible-shifts?cursor=" + url.QueryEscape(string(tampered)), 400, "invalid_argument"},
		{"/v1/workers/1/eligible-shifts?cursor=" + url.QueryEscape(*workersPage.NextCursor), 400, "invalid_argument"},
		{"/v1/shifts/x/eligible-workers", 400, "invalid_argument"},
		{"/v1/shifts/2/eligible-workers?limit=1000", 400, "invalid_argument"},
		{"/v1/shifts/2/eligible-workers?cursor=" + url.QueryEscape(*page.NextCursor), 400, "invalid_argument"},
		{"/v1/workers/1/eligible-shifts/zz", 400, "invalid_argument"},
		{"/v1/workers/999/eligible-shifts", 404, "not_found"},
		{"/v1/workers/9999999999/eligible-shifts", 404, "not_found"},
		{"/v1/shifts/999/eligible-workers", 404, "not_found"},
		{"/v1/workers/999/eligible-shifts/1", 404, "not_found"},
		{"/v1/workers/1/eligible-shifts/999", 404, "not_found"},
		{"/v1/nope", 404, "not_found"},
	}
	for _, tt := range tests {
		var body errorBody
		status, _ := get(t, b.base+tt.path, &body)
		require.Equal(t, tt.status, status, tt.path)
		require.Equal(t, tt.code, body.Error.Code, tt.path)
		require.NotEmpty(t, body.Error.Message, tt.path)
	}
}

func TestServer_Operational(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var health map[string]any
	status, _ := get(t, b.base+"/healthz", &health)
	require.Equal(t, http.StatusOK, status)
	var ready struct {
		Ready  bool              `json:"ready"`
		Checks map[string]string `json:"checks"`
	}
	status, _ = get(t, b.base+"/readyz", &ready)
	require.Equal(t, http.StatusOK, status)
	require.True(t, ready.Ready)
	require.Equal(t, "ok", ready.Checks["postgres"])
	status, _ = get(t, b.base+"/readyz?check=postgres", &ready)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, map[string]string{"postgres": "ok"}, ready.Checks)
	status, _ = get(t, b.base+"/readyz?check=nope", nil)
	require.Equal(t, http.StatusBadRequest, status)

	var doc struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	status, _ = get(t, b.base+"/openapi.json", &doc)
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "3.1.0", doc.OpenAPI)
	for _, p := range []string{"/v1/workers/{worker_id}/eligible-shifts", "/v1/shifts/{shift_id}/eligible-workers", "/v1/workers/{worker_id}/eligible-shifts/{shift_id}", "/healthz", "/readyz",
		"/v1/workers/{worker_id}/notifications", "/v1/workers/{worker_id}/notifications/stream", "/v1/reports/monthly",
		"/v1/admin/status", "/v1/admin/pause", "/v1/admin/resume", "/v1/admin/stream", "/metrics", "/"} {
		require.Contains(t, doc.Paths, p)
	}

	req, err := http.NewRequest(http.MethodGet, b.base+"/v1/workers/1/eligible-shifts", nil)
	require.NoError(t, err)
	req.Header.Set("X-Request-Id", "trace-me-42")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, "trace-me-42", resp.Header.Get("X-Request-Id"))
	status, hdr := get(t, b.base+"/healthz", nil)
	require.Equal(t, http.StatusOK, status)
	require.Len(t, hdr.Get("X-Request-Id"), 24, "a request without an id gets one")
}

// A database that cannot be reached answers 503 with a code, never 500, and
// the server keeps serving.
func TestServer_DatabaseDown(t *testing.T) {
	t.Parallel()
	st, err := store.Open(context.Background(), "postgres://postgres@127.0.0.1:1/postgres?connect_timeout=2", store.Config{})
	require.NoError(t, err)
	t.Cleanup(st.Close)
	base := serve(t, st)
	for _, path := range []string{"/v1/workers/1/eligible-shifts", "/v1/shifts/1/eligible-workers", "/v1/workers/1/eligible-shifts/1"} {
		var body errorBody
		status, _ := get(t, base+path, &body)
		require.Equal(t, http.StatusServiceUnavailable, status, path)
		require.Equal(t, "unavailable", body.Error.Code)
	}
	status, _ := get(t, base+"/readyz", nil)
	require.Equal(t, http.StatusServiceUnavailable, status)
	status, _ = get(t, base+"/healthz", nil)
	require.Equal(t, http.StatusOK, status, "liveness does not depend on the database")
}

func decodeJSON(resp *http.Response, out any) error {
	return json.NewDecoder(resp.Body).Decode(out)
}
