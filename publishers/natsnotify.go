package publishers

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shiftcast/shiftcast/domain"
)

// DefaultFlushTimeout bounds a NATS delivery's flush when the caller's
// context has no deadline (FlushWithContext requires one).
const DefaultFlushTimeout = 5 * time.Second

// NATSNotifier delivers notifications on notifications.worker.<worker_id>.
// It is safe for concurrent use.
type NATSNotifier struct {
	nc *nats.Conn
}

var _ interface {
	Deliver(context.Context, domain.Notification) error
} = (*NATSNotifier)(nil)

// NewNATSNotifier returns a notifier publishing on nc.
func NewNATSNotifier(nc *nats.Conn) *NATSNotifier { return &NATSNotifier{nc: nc} }

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
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultFlushTimeout)
		defer cancel()
	}
	// A publish only fills a buffer; the flush's round trip is what tells
	// us the server has the message (or that the connection is down).
	if err := p.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("deliver notification %s on %s: flush: %w", n.ID, subject, err)
	}
	return nil
}
