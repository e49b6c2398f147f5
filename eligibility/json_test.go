package eligibility_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/eligibility"
)

func TestShiftsResponse_AppendJSON(t *testing.T) {
	t.Parallel()
	cursor := "AQFzAAXzVp0"
	tests := []struct {
		name string
		resp eligibility.ShiftsResponse
	}{
		{"empty last page", eligibility.ShiftsResponse{Shifts: []eligibility.ShiftJSON{}}},
		{"page with cursor", eligibility.ShiftsResponse{
			Shifts: []eligibility.ShiftJSON{
				{ID: 1, FacilityID: 2, Profession: "CNA", Start: time.Date(2023, 2, 1, 5, 0, 0, 0, time.UTC), End: time.Date(2023, 2, 1, 10, 0, 0, 0, time.UTC)},
				{ID: 99, FacilityID: 10, Profession: "RN", Start: time.Date(2023, 3, 3, 20, 0, 0, 123_000_000, time.UTC), End: time.Date(2023, 3, 4, 1, 0, 0, 123_000_000, time.UTC)},
			},
			NextCursor: &cursor,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want, err := json.Marshal(tt.resp)
			require.NoError(t, err)
			require.Equal(t, string(want), string(tt.resp.AppendJSON(nil)))
		})
	}
}

func TestWorkersResponse_AppendJSON(t *testing.T) {
	t.Parallel()
	cursor := "AQF3"
	tests := []struct {
		name string
		resp eligibility.WorkersResponse
	}{
		{"empty", eligibility.WorkersResponse{Workers: []eligibility.WorkerJSON{}}},
		{"names needing escapes", eligibility.WorkersResponse{
			Workers: []eligibility.WorkerJSON{
				{ID: 1, Name: `Ann "Nan" O'Neil`, Profession: "CNA"},
				{ID: 2, Name: "Zoë <b>&\n", Profession: "LVN"},
			},
			NextCursor: &cursor,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			want, err := json.Marshal(tt.resp)
			require.NoError(t, err)
			require.Equal(t, string(want), string(tt.resp.AppendJSON(nil)))
		})
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	for code, want := range map[string]int{"": 200, "invalid_argument": 400, "not_found": 404, "unavailable": 503, "internal": 500, "anything": 500} {
		require.Equal(t, want, eligibility.Status(code), code)
	}
}
