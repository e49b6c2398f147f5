package eligibility_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/shiftcast/shiftcast/eligibility"
)

func page(n int) eligibility.ShiftsResponse {
	r := eligibility.ShiftsResponse{Shifts: make([]eligibility.ShiftJSON, n)}
	start := time.Date(2023, 2, 1, 5, 0, 0, 0, time.UTC)
	for i := range r.Shifts {
		r.Shifts[i] = eligibility.ShiftJSON{ID: int64(1000 + i), FacilityID: int64(i%10 + 1), Profession: "CNA", Start: start, End: start.Add(5 * time.Hour)}
	}
	c := "AXMABfOcUgQUAAAAAAAAAAsh9gtOjA"
	r.NextCursor = &c
	return r
}

// The listing is encoded on every request: AppendJSON against encoding/json
// on a page of 50.
func BenchmarkShiftsResponse_AppendJSON(b *testing.B) {
	r := page(50)
	buf := make([]byte, 0, 16<<10)
	b.ReportAllocs()
	for b.Loop() {
		buf = r.AppendJSON(buf[:0])
	}
}

func BenchmarkShiftsResponse_EncodingJSON(b *testing.B) {
	r := page(50)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(r); err != nil {
			b.Fatal(err)
		}
	}
}
