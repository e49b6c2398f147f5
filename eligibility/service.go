// Package eligibility is the one implementation of shiftcast's query API
// behind every transport: it parses and validates raw request parameters,
// asks the store, applies the domain rules and encodes the JSON bodies that
// HTTP and NATS request-reply both return. Transports only move bytes.
package eligibility

import (
	"context"
	"strconv"
	"time"

	"github.com/shiftcast/shiftcast/domain"
)

// Store is what the service needs from persistence.
type Store interface {
	EligibleShifts(ctx context.Context, q domain.ShiftsQuery) (domain.ShiftsPage, error)
	EligibleWorkers(ctx context.Context, q domain.WorkersQuery) (domain.WorkersPage, error)
	ExplainInputs(ctx context.Context, workerID, shiftID int64) (domain.Worker, domain.Shift, domain.Facility, error)
}

// Service answers the eligibility questions.
type Service struct {
	store Store
}

// NewService returns a Service reading from store.
func NewService(store Store) *Service { return &Service{store: store} }

// ShiftsParams are the raw parameters of "which shifts can worker W take?",
// as strings so every transport parses them the same way. Empty means absent.
type ShiftsParams struct {
	WorkerID string
	From     string
	To       string
	Limit    string
	Cursor   string
}

// WorkersParams are the raw parameters of "who can take shift S?".
type WorkersParams struct {
	ShiftID string
	Limit   string
	Cursor  string
}

// ExplainParams are the raw parameters of "why can't worker W take shift S?".
type ExplainParams struct {
	WorkerID string
	ShiftID  string
}

// Shifts returns one page of the open shifts a worker can take.
func (s *Service) Shifts(ctx context.Context, p ShiftsParams) (ShiftsResponse, error) {
	q, err := parseShifts(p)
	if err != nil {
		return ShiftsResponse{}, err
	}
	page, err := s.store.EligibleShifts(ctx, q)
	if err != nil {
		return ShiftsResponse{}, err
	}
	resp := ShiftsResponse{Shifts: make([]ShiftJSON, len(page.Shifts))}
	for i, sh := range page.Shifts {
		resp.Shifts[i] = ShiftJSON{ID: sh.ID, FacilityID: sh.FacilityID, Profession: string(sh.Profession), Start: sh.Start, End: sh.End}
	}
	if page.More {
		last := page.Shifts[len(page.Shifts)-1]
		next := domain.EncodeCursor(domain.CursorKindShifts, domain.Cursor{Start: last.Start, ID: last.ID})
		resp.NextCursor = &next
	}
	return resp, nil
}

// Workers returns one page of the workers who can take a shift.
func (s *Service) Workers(ctx context.Context, p WorkersParams) (WorkersResponse, error) {
	q, err := parseWorkers(p)
	if err != nil {
		return WorkersResponse{}, err
	}
	page, err := s.store.EligibleWorkers(ctx, q)
	if err != nil {
		return WorkersResponse{}, err
	}
	resp := WorkersResponse{Workers: make([]WorkerJSON, len(page.Workers))}
	for i, w := range page.Workers {
		resp.Workers[i] = WorkerJSON{ID: w.ID, Name: w.Name, Profession: string(w.Profession)}
	}
	if page.More {
		next := domain.EncodeCursor(domain.CursorKindWorkers, domain.Cursor{ID: page.Workers[len(page.Workers)-1].ID})
		resp.NextCursor = &next
	}
	return resp, nil
}

// Explain says whether a worker can take a shift and, if not, every rule
// that fails.
func (s *Service) Explain(ctx context.Context, p ExplainParams) (domain.Verdict, error) {
	workerID, err := parseID("worker_id", p.WorkerID)
	if err != nil {
		return domain.Verdict{}, err
	}
	shiftID, err := parseID("shift_id", p.ShiftID)
	if err != nil {
		return domain.Verdict{}, err
	}
	w, sh, f, err := s.store.ExplainInputs(ctx, workerID, shiftID)
	if err != nil {
		return domain.Verdict{}, err
	}
	return domain.Explain(w, sh, f), nil
}

func parseShifts(p ShiftsParams) (domain.ShiftsQuery, error) {
	var q domain.ShiftsQuery
	var err error
	if q.WorkerID, err = parseID("worker_id", p.WorkerID); err != nil {
		return q, err
	}
	if q.Limit, err = parseLimit(p.Limit); err != nil {
		return q, err
	}
	if q.From, err = parseTime("from", p.From); err != nil {
		return q, err
	}
	if q.To, err = parseTime("to", p.To); err != nil {
		return q, err
	}
	if q.From != nil && q.To != nil && !q.From.Before(*q.To) {
		return q, domain.Errorf(domain.EINVALID, "from must be before to")
	}
	if p.Cursor != "" {
		c, err := domain.DecodeCursor(domain.CursorKindShifts, p.Cursor)
		if err != nil {
			return q, err
		}
		q.After = &c
	}
	return q, nil
}

func parseWorkers(p WorkersParams) (domain.WorkersQuery, error) {
	var q domain.WorkersQuery
	var err error
	if q.ShiftID, err = parseID("shift_id", p.ShiftID); err != nil {
		return q, err
	}
	if q.Limit, err = parseLimit(p.Limit); err != nil {
		return q, err
	}
	if p.Cursor != "" {
		c, err := domain.DecodeCursor(domain.CursorKindWorkers, p.Cursor)
		if err != nil {
			return q, err
		}
		q.AfterID = c.ID
	}
	return q, nil
}

func parseID(name, s string) (int64, error) {
	if s == "" {
		return 0, domain.Errorf(domain.EINVALID, "%s is required", name)
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 1 {
		return 0, domain.Errorf(domain.EINVALID, "%s must be a positive integer, got %q", name, s)
	}
	return id, nil
}

func parseLimit(s string) (int, error) {
	if s == "" {
		return domain.DefaultLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > domain.MaxLimit {
		return 0, domain.Errorf(domain.EINVALID, "limit must be an integer from 1 to %d, got %q", domain.MaxLimit, s)
	}
	return n, nil
}

func parseTime(name, s string) (*time.Time, error) {
	if s == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, domain.Errorf(domain.EINVALID, "%s must be an RFC 3339 time such as 2023-02-01T00:00:00Z, got %q", name, s)
	}
	t = t.UTC()
	return &t, nil
}
