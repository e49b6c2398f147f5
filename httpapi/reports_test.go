package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/reports"
)

func TestServer_MonthlyReport(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var resp reports.MonthlyResponse
	status, _ := get(t, b.base+"/v1/reports/monthly?from=2023-01&to=2023-12", &resp)
	require.Equal(t, http.StatusOK, status)
	// The fixture's only claimed, live shift: shift 5, worker 2, 5 hours.
	require.Equal(t, reports.MonthlyResponse{From: "2023-01", To: "2023-12", Rows: []reports.MonthlyRow{
		{Month: "2023-02", WorkerID: 2, ShiftsClaimed: 1, HoursClaimed: 5},
	}}, resp)

	status, _ = get(t, b.base+"/v1/reports/monthly?from=2023-02&to=2023-02&worker_id=1&worker_id=3", &resp)
	require.Equal(t, http.StatusOK, status)
	require.Empty(t, resp.Rows)

	for _, q := range []string{
		"from=2023-13", "from=2023-1", "from=23-01", "to=2023-02-01", "from=2023-03&to=2023-02",
		"from=2000-01&to=2023-02", "worker_id=abc", "worker_id=0",
	} {
		var body errorBody
		status, _ := get(t, b.base+"/v1/reports/monthly?"+q, &body)
		require.Equal(t, http.StatusBadRequest, status, q)
		require.Equal(t, "invalid_argument", body.Error.Code, q)
	}
}
