package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/shiftcast/shiftcast/admission"
	"github.com/shiftcast/shiftcast/consumers"
	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/jobs"
	"github.com/shiftcast/shiftcast/metrics"
	"github.com/shiftcast/shiftcast/publishers"
	"github.com/shiftcast/shiftcast/store"
)

// pipelineConfig is the event pipeline's part of serve's configuration.
type pipelineConfig struct {
	events, work     bool
	webhookURL       string
	webhookSecret    string
	digestWindow     time.Duration
	digestGrace      time.Duration
	digestSize       int
	deliveryAttempts int
	retryBase        time.Duration
	deliveryLease    time.Duration
	notifyWorkers    int
	consumerWorkers  int
	eventBatch       int
	digestRate       float64
	digestFloor      float64
	eventWaitTarget  time.Duration
	fanoutRate       float64
	fanoutSpread     time.Duration
	maxDeliver       int
	replicas         int
	duplicateWindow  time.Duration
	ackWait          time.Duration
	eventRetry       time.Duration
	crashAfterCommit int
}

func (c *pipelineConfig) register(fs *flag.FlagSet, getenv func(string) string) error {
	window, err := time.ParseDuration(envOr(getenv, "DIGEST_WINDOW", "30s"))
	if err != nil {
		return fmt.Errorf("%w: DIGEST_WINDOW: %w", errUsage, err)
	}
	fs.BoolVar(&c.events, "events", true, "consume marketplace events from JetStream")
	fs.BoolVar(&c.work, "jobs", true, "run the River workers (fan-out, digests, deliveries)")
	fs.StringVar(&c.webhookURL, "webhook-url", getenv("WEBHOOK_URL"), "webhook receiving notifications; none when empty (env WEBHOOK_URL)")
	fs.StringVar(&c.webhookSecret, "webhook-secret", getenv("WEBHOOK_SECRET"), "Standard Webhooks signing secret, whsec_ + base64 (env WEBHOOK_SECRET)")
	fs.DurationVar(&c.digestWindow, "digest-window", window, "one push per worker per window (env DIGEST_WINDOW)")
	fs.DurationVar(&c.digestGrace, "digest-grace", time.Second, "wait after a window ends before building its digests")
	fs.IntVar(&c.digestSize, "digest-size", 10, "shifts listed in a notification (all are counted)")
	fs.IntVar(&c.deliveryAttempts, "delivery-attempts", 10, "delivery attempts before a notification is marked failed")
	fs.DurationVar(&c.retryBase, "delivery-retry", time.Second, "first delivery retry delay, doubled per attempt")
	fs.DurationVar(&c.deliveryLease, "delivery-lease", time.Minute, "how long a digest's builder owns its first delivery before a sweep (every quarter of it) hands it to a deliver job: the delay after a crash mid-delivery")
	fs.DurationVar(&c.fanoutSpread, "fanout-spread", 0, "how long a fan-out spreads the notify jobs it inserts over (0: --digest-window divided by the three professions, whose fan-outs run one after another; negative: at once), so that a window's end does not take the database from the events")
	fs.Float64Var(&c.fanoutRate, "fanout-rate", 500, "least notify jobs per second a spread fan-out inserts, so that a small one is not drawn out (0: no floor)")
	fs.Float64Var(&c.digestRate, "digest-rate", 0, "most digests this instance builds per second, at all times (0: no fixed limit)")
	fs.DurationVar(&c.eventWaitTarget, "event-wait-target", 50*time.Millisecond, "digests give way to the events while more than 1% of them wait longer than this from stream to commit: they slow down, down to --digest-floor, and a worker's news coalesces meanwhile (0: never)")
	fs.Float64Var(&c.digestFloor, "digest-floor", 50, "least digests per second this instance builds while giving way to the events (0: the default, 50)")
	fs.IntVar(&c.notifyWorkers, "notify-workers", 500, "notify jobs run at once by this instance (River notify queue workers); their digests are built in shared batches")
	fs.IntVar(&c.consumerWorkers, "event-workers", 128, "events handled at once by this instance (enough to fill the batches of the four transactions applying them)")
	fs.IntVar(&c.eventBatch, "event-batch", 32, "most events applied in one transaction (at most 64)")
	fs.IntVar(&c.maxDeliver, "event-max-deliver", 10, "deliveries of an event that keeps failing before it is dead-lettered")
	fs.IntVar(&c.replicas, "stream-replicas", 1, "replicas of the MARKETPLACE streams (3 on a cluster)")
	fs.DurationVar(&c.duplicateWindow, "stream-duplicate-window", 2*time.Minute, "JetStream duplicate window of the streams")
	fs.DurationVar(&c.ackWait, "event-ack-wait", 30*time.Second, "how long an applied-but-unacknowledged event waits before redelivery (a crashed instance's events)")
	fs.DurationVar(&c.eventRetry, "event-retry", 100*time.Millisecond, "first retry delay of an event that could not be applied yet, doubled per delivery up to a minute")
	fs.IntVar(&c.crashAfterCommit, "failpoint-crash-after-commit", 0, "testing only: exit the process right after the Nth event commits, before its ack")
	return nil
}

// pipeline is the running event pipeline: the River client and the event
// consumer, started once PostgreSQL is migrated and NATS answers.
type pipeline struct {
	jobs     *jobs.Pipeline
	metrics  *metrics.Metrics
	governor *admission.Governor
	log      *zap.Logger

	riverStarted bool // touched only by run's goroutine, then by stop after done

	// consumer is the event consumer once started; atomic, since the
	// governor's goroutine reads it.
	consumer atomic.Pointer[consumers.EventConsumer]

	// lastEvent is when this instance last handled an event (Unix
	// nanoseconds), for eventsBusy.
	lastEvent atomic.Int64

	mu      sync.Mutex
	started bool
	err     error
	done    chan struct{}
}

// eventsBusy reports whether this instance handled an event in the last
// second: while it does, fan-outs are paced so as not to crowd the events
// out (jobs.Config.Busy).
func (p *pipeline) eventsBusy() bool {
	return time.Since(time.Unix(0, p.lastEvent.Load())) < time.Second
}

// Ping reports readiness: the pipeline is up.
func (p *pipeline) Ping(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.started {
		if p.err != nil {
			return domain.Unavailable("event pipeline", p.err)
		}
		return domain.Errorf(domain.EUNAVAILABLE, "event pipeline not started yet")
	}
	return nil
}

// maxDigestBatch bounds a digest batch to what the governor admits within
// digestAdmitWithin at its lowest rate: a batch is admitted whole before it
// is built, within a deadline of its own (batch.Batcher.Timeout), and a
// batch of 500 at --digest-rate 4 would never be.
func maxDigestBatch(notifyWorkers int, floor float64) int {
	return max(1, min(notifyWorkers, int(floor*digestAdmitWithin.Seconds())))
}

// digestAdmitWithin is how long a digest batch may wait to be admitted at
// the governor's lowest rate.
const digestAdmitWithin = 10 * time.Second

// webhookConns bounds the connections to the webhook receiver: enough for
// the notify and deliver workers of an instance to keep it busy, few enough
// not to flood it.
const webhookConns = 256

func newPipeline(cfg pipelineConfig, st *store.Store, nc *nats.Conn, m *metrics.Metrics, logger *zap.Logger) (*pipeline, error) {
	channels := map[string]jobs.Deliverer{store.ChannelNATS: publishers.NewNATSNotifier(nc)}
	if cfg.webhookURL != "" {
		// One receiver, many delivery workers: at most webhookConns
		// connections to it, all kept when idle. (The defaults keep 2 per
		// host and 100 in all, and churn the rest; under load a request on
		// a connection being dropped that way failed after the receiver had
		// it, and its retry repeated it.)
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.MaxConnsPerHost = webhookConns
		transport.MaxIdleConnsPerHost = webhookConns
		transport.MaxIdleConns = webhookConns
		client := &http.Client{
			Timeout:   10 * time.Second,
			Transport: transport,
			// A redirect must not turn the POST into a GET that "succeeds".
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
		hook, err := publishers.NewWebhook(cfg.webhookURL, cfg.webhookSecret, client)
		if err != nil {
			return nil, fmt.Errorf("%w: webhook: %w", errUsage, err)
		}
		channels[store.ChannelWebhook] = hook
	}
	p := &pipeline{metrics: m, log: logger, done: make(chan struct{})}
	gov := admission.New(admission.Config{Target: cfg.eventWaitTarget, Floor: cfg.digestFloor, Ceiling: cfg.digestRate,
		Waiting: func() int {
			if c := p.consumer.Load(); c != nil {
				return c.InFlight()
			}
			return 0
		}})
	p.governor = gov
	m.GaugeFunc("shiftcast_digest_admission_rate", "Digests per second this instance admits (+Inf: no limit; lower while the events wait, see --event-wait-target).", gov.Rate)
	jp, err := jobs.New(st.Pool(), jobs.Config{
		Store: st, Channels: channels,
		Window: cfg.digestWindow, Grace: cfg.digestGrace, DigestSize: cfg.digestSize,
		MaxDeliveryAttempts: cfg.deliveryAttempts, RetryBase: cfg.retryBase,
		DeliveryLease: cfg.deliveryLease, NotifyWorkers: cfg.notifyWorkers, DigestBatch: maxDigestBatch(cfg.notifyWorkers, gov.Floor()), Digests: gov, FanoutRate: cfg.fanoutRate, FanoutSpread: cfg.fanoutSpread,
		Busy: p.eventsBusy, Work: cfg.work, Metrics: m, Logger: logger.Named("jobs"),
	})
	if err != nil {
		return nil, err
	}
	p.jobs = jp
	return p, nil
}

// run starts River and the consumer, retrying while a dependency is not
// there yet, and returns once both run or ctx ends.
func (p *pipeline) run(ctx context.Context, cfg pipelineConfig, st *store.Store, nc *nats.Conn, migrated *migrationState) {
	defer close(p.done)
	go p.governor.Run(ctx)
	wait := 500 * time.Millisecond
	for {
		err := p.start(ctx, cfg, st, nc, migrated)
		p.mu.Lock()
		p.started, p.err = err == nil, err
		p.mu.Unlock()
		if err == nil {
			p.log.Info("event pipeline started", zap.Bool("events", cfg.events), zap.Bool("jobs", cfg.work))
			return
		}
		p.log.Warn("event pipeline not started, retrying", zap.Duration("in", wait), zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, 10*time.Second)
	}
}

func (p *pipeline) start(ctx context.Context, cfg pipelineConfig, st *store.Store, nc *nats.Conn, migrated *migrationState) error {
	if err := migrated.Ping(ctx); err != nil {
		return err
	}
	if cfg.work && !p.riverStarted {
		if err := p.jobs.Client().Start(ctx); err != nil {
			return fmt.Errorf("start river: %w", err)
		}
		p.riverStarted = true
	}
	if !cfg.events || p.consumer.Load() != nil {
		return nil
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := consumers.EnsureStreams(sctx, js, consumers.StreamsConfig{Replicas: cfg.replicas, DuplicateWindow: cfg.duplicateWindow}); err != nil {
		return err
	}
	var committed atomic.Int64
	cons, err := consumers.NewEventConsumer(sctx, js, consumers.EventsConfig{
		Apply: func(ctx context.Context, evs []store.EventAt) ([]store.Applied, error) {
			now := time.Now()
			window := p.jobs.Window(now)
			res, err := st.ApplyEvents(ctx, evs, now, p.jobs.EnqueueFor(window))
			if err != nil {
				return nil, err
			}
			for i, r := range res {
				if r.Err != nil {
					continue
				}
				p.jobs.Committed(r.Effect, window)
				if cfg.crashAfterCommit > 0 && committed.Add(1) == int64(cfg.crashAfterCommit) {
					p.log.Warn("failpoint: crashing after commit, before ack", zap.String("event_id", evs[i].Event.ID))
					os.Exit(3)
				}
			}
			return res, nil
		},
		Workers: cfg.consumerWorkers, ApplyBatch: cfg.eventBatch, MaxDeliver: cfg.maxDeliver, AckWait: cfg.ackWait, RetryBase: cfg.eventRetry,
		OnApplied: func(typ, outcome string, elapsed time.Duration) {
			p.lastEvent.Store(time.Now().UnixNano())
			p.metrics.EventHandled(typ, outcome, elapsed)
		},
		OnWaited: p.governor.Observe,
		Logger:   p.log.Named("events"),
	})
	if err != nil {
		return err
	}
	if err := cons.Start(); err != nil {
		return err
	}
	p.consumer.Store(cons)
	return nil
}

// stop stops consuming first (nothing new is applied), then lets River
// finish the jobs it is running, within ctx.
func (p *pipeline) stop(ctx context.Context, cancelRun context.CancelFunc) error {
	cancelRun()
	<-p.done
	var errs []error
	if c := p.consumer.Load(); c != nil {
		errs = append(errs, c.Stop(ctx))
	}
	if p.riverStarted {
		errs = append(errs, p.jobs.Client().Stop(ctx))
	}
	return errors.Join(errs...)
}
