package publishers

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shiftcast/shiftcast/batch"
	"github.com/shiftcast/shiftcast/domain"
)

// DefaultFlushTimeout bounds the flush NATS deliveries wait for (a
// caller's context may end it sooner for that caller).
const DefaultFlushTimeout = 5 * time.Second

// NATSNotifier delivers notifications on notifications.worker.<worker_id>.
// It is safe for concurrent use.
type NATSNotifier struct {
	nc *nats.Conn
	// flushes makes the deliveries published at once share one flush
	// (a PING's round trip) instead of one each.
	flushes *batch.Batcher[struct{}, struct{}]
}

var _ interface {
	Deliver(context.Context, domain.Notification) error
} = (*NATSNotifier)(nil)

// NewNATSNotifier returns a notifier publishing on nc.
func NewNATSNotifier(nc *nats.Conn) *NATSNotifier {
	// One lane: every delivery published while a flush is in flight waits
	// for the next one, whose PING follows its message.
	flushes := batch.NewExec(1<<16, 1, func(ctx context.Context, _ []struct{}) error {
		return nc.FlushWithContext(ctx)
	})
	flushes.Timeout = DefaultFlushTimeout
	return &NATSNotifier{nc: nc, flushes: flushes}
}

// Deliver publishes n's JSON (the webhook's body) to the worker's subject
// with Nats-Msg-Id set to n.ID, so a JetStream stream capturing
// notifications drops the copies that retries produce, and returns once
// the server has it. Core NATS has no receipt from subscribers: success
// means the server accepted the message, not that anyone was listening.
func (p *NATSNotifier) Deliver(ctx context.Context, n domain.Notification) error {
	if n.ID == "" || n.WorkerID < 1 {
		return domain.Errorf(domain.EINVALID, "notification needs an id and a worker id, got id %q worker %d", n.ID, n.WorkerID)
	}
	body, err := EncodeNotification(n)
	if err != nil {
		return err
	}
	subject := domain.NotificationSubjectPrefix + strconv.FormatInt(n.WorkerID, 10)
	msg := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, n.ID)
	msg.Header.Set("Content-Type", "application/json")
	if err := p.nc.PublishMsg(msg); err != nil {
		return fmt.Errorf("deliver notification %s on %s: %w", n.ID, subject, err)
	}
	// A publish only fills a buffer; the flush's round trip is what tells
	// us the server has the message (or that the connection is down).
	if _, err := p.flushes.Do(ctx, struct{}{}); err != nil {
		return fmt.Errorf("deliver notification %s on %s: flush: %w", n.ID, subject, err)
	}
	return nil
}
