package consumers_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/consumers"
	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/publishers"
	"github.com/shiftcast/shiftcast/testenv"
)

const feedWait = 10 * time.Second

func feedNotification(worker int64) domain.Notification {
	start := time.Now().UTC().Truncate(time.Microsecond).Add(48 * time.Hour)
	return domain.Notification{
		ID: uuid.NewString(), Type: domain.NotificationTypeShiftsAvailable, WorkerID: worker, Count: 3,
		Shifts:    []domain.NotificationShift{{ID: 9, FacilityID: 2, Profession: "RN", Start: start, End: start.Add(8 * time.Hour)}},
		CreatedAt: time.Now().UTC().Truncate(time.Microsecond),
	}
}

func receive(t *testing.T, ch <-chan domain.Notification) domain.Notification {
	t.Helper()
	select {
	case n := <-ch:
		return n
	case <-time.After(feedWait):
		t.Fatal("no notification within", feedWait)
		return domain.Notification{}
	}
}

func TestNotificationFeed_DeliversTheWorkersNotifications(t *testing.T) {
	t.Parallel()
	ctx, cancelCtx := context.WithTimeout(context.Background(), feedWait)
	defer cancelCtx()
	url := testenv.NATS(t)
	subConn, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(subConn.Close)
	pubConn, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(pubConn.Close)

	feed := consumers.NewNotificationFeed(subConn, testenv.Logger(t))
	got := make(chan domain.Notification, 16)
	cancel, err := feed.Subscribe(7, func(n domain.Notification) { got <- n })
	require.NoError(t, err)

	// Subscribe returns once the server has the interest: a publish on
	// another connection right away is not lost.
	pub := publishers.NewNATSNotifier(pubConn)
	want := feedNotification(7)
	require.NoError(t, pub.Deliver(ctx, want))
	require.Equal(t, want, receive(t, got))

	// Other workers' notifications, undecodable payloads and payloads for
	// another worker on this subject are skipped; the next good one still
	// arrives.
	require.NoError(t, pub.Deliver(ctx, feedNotification(8)))
	require.NoError(t, pubConn.Publish(domain.NotificationSubjectPrefix+"7", []byte("{not json")))
	require.NoError(t, pubConn.Publish(domain.NotificationSubjectPrefix+"7", []byte(`{"worker_id":7}`)))
	stray := feedNotification(8)
	body, err := publishers.EncodeNotification(stray)
	require.NoError(t, err)
	require.NoError(t, pubConn.Publish(domain.NotificationSubjectPrefix+"7", body))
	second := feedNotification(7)
	require.NoError(t, pub.Deliver(ctx, second))
	require.Equal(t, second, receive(t, got))

	// After cancel nothing more arrives.
	cancel()
	require.NoError(t, subConn.Flush())
	require.NoError(t, pub.Deliver(ctx, feedNotification(7)))
	require.NoError(t, subConn.Flush())
	select {
	case n := <-got:
		t.Fatalf("received %s after cancel", n.ID)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestNotificationFeed_Errors(t *testing.T) {
	t.Parallel()
	nc, err := nats.Connect(testenv.NATS(t))
	require.NoError(t, err)
	feed := consumers.NewNotificationFeed(nc, nil)

	_, err = feed.Subscribe(0, func(domain.Notification) {})
	require.Equal(t, domain.EINVALID, domain.ErrorCode(err))

	nc.Close()
	_, err = feed.Subscribe(1, func(domain.Notification) {})
	require.Equal(t, domain.EUNAVAILABLE, domain.ErrorCode(err))
}
