package publishers_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/publishers"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func testNotification() domain.Notification {
	start := time.Date(2026, 12, 1, 5, 0, 0, 0, time.FixedZone("EST", -5*3600))
	return domain.Notification{
		ID: "ntf_01", Type: domain.NotificationTypeShiftsAvailable, WorkerID: 7, Count: 3,
		Shifts: []domain.NotificationShift{
			{ID: 11, FacilityID: 2, Profession: "RN", Start: start, End: start.Add(5 * time.Hour)},
		},
		// Nanoseconds and a zone: what a freshly built notification has, and
		// what one read back from PostgreSQL does not.
		CreatedAt: time.Date(2026, 11, 30, 12, 0, 0, 123456789, time.Local),
	}
}

// received is one request a test receiver got.
type received struct {
	header http.Header
	body   []byte
	verify error
}

// receiver is an httptest server answering status and recording requests,
// each checked with Verify as a real receiver would.
func receiver(t *testing.T, status int) (*httptest.Server, func() []received) {
	t.Helper()
	var (
		mu  sync.Mutex
		got []received
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, received{header: r.Header.Clone(), body: body, verify: publishers.Verify(testSecret, r.Header, body, time.Minute)})
		mu.Unlock()
		w.WriteHeader(status)
		_, _ = w.Write([]byte("receiver says no"))
	}))
	t.Cleanup(srv.Close)
	return srv, func() []received {
		mu.Lock()
		defer mu.Unlock()
		return append([]received(nil), got...)
	}
}

func TestWebhook_Deliver(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	srv, requests := receiver(t, http.StatusNoContent)
	wh, err := publishers.NewWebhook(srv.URL, testSecret, srv.Client())
	require.NoError(t, err)

	n := testNotification()
	require.NoError(t, wh.Deliver(ctx, n))
	// A retry rebuilds the notification from the database: UTC, microseconds.
	retry := n
	retry.CreatedAt = n.CreatedAt.UTC().Truncate(time.Microsecond)
	retry.Shifts = []domain.NotificationShift{n.Shifts[0]}
	retry.Shifts[0].Start, retry.Shifts[0].End = n.Shifts[0].Start.UTC(), n.Shifts[0].End.UTC()
	require.NoError(t, wh.Deliver(ctx, retry))

	got := requests()
	require.Len(t, got, 2)
	for _, r := range got {
		require.NoError(t, r.verify)
		require.Equal(t, "application/json", r.header.Get("Content-Type"))
		require.Equal(t, "ntf_01", r.header.Get("webhook-id"))
		require.Regexp(t, `^v1,[A-Za-z0-9+/]+=*$`, r.header.Get("webhook-signature"))
		ts, err := strconv.ParseInt(r.header.Get("webhook-timestamp"), 10, 64)
		require.NoError(t, err)
		require.WithinDuration(t, time.Now(), time.Unix(ts, 0), time.Minute)
	}
	require.Equal(t, got[0].body, got[1].body, "a retry sends the same bytes")

	var body domain.Notification
	require.NoError(t, json.Unmarshal(got[0].body, &body))
	require.Equal(t, "shifts.available", body.Type)
	require.EqualValues(t, 7, body.WorkerID)
	require.Len(t, body.Shifts, 1)
	require.True(t, body.Shifts[0].Start.Equal(n.Shifts[0].Start))
	require.JSONEq(t, `{"id":"ntf_01","type":"shifts.available","worker_id":7,"count":3,
		"shifts":[{"id":11,"facility_id":2,"profession":"RN","start":"2026-12-01T10:00:00Z","end":"2026-12-01T15:00:00Z"}],
		"created_at":"`+n.CreatedAt.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano)+`"}`, string(got[0].body))
}

func TestWebhook_Deliver_failure(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	for _, tc := range []struct {
		status    int
		permanent bool
	}{
		{http.StatusInternalServerError, false},
		{http.StatusBadRequest, false},
		{http.StatusTooManyRequests, false},
		{http.StatusGone, true},
	} {
		srv, _ := receiver(t, tc.status)
		wh, err := publishers.NewWebhook(srv.URL, testSecret, nil)
		require.NoError(t, err)
		err = wh.Deliver(ctx, testNotification())
		var derr *publishers.DeliveryError
		require.ErrorAs(t, err, &derr, "status %d", tc.status)
		require.Equal(t, tc.status, derr.StatusCode)
		require.Equal(t, tc.permanent, derr.Permanent, "status %d", tc.status)
		require.Equal(t, "receiver says no", derr.Body)
		require.Contains(t, err.Error(), "ntf_01")
	}

	// Nobody listening: a network error, status 0, retryable.
	srv, _ := receiver(t, http.StatusOK)
	url := srv.URL
	srv.Close()
	wh, err := publishers.NewWebhook(url, testSecret, nil)
	require.NoError(t, err)
	err = wh.Deliver(ctx, testNotification())
	var derr *publishers.DeliveryError
	require.ErrorAs(t, err, &derr)
	require.Zero(t, derr.StatusCode)
	require.False(t, derr.Permanent)
	require.Error(t, derr.Err)
}

func TestNewWebhook_secret(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "whsec_", "whsec_not*base64!", "whsec_MfKQ9r8G KYqr"} {
		_, err := publishers.NewWebhook("https://example.com/hook", bad, nil)
		require.Error(t, err, "secret %q", bad)
		require.Equal(t, domain.EINVALID, domain.ErrorCode(err))
		require.NotContains(t, err.Error(), "not*base64!", "the error must not quote the secret")
	}
	_, err := publishers.NewWebhook("https://example.com/hook", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", nil)
	require.NoError(t, err, "a secret without the prefix is raw base64")
	_, err = publishers.NewWebhook("example.com/hook", testSecret, nil)
	require.Error(t, err, "a URL without a scheme")

	key, err := publishers.DecodeSecret(testSecret)
	require.NoError(t, err)
	want, _ := base64.StdEncoding.DecodeString("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	require.Equal(t, want, key)
}

func TestSign(t *testing.T) {
	t.Parallel()
	key, err := publishers.DecodeSecret(testSecret)
	require.NoError(t, err)
	id, ts, body := "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`)

	// Computed here from the documented string, independently of Sign.
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + ".1614265330." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	require.Equal(t, want, publishers.Sign(key, id, ts, body))
	// The Standard Webhooks specification's own example.
	require.Equal(t, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", publishers.Sign(key, id, ts, body))
}

func TestVerify(t *testing.T) {
	t.Parallel()
	key, err := publishers.DecodeSecret(testSecret)
	require.NoError(t, err)
	body := []byte(`{"id":"ntf_01"}`)
	headers := func(ts time.Time, sig string) http.Header {
		h := http.Header{}
		h.Set("webhook-id", "ntf_01")
		h.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
		h.Set("webhook-signature", sig)
		return h
	}
	now := time.Now()
	good := publishers.Sign(key, "ntf_01", now, body)

	require.NoError(t, publishers.Verify(testSecret, headers(now, good), body, time.Minute))
	require.NoError(t, publishers.Verify(testSecret, headers(now, "v1,bm9wZQ== "+good), body, time.Minute),
		"any of several space-separated signatures may match (key rotation)")

	require.ErrorContains(t, publishers.Verify(testSecret, headers(now, good), []byte(`{"id":"ntf_02"}`), time.Minute),
		"no matching v1 signature", "a tampered body")
	old := now.Add(-10 * time.Minute)
	require.ErrorContains(t, publishers.Verify(testSecret, headers(old, publishers.Sign(key, "ntf_01", old, body)), body, 5*time.Minute),
		"tolerance", "a correctly signed but old request (a replay)")
	future := now.Add(10 * time.Minute)
	require.ErrorContains(t, publishers.Verify(testSecret, headers(future, publishers.Sign(key, "ntf_01", future, body)), body, 5*time.Minute),
		"tolerance", "a timestamp from the future")
	require.Error(t, publishers.Verify("whsec_"+base64.StdEncoding.EncodeToString([]byte("another key")), headers(now, good), body, time.Minute),
		"another secret")
	h := headers(now, good)
	h.Del("webhook-id")
	require.ErrorContains(t, publishers.Verify(testSecret, h, body, time.Minute), "missing")
}

func TestDeliveryError_Error(t *testing.T) {
	t.Parallel()
	require.Equal(t, "webhook answered 503 Service Unavailable: busy", (&publishers.DeliveryError{StatusCode: 503, Body: "busy"}).Error())
	netErr := errors.New("connection refused")
	e := &publishers.DeliveryError{Err: netErr}
	require.ErrorIs(t, e, netErr)
	require.Equal(t, "webhook unreachable: connection refused", e.Error())
}

func TestWebhook_Deliver_redirect(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	target, requests := receiver(t, http.StatusOK)
	srv := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusFound))
	t.Cleanup(srv.Close)
	wh, err := publishers.NewWebhook(srv.URL, testSecret, nil)
	require.NoError(t, err)
	var derr *publishers.DeliveryError
	require.ErrorAs(t, wh.Deliver(ctx, testNotification()), &derr, "a redirect is not a delivery")
	require.Equal(t, http.StatusFound, derr.StatusCode)
	require.Empty(t, requests())
}
