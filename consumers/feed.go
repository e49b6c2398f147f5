package consumers

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/shiftcast/shiftcast/domain"
)

// subscribeFlushTimeout bounds the round trip that confirms a subscription.
const subscribeFlushTimeout = 5 * time.Second

// NotificationFeed is the live side of the in-app feed: the notifications
// the NATS channel publishes on notifications.worker.<id>, per worker. It
// is safe for concurrent use.
type NotificationFeed struct {
	nc  *nats.Conn
	log *zap.Logger
}

// NewNotificationFeed returns a feed reading from nc; log may be nil.
func NewNotificationFeed(nc *nats.Conn, log *zap.Logger) *NotificationFeed {
	if log == nil {
		log = zap.NewNop()
	}
	return &NotificationFeed{nc: nc, log: log}
}

// Subscribe calls fn with each notification published for the worker from
// now on, on one goroutine, in arrival order, until cancel is called. It
// returns once the server has registered the interest, so whatever is
// published afterwards reaches fn: a caller may subscribe, then read what
// it missed from the store, and lose nothing in between. fn must not block
// for long. Payloads that do not decode to a notification of this worker
// are skipped; the first one is logged at warn level, the rest at debug.
func (f *NotificationFeed) Subscribe(workerID int64, fn func(domain.Notification)) (cancel func(), err error) {
	if workerID < 1 {
		return nil, domain.Errorf(domain.EINVALID, "worker_id must be a positive integer, got %d", workerID)
	}
	subject := domain.NotificationSubjectPrefix + strconv.FormatInt(workerID, 10)
	warned := false // only touched on the subscription's goroutine
	sub, err := f.nc.Subscribe(subject, func(msg *nats.Msg) {
		var n domain.Notification
		err := json.Unmarshal(msg.Data, &n)
		if err == nil && (n.ID == "" || n.WorkerID != workerID) {
			err = fmt.Errorf("want a notification with an id for worker %d, got id %q worker %d", workerID, n.ID, n.WorkerID)
		}
		if err != nil {
			level := zap.DebugLevel
			if !warned {
				warned, level = true, zap.WarnLevel
			}
			if ce := f.log.Check(level, "skipping undecodable notification"); ce != nil {
				ce.Write(zap.String("subject", msg.Subject), zap.Int("bytes", len(msg.Data)), zap.Error(err))
			}
			return
		}
		if n.Shifts == nil {
			n.Shifts = []domain.NotificationShift{}
		}
		n.CreatedAt = n.CreatedAt.UTC()
		fn(n)
	})
	if err != nil {
		return nil, domain.Unavailable("nats subscription "+subject, err)
	}
	if err := f.nc.FlushTimeout(subscribeFlushTimeout); err != nil {
		_ = sub.Unsubscribe()
		return nil, domain.Unavailable("nats subscription "+subject, err)
	}
	return func() { _ = sub.Unsubscribe() }, nil
}
