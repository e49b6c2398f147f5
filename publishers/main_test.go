package publishers_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// testTimeout bounds every test's waits on NATS and HTTP.
const testTimeout = 20 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// connect returns a connection to a fresh NATS server of the test's own.
func connect(t *testing.T) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(testenv.NATS(t))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return nc, js
}

// createMarketplace creates the MARKETPLACE stream as DESIGN.md describes
// it; every test has a server of its own, so the name cannot collide.
func createMarketplace(ctx context.Context, t *testing.T, js jetstream.JetStream) jetstream.Stream {
	t.Helper()
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       "MARKETPLACE",
		Subjects:   []string{"marketplace.>"},
		Duplicates: 2 * time.Minute,
	})
	require.NoError(t, err)
	return s
}
