package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/store"
)

// Tests of the batched delivery records: FinishDeliveries and
// MarkChannelsDelivered.

// deliveryTimeout bounds one delivery-record call.
const deliveryTimeout = 30 * time.Second

var bothChannels = []string{store.ChannelWebhook, store.ChannelNATS}

// leasedNotifications records one notification, leased for an hour, for
// each of n workers (1..n) and returns their ids in worker order.
func leasedNotifications(t *testing.T, p *pipe, n int) []string {
	t.Helper()
	basicWorld(t, p) // worker 1; facility 2 requires nothing
	for w := 2; w <= n; w++ {
		p.worker(t, int64(w), domain.CNA, true)
	}
	p.shift(t, 10, 2, domain.CNA, 24*time.Hour)
	ids := make([]string, n)
	for w := 1; w <= n; w++ {
		notif, err := p.st.BuildDigest(bg, int64(w), p.now, 10, time.Hour, nil)
		require.NoError(t, err)
		require.NotNil(t, notif, "worker %d", w)
		ids[w-1] = notif.ID
	}
	return ids
}

// deliveryRow is a notification's delivery state.
type deliveryRow struct {
	Status      string
	Attempts    int
	LastError   *string
	Webhook     *time.Time
	NATS        *time.Time
	DeliveredAt *time.Time
	LeaseUntil  *time.Time
}

func readDelivery(t testing.TB, p *pipe, id string) deliveryRow {
	t.Helper()
	var r deliveryRow
	require.NoError(t, p.b.pool.QueryRow(bg, `
		SELECT status, attempts, last_error, webhook_delivered_at, nats_delivered_at, delivered_at, lease_until
		FROM shiftcast.notifications WHERE id = $1`, id).
		Scan(&r.Status, &r.Attempts, &r.LastError, &r.Webhook, &r.NATS, &r.DeliveredAt, &r.LeaseUntil))
	return r
}

// shape is a deliveryRow without its timestamps' values: which are set.
type shape struct {
	Status                                    string
	Attempts                                  int
	LastError                                 string
	Webhook, NATS, Delivered, Leased, HasLast bool
}

func (r deliveryRow) shape() shape {
	s := shape{Status: r.Status, Attempts: r.Attempts, Webhook: r.Webhook != nil, NATS: r.NATS != nil,
		Delivered: r.DeliveredAt != nil, Leased: r.LeaseUntil != nil, HasLast: r.LastError != nil}
	if r.LastError != nil {
		s.LastError = *r.LastError
	}
	return s
}

func finishDeliveries(t testing.TB, st *store.Store, outcomes ...store.DeliveryOutcome) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deliveryTimeout)
	defer cancel()
	return st.FinishDeliveries(ctx, outcomes)
}

func markChannelsDelivered(t testing.TB, st *store.Store, ds ...store.ChannelDelivery) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deliveryTimeout)
	defer cancel()
	return st.MarkChannelsDelivered(ctx, ds)
}

// One FinishDeliveries call records each notification's attempt on its own
// and returns their statuses in input order.
func TestFinishDeliveries_RecordsEachAttemptInOrder(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	ids := leasedNotifications(t, p, 6)
	delivered, pending, failed, earlier, natsOnly, finalOK := ids[0], ids[1], ids[2], ids[3], ids[4], ids[5]

	// A channel recorded earlier, as a delivery attempt does at once.
	require.NoError(t, markChannelsDelivered(t, p.st, store.ChannelDelivery{NotificationID: earlier, Channel: store.ChannelWebhook}))
	webhookAt := readDelivery(t, p, earlier).Webhook
	require.NotNil(t, webhookAt)

	outcomes := []store.DeliveryOutcome{
		{NotificationID: failed, Want: bothChannels, Delivered: []string{store.ChannelWebhook}, Err: errors.New("nats: timeout"), Final: true},
		{NotificationID: natsOnly, Want: []string{store.ChannelNATS}, Err: errors.New("nats: no responders")},
		{NotificationID: delivered, Want: bothChannels, Delivered: bothChannels},
		{NotificationID: earlier, Want: bothChannels, Delivered: []string{store.ChannelNATS}},
		{NotificationID: pending, Want: bothChannels, Delivered: []string{store.ChannelNATS}, Err: errors.New("webhook: 503")},
		{NotificationID: finalOK, Want: bothChannels, Delivered: bothChannels, Final: true},
	}
	statuses, err := finishDeliveries(t, p.st, outcomes...)
	require.NoError(t, err)
	require.Equal(t, []string{"failed", "pending", "delivered", "delivered", "pending", "delivered"}, statuses)

	want := map[string]shape{
		delivered: {Status: "delivered", Attempts: 1, Webhook: true, NATS: true, Delivered: true},
		pending:   {Status: "pending", Attempts: 1, NATS: true, Leased: true, HasLast: true, LastError: "webhook: 503"},
		failed:    {Status: "failed", Attempts: 1, Webhook: true, HasLast: true, LastError: "nats: timeout"},
		earlier:   {Status: "delivered", Attempts: 1, Webhook: true, NATS: true, Delivered: true},
		natsOnly:  {Status: "pending", Attempts: 1, Leased: true, HasLast: true, LastError: "nats: no responders"},
		finalOK:   {Status: "delivered", Attempts: 1, Webhook: true, NATS: true, Delivered: true},
	}
	for id, w := range want {
		require.Equal(t, w, readDelivery(t, p, id).shape(), "notification %s", id)
	}
	require.Equal(t, *webhookAt, *readDelivery(t, p, earlier).Webhook, "the earlier delivery's time is kept")

	// The store's view agrees.
	d, err := p.st.Notification(bg, earlier)
	require.NoError(t, err)
	require.Equal(t, "delivered", d.Status)
	require.Equal(t, map[string]bool{store.ChannelWebhook: true, store.ChannelNATS: true}, d.Delivered)
	d, err = p.st.Notification(bg, pending)
	require.NoError(t, err)
	require.Equal(t, map[string]bool{store.ChannelWebhook: false, store.ChannelNATS: true}, d.Delivered)

	// A second attempt: the pending ones complete, the error is cleared,
	// and the channel delivered the first time keeps its time.
	natsAt := readDelivery(t, p, pending).NATS
	statuses, err = finishDeliveries(t, p.st,
		store.DeliveryOutcome{NotificationID: pending, Want: bothChannels, Delivered: []string{store.ChannelWebhook}},
		store.DeliveryOutcome{NotificationID: natsOnly, Want: []string{store.ChannelNATS}, Err: errors.New("nats: down"), Final: true},
	)
	require.NoError(t, err)
	require.Equal(t, []string{"delivered", "failed"}, statuses)
	require.Equal(t, shape{Status: "delivered", Attempts: 2, Webhook: true, NATS: true, Delivered: true}, readDelivery(t, p, pending).shape())
	require.Equal(t, *natsAt, *readDelivery(t, p, pending).NATS)
	require.Equal(t, shape{Status: "failed", Attempts: 2, HasLast: true, LastError: "nats: down"}, readDelivery(t, p, natsOnly).shape())
	for _, id := range []string{delivered, failed, earlier, finalOK} {
		require.Equal(t, 1, readDelivery(t, p, id).Attempts, "notification %s not in the second batch", id)
	}
}

// FinishDeliveries records each outcome exactly as FinishDelivery does one
// at a time, lease included.
func TestFinishDeliveries_SameAsFinishDelivery(t *testing.T) {
	t.Parallel()
	outcomes := []store.DeliveryOutcome{
		{Want: bothChannels, Delivered: bothChannels},
		{Want: bothChannels, Delivered: []string{store.ChannelWebhook}, Err: errors.New("nats: timeout")},
		{Want: bothChannels, Delivered: []string{store.ChannelWebhook}, Err: errors.New("nats: timeout"), Final: true},
		{Want: bothChannels, Err: errors.New("both down")},
		{Want: []string{store.ChannelWebhook}, Delivered: []string{store.ChannelWebhook}},
		{Want: []string{store.ChannelNATS}, Delivered: []string{store.ChannelWebhook}, Err: errors.New("nats: timeout")},
		{Want: []string{store.ChannelNATS}, Err: errors.New("nats: timeout"), Final: true},
		{Want: bothChannels, Delivered: bothChannels, Final: true},
	}
	one, batched := newPipe(t), newPipe(t)
	oneIDs := leasedNotifications(t, one, len(outcomes))
	batchIDs := leasedNotifications(t, batched, len(outcomes))

	var oneStatuses []string
	batch := make([]store.DeliveryOutcome, len(outcomes))
	for i, o := range outcomes {
		ctx, cancel := context.WithTimeout(context.Background(), deliveryTimeout)
		status, err := one.st.FinishDelivery(ctx, oneIDs[i], o.Want, o.Delivered, o.Err, o.Final)
		cancel()
		require.NoError(t, err)
		oneStatuses = append(oneStatuses, status)
		batch[i] = o
		batch[i].NotificationID = batchIDs[i]
	}
	statuses, err := finishDeliveries(t, batched.st, batch...)
	require.NoError(t, err)
	require.Equal(t, []string{"delivered", "pending", "failed", "pending", "delivered", "pending", "failed", "delivered"}, oneStatuses)
	require.Equal(t, oneStatuses, statuses)
	for i := range outcomes {
		a, b := readDelivery(t, one, oneIDs[i]).shape(), readDelivery(t, batched, batchIDs[i]).shape()
		require.Equal(t, a, b, "outcome %d", i)
		// Finished notifications leave the lease; pending ones keep it until handed off.
		require.Equal(t, a.Status == "pending", b.Leased, "outcome %d", i)
	}
}

// An unknown notification fails the call with ENOTFOUND.
func TestFinishDeliveries_UnknownNotification(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	ids := leasedNotifications(t, p, 1)
	const unknown = "00000000-0000-4000-8000-000000000001"

	_, err := finishDeliveries(t, p.st, store.DeliveryOutcome{NotificationID: unknown, Want: bothChannels, Delivered: bothChannels})
	require.Error(t, err)
	require.Equal(t, domain.ENOTFOUND, domain.ErrorCode(err), "%v", err)
	require.ErrorContains(t, err, unknown)

	statuses, err := finishDeliveries(t, p.st,
		store.DeliveryOutcome{NotificationID: ids[0], Want: bothChannels, Delivered: bothChannels},
		store.DeliveryOutcome{NotificationID: unknown, Want: bothChannels, Delivered: bothChannels})
	require.Error(t, err)
	require.Nil(t, statuses)
	require.Equal(t, domain.ENOTFOUND, domain.ErrorCode(err), "%v", err)
	require.ErrorContains(t, err, unknown)

	_, err = p.st.FinishDelivery(bg, unknown, bothChannels, nil, nil, false)
	require.Equal(t, domain.ENOTFOUND, domain.ErrorCode(err), "%v", err)

	got := readDelivery(t, p, ids[0]).shape()
	require.Equal(t, "pending", got.Status, "the failed call recorded nothing for the known notification")
	require.Zero(t, got.Attempts)
}

// The same notification twice in one call is recorded as two calls one
// after the other would record it.
func TestFinishDeliveries_RepeatedNotification(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	ids := leasedNotifications(t, p, 2)

	require.NoError(t, markChannelsDelivered(t, p.st,
		store.ChannelDelivery{NotificationID: ids[0], Channel: store.ChannelWebhook},
		store.ChannelDelivery{NotificationID: ids[1], Channel: store.ChannelNATS},
		store.ChannelDelivery{NotificationID: ids[0], Channel: store.ChannelNATS}))
	got := readDelivery(t, p, ids[0]).shape()
	require.True(t, got.Webhook && got.NATS, "both channels of the repeated notification: %+v", got)
	require.Equal(t, "pending", got.Status)

	statuses, err := finishDeliveries(t, p.st,
		store.DeliveryOutcome{NotificationID: ids[1], Want: bothChannels, Delivered: []string{store.ChannelWebhook}, Err: errors.New("x")},
		store.DeliveryOutcome{NotificationID: ids[1], Want: bothChannels, Delivered: nil, Err: errors.New("y")})
	require.NoError(t, err)
	require.Equal(t, []string{"delivered", "delivered"}, statuses, "the second attempt sees the first's channels")
	got = readDelivery(t, p, ids[1]).shape()
	require.Equal(t, 2, got.Attempts)
	require.True(t, got.Webhook && got.NATS)
	require.Equal(t, "y", got.LastError)
}

// MarkChannelsDelivered records each channel of each notification, keeps
// the first time a channel was recorded, and rejects an unknown channel
// before recording anything.
func TestMarkChannelsDelivered_RecordsEachChannel(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	ids := leasedNotifications(t, p, 3)

	require.NoError(t, markChannelsDelivered(t, p.st,
		store.ChannelDelivery{NotificationID: ids[0], Channel: store.ChannelWebhook},
		store.ChannelDelivery{NotificationID: ids[1], Channel: store.ChannelNATS},
	))
	r0, r1, r2 := readDelivery(t, p, ids[0]), readDelivery(t, p, ids[1]), readDelivery(t, p, ids[2])
	require.Equal(t, shape{Status: "pending", Webhook: true, Leased: true}, r0.shape())
	require.Equal(t, shape{Status: "pending", NATS: true, Leased: true}, r1.shape())
	require.Equal(t, shape{Status: "pending", Leased: true}, r2.shape())

	// Again: the first times stay; another channel is added.
	require.NoError(t, markChannelsDelivered(t, p.st,
		store.ChannelDelivery{NotificationID: ids[0], Channel: store.ChannelWebhook},
		store.ChannelDelivery{NotificationID: ids[1], Channel: store.ChannelNATS},
	))
	a0, a1 := readDelivery(t, p, ids[0]), readDelivery(t, p, ids[1])
	require.Equal(t, *r0.Webhook, *a0.Webhook)
	require.Equal(t, *r1.NATS, *a1.NATS)
	require.Nil(t, a0.NATS)
	require.NoError(t, markChannelsDelivered(t, p.st, store.ChannelDelivery{NotificationID: ids[0], Channel: store.ChannelNATS}))
	a0 = readDelivery(t, p, ids[0])
	require.Equal(t, *r0.Webhook, *a0.Webhook)
	require.NotNil(t, a0.NATS)
	require.Equal(t, shape{Status: "pending", Webhook: true, NATS: true, Leased: true}, a0.shape(),
		"marking channels does not finish a delivery")

	before := readDelivery(t, p, ids[2])
	for _, channel := range []string{"sms", "", "Webhook"} {
		t.Run(fmt.Sprintf("channel %q", channel), func(t *testing.T) {
			err := markChannelsDelivered(t, p.st,
				store.ChannelDelivery{NotificationID: ids[2], Channel: store.ChannelWebhook},
				store.ChannelDelivery{NotificationID: ids[2], Channel: channel},
			)
			require.Error(t, err)
			require.ErrorContains(t, err, fmt.Sprintf("%q", channel))
			require.Equal(t, before, readDelivery(t, p, ids[2]), "nothing recorded")
		})
	}
}
