package consumers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/shiftcast/shiftcast/batch"
	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/store"
)

// Stream and consumer names, as DESIGN.md section 3 fixes them.
const (
	StreamMarketplace = "MARKETPLACE"
	StreamDLQ         = "MARKETPLACE_DLQ"
	DurableName       = "shiftcast"
	DLQSubjectPrefix  = "dlq."
)

// Headers a dead-lettered message carries beside the original bytes.
const (
	HeaderDLQReason          = "Shiftcast-Dlq-Reason"
	HeaderDLQOriginalSubject = "Shiftcast-Original-Subject"
	HeaderDLQStreamSequence  = "Shiftcast-Stream-Sequence"
	HeaderDLQDeliveries      = "Shiftcast-Deliveries"
	HeaderDLQOriginalMsgID   = "Shiftcast-Original-Msg-Id"
)

// StreamsConfig sizes the streams; zero values take the defaults.
type StreamsConfig struct {
	Replicas        int
	MaxAge          time.Duration // MARKETPLACE retention, default 7 days
	DLQMaxAge       time.Duration // default 30 days
	DuplicateWindow time.Duration // default 2 minutes
	Storage         jetstream.StorageType
}

// EnsureStreams creates or updates MARKETPLACE and MARKETPLACE_DLQ, so every
// instance can start in any order and a changed setting is applied.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, cfg StreamsConfig) error {
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 7 * 24 * time.Hour
	}
	if cfg.DLQMaxAge <= 0 {
		cfg.DLQMaxAge = 30 * 24 * time.Hour
	}
	if cfg.DuplicateWindow <= 0 {
		cfg.DuplicateWindow = 2 * time.Minute
	}
	streams := []jetstream.StreamConfig{
		{
			Name: StreamMarketplace, Description: "Marketplace domain events (CloudEvents JSON), one subject per type",
			Subjects: []string{domain.SubjectPrefix + ">"}, Retention: jetstream.LimitsPolicy, MaxAge: cfg.MaxAge,
			Duplicates: cfg.DuplicateWindow, Replicas: cfg.Replicas, Storage: cfg.Storage,
		},
		{
			Name: StreamDLQ, Description: "Marketplace events shiftcast could not apply, with the reason in headers",
			Subjects: []string{DLQSubjectPrefix + domain.SubjectPrefix + ">"}, Retention: jetstream.LimitsPolicy,
			MaxAge: cfg.DLQMaxAge, Duplicates: cfg.DuplicateWindow, Replicas: cfg.Replicas, Storage: cfg.Storage,
		},
	}
	for _, sc := range streams {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return domain.Unavailable("jetstream stream "+sc.Name, err)
		}
	}
	return nil
}

// ApplyFunc applies decoded events, each delivered at its stream
// sequence, and returns each one's outcome in order (store.ApplyEvents);
// an error fails them all.
type ApplyFunc func(ctx context.Context, evs []store.EventAt) ([]store.Applied, error)

// EventsConfig wires the event consumer.
type EventsConfig struct {
	// Apply is called with the messages being handled at once (at most
	// ApplyBatch), so that they share a transaction.
	Apply      ApplyFunc
	ApplyBatch int
	// Durable is the consumer every instance shares (default "shiftcast").
	Durable string
	// Workers is how many messages one instance applies at once.
	Workers int
	// MaxAckPending bounds unacknowledged messages across all instances.
	MaxAckPending int
	// MaxDeliver bounds the deliveries of a message that keeps failing for a
	// reason of its own (a dependency that never arrives, a bug); on the
	// last one it is dead-lettered. Failures to reach PostgreSQL are retried
	// without limit: an outage must not empty the stream into the DLQ.
	MaxDeliver int
	// AckWait is how long a delivered message may stay unacknowledged (a
	// crashed instance's messages come back after it).
	AckWait time.Duration
	// RetryBase is the first NAK delay, doubled per delivery up to RetryMax.
	RetryBase, RetryMax time.Duration
	Logger              *zap.Logger
	// OnApplied, when set, observes every message's outcome (metrics, tests).
	OnApplied func(typ, outcome string, elapsed time.Duration)
	// OnWaited, when set, gets how long each event settled on its first
	// delivery waited, from its storing in the stream to its commit: what
	// the event path's users see, queueing included (admission.Governor).
	// Redeliveries are left out, their wait being mostly their retry delay.
	OnWaited func(waited time.Duration)
}

// applyLanes is how many transactions apply events at once: while one
// waits on a round trip (a busy database, a WAL flush) the others go on,
// and the messages arriving meanwhile make the next batches. Measured with
// the pipeline benchmark: four kept events flowing through the digest
// bursts where two stalled (PERFORMANCE.md).
const applyLanes = 4

// defaultApplyBatch is EventsConfig.ApplyBatch's default.
const defaultApplyBatch = 32

func (c *EventsConfig) defaults() {
	if c.Durable == "" {
		c.Durable = DurableName
	}
	if c.Workers <= 0 {
		c.Workers = applyLanes * defaultApplyBatch
	}
	if c.ApplyBatch <= 0 {
		c.ApplyBatch = defaultApplyBatch
	}
	c.ApplyBatch = min(c.ApplyBatch, store.MaxApplyBatch)
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = 1024
	}
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = 10
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.RetryBase <= 0 {
		// Most retries are events that arrived before the one they depend
		// on, a few milliseconds apart: retry soon, well inside a digest's
		// grace period, so the window's digests see them applied.
		c.RetryBase = 100 * time.Millisecond
	}
	if c.RetryMax <= 0 {
		c.RetryMax = time.Minute
	}
}

// Outcomes reported to OnApplied beyond store's.
const (
	OutcomeDeadLettered = "dead_lettered"
	OutcomeRetry        = "retry"
)

// EventConsumer applies MARKETPLACE events with a durable pull consumer
// shared by every instance.
type EventConsumer struct {
	cfg  EventsConfig
	js   jetstream.JetStream
	cons jetstream.Consumer
	log  *zap.Logger

	applier *batch.Batcher[store.EventAt, store.Applied]

	mu      sync.Mutex
	iter    jetstream.MessagesContext
	running sync.WaitGroup
	loop    sync.WaitGroup
	sem     chan struct{}
}

// NewEventConsumer creates or updates the durable consumer.
func NewEventConsumer(ctx context.Context, js jetstream.JetStream, cfg EventsConfig) (*EventConsumer, error) {
	cfg.defaults()
	cons, err := js.CreateOrUpdateConsumer(ctx, StreamMarketplace, jetstream.ConsumerConfig{
		Durable:       cfg.Durable,
		Description:   "shiftcast: apply marketplace events, enqueue notification jobs",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    -1, // the limit is ours, see EventsConfig.MaxDeliver
		MaxAckPending: cfg.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: domain.SubjectPrefix + ">",
	})
	if err != nil {
		return nil, domain.Unavailable("jetstream consumer "+cfg.Durable, err)
	}
	applier := batch.New(cfg.ApplyBatch, applyLanes, cfg.Apply)
	applier.Timeout = cfg.AckWait
	return &EventConsumer{cfg: cfg, js: js, cons: cons, log: cfg.Logger, sem: make(chan struct{}, cfg.Workers), applier: applier}, nil
}

// InFlight returns how many messages are being handled at the moment.
func (c *EventConsumer) InFlight() int { return len(c.sem) }

// Consumer returns the JetStream consumer, for status (lag, redeliveries).
func (c *EventConsumer) Consumer() jetstream.Consumer { return c.cons }

// Start pulls and applies messages in the background until Stop.
func (c *EventConsumer) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.iter != nil {
		return nil
	}
	it, err := c.cons.Messages(jetstream.PullMaxMessages(c.cfg.Workers * 2))
	if err != nil {
		return domain.Unavailable("jetstream pull", err)
	}
	c.iter = it
	c.loop.Add(1)
	go c.run(it)
	return nil
}

// Stop stops pulling and waits, within ctx, for messages being applied.
// Messages pulled but not started are redelivered after AckWait (or at once
// to another instance when the consumer sees them NAKed).
func (c *EventConsumer) Stop(ctx context.Context) error {
	c.mu.Lock()
	it := c.iter
	c.iter = nil
	c.mu.Unlock()
	if it == nil {
		return nil
	}
	it.Stop()
	done := make(chan struct{})
	go func() { c.loop.Wait(); c.running.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop event consumer: %w", ctx.Err())
	}
}

func (c *EventConsumer) run(it jetstream.MessagesContext) {
	defer c.loop.Done()
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			c.log.Warn("pull failed", zap.Error(err))
			time.Sleep(200 * time.Millisecond)
			continue
		}
		c.sem <- struct{}{}
		c.running.Add(1)
		go func() {
			defer func() { <-c.sem; c.running.Done() }()
			c.handle(msg)
		}()
	}
}

// handle applies one message and settles it: ack after commit; NAK with a
// delay for what may succeed later; dead-letter and terminate what never
// will (undecodable, invalid, or out of deliveries).
func (c *EventConsumer) handle(msg jetstream.Msg) {
	start := time.Now()
	md, err := msg.Metadata()
	if err != nil {
		c.log.Error("message without metadata", zap.String("subject", msg.Subject()), zap.Error(err))
		_ = msg.Term()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.AckWait)
	defer cancel()
	ev, err := domain.DecodeEvent(msg.Data())
	if err == nil && msg.Subject() != domain.Subject(ev.Type) {
		err = domain.Errorf(domain.EINVALID, "event type %q arrived on subject %q (want %q)", ev.Type, msg.Subject(), domain.Subject(ev.Type))
	}
	if err != nil {
		c.deadLetter(ctx, msg, md, domain.ErrorMessage(err), start, "unknown")
		return
	}
	fields := []zap.Field{zap.String("event_id", ev.ID), zap.String("type", ev.Type), zap.Uint64("stream_seq", md.Sequence.Stream)}
	res, err := c.applier.Do(ctx, store.EventAt{Event: ev, Seq: md.Sequence.Stream})
	eff := res.Effect
	if err == nil {
		err = res.Err
	}
	if err == nil {
		if c.cfg.OnWaited != nil && md.NumDelivered == 1 {
			c.cfg.OnWaited(time.Since(md.Timestamp))
		}
		if aerr := msg.Ack(); aerr != nil {
			// Committed but not acked: the redelivery is a duplicate and is
			// recognized as one.
			c.log.Warn("ack failed", append(fields, zap.Error(aerr))...)
		}
		c.observe(ev.Type, eff.Outcome, start)
		return
	}
	transient := domain.ErrorCode(err) == domain.EUNAVAILABLE
	if !transient && md.NumDelivered >= uint64(c.cfg.MaxDeliver) {
		reason := fmt.Sprintf("not applied after %d deliveries: %v", md.NumDelivered, err)
		c.log.Error("giving up on event", append(fields, zap.Error(err))...)
		c.deadLetter(ctx, msg, md, reason, start, ev.Type)
		return
	}
	delay := c.backoff(md.NumDelivered)
	if errors.Is(err, store.ErrMissingDependency) {
		c.log.Debug("event not applicable yet, retrying", append(fields, zap.Duration("in", delay), zap.Error(err))...)
	} else {
		c.log.Warn("apply failed, retrying", append(fields, zap.Duration("in", delay), zap.Uint64("delivery", md.NumDelivered), zap.Error(err))...)
	}
	if nerr := msg.NakWithDelay(delay); nerr != nil {
		c.log.Warn("nak failed", append(fields, zap.Error(nerr))...)
	}
	c.observe(ev.Type, OutcomeRetry, start)
}

func (c *EventConsumer) backoff(delivered uint64) time.Duration {
	d := c.cfg.RetryBase << min(delivered-1, 20)
	if d <= 0 || d > c.cfg.RetryMax {
		d = c.cfg.RetryMax
	}
	return d
}

func (c *EventConsumer) observe(typ, outcome string, start time.Time) {
	if c.cfg.OnApplied != nil {
		c.cfg.OnApplied(typ, outcome, time.Since(start))
	}
}

// deadLetter copies the message, unchanged, to the DLQ stream with the
// reason in headers, then terminates it. If the copy cannot be stored the
// message is NAKed instead: nothing is ever dropped.
func (c *EventConsumer) deadLetter(ctx context.Context, msg jetstream.Msg, md *jetstream.MsgMetadata, reason string, start time.Time, typ string) {
	out := nats.NewMsg(DLQSubjectPrefix + msg.Subject())
	out.Data = msg.Data()
	for k, v := range msg.Headers() {
		out.Header[k] = v
	}
	out.Header.Set(HeaderDLQReason, reason)
	out.Header.Set(HeaderDLQOriginalSubject, msg.Subject())
	out.Header.Set(HeaderDLQStreamSequence, strconv.FormatUint(md.Sequence.Stream, 10))
	out.Header.Set(HeaderDLQDeliveries, strconv.FormatUint(md.NumDelivered, 10))
	if id := msg.Headers().Get(jetstream.MsgIDHeader); id != "" {
		out.Header.Set(HeaderDLQOriginalMsgID, id) // Nats-Msg-Id is the DLQ's own dedup id below
	}
	fields := []zap.Field{zap.String("subject", msg.Subject()), zap.Uint64("stream_seq", md.Sequence.Stream),
		zap.String("msg_id", msg.Headers().Get(jetstream.MsgIDHeader)), zap.String("reason", reason)}
	// The DLQ dedups on this id, so a retried copy is stored once.
	if _, err := c.js.PublishMsg(ctx, out, jetstream.WithMsgID("dlq-"+strconv.FormatUint(md.Sequence.Stream, 10))); err != nil {
		c.log.Error("dead-letter copy failed, will retry the message", append(fields, zap.Error(err))...)
		_ = msg.NakWithDelay(c.backoff(md.NumDelivered))
		return
	}
	if err := msg.Term(); err != nil {
		c.log.Warn("term failed", append(fields, zap.Error(err))...)
	}
	c.log.Warn("event dead-lettered", fields...)
	c.observe(typ, OutcomeDeadLettered, start)
}
