// Package admin implements the operator's controls: the pipeline's status,
// and pausing and resuming event consumption and notifications. Both pauses
// are cluster-wide: events pause the durable JetStream consumer on the
// server (every instance stops receiving, nothing is lost), notifications
// pause River's queues in PostgreSQL (every instance stops working them).
package admin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/riverqueue/river"

	"github.com/shiftcast/shiftcast/consumers"
	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/jobs"
	"github.com/shiftcast/shiftcast/store"
)

// Pause targets.
const (
	TargetEvents        = "events"
	TargetNotifications = "notifications"
	TargetAll           = "all"
)

// NotificationQueues are the River queues "notifications" pauses: building
// digests and delivering them (fan-out too, since it only feeds them).
var NotificationQueues = []string{jobs.QueueFanout, jobs.QueueNotify, jobs.QueueDeliver}

// Store is what the status needs from persistence.
type Store interface {
	JobCounts(ctx context.Context) (map[string]map[string]int64, error)
	NotificationCounts(ctx context.Context) (map[string]int64, error)
}

var _ Store = (*store.Store)(nil)

// Service answers the admin routes.
type Service struct {
	js      jetstream.JetStream
	river   *river.Client[pgx.Tx]
	store   Store
	durable string
}

// New returns the admin service.
func New(js jetstream.JetStream, rc *river.Client[pgx.Tx], st Store) *Service {
	return &Service{js: js, river: rc, store: st, durable: consumers.DurableName}
}

// EventsStatus describes the event consumer.
type EventsStatus struct {
	Paused       bool   `json:"paused"`
	Lag          uint64 `json:"lag"`
	AckPending   int    `json:"ack_pending"`
	Redelivered  int    `json:"redelivered"`
	DeadLettered uint64 `json:"dead_lettered"`
	Error        string `json:"error,omitempty"`
}

// JobsStatus describes River's queues.
type JobsStatus struct {
	Pending int64                       `json:"pending"`
	Failed  int64                       `json:"failed"`
	ByQueue map[string]map[string]int64 `json:"by_queue"`
	Error   string                      `json:"error,omitempty"`
}

// Status is the body of GET /v1/admin/status.
type Status struct {
	Events        EventsStatus     `json:"events"`
	Jobs          JobsStatus       `json:"jobs"`
	Notifications map[string]int64 `json:"notifications"`
	Paused        map[string]bool  `json:"paused"`
}

// Status gathers what operators watch. A dependency that does not answer
// is reported in its section rather than failing the whole status.
func (s *Service) Status(ctx context.Context) (Status, error) {
	st := Status{Paused: map[string]bool{}}
	if info, err := s.consumerInfo(ctx); err != nil {
		st.Events.Error = err.Error()
	} else {
		st.Events.Paused, st.Events.Lag = info.Paused, info.NumPending
		st.Events.AckPending, st.Events.Redelivered = info.NumAckPending, info.NumRedelivered
	}
	if dlq, err := s.js.Stream(ctx, consumers.StreamDLQ); err == nil {
		if info, err := dlq.Info(ctx); err == nil {
			st.Events.DeadLettered = info.State.Msgs
		}
	}
	counts, err := s.store.JobCounts(ctx)
	if err != nil {
		st.Jobs.Error = domain.ErrorMessage(err)
	}
	st.Jobs.ByQueue = counts
	for _, states := range counts {
		st.Jobs.Pending += states["available"] + states["scheduled"] + states["retryable"] + states["pending"] + states["running"]
		st.Jobs.Failed += states["discarded"]
	}
	if st.Notifications, err = s.store.NotificationCounts(ctx); err != nil {
		return st, err
	}
	st.Paused[TargetEvents] = st.Events.Paused
	paused := true
	for _, q := range NotificationQueues {
		queue, err := s.river.QueueGet(ctx, q)
		if err != nil || queue.PausedAt == nil {
			paused = false
		}
	}
	st.Paused[TargetNotifications] = paused
	return st, nil
}

func (s *Service) consumerInfo(ctx context.Context) (*jetstream.ConsumerInfo, error) {
	c, err := s.js.Consumer(ctx, consumers.StreamMarketplace, s.durable)
	if err != nil {
		return nil, err
	}
	return c.Info(ctx)
}

// Pause pauses target cluster-wide.
func (s *Service) Pause(ctx context.Context, target string) error { return s.set(ctx, target, true) }

// Resume resumes target cluster-wide.
func (s *Service) Resume(ctx context.Context, target string) error { return s.set(ctx, target, false) }

func (s *Service) set(ctx context.Context, target string, pause bool) error {
	switch target {
	case TargetEvents, TargetNotifications, TargetAll:
	default:
		return domain.Errorf(domain.EINVALID, "target must be %q, %q or %q, got %q", TargetEvents, TargetNotifications, TargetAll, target)
	}
	if target != TargetNotifications {
		var err error
		if pause {
			// Paused "forever": an operator resumes explicitly.
			_, err = s.js.PauseConsumer(ctx, consumers.StreamMarketplace, s.durable, time.Now().AddDate(100, 0, 0))
		} else {
			_, err = s.js.ResumeConsumer(ctx, consumers.StreamMarketplace, s.durable)
		}
		if err != nil {
			return domain.Unavailable("jetstream consumer", fmt.Errorf("set events paused=%t: %w", pause, err))
		}
	}
	if target != TargetEvents {
		for _, q := range NotificationQueues {
			var err error
			if pause {
				err = s.river.QueuePause(ctx, q, nil)
			} else {
				err = s.river.QueueResume(ctx, q, nil)
			}
			if err != nil && !errors.Is(err, river.ErrNotFound) {
				return domain.Unavailable("job queue "+q, fmt.Errorf("set paused=%t: %w", pause, err))
			}
		}
	}
	return nil
}
