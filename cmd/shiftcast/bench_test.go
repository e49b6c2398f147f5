package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/publishers"
)

// bench receiver keeps accepting serve's deliveries between runs and, when
// interrupted, says what it got.
func TestRunBenchReceiver(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("a secret of twenty-four!"))

	ctx, cancel := context.WithCancel(t.Context())
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- runBench(ctx, []string{"receiver", "--listen", addr, "--webhook-secret", secret}, func(string) string { return "" }, &out)
	}()

	hook, err := publishers.NewWebhook("http://"+addr, secret, &http.Client{Timeout: 5 * time.Second})
	require.NoError(t, err)
	n := domain.Notification{ID: "0194b3a8-0000-7000-8000-000000000001", Type: domain.NotificationTypeShiftsAvailable, WorkerID: 7, Count: 1, CreatedAt: time.Now().UTC()}
	require.Eventually(t, func() bool { return hook.Deliver(t.Context(), n) == nil }, 10*time.Second, 20*time.Millisecond,
		"the receiver accepts a signed delivery")

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("bench receiver did not stop when interrupted")
	}
	require.True(t, strings.HasPrefix(out.String(), "receiver     1 distinct notifications, "), out.String())
	require.Contains(t, out.String(), "0 signature failures")
}

func TestRunBenchReceiver_needsASecret(t *testing.T) {
	t.Parallel()
	err := runBench(t.Context(), []string{"receiver"}, func(string) string { return "" }, &bytes.Buffer{})
	require.ErrorIs(t, err, errUsage)
}
