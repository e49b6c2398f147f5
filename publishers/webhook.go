package publishers

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/shiftcast/shiftcast/domain"
)

// Standard Webhooks headers (https://www.standardwebhooks.com).
const (
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

const (
	// secretPrefix starts a Standard Webhooks secret; the rest is base64.
	secretPrefix = "whsec_"
	// DefaultWebhookTimeout bounds one delivery when NewWebhook is given no
	// client: a receiver that hangs must not hold a worker forever.
	DefaultWebhookTimeout = 10 * time.Second
	// DefaultVerifyTolerance is Verify's tolerance when given none: the
	// Standard Webhooks reference libraries' five minutes.
	DefaultVerifyTolerance = 5 * time.Minute
	// errorBodyLimit is how much of a failed response's body a DeliveryError
	// keeps: enough for the receiver's error message, not a whole page.
	errorBodyLimit = 512
)

// Webhook delivers notifications by POSTing them, signed as Standard
// Webhooks specifies, to one URL. It is safe for concurrent use.
type Webhook struct {
	url    string
	key    []byte
	client *http.Client
	now    func() time.Time
}

var _ interface {
	Deliver(context.Context, domain.Notification) error
} = (*Webhook)(nil)

// NewWebhook returns a webhook delivering to rawURL, signing with secret
// ("whsec_" + base64, or the base64 alone). A nil client means one with
// DefaultWebhookTimeout that does not follow redirects: a 301 or 302
// would turn the POST into a GET, whose 200 is no delivery, so a redirect
// is reported as a failed delivery instead.
func NewWebhook(rawURL, secret string, client *http.Client) (*Webhook, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, domain.Errorf(domain.EINVALID, "webhook URL must be an absolute http(s) URL, got %q", redactURL(rawURL))
	}
	key, err := DecodeSecret(secret)
	if err != nil {
		return nil, err
	}
	if client == nil {
		client = &http.Client{
			Timeout: DefaultWebhookTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	return &Webhook{url: rawURL, key: key, client: client, now: time.Now}, nil
}

// DecodeSecret returns the HMAC key of a Standard Webhooks secret: the
// base64 after the "whsec_" prefix, or the whole string when it has no
// prefix.
func DecodeSecret(secret string) ([]byte, error) {
	b64 := strings.TrimPrefix(strings.TrimSpace(secret), secretPrefix)
	if b64 == "" {
		return nil, domain.Errorf(domain.EINVALID, "webhook secret is empty (want whsec_ followed by base64)")
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		// Some generators drop the padding; the key is the same.
		if k, rawErr := base64.RawStdEncoding.DecodeString(b64); rawErr == nil {
			key, err = k, nil
		}
	}
	if err != nil {
		// The secret itself must not end up in logs, so the error does not quote it.
		return nil, domain.Errorf(domain.EINVALID, "webhook secret is not whsec_ followed by standard base64: %v", err)
	}
	if len(key) == 0 {
		return nil, domain.Errorf(domain.EINVALID, "webhook secret decodes to an empty key")
	}
	return key, nil
}

// DeliveryError is a failed delivery: the receiver answered with a non-2xx
// status, or could not be reached (StatusCode 0, Err set). Only Permanent
// failures (410 Gone: the receiver says the endpoint is gone) should stop
// retries; Standard Webhooks senders retry everything else.
type DeliveryError struct {
	StatusCode int
	Permanent  bool
	// RetryAfter is the receiver's Retry-After, in seconds form, if any.
	RetryAfter time.Duration
	// Body is the start of the receiver's answer, for diagnosis.
	Body string
	Err  error
}

// Error implements the error interface.
func (e *DeliveryError) Error() string {
	if e.StatusCode == 0 {
		return fmt.Sprintf("webhook unreachable: %v", e.Err)
	}
	msg := fmt.Sprintf("webhook answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// Unwrap returns the network error, if any.
func (e *DeliveryError) Unwrap() error { return e.Err }

// Deliver POSTs n as JSON with Standard Webhooks headers: webhook-id is
// n.ID, so a receiver can drop retries it already processed, and the body
// is the same bytes on every retry. A non-2xx answer or a network failure
// is a *DeliveryError.
func (w *Webhook) Deliver(ctx context.Context, n domain.Notification) error {
	body, err := EncodeNotification(n)
	if err != nil {
		return err
	}
	ts := w.now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("deliver notification %s: build request: %w", n.ID, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "shiftcast-webhook/1")
	req.Header.Set(HeaderWebhookID, n.ID)
	req.Header.Set(HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set(HeaderWebhookSignature, Sign(w.key, n.ID, ts, body))
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("deliver notification %s to %s: %w", n.ID, redactURL(w.url), &DeliveryError{Err: err})
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// Reading the rest lets the connection be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyLimit))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	derr := &DeliveryError{
		StatusCode: resp.StatusCode,
		Permanent:  resp.StatusCode == http.StatusGone,
		Body:       strings.TrimSpace(string(snippet)),
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		derr.RetryAfter = time.Duration(s) * time.Second
	}
	return fmt.Errorf("deliver notification %s to %s: %w", n.ID, redactURL(w.url), derr)
}

// EncodeNotification returns the JSON both channels deliver. It is
// deterministic for a notification, however it was obtained: times are
// UTC at microsecond precision, what PostgreSQL keeps, so a notification
// rebuilt from the database for a retry encodes to the same bytes as the
// first attempt; no shifts encode as [] rather than null.
func EncodeNotification(n domain.Notification) ([]byte, error) {
	n.CreatedAt = normTime(n.CreatedAt)
	shifts := make([]domain.NotificationShift, len(n.Shifts))
	for i, s := range n.Shifts {
		s.Start, s.End = normTime(s.Start), normTime(s.End)
		shifts[i] = s
	}
	n.Shifts = shifts
	body, err := json.Marshal(n)
	if err != nil {
		return nil, fmt.Errorf("encode notification %s: %w", n.ID, err)
	}
	return body, nil
}

func normTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// Sign returns the webhook-signature value for a message: "v1," and the
// base64 HMAC-SHA256, under key, of id "." unix-seconds "." body.
func Sign(key []byte, id string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Verify checks a received webhook, as a receiver should: the headers are
// present, the timestamp is within tolerance of now (either way; 0 means
// DefaultVerifyTolerance) so a captured request cannot be replayed later,
// and one of the space-separated v1 signatures matches body under secret.
func Verify(secret string, headers http.Header, body []byte, tolerance time.Duration) error {
	return verifyAt(secret, headers, body, tolerance, time.Now())
}

func verifyAt(secret string, headers http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	key, err := DecodeSecret(secret)
	if err != nil {
		return err
	}
	if tolerance <= 0 {
		tolerance = DefaultVerifyTolerance
	}
	id, rawTS, sigs := headers.Get(HeaderWebhookID), headers.Get(HeaderWebhookTimestamp), headers.Get(HeaderWebhookSignature)
	if id == "" || rawTS == "" || sigs == "" {
		return errors.New("verify webhook: missing webhook-id, webhook-timestamp or webhook-signature header")
	}
	secs, err := strconv.ParseInt(rawTS, 10, 64)
	if err != nil {
		return fmt.Errorf("verify webhook %s: timestamp %q is not unix seconds", id, rawTS)
	}
	ts := time.Unix(secs, 0)
	if d := now.Sub(ts); d > tolerance || d < -tolerance {
		return fmt.Errorf("verify webhook %s: timestamp %s is %s away from now, beyond the %s tolerance",
			id, ts.UTC().Format(time.RFC3339), d.Round(time.Second), tolerance)
	}
	want := []byte(Sign(key, id, ts, body))
	for _, sig := range strings.Fields(sigs) {
		if hmac.Equal([]byte(sig), want) {
			return nil
		}
	}
	return fmt.Errorf("verify webhook %s: no matching v1 signature", id)
}

// redactURL hides a URL's password for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
