package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/require"
)

// A server that only admits one NKey: --nats-nkey gets in, nothing else does.
func TestCommon_NATSOptionsNKey(t *testing.T) {
	t.Parallel()
	kp, err := nkeys.CreateUser()
	require.NoError(t, err)
	pub, err := kp.PublicKey()
	require.NoError(t, err)
	seed, err := kp.Seed()
	require.NoError(t, err)
	seedFile := filepath.Join(t.TempDir(), "user.nk")
	require.NoError(t, os.WriteFile(seedFile, seed, 0o600))

	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, Nkeys: []*server.NkeyUser{{Nkey: pub}}})
	require.NoError(t, err)
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	require.True(t, srv.ReadyForConnections(10*time.Second))

	c := common{natsURL: srv.ClientURL(), natsNKey: seedFile}
	opts, err := c.natsOptions()
	require.NoError(t, err)
	nc, err := nats.Connect(c.natsURL, opts...)
	require.NoError(t, err)
	nc.Close()

	_, err = nats.Connect(c.natsURL)
	require.Error(t, err, "the server must refuse a connection without the key")
}

func TestCommon_NATSOptionsInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		c    common
	}{
		{"certificate without key", common{natsCert: "cert.pem"}},
		{"key without certificate", common{natsCertKey: "key.pem"}},
		{"missing nkey seed file", common{natsNKey: filepath.Join(t.TempDir(), "absent.nk")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tt.c.natsOptions()
			require.ErrorIs(t, err, errUsage)
		})
	}
}
