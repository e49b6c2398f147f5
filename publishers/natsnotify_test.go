package publishers_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/publishers"
)

func TestNATSNotifier_Deliver(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	nc, js := connect(t)
	sub, err := nc.SubscribeSync("notifications.worker.7")
	require.NoError(t, err)
	require.NoError(t, nc.Flush())

	n := testNotification()
	p := publishers.NewNATSNotifier(nc)
	require.NoError(t, p.Deliver(ctx, n))

	msg, err := sub.NextMsg(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, "ntf_01", msg.Header.Get(jetstream.MsgIDHeader))
	want, err := publishers.EncodeNotification(n)
	require.NoError(t, err)
	require.Equal(t, want, msg.Data, "the same body as the webhook's")
	var got domain.Notification
	require.NoError(t, json.Unmarshal(msg.Data, &got))
	require.EqualValues(t, 7, got.WorkerID)

	// A stream capturing notifications keeps one copy of a retried delivery.
	stream, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: "NOTIFICATIONS", Subjects: []string{"notifications.worker.>"}, Duplicates: time.Minute,
	})
	require.NoError(t, err)
	require.NoError(t, p.Deliver(ctx, n))
	require.NoError(t, p.Deliver(ctx, n))
	require.Eventually(t, func() bool {
		info, err := stream.Info(ctx)
		return err == nil && info.State.Msgs == 1
	}, 5*time.Second, 20*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, info.State.Msgs)
}

func TestNATSNotifier_Deliver_errors(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	nc, _ := connect(t)
	p := publishers.NewNATSNotifier(nc)
	require.Equal(t, domain.EINVALID, domain.ErrorCode(p.Deliver(ctx, domain.Notification{ID: "x"})), "no worker id")

	nc.Close()
	err := p.Deliver(ctx, testNotification())
	require.ErrorIs(t, err, nats.ErrConnectionClosed, "a closed connection is an error, not a silent drop")
}
