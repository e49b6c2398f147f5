// Package reports answers the monthly report — per month and worker: shifts
// claimed, hours claimed, notifications delivered — behind both transports,
// from the rollup the database keeps (store.MonthlyReport).
package reports

import (
	"context"
	"math"
	"strconv"
	"time"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/store"
)

// Limits on one request.
const (
	MaxMonths  = 120
	MaxWorkers = 1000
)

// Store is what the report needs from persistence.
type Store interface {
	MonthlyReport(ctx context.Context, from, to time.Time, workerIDs []int64) ([]store.MonthlyRow, error)
}

var _ Store = (*store.Store)(nil)

// Service answers report requests.
type Service struct {
	store Store
	now   func() time.Time
}

// NewService returns a Service reading from st.
func NewService(st Store) *Service { return &Service{store: st, now: time.Now} }

// MonthlyParams are the raw parameters: months as YYYY-MM (inclusive; both
// optional: to defaults to the current month, from to eleven months before
// to) and worker ids (optional: all workers).
type MonthlyParams struct {
	From      string
	To        string
	WorkerIDs []string
}

// MonthlyRow is one line of the report.
type MonthlyRow struct {
	Month             string  `json:"month"`
	WorkerID          int64   `json:"worker_id"`
	ShiftsClaimed     int64   `json:"shifts_claimed"`
	HoursClaimed      float64 `json:"hours_claimed"`
	NotificationsSent int64   `json:"notifications_sent"`
}

// MonthlyResponse is the body of the report.
type MonthlyResponse struct {
	From string       `json:"from"`
	To   string       `json:"to"`
	Rows []MonthlyRow `json:"rows"`
}

// Monthly returns the report for the requested months and workers.
func (s *Service) Monthly(ctx context.Context, p MonthlyParams) (MonthlyResponse, error) {
	now := s.now().UTC()
	to := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	var err error
	if p.To != "" {
		if to, err = parseMonth("to", p.To); err != nil {
			return MonthlyResponse{}, err
		}
	}
	from := to.AddDate(0, -11, 0)
	if p.From != "" {
		if from, err = parseMonth("from", p.From); err != nil {
			return MonthlyResponse{}, err
		}
	}
	if from.After(to) {
		return MonthlyResponse{}, domain.Errorf(domain.EINVALID, "from %s is after to %s", from.Format("2006-01"), to.Format("2006-01"))
	}
	if months := (to.Year()-from.Year())*12 + int(to.Month()-from.Month()) + 1; months > MaxMonths {
		return MonthlyResponse{}, domain.Errorf(domain.EINVALID, "at most %d months per request, asked for %d", MaxMonths, months)
	}
	if len(p.WorkerIDs) > MaxWorkers {
		return MonthlyResponse{}, domain.Errorf(domain.EINVALID, "at most %d worker_id values per request, got %d", MaxWorkers, len(p.WorkerIDs))
	}
	var ids []int64
	for _, raw := range p.WorkerIDs {
		id, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || id < 1 {
			return MonthlyResponse{}, domain.Errorf(domain.EINVALID, "worker_id must be a positive integer, got %q", raw)
		}
		ids = append(ids, id)
	}
	rows, err := s.store.MonthlyReport(ctx, from, to, ids)
	if err != nil {
		return MonthlyResponse{}, err
	}
	resp := MonthlyResponse{From: from.Format("2006-01"), To: to.Format("2006-01"), Rows: make([]MonthlyRow, len(rows))}
	for i, r := range rows {
		resp.Rows[i] = MonthlyRow{
			Month: r.Month.Format("2006-01"), WorkerID: r.WorkerID, ShiftsClaimed: r.Shifts,
			HoursClaimed: math.Round(float64(r.Seconds)/36) / 100, NotificationsSent: r.Notifications,
		}
	}
	return resp, nil
}

func parseMonth(name, s string) (time.Time, error) {
	t, err := time.Parse("2006-01", s)
	if err != nil || len(s) != 7 {
		return time.Time{}, domain.Errorf(domain.EINVALID, "%s must be a month as YYYY-MM, got %q", name, s)
	}
	return t, nil
}
