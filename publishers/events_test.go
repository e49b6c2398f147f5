package publishers_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/publishers"
	"github.com/shiftcast/shiftcast/testenv"
)

func shiftCreated(id int64) domain.ShiftCreated {
	start := time.Date(2026, 12, 1, 5, 0, 0, 0, time.UTC)
	return domain.ShiftCreated{ID: id, FacilityID: 1, Profession: "CNA", Start: start, End: start.Add(5 * time.Hour)}
}

func TestEventPublisher_PublishData(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	_, js := connect(t)
	stream := createMarketplace(ctx, t, js)
	pub := publishers.NewEventPublisher(js, publishers.EventPublisherOptions{Logger: testenv.Logger(t)})

	ev, ack, err := pub.PublishData(ctx, domain.TypeShiftCreated, shiftCreated(5000001))
	require.NoError(t, err)
	require.Equal(t, "MARKETPLACE", ack.Stream)
	require.False(t, ack.Duplicate)
	require.NotEmpty(t, ev.ID)
	require.Equal(t, publishers.DefaultSource, ev.Source)

	got, err := stream.GetMsg(ctx, ack.Sequence)
	require.NoError(t, err)
	require.Equal(t, "marketplace.shift.created", got.Subject)
	require.Equal(t, ev.ID, got.Header.Get(jetstream.MsgIDHeader))
	decoded, err := domain.DecodeEvent(got.Data)
	require.NoError(t, err)
	require.Equal(t, ev, decoded)
	want := shiftCreated(5000001)
	require.Equal(t, &want, decoded.Data)
}

func TestEventPublisher_Publish_duplicate(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	_, js := connect(t)
	stream := createMarketplace(ctx, t, js)
	pub := publishers.NewEventPublisher(js, publishers.EventPublisherOptions{Source: "test"})

	ev := domain.Event{ID: "evt-1", Type: domain.TypeShiftClaimed, Data: domain.ShiftClaimed{ShiftID: 1, WorkerID: 2}}
	first, err := pub.Publish(ctx, ev)
	require.NoError(t, err)
	require.False(t, first.Duplicate)
	second, err := pub.Publish(ctx, ev)
	require.NoError(t, err)
	require.True(t, second.Duplicate, "the same event id within the duplicate window must be dropped")
	require.Equal(t, first.Sequence, second.Sequence)

	info, err := stream.Info(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, info.State.Msgs)
	got, err := stream.GetMsg(ctx, first.Sequence)
	require.NoError(t, err)
	decoded, err := domain.DecodeEvent(got.Data)
	require.NoError(t, err)
	require.Equal(t, "test", decoded.Source, "the publisher's source fills an event without one")
	require.False(t, decoded.Time.IsZero(), "a zero time is filled with now")
}

func TestEventPublisher_Publish_invalid(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	_, js := connect(t)
	stream := createMarketplace(ctx, t, js)
	pub := publishers.NewEventPublisher(js, publishers.EventPublisherOptions{})

	bad := shiftCreated(1)
	bad.End = bad.Start.Add(-time.Hour)
	_, _, err := pub.PublishData(ctx, domain.TypeShiftCreated, bad)
	require.Error(t, err)
	require.Equal(t, domain.EINVALID, domain.ErrorCode(err))
	require.Contains(t, err.Error(), "is not after start")

	_, err = pub.Publish(ctx, domain.Event{Type: domain.TypeShiftDeleted, Data: domain.ShiftRef{ShiftID: 1}})
	require.Equal(t, domain.EINVALID, domain.ErrorCode(err), "an event without an id")
	_, _, err = pub.PublishData(ctx, "shift.exploded", domain.ShiftRef{ShiftID: 1})
	require.Equal(t, domain.EINVALID, domain.ErrorCode(err), "an unknown type")
	_, _, err = pub.PublishData(ctx, domain.TypeShiftDeleted, json.RawMessage(`{"shift_id":1,"extra":true}`))
	require.Equal(t, domain.EINVALID, domain.ErrorCode(err), "an unknown field")

	info, err := stream.Info(ctx)
	require.NoError(t, err)
	require.Zero(t, info.State.Msgs, "nothing invalid reaches the stream")
}

func TestEventPublisher_Publish_noStream(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	_, js := connect(t)
	pub := publishers.NewEventPublisher(js, publishers.EventPublisherOptions{
		RetryAttempts: 3, RetryWait: 20 * time.Millisecond, Logger: testenv.Logger(t),
	})

	start := time.Now()
	_, _, err := pub.PublishData(ctx, domain.TypeShiftDeleted, domain.ShiftRef{ShiftID: 1})
	require.Error(t, err)
	require.ErrorIs(t, err, jetstream.ErrNoStreamResponse)
	require.Contains(t, err.Error(), "gave up after 4 attempts")
	require.Contains(t, err.Error(), "MARKETPLACE stream")
	require.Less(t, time.Since(start), 2*time.Second)
}

func TestEventPublisher_Publish_streamCreatedWhileRetrying(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	_, js := connect(t)
	pub := publishers.NewEventPublisher(js, publishers.EventPublisherOptions{
		RetryAttempts: 1000, RetryFor: 10 * time.Second, RetryWait: 20 * time.Millisecond,
		MaxRetryWait: 100 * time.Millisecond, Logger: testenv.Logger(t),
	})

	created := make(chan struct{})
	go func() {
		defer close(created)
		time.Sleep(300 * time.Millisecond)
		// CreateOrUpdateStream would call t.FailNow off the test goroutine.
		_, _ = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "MARKETPLACE", Subjects: []string{"marketplace.>"}})
	}()
	_, ack, err := pub.PublishData(ctx, domain.TypeShiftDeleted, domain.ShiftRef{ShiftID: 1})
	<-created
	require.NoError(t, err)
	require.Equal(t, "MARKETPLACE", ack.Stream)
}

func TestEventPublisher_PublishRaw(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	_, js := connect(t)
	stream := createMarketplace(ctx, t, js)
	pub := publishers.NewEventPublisher(js, publishers.EventPublisherOptions{})

	malformed := []byte("{\"specversion\":\"1.0\", \"type\":\"shift.created\"  \n not json")
	ack, err := pub.PublishRaw(ctx, "marketplace.shift.created", malformed, "raw-1")
	require.NoError(t, err)
	got, err := stream.GetMsg(ctx, ack.Sequence)
	require.NoError(t, err)
	require.Equal(t, malformed, got.Data, "raw bytes are published untouched")
	require.Equal(t, "raw-1", got.Header.Get(jetstream.MsgIDHeader))

	ack, err = pub.PublishRaw(ctx, "marketplace.shift.created", []byte("x"), "")
	require.NoError(t, err)
	got, err = stream.GetMsg(ctx, ack.Sequence)
	require.NoError(t, err)
	require.Empty(t, got.Header.Get(jetstream.MsgIDHeader), "no id, no header")
}
