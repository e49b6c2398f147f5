package httpapi

import (
	"context"
	"net/http"

	"github.com/shiftcast/shiftcast/eligibility"
	"github.com/shiftcast/shiftcast/reports"
)

// ReportSource answers the monthly report.
type ReportSource interface {
	Monthly(ctx context.Context, p reports.MonthlyParams) (reports.MonthlyResponse, error)
}

var _ ReportSource = (*reports.Service)(nil)

// registerReports serves GET /v1/reports/monthly when cfg.Reports is set.
func (s *Server) registerReports(mux *http.ServeMux) {
	if s.cfg.Reports == nil {
		return
	}
	mux.HandleFunc("GET /v1/reports/monthly", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		resp, err := s.cfg.Reports.Monthly(r.Context(), reports.MonthlyParams{
			From: q.Get("from"), To: q.Get("to"), WorkerIDs: q["worker_id"],
		})
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, eligibility.MustJSON(resp))
	})
}
