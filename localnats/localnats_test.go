package localnats_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/localnats"
)

func TestStartJetStream(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	srv, err := localnats.Start(localnats.Options{StoreDir: t.TempDir(), ServerName: "localnats_test"})
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	require.True(t, srv.NATSServer().JetStreamEnabled())

	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}})
	require.NoError(t, err)
	_, err = js.Publish(ctx, "t.one", []byte("hello"))
	require.NoError(t, err)

	srv.Shutdown()
	srv.Shutdown() // idempotent
	_, err = nats.Connect(srv.ClientURL(), nats.Timeout(time.Second))
	require.Error(t, err, "nothing may listen after Shutdown")
}
