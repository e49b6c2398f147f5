package publishers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/shiftcast/shiftcast/domain"
)

// Defaults of EventPublisherOptions.
const (
	// DefaultSource is the CloudEvents source of events published without one.
	DefaultSource = "shiftcast"
	// DefaultRetryAttempts is how many times a transient failure is retried:
	// with the default waits it rides out about three seconds of a missing
	// stream (a deployment creating it) or a JetStream leader election.
	DefaultRetryAttempts = 5
	// DefaultRetryWait is the wait before the first retry; it doubles on
	// each further one.
	DefaultRetryWait = 100 * time.Millisecond
	// DefaultMaxRetryWait caps the wait between two attempts.
	DefaultMaxRetryWait = 2 * time.Second
	// DefaultAttemptTimeout bounds one attempt's wait for the PubAck when
	// the caller's context has no earlier deadline.
	DefaultAttemptTimeout = 5 * time.Second
)

// EventPublisherOptions configures an EventPublisher. The zero value is
// usable: every field has a default.
type EventPublisherOptions struct {
	// Source is the CloudEvents source of events that do not carry one
	// (default DefaultSource).
	Source string
	// RetryAttempts is how many times a transient failure is retried after
	// the first attempt: 0 means DefaultRetryAttempts, a negative value
	// means never.
	RetryAttempts int
	// RetryFor, when positive, also bounds retrying in time: no retry starts
	// later than RetryFor after the first attempt. Set RetryAttempts high
	// and RetryFor to wait "up to this long" for a stream to appear.
	RetryFor time.Duration
	// RetryWait is the wait before the first retry (default
	// DefaultRetryWait); it doubles on each retry, up to MaxRetryWait
	// (default DefaultMaxRetryWait), with jitter so that many producers
	// do not retry in lockstep.
	RetryWait    time.Duration
	MaxRetryWait time.Duration
	// AttemptTimeout bounds one attempt's wait for the PubAck (default
	// DefaultAttemptTimeout).
	AttemptTimeout time.Duration
	// Logger receives a warning per retry (default: none).
	Logger *zap.Logger
}

// msgPublisher is the part of jetstream.JetStream the publisher uses.
type msgPublisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

var _ msgPublisher = (jetstream.JetStream)(nil)

// EventPublisher publishes marketplace domain events into JetStream: one
// structured-mode CloudEvents JSON message per event on
// marketplace.<type>, with Nats-Msg-Id set to the event id, acknowledged
// by the stream before a publish returns. It is safe for concurrent use.
type EventPublisher struct {
	js   msgPublisher
	opts EventPublisherOptions
	log  *zap.Logger
}

// NewEventPublisher returns a publisher of events through js.
func NewEventPublisher(js jetstream.JetStream, opts EventPublisherOptions) *EventPublisher {
	if opts.Source == "" {
		opts.Source = DefaultSource
	}
	if opts.RetryAttempts == 0 {
		opts.RetryAttempts = DefaultRetryAttempts
	}
	if opts.RetryWait <= 0 {
		opts.RetryWait = DefaultRetryWait
	}
	if opts.MaxRetryWait <= 0 {
		opts.MaxRetryWait = DefaultMaxRetryWait
	}
	if opts.MaxRetryWait < opts.RetryWait {
		opts.MaxRetryWait = opts.RetryWait
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = DefaultAttemptTimeout
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &EventPublisher{js: js, opts: opts, log: log}
}

// Publish validates ev as the consumer will decode it and publishes it to
// domain.Subject(ev.Type), returning the stream's acknowledgement. An empty
// Source is filled with the publisher's and a zero Time with now; the id is
// the caller's, since it is what makes a retried publish a duplicate. The
// acknowledgement's Duplicate is true when the stream already had this id
// within its duplicate window. An invalid event is an EINVALID
// *domain.Error and nothing is published.
func (p *EventPublisher) Publish(ctx context.Context, ev domain.Event) (*jetstream.PubAck, error) {
	ev, raw, err := p.encode(ev)
	if err != nil {
		return nil, err
	}
	ack, err := p.publish(ctx, &nats.Msg{Subject: domain.Subject(ev.Type), Data: raw}, ev.ID)
	if err != nil {
		return nil, fmt.Errorf("publish %s %s: %w", ev.Type, ev.ID, err)
	}
	return ack, nil
}

// PublishData builds an event of type typ carrying data (a payload struct
// such as domain.ShiftCreated, or its JSON as json.RawMessage) with a new
// random id and the current time, validates and publishes it, and returns
// the event as published.
func (p *EventPublisher) PublishData(ctx context.Context, typ string, data any) (domain.Event, *jetstream.PubAck, error) {
	ev, err := domain.NewEvent(uuid.NewString(), p.opts.Source, typ, time.Now(), data)
	if err != nil {
		return domain.Event{}, nil, err
	}
	ack, err := p.Publish(ctx, ev)
	if err != nil {
		return domain.Event{}, nil, err
	}
	return ev, ack, nil
}

// PublishRaw publishes data to subject as it is, with Nats-Msg-Id set to
// msgID unless it is empty. It validates nothing, on purpose: replaying a
// recorded stream must reproduce malformed events too, so that users can
// exercise their dead-letter handling.
func (p *EventPublisher) PublishRaw(ctx context.Context, subject string, data []byte, msgID string) (*jetstream.PubAck, error) {
	ack, err := p.publish(ctx, &nats.Msg{Subject: subject, Data: data}, msgID)
	if err != nil {
		return nil, fmt.Errorf("publish %s %s: %w", subject, msgID, err)
	}
	return ack, nil
}

// PublishMsg is PublishRaw for a message that carries headers of its own;
// its Nats-Msg-Id header, if any, is its deduplication id. msg is not
// validated.
func (p *EventPublisher) PublishMsg(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	msgID := msg.Header.Get(jetstream.MsgIDHeader)
	ack, err := p.publish(ctx, msg, msgID)
	if err != nil {
		return nil, fmt.Errorf("publish %s %s: %w", msg.Subject, msgID, err)
	}
	return ack, nil
}

// encode fills ev's defaults, validates it through domain.NewEvent (the
// consumer's own decoder) and returns it with its JSON.
func (p *EventPublisher) encode(ev domain.Event) (domain.Event, []byte, error) {
	if ev.Source == "" {
		ev.Source = p.opts.Source
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	if ev.SpecVersion != "" && ev.SpecVersion != "1.0" {
		return domain.Event{}, nil, domain.Errorf(domain.EINVALID, "specversion must be \"1.0\", got %q", ev.SpecVersion)
	}
	valid, err := domain.NewEvent(ev.ID, ev.Source, ev.Type, ev.Time, ev.Data)
	if err != nil {
		return domain.Event{}, nil, err
	}
	raw, err := json.Marshal(valid)
	if err != nil {
		return domain.Event{}, nil, fmt.Errorf("encode %s %s: %w", ev.Type, ev.ID, err)
	}
	return valid, raw, nil
}

// publish sends msg and waits for its PubAck, retrying transient failures
// with capped exponential backoff. The library's own no-responders retry
// is turned off so that this loop alone decides how long to keep trying.
func (p *EventPublisher) publish(ctx context.Context, msg *nats.Msg, msgID string) (*jetstream.PubAck, error) {
	opts := []jetstream.PublishOpt{jetstream.WithRetryAttempts(0)}
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	start := time.Now()
	wait := p.opts.RetryWait
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, p.opts.AttemptTimeout)
		ack, err := p.js.PublishMsg(actx, msg, opts...)
		cancel()
		if err == nil {
			return ack, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("after %d attempts: %w (%w)", attempt+1, ctx.Err(), err)
		}
		if !transient(err, msgID != "") {
			return nil, explain(err)
		}
		if p.opts.RetryAttempts >= 0 && attempt >= p.opts.RetryAttempts ||
			p.opts.RetryFor > 0 && time.Since(start)+wait > p.opts.RetryFor {
			return nil, fmt.Errorf("gave up after %d attempts in %s: %w", attempt+1, time.Since(start).Round(time.Millisecond), explain(err))
		}
		// Jitter in [wait/2, wait] keeps many producers from retrying in step.
		sleep := wait/2 + rand.N(wait/2+1)
		p.log.Warn("publish failed, retrying",
			zap.String("subject", msg.Subject), zap.String("msg_id", msgID),
			zap.Int("attempt", attempt+1), zap.Duration("backoff", sleep), zap.Error(err))
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("after %d attempts: %w (%w)", attempt+1, ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, p.opts.MaxRetryWait)
	}
}

// transient reports whether a failed publish is worth retrying. No
// responders means no stream took the message (it does not exist yet, or
// is moving between servers), and a 503 from JetStream means it was not
// stored; both are safe to resend. A timeout may hide a message that was
// stored but whose ack was lost, so it is only retried when a message id
// lets the stream drop the second copy.
func transient(err error, deduplicated bool) bool {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		return true
	case errors.As(err, &apiErr):
		return apiErr.Code == http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return deduplicated
	}
	return false
}

// explain adds the likely cause to the error of a subject nobody stores.
func explain(err error) error {
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("no JetStream stream captures the subject (is the MARKETPLACE stream created?): %w", err)
	}
	return err
}
