package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/shiftcast/shiftcast/admin"
	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/eligibility"
)

// Admin is what the admin routes control.
type Admin interface {
	Status(ctx context.Context) (admin.Status, error)
	Pause(ctx context.Context, target string) error
	Resume(ctx context.Context, target string) error
}

var _ Admin = (*admin.Service)(nil)

// maxAdminBody bounds admin request bodies; they are one small object.
const maxAdminBody = 4 << 10

func (s *Server) registerAdmin(mux *http.ServeMux) {
	if s.cfg.Admin == nil || s.cfg.AdminToken == "" {
		return // disabled: the routes fall through to 404
	}
	mux.HandleFunc("GET /v1/admin/status", s.requireAdmin(func(w http.ResponseWriter, r *http.Request) {
		st, err := s.cfg.Admin.Status(r.Context())
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, eligibility.MustJSON(st))
	}))
	mux.HandleFunc("POST /v1/admin/pause", s.requireAdmin(s.handlePauseResume(true)))
	mux.HandleFunc("POST /v1/admin/resume", s.requireAdmin(s.handlePauseResume(false)))
}

func (s *Server) handlePauseResume(pause bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Target string `json:"target"`
		}
		dec := json.NewDecoder(io.LimitReader(r.Body, maxAdminBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			s.writeError(w, r, domain.Errorf(domain.EINVALID, `body must be {"target":"events"|"notifications"|"all"}: %v`, err))
			return
		}
		op := s.cfg.Admin.Resume
		if pause {
			op = s.cfg.Admin.Pause
		}
		if err := op(r.Context(), body.Target); err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, eligibility.MustJSON(map[string]any{"target": body.Target, "paused": pause}))
	}
}

// requireAdmin checks the bearer token. Both sides are hashed first so the
// comparison is constant-time whatever the lengths.
func (s *Server) requireAdmin(next http.HandlerFunc) http.HandlerFunc {
	want := sha256.Sum256([]byte(s.cfg.AdminToken))
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		got := sha256.Sum256([]byte(token))
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="shiftcast admin"`)
			writeJSON(w, http.StatusUnauthorized, eligibility.MustJSON(eligibility.ErrorJSON{Error: eligibility.ErrorDetail{
				Code: "unauthenticated", Message: "admin routes need Authorization: Bearer <ADMIN_TOKEN>",
			}}))
			return
		}
		next(w, r)
	}
}
