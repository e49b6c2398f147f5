package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/store"
)

// leasedNotification builds worker 1's digest leased to the caller for
// lease and returns its id.
func leasedNotification(t *testing.T, p *pipe, lease time.Duration) string {
	t.Helper()
	basicWorld(t, p)
	p.shift(t, 10, 2, domain.CNA, 24*time.Hour)
	n, err := p.st.BuildDigest(bg, 1, p.now, 10, lease, nil)
	require.NoError(t, err)
	require.NotNil(t, n)
	return n.ID
}

// sweep runs ExpiredLeases and returns the ids it handed over.
func sweep(t *testing.T, st *store.Store) []string {
	t.Helper()
	return handed(t, func(enqueue func(context.Context, pgx.Tx, []string) error) (int, error) {
		return st.ExpiredLeases(bg, 100, enqueue)
	})
}

func TestExpiredLeases_SweepsOnlyExpiredPendingOnce(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	id := leasedNotification(t, p, time.Hour)

	require.Empty(t, sweep(t, p.st), "a live lease is its builder's")
	p.b.exec(t, `UPDATE shiftcast.notifications SET lease_until = now() - interval '1 second' WHERE id = $1`, id)
	require.Equal(t, []string{id}, sweep(t, p.st), "an expired lease is handed over")
	require.Empty(t, sweep(t, p.st), "and only once")

	handed, err := p.st.HandOffDelivery(bg, id, func(context.Context, pgx.Tx) error {
		t.Fatal("a swept notification is not handed off again")
		return nil
	})
	require.NoError(t, err)
	require.False(t, handed)
}

func TestHandOffDelivery_ClearsTheLeaseWithTheJob(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	id := leasedNotification(t, p, time.Hour)

	calls := 0
	handed, err := p.st.HandOffDelivery(bg, id, func(_ context.Context, tx pgx.Tx) error {
		require.NotNil(t, tx)
		calls++
		return nil
	})
	require.NoError(t, err)
	require.True(t, handed)
	require.Equal(t, 1, calls)
	require.True(t, p.flag(t, `SELECT lease_until IS NULL FROM shiftcast.notifications WHERE id = $1`, id))

	// A failing enqueue rolls the hand-off back: the lease stays, so the
	// sweep still finds the notification once it expires.
	id2 := func() string {
		p.shift(t, 11, 2, domain.CNA, 25*time.Hour)
		n, err := p.st.BuildDigest(bg, 1, p.now, 10, time.Hour, nil)
		require.NoError(t, err)
		return n.ID
	}()
	_, err = p.st.HandOffDelivery(bg, id2, func(context.Context, pgx.Tx) error { return context.DeadlineExceeded })
	require.Error(t, err)
	require.True(t, p.flag(t, `SELECT lease_until IS NOT NULL FROM shiftcast.notifications WHERE id = $1`, id2))
}

func TestFinishDelivery_FinishedNotificationsLeaveTheLeaseIndex(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	id := leasedNotification(t, p, time.Hour)
	want := []string{store.ChannelWebhook, store.ChannelNATS}

	status, err := p.st.FinishDelivery(bg, id, want, []string{store.ChannelNATS}, context.DeadlineExceeded, false)
	require.NoError(t, err)
	require.Equal(t, "pending", status)
	require.True(t, p.flag(t, `SELECT lease_until IS NOT NULL FROM shiftcast.notifications WHERE id = $1`, id),
		"a pending notification keeps its lease until handed off")

	status, err = p.st.FinishDelivery(bg, id, want, []string{store.ChannelWebhook}, nil, false)
	require.NoError(t, err)
	require.Equal(t, "delivered", status)
	require.True(t, p.flag(t, `SELECT lease_until IS NULL FROM shiftcast.notifications WHERE id = $1`, id))
	p.b.exec(t, `UPDATE shiftcast.notifications SET lease_until = now() - interval '1 second' WHERE id = $1`, id)
	require.Empty(t, sweep(t, p.st), "a delivered notification is never swept")
}
