package bench

// `shiftcast bench deliveries`: run a Standard Webhooks receiver, publish
// shifts that reach many workers, and report how fast serve delivers the
// resulting notifications to the receiver.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/publishers"
	"github.com/shiftcast/shiftcast/store"
)

// --- the receiver ---

// Receipt is a notification's first arrival at the receiver.
type Receipt struct {
	ID        string
	At        time.Time // when the receiver got it
	CreatedAt time.Time // the notification's created_at
}

// Receiver is a Standard Webhooks endpoint that verifies every request's
// signature with publishers.Verify, answers 204, and records each distinct
// webhook-id once, counting repeats (retries of an id already received) and
// requests it rejected. It is safe for concurrent use.
type Receiver struct {
	secret    string
	tolerance time.Duration

	mu       sync.Mutex
	seen     map[string]struct{}
	receipts []Receipt

	requests, repeats, badSignatures, badRequests atomic.Int64
}

// NewReceiver returns a receiver verifying with secret ("whsec_" + base64).
func NewReceiver(secret string) (*Receiver, error) {
	if _, err := publishers.DecodeSecret(secret); err != nil {
		return nil, err
	}
	return &Receiver{secret: secret, seen: map[string]struct{}{}}, nil
}

// ServeHTTP implements http.Handler.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.requests.Add(1)
	if r.Method != http.MethodPost {
		rc.badRequests.Add(1)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	at := time.Now()
	if err != nil {
		rc.badRequests.Add(1)
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	if err := publishers.Verify(rc.secret, r.Header, body, rc.tolerance); err != nil {
		rc.badSignatures.Add(1)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var n struct {
		CreatedAt time.Time `json:"created_at"`
	}
	_ = json.Unmarshal(body, &n) // a body without created_at still counts
	id := r.Header.Get(publishers.HeaderWebhookID)
	rc.mu.Lock()
	if _, dup := rc.seen[id]; dup {
		rc.mu.Unlock()
		rc.repeats.Add(1)
	} else {
		rc.seen[id] = struct{}{}
		rc.receipts = append(rc.receipts, Receipt{ID: id, At: at, CreatedAt: n.CreatedAt})
		rc.mu.Unlock()
	}
	w.WriteHeader(http.StatusNoContent)
}

// ReceiverStats summarizes what a receiver got.
type ReceiverStats struct {
	// Distinct counts the distinct notifications created at or after the
	// since given to Stats; Older those created before it.
	Distinct, Older int64
	// Requests, Repeats, SignatureFailures and BadRequests count every
	// request since the receiver started.
	Requests, Repeats, SignatureFailures, BadRequests int64
	// First and Last bound the arrival of the Distinct notifications.
	First, Last time.Time
}

// Stats counts what was received; since (zero: everything) selects the
// notifications counted as Distinct by their created_at.
func (rc *Receiver) Stats(since time.Time) ReceiverStats {
	s := ReceiverStats{
		Requests: rc.requests.Load(), Repeats: rc.repeats.Load(),
		SignatureFailures: rc.badSignatures.Load(), BadRequests: rc.badRequests.Load(),
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, r := range rc.receipts {
		if r.CreatedAt.Before(since) {
			s.Older++
			continue
		}
		s.Distinct++
		if s.First.IsZero() || r.At.Before(s.First) {
			s.First = r.At
		}
		if r.At.After(s.Last) {
			s.Last = r.At
		}
	}
	return s
}

// Receipts returns a copy of the first arrivals created at or after since.
func (rc *Receiver) Receipts(since time.Time) []Receipt {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make([]Receipt, 0, len(rc.receipts))
	for _, r := range rc.receipts {
		if !r.CreatedAt.Before(since) {
			out = append(out, r)
		}
	}
	return out
}

// Listen serves the receiver on addr (host:port) until stop is called.
func (rc *Receiver) Listen(ctx context.Context, addr string) (stop func(context.Context) error, err error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("bench: webhook receiver: %w", err)
	}
	srv := &http.Server{Handler: rc, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() { _ = srv.Serve(ln) }()
	return srv.Shutdown, nil
}

// --- the run ---

// Defaults of DeliveriesConfig.
const (
	DefaultListen               = "127.0.0.1:9099"
	DefaultDeliveriesFacilities = 10
	DefaultDeliveriesWait       = 3 * time.Minute
	DefaultDeliveriesLinger     = 2 * time.Second
)

// DeliveriesConfig describes one `bench deliveries` run.
type DeliveriesConfig struct {
	NATSURL     string
	DatabaseURL string
	// NATSOptions are extra connection options (credentials, TLS).
	NATSOptions []nats.Option
	// Listen is the receiver's address; serve's --webhook-url must point
	// at it. Secret is serve's --webhook-secret.
	Listen string
	Secret string
	// Facilities is how many facilities get a new shift of every
	// profession: the active ones with the fewest requirements, whose
	// shifts reach the most workers (default 10).
	Facilities int
	// Wait bounds the wait for the expected notifications (default 3m);
	// Linger is how long the receiver keeps counting after that, for
	// repeats (default 2s).
	Wait, Linger time.Duration
	Progress     io.Writer
}

// DeliveriesReport is the outcome of a `bench deliveries` run.
type DeliveriesReport struct {
	Listen     string  `json:"listen"`
	Run        string  `json:"run"`
	Facilities []int64 `json:"facilities"`
	Shifts     int     `json:"shifts_published"`
	// Expected is the number of distinct workers the new shifts reach, so
	// the number of notifications the run should produce.
	Expected int64 `json:"expected"`
	// Received counts distinct notifications created during the run;
	// Older, distinct ones built before it (earlier load's leftovers).
	Received          int64 `json:"received"`
	Older             int64 `json:"older"`
	Repeats           int64 `json:"repeats"`
	SignatureFailures int64 `json:"signature_failures"`
	Complete          bool  `json:"complete"`
	// Window is first to last receipt; Rate is Received / Window.
	Window time.Duration `json:"window_ns"`
	Rate   float64       `json:"deliveries_per_s"`
	// FirstAfter and LastAfter are the first and last receipt measured
	// from the publication of the shifts (they include the digest window).
	FirstAfter time.Duration `json:"first_after_ns"`
	LastAfter  time.Duration `json:"last_after_ns"`
	// Latency from a notification's created_at to its receipt.
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
	// Created and Delivered are shiftcast.notifications rows created since
	// the run began, and how many are marked delivered.
	Created   int64 `json:"notifications_created"`
	Delivered int64 `json:"notifications_delivered"`
}

// Print writes r as a compact human-readable block.
func (r DeliveriesReport) Print(w io.Writer) {
	var b strings.Builder
	ids := make([]string, len(r.Facilities))
	for i, id := range r.Facilities {
		ids[i] = strconv.FormatInt(id, 10)
	}
	fmt.Fprintf(&b, "receiver     http://%s (run %s*)\n", r.Listen, r.Run)
	fmt.Fprintf(&b, "published    %d shift.created (every profession at facilities %s)\n", r.Shifts, strings.Join(ids, ","))
	fmt.Fprintf(&b, "received     %d distinct notifications of %d expected", r.Received, r.Expected)
	if !r.Complete {
		b.WriteString(" — INCOMPLETE")
	}
	fmt.Fprintf(&b, "; %d repeats, %d signature failures, %d older\n", r.Repeats, r.SignatureFailures, r.Older)
	fmt.Fprintf(&b, "throughput   %.1f deliveries/s (distinct received / first to last receipt, %s)\n", r.Rate, r.Window.Round(time.Millisecond))
	fmt.Fprintf(&b, "timeline     first receipt %s, last %s after publishing (includes the digest window)\n",
		r.FirstAfter.Round(time.Millisecond), r.LastAfter.Round(time.Millisecond))
	fmt.Fprintf(&b, "latency      created_at → received: p50 %s  p99 %s  max %s\n", fmtLatency(r.P50), fmtLatency(r.P99), fmtLatency(r.Max))
	fmt.Fprintf(&b, "database     %d notifications created since the start, %d delivered\n", r.Created, r.Delivered)
	_, _ = io.WriteString(w, b.String())
}

func (c DeliveriesConfig) withDefaults() (DeliveriesConfig, error) {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Facilities == 0 {
		c.Facilities = DefaultDeliveriesFacilities
	}
	if c.Facilities < 0 {
		return c, fmt.Errorf("bench deliveries: facilities must be positive, got %d", c.Facilities)
	}
	if c.Wait <= 0 {
		c.Wait = DefaultDeliveriesWait
	}
	if c.Linger <= 0 {
		c.Linger = DefaultDeliveriesLinger
	}
	if c.NATSURL == "" {
		c.NATSURL = DefaultNATSURL
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = DefaultDatabaseURL
	}
	return c, nil
}

// RunDeliveries runs the benchmark cfg describes. It returns an error
// alongside the report when the expected notifications did not all arrive
// within cfg.Wait.
func RunDeliveries(ctx context.Context, cfg DeliveriesConfig) (DeliveriesReport, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return DeliveriesReport{}, err
	}
	rc, err := NewReceiver(cfg.Secret)
	if err != nil {
		return DeliveriesReport{}, fmt.Errorf("bench deliveries: --webhook-secret: %w", err)
	}
	stop, err := rc.Listen(ctx, cfg.Listen)
	if err != nil {
		return DeliveriesReport{}, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = stop(sctx)
	}()

	st, err := store.Open(ctx, cfg.DatabaseURL, store.Config{MaxConns: 2})
	if err != nil {
		return DeliveriesReport{}, fmt.Errorf("bench deliveries: %w", err)
	}
	defer st.Close()
	nc, err := nats.Connect(cfg.NATSURL, append(slices.Clone(cfg.NATSOptions), nats.Name("shiftcast-bench-deliveries"))...)
	if err != nil {
		return DeliveriesReport{}, fmt.Errorf("bench deliveries: connect %s: %w", cfg.NATSURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return DeliveriesReport{}, fmt.Errorf("bench deliveries: jetstream: %w", err)
	}

	facilities, err := st.BenchDeliveryFacilities(ctx, cfg.Facilities)
	if err != nil {
		return DeliveriesReport{}, fmt.Errorf("bench deliveries: %w", err)
	}
	if len(facilities) == 0 {
		return DeliveriesReport{}, errors.New("bench deliveries: no active facility (seed the database: shiftcast seed --profile marketplace)")
	}
	expected, err := st.BenchFanoutReach(ctx, facilities)
	if err != nil {
		return DeliveriesReport{}, fmt.Errorf("bench deliveries: %w", err)
	}
	maxID, err := st.BenchMaxShiftID(ctx)
	if err != nil {
		return DeliveriesReport{}, fmt.Errorf("bench deliveries: %w", err)
	}

	start := time.Now()
	run := fmt.Sprintf("bench-%s%04x-d", start.UTC().Format("060102150405"), rand.N(0x10000))
	rep := DeliveriesReport{Listen: cfg.Listen, Run: run, Facilities: facilities, Expected: expected}
	progress(cfg.Progress, "bench deliveries: receiver on %s; publishing a shift of every profession at %d facilities, reaching %d workers",
		cfg.Listen, len(facilities), expected)

	pub := publishers.NewEventPublisher(js, publishers.EventPublisherOptions{Source: EventsSource, RetryFor: 10 * time.Second, RetryAttempts: 100})
	shiftStart := start.UTC().Truncate(24 * time.Hour).Add(24*time.Hour + 7*time.Hour)
	id := maxID
	for _, f := range facilities {
		for _, p := range domain.Professions {
			id++
			ev := domain.Event{
				ID: run + strconv.FormatInt(id, 10), Type: domain.TypeShiftCreated, Time: time.Now(),
				Data: &domain.ShiftCreated{ID: id, FacilityID: f, Profession: p, Start: shiftStart, End: shiftStart.Add(8 * time.Hour)},
			}
			if _, err := pub.Publish(ctx, ev); err != nil {
				return rep, fmt.Errorf("bench deliveries: %w (is serve running against %s?)", err, cfg.NATSURL)
			}
			rep.Shifts++
		}
	}
	published := time.Now()

	// The receiver is polled often; the database (a scan of the
	// notifications table) only every few seconds, so as not to load
	// what is being measured.
	deadline := published.Add(cfg.Wait)
	lastCheck, lastCount, lastChange := time.Now(), int64(-1), time.Now()
	for ctx.Err() == nil && time.Now().Before(deadline) {
		s := rc.Stats(start)
		if s.Distinct >= expected {
			rep.Complete = true
			break
		}
		if s.Distinct != lastCount {
			lastCount, lastChange = s.Distinct, time.Now()
		}
		if time.Since(lastCheck) >= 5*time.Second {
			lastCheck = time.Now()
			created, _, err := st.BenchNotificationsSince(ctx, start)
			if err == nil && s.Distinct > 0 && s.Distinct >= created && time.Since(lastChange) > 15*time.Second {
				break // everything built was received and nothing new for a while: fewer than expected
			}
			progress(cfg.Progress, "bench deliveries: %d of %d received (%d notifications built so far)", s.Distinct, expected, created)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	if rep.Complete {
		select { // let retries and stragglers arrive, to be counted
		case <-ctx.Done():
		case <-time.After(cfg.Linger):
		}
	}

	s := rc.Stats(start)
	rep.Received, rep.Older, rep.Repeats, rep.SignatureFailures = s.Distinct, s.Older, s.Repeats, s.SignatureFailures
	if s.Distinct > 0 {
		rep.Window = s.Last.Sub(s.First)
		if rep.Window > 0 {
			rep.Rate = float64(s.Distinct) / rep.Window.Seconds()
		}
		rep.FirstAfter, rep.LastAfter = s.First.Sub(published), s.Last.Sub(published)
	}
	receipts := rc.Receipts(start)
	lat := make([]time.Duration, 0, len(receipts))
	for _, r := range receipts {
		if !r.CreatedAt.IsZero() {
			lat = append(lat, max(r.At.Sub(r.CreatedAt), 0))
		}
	}
	slices.Sort(lat)
	rep.P50, rep.P99 = Percentile(lat, 50), Percentile(lat, 99)
	if len(lat) > 0 {
		rep.Max = lat[len(lat)-1]
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	rep.Created, rep.Delivered, _ = st.BenchNotificationsSince(rctx, start)

	switch {
	case ctx.Err() != nil:
		return rep, fmt.Errorf("bench deliveries: interrupted: %w", ctx.Err())
	case !rep.Complete && rep.Received == 0 && rep.Created == 0:
		return rep, fmt.Errorf("bench deliveries: no notification was built within %s (is serve running against %s, with its River workers?)", cfg.Wait, redactURL(cfg.DatabaseURL))
	case !rep.Complete && rep.Received == 0:
		return rep, fmt.Errorf("bench deliveries: %d notifications were built but none received (is serve started with --webhook-url http://%s and this --webhook-secret?)", rep.Created, cfg.Listen)
	case !rep.Complete:
		return rep, fmt.Errorf("bench deliveries: received %d of %d expected notifications within %s", rep.Received, expected, cfg.Wait)
	}
	return rep, nil
}
