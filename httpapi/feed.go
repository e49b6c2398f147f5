package httpapi

import (
	"net/http"
)

// FeedSource is what the in-app feed routes need (see registerFeed).
type FeedSource interface{}

// registerFeed serves GET /v1/workers/{worker_id}/notifications and
// .../notifications/stream when cfg.Feed is set.
func (s *Server) registerFeed(mux *http.ServeMux) {
	if s.cfg.Feed == nil {
		return
	}
}
