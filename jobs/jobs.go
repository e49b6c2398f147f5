// Package jobs holds shiftcast's River jobs: the per-window fan-out of the
// (facility, profession) pairs an event marked into workers, the per-worker
// digest, its delivery with retries, and pruning. Consumers decide *who*
// may have new shifts; these jobs decide *what* is new, from current state,
// when they run.
//
// Coalescing: every job carries the digest window it belongs to (the apply
// time divided by the window length) and is unique by its arguments, so all
// the events of one window touching a worker make one notify job, and all
// those touching a profession's (facility, profession) pairs one fan-out.
// Both are scheduled at the window's end plus a grace period, after every
// transaction of the window has committed.
package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"
	"golang.org/x/time/rate"

	"github.com/shiftcast/shiftcast/batch"
	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/metrics"
	"github.com/shiftcast/shiftcast/store"
)

// Queues. Notify and deliver are separate so operators can pause deliveries
// without stopping digests from being built, and so a slow receiver cannot
// starve fan-out.
const (
	QueueFanout  = "fanout"
	QueueNotify  = "notify"
	QueueDeliver = "deliver"
	QueueMaint   = "maintenance"
)

// FanoutArgs expands the (facility, profession) pairs marked for a
// profession and window into workers' notify jobs. An event marks its pairs
// (store.MarkFanouts) and enqueues the job of their profession and window;
// the job expands every marked facility at once (store.FanoutNotify), so a
// window has one fan-out job per profession, whatever the number of
// facilities its events touched.
type FanoutArgs struct {
	// FacilityID is 0 on the jobs enqueued now. Earlier versions enqueued
	// a job per (facility, profession, window); those still run, the first
	// of a window doing the work and the others finding no marks left.
	FacilityID int64  `json:"facility_id"`
	Profession string `json:"profession"`
	Window     int64  `json:"window"`
	// Marked is set on fan-outs whose pairs were marked with them. One
	// enqueued by an earlier version, without a mark, expands its own
	// facility whatever the marks say.
	Marked bool `json:"marked,omitempty"`
}

// Kind implements river.JobArgs.
func (FanoutArgs) Kind() string { return "shiftcast.fanout" }

// InsertOpts makes one fan-out per (profession, window).
func (FanoutArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueFanout, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// NotifyArgs builds one worker's digest for one window.
type NotifyArgs struct {
	WorkerID int64 `json:"worker_id"`
	Window   int64 `json:"window"`
}

// Kind implements river.JobArgs.
func (NotifyArgs) Kind() string { return "shiftcast.notify" }

// InsertOpts makes one notify job per (worker, window) while it waits or
// runs. Once completed it no longer counts as a duplicate: the workers'
// schedules (store.ScheduleNotify) already insert a worker's job once per
// window. (Counting them made River's scheduler, which checked every job
// it moved against all the jobs that count, run for seconds; a window's
// jobs no longer go through it at all: see dueWithoutScheduler.)
func (NotifyArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueNotify, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: inFlight()}}
}

// DeliverArgs delivers one notification on every configured channel.
type DeliverArgs struct {
	NotificationID string `json:"notification_id"`
}

// Kind implements river.JobArgs.
func (DeliverArgs) Kind() string { return "shiftcast.deliver" }

// InsertOpts puts deliveries on their own queue.
func (DeliverArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: QueueDeliver} }

// SweepArgs hands notifications whose builder died mid-delivery (an expired
// lease) to deliver jobs.
type SweepArgs struct{}

// Kind implements river.JobArgs.
func (SweepArgs) Kind() string { return "shiftcast.sweep" }

// InsertOpts makes at most one sweep wait at a time.
func (SweepArgs) InsertOpts() river.InsertOpts { return maintenanceOpts() }

// PruneArgs prunes the pipeline's bounded bookkeeping.
type PruneArgs struct{}

// Kind implements river.JobArgs.
func (PruneArgs) Kind() string { return "shiftcast.prune" }

// InsertOpts makes at most one prune job wait at a time.
func (PruneArgs) InsertOpts() river.InsertOpts { return maintenanceOpts() }

// maintenanceOpts puts a periodic job on the maintenance queue, unique while
// it waits or runs, so a slow run never piles up copies behind it.
func maintenanceOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaint, UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: inFlight()}}
}

// inFlight is the unique states of a job that is a duplicate only while it
// waits or runs: River's defaults without the finalized states.
func inFlight() []rivertype.JobState {
	return []rivertype.JobState{
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRunning,
		rivertype.JobStateRetryable, rivertype.JobStateScheduled,
	}
}

// Deliverer sends a notification on one channel. Implementations must be
// safe to call again with the same notification (the id is stable).
type Deliverer interface {
	Deliver(ctx context.Context, n domain.Notification) error
}

// Store is what the jobs need from persistence.
type Store interface {
	MarkFanouts(ctx context.Context, tx pgx.Tx, window int64, fs []store.Fanout) error
	ScheduleNotify(ctx context.Context, tx pgx.Tx, window int64, workerIDs []int64) ([]int64, error)
	ClaimNotify(ctx context.Context, workerIDs, windows []int64) error
	LostSchedules(ctx context.Context, window int64, limit int, enqueue func(ctx context.Context, tx pgx.Tx, workerIDs []int64) error) (int, error)
	RenumberWindows(ctx context.Context, window int64) (int64, error)
	FanoutNotify(ctx context.Context, r store.FanoutRun) (int, error)
	BuildDigests(ctx context.Context, workerIDs []int64, now time.Time, k int, lease time.Duration) ([]store.DigestResult, error)
	HandOffDelivery(ctx context.Context, id string, enqueue func(ctx context.Context, tx pgx.Tx) error) (bool, error)
	ExpiredLeases(ctx context.Context, limit int, enqueue func(ctx context.Context, tx pgx.Tx, ids []string) error) (int, error)
	Notification(ctx context.Context, id string) (store.Delivery, error)
	MarkChannelsDelivered(ctx context.Context, ds []store.ChannelDelivery) error
	FinishDeliveries(ctx context.Context, outcomes []store.DeliveryOutcome) ([]string, error)
	Prune(ctx context.Context, now time.Time, keepEvents time.Duration) (int64, int64, error)
}

var _ Store = (*store.Store)(nil)

// Config wires the jobs.
type Config struct {
	Store Store
	// Channels maps a channel name (store.ChannelWebhook, store.ChannelNATS)
	// to its deliverer; only configured channels are attempted.
	Channels map[string]Deliverer
	// Window is the digest window (DIGEST_WINDOW); Grace is added to the
	// window's end so transactions in flight at the boundary have committed.
	Window, Grace time.Duration
	// DigestSize is how many shifts a notification lists (all are counted).
	DigestSize int
	// DigestBatch bounds how many of the running notify jobs' digests are
	// built in one transaction (store.BuildDigests).
	DigestBatch int
	// FanoutSpread is about how long a fan-out spreads its inserts over.
	// A window's fan-outs insert a notify job for every worker with news,
	// tens of thousands at every window's end, and each job then runs as
	// soon as it is in: inserted at once, that burst of inserts and digests
	// took the database from event application for seconds. Spread over
	// the next window, the same work competes with the events a little all
	// the time instead. 0 spreads each fan-out over Window divided by the
	// number of professions, since a window's fan-outs, one per profession,
	// run one after another (FanoutWorkers 1); negative does not pace them.
	FanoutSpread time.Duration
	// Busy, when set, reports whether events are being applied: a fan-out
	// is paced only while they are, so that with no events to protect (a
	// quiet marketplace, a replay's last window) its notify jobs go in at
	// once and its notifications out as fast as the workers deliver them.
	Busy func() bool
	// FanoutRate is the least number of notify jobs per second a paced
	// fan-out inserts, however it is spread, so that a small one is not
	// drawn out for nothing. 0 sets no floor.
	FanoutRate float64
	// Digests, when set, admits each batch of digests before it is built
	// (admission.Governor): digests are the elastic side of the machine's
	// work, and give way to the events when both cannot have it.
	Digests Gate
	// MaxDeliveryAttempts bounds a notification's delivery attempts; after
	// the last, it is marked failed. RetryBase is the first retry's delay,
	// doubled per attempt up to RetryMax.
	MaxDeliveryAttempts int
	RetryBase, RetryMax time.Duration
	// DeliveryLease is how long the notify job that built a notification
	// owns its first delivery attempt; past it, a sweep (every quarter of
	// the lease) hands the notification to a deliver job. It must exceed one
	// attempt on every channel (the webhook's timeout is 10 s).
	DeliveryLease time.Duration
	// KeepEvents is how long applied event ids are kept for idempotency.
	KeepEvents time.Duration
	// Work runs the queues; false makes an insert-only client.
	Work bool
	// Workers per queue when Work is set. River fetches at most a queue's
	// free workers per fetch and waits FetchCooldown between fetches, so a
	// queue's throughput is capped near workers / FetchCooldown (River's
	// defaults, 100 ms, capped 20 workers at 200 jobs/s).
	FanoutWorkers, NotifyWorkers, DeliverWorkers int
	FetchCooldown                                time.Duration
	Now                                          func() time.Time
	// Metrics, when set, counts digests, announced shifts and deliveries.
	Metrics *metrics.Metrics
	Logger  *zap.Logger
}

func (c *Config) defaults() {
	if c.Window <= 0 {
		c.Window = 30 * time.Second
	}
	if c.Grace <= 0 {
		c.Grace = time.Second
	}
	if c.DigestSize <= 0 {
		c.DigestSize = 10
	}
	if c.DigestBatch <= 0 {
		c.DigestBatch = 500
	}
	if c.MaxDeliveryAttempts <= 0 {
		c.MaxDeliveryAttempts = 10
	}
	if c.RetryBase <= 0 {
		c.RetryBase = time.Second
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 10 * time.Minute
	}
	if c.DeliveryLease <= 0 {
		c.DeliveryLease = time.Minute
	}
	if c.KeepEvents <= 0 {
		c.KeepEvents = 7 * 24 * time.Hour
	}
	if c.FanoutWorkers <= 0 {
		// One: a window's fan-outs (one per profession) each insert
		// thousands of notify jobs, and run side by side they took both
		// cores for a second or two at every window's end, stalling event
		// application; one after another they leave a core to the events.
		c.FanoutWorkers = 1
	}
	if c.NotifyWorkers <= 0 {
		c.NotifyWorkers = 50
	}
	if c.DeliverWorkers <= 0 {
		// Deliveries mostly wait on the receiver, not on the database.
		c.DeliverWorkers = 100
	}
	if c.FetchCooldown <= 0 {
		c.FetchCooldown = 20 * time.Millisecond
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Gate admits elastic work: WaitN returns once n items may go, or ctx
// ends.
type Gate interface {
	WaitN(ctx context.Context, n int) error
}

// Pipeline owns the River client and turns effects into jobs.
type Pipeline struct {
	cfg     Config
	client  *river.Client[pgx.Tx]
	log     *zap.Logger
	fanouts fanoutSet
	// The digests and delivery records of the jobs running at once are
	// built and written in batches (see package batch).
	digests  *batch.Batcher[NotifyArgs, store.DigestResult]
	marks    *batch.Batcher[store.ChannelDelivery, struct{}]
	finishes *batch.Batcher[store.DeliveryOutcome, string]
}

// New builds the River client over pool with shiftcast's workers.
func New(pool *pgxpool.Pool, cfg Config) (*Pipeline, error) {
	cfg.defaults()
	p := &Pipeline{cfg: cfg, log: cfg.Logger}
	p.digests = batch.New(cfg.DigestBatch, 1, func(ctx context.Context, jobs []NotifyArgs) ([]store.DigestResult, error) {
		if cfg.Digests != nil {
			// Waiting here lets the next batch grow meanwhile: admitted
			// digests are also cheaper ones.
			if err := cfg.Digests.WaitN(ctx, len(jobs)); err != nil {
				return nil, fmt.Errorf("digest admission: %w", err)
			}
		}
		ids, windows := make([]int64, len(jobs)), make([]int64, len(jobs))
		for i, j := range jobs {
			ids[i], windows[i] = j.WorkerID, j.Window
		}
		// Claimed before the digests read anything: news committed after
		// the claim gets a job of its own (store.ScheduleNotify).
		if err := cfg.Store.ClaimNotify(ctx, ids, windows); err != nil {
			return nil, err
		}
		return cfg.Store.BuildDigests(ctx, ids, cfg.Now(), cfg.DigestSize, cfg.DeliveryLease)
	})
	p.marks = batch.NewExec(cfg.DigestBatch, 1, cfg.Store.MarkChannelsDelivered)
	p.finishes = batch.New(cfg.DigestBatch, 1, cfg.Store.FinishDeliveries)
	workers := river.NewWorkers()
	river.AddWorker(workers, &fanoutWorker{p: p})
	river.AddWorker(workers, &notifyWorker{p: p})
	river.AddWorker(workers, &deliverWorker{p: p})
	river.AddWorker(workers, &pruneWorker{p: p})
	river.AddWorker(workers, &sweepWorker{p: p})
	rc := &river.Config{
		Logger:  slog.New(zapslog.NewHandler(cfg.Logger.Named("river").Core())),
		Workers: workers,
		// Every job here takes milliseconds to seconds. A job left running
		// by a killed process is rescued after a minute, not River's
		// default hour, so a crash delays notifications only briefly.
		JobTimeout:           30 * time.Second,
		RescueStuckJobsAfter: time.Minute,
		// A notify job per worker with news per window is tens of millions
		// of rows a day on a large workforce; River's default keeps
		// completed jobs a day, and its fetches and maintenance work
		// through them. A window's jobs are done minutes after it ends
		// (and, once done, no longer count for uniqueness: see
		// NotifyArgs.InsertOpts).
		CompletedJobRetentionPeriod: time.Hour,
		FetchCooldown:               cfg.FetchCooldown,
		Hooks:                       []rivertype.Hook{&dueWithoutScheduler{}},
	}
	if cfg.Work {
		rc.Queues = map[string]river.QueueConfig{
			QueueFanout:  {MaxWorkers: cfg.FanoutWorkers},
			QueueNotify:  {MaxWorkers: cfg.NotifyWorkers},
			QueueDeliver: {MaxWorkers: cfg.DeliverWorkers},
			QueueMaint:   {MaxWorkers: 1},
		}
		rc.PeriodicJobs = []*river.PeriodicJob{
			river.NewPeriodicJob(river.PeriodicInterval(10*time.Minute),
				func() (river.JobArgs, *river.InsertOpts) { return PruneArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}),
			river.NewPeriodicJob(river.PeriodicInterval(cfg.DeliveryLease/4),
				func() (river.JobArgs, *river.InsertOpts) { return SweepArgs{}, nil },
				&river.PeriodicJobOpts{RunOnStart: true}),
		}
	}
	client, err := river.NewClient(riverpgxv5.New(pool), rc)
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	p.client = client
	return p, nil
}

// dueWithoutScheduler inserts the jobs shiftcast schedules for later (a
// window's notify and fan-out jobs, run at its end, and delivery hand-offs)
// as available rather than scheduled: River fetches no available job
// before its scheduled_at, so they run at the same time, but River's
// scheduler never has to move them. (Retries still go through it.) The
// scheduler moves the due jobs in one statement per pass, up to 10,000,
// and a window's end brings thousands due at once (every notify job the
// events inserted during it). When PostgreSQL's statistics on river_job
// held no due job, as they usually do, it planned that statement's check
// for unique conflicts as a loop over the due jobs inside a loop over
// them: 110 s for 7,468 jobs, so the scheduler timed out at every pass and
// no digest of the window ran (PERFORMANCE.md, eighth session).
type dueWithoutScheduler struct{ river.HookDefaults }

var _ rivertype.HookInsertBegin = (*dueWithoutScheduler)(nil)

// InsertBegin implements rivertype.HookInsertBegin.
func (*dueWithoutScheduler) InsertBegin(_ context.Context, params *rivertype.JobInsertParams) error {
	if params.State == rivertype.JobStateScheduled {
		params.State = rivertype.JobStateAvailable
	}
	return nil
}

// Client returns the River client (start, stop, pause queues).
func (p *Pipeline) Client() *river.Client[pgx.Tx] { return p.client }

// Window returns the digest window t falls in.
func (p *Pipeline) Window(t time.Time) int64 { return t.UnixNano() / int64(p.cfg.Window) }

// runAt is when a window's jobs run: its end plus the grace period.
func (p *Pipeline) runAt(window int64) time.Time {
	return time.Unix(0, (window+1)*int64(p.cfg.Window)).Add(p.cfg.Grace)
}

// scheduleAt returns insert options running a job at t, or none for a time
// already past: the job then runs at once. (See dueWithoutScheduler for
// how a later one is inserted.)
func (p *Pipeline) scheduleAt(t time.Time) *river.InsertOpts {
	if !t.After(p.cfg.Now()) {
		return nil
	}
	return &river.InsertOpts{ScheduledAt: t}
}

// EnqueueFor returns the store.EnqueueFunc that inserts, in the apply
// transaction, the jobs carrying an effect for the given window: a notify
// job per worker, and for each (facility, profession) a mark and the
// fan-out job of its profession. The caller picks the window once, so
// Committed records the same one. Marks and fan-out jobs this instance has
// already committed for that window are not inserted again: at high event
// rates most events repeat a (facility, profession) of their window, and
// each redundant unique insert costs a statement and lock waits.
func (p *Pipeline) EnqueueFor(window int64) store.EnqueueFunc {
	return func(ctx context.Context, tx pgx.Tx, eff store.Effect) error {
		opts := p.scheduleAt(p.runAt(window))
		params := make([]river.InsertManyParams, 0, len(eff.NotifyWorkers)+len(eff.Fanouts))
		// In one order in every transaction (workers by id, then fan-outs by
		// profession): a unique insert meeting an uncommitted one waits for
		// it, and two batches inserting the same jobs in opposite orders
		// deadlocked, costing both a second (deadlock_timeout).
		if len(eff.NotifyWorkers) > 0 {
			workers, err := p.cfg.Store.ScheduleNotify(ctx, tx, window, slices.Sorted(slices.Values(eff.NotifyWorkers)))
			if err != nil {
				return err
			}
			params = notifyParams(params, window, workers, opts)
		}
		var (
			marks []store.Fanout
			jobs  []FanoutArgs
			// A transaction committing after its window's fan-outs were due
			// may find its profession's job already run: its marks then get
			// a job of their pair's own (one per pair and window, as before
			// jobs were per profession), which takes them at once, rather
			// than waiting for the profession's next fan-out, which a quiet
			// marketplace may not have for a long time.
			late = !p.cfg.Now().Before(p.runAt(window))
		)
		for _, f := range eff.Fanouts {
			if p.fanouts.seen(pairKey(f, window)) {
				continue
			}
			marks = append(marks, f)
			job := fanoutJob(f.Profession, window)
			if late {
				job = pairKey(f, window)
			}
			if !p.fanouts.seen(job) && !slices.Contains(jobs, job) {
				jobs = append(jobs, job)
			}
		}
		slices.SortFunc(jobs, func(a, b FanoutArgs) int {
			return cmp.Or(strings.Compare(a.Profession, b.Profession), cmp.Compare(a.FacilityID, b.FacilityID))
		})
		for _, job := range jobs {
			params = append(params, river.InsertManyParams{Args: job, InsertOpts: opts})
		}
		// A pair's mark is needed even when its profession's job is already
		// in: the job expands the marks, not the pairs that enqueued it.
		if len(marks) > 0 {
			if err := p.cfg.Store.MarkFanouts(ctx, tx, window, marks); err != nil {
				return err
			}
		}
		if len(params) == 0 {
			return nil
		}
		_, err := p.client.InsertManyTx(ctx, tx, params)
		return err
	}
}

// Committed records that eff's jobs for window are in the database: only
// after the commit, so a rolled-back transaction never suppresses a job.
func (p *Pipeline) Committed(eff store.Effect, window int64) {
	for _, f := range eff.Fanouts {
		p.fanouts.add(pairKey(f, window))
		p.fanouts.add(fanoutJob(f.Profession, window))
	}
}

// fanoutJob is the fan-out job of a profession and window.
func fanoutJob(p domain.Profession, window int64) FanoutArgs {
	return FanoutArgs{Profession: string(p), Window: window, Marked: true}
}

// pairKey stands for a (facility, profession) pair marked for window, in
// fanoutSet beside the jobs (whose FacilityID is 0).
func pairKey(f store.Fanout, window int64) FanoutArgs {
	return FanoutArgs{FacilityID: f.FacilityID, Profession: string(f.Profession), Window: window, Marked: true}
}

// fanoutSet remembers the pairs marked and the fan-out jobs inserted for
// the latest window only, so it stays as small as one window's (facility,
// profession) pairs.
type fanoutSet struct {
	mu     sync.Mutex
	window int64
	keys   map[FanoutArgs]struct{}
}

func (s *fanoutSet) seen(a FanoutArgs) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.keys[a]
	return ok
}

func (s *fanoutSet) add(a FanoutArgs) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.Window < s.window {
		return
	}
	if a.Window > s.window || s.keys == nil {
		s.window, s.keys = a.Window, map[FanoutArgs]struct{}{}
	}
	s.keys[a] = struct{}{}
}

type fanoutWorker struct {
	river.WorkerDefaults[FanoutArgs]
	p *Pipeline
}

// fanoutChunk bounds the workers a fan-out schedules in one transaction
// (and one InsertMany): small enough to pace, large enough that a
// profession of tens of thousands of workers takes a few dozen statements.
// A fan-out paced past River's JobTimeout (30 s: 90,000 workers at the
// default rate) is cut short and retried, and goes on where it stopped. No
// longer timeout: River would also wait that long before rescuing a
// fan-out whose process died.
const fanoutChunk = 500

func (w *fanoutWorker) Work(ctx context.Context, job *river.Job[FanoutArgs]) error {
	a := job.Args
	run := store.FanoutRun{
		Profession: domain.Profession(a.Profession), Window: a.Window, Chunk: fanoutChunk,
		Enqueue: w.p.notifyJobs(a.Window),
	}
	if !a.Marked {
		run.Extra = []int64{a.FacilityID}
	}
	if spread := w.p.fanoutSpread(); spread > 0 {
		run.Pause = w.p.fanoutPause(a.Window, spread)
	}
	n, err := w.p.cfg.Store.FanoutNotify(ctx, run)
	if err != nil {
		return err
	}
	w.p.log.Debug("fanned out", zap.Int64("job_id", job.ID), zap.Int64("facility_id", a.FacilityID),
		zap.String("profession", a.Profession), zap.Int("workers", n))
	return nil
}

// fanoutPause returns the pause between a fan-out's chunks (a
// store.FanoutRun's Pause): paced at fanoutRate while events are being
// applied (Config.Busy), none otherwise.
func (p *Pipeline) fanoutPause(window int64, spread time.Duration) func(ctx context.Context, n, total int) error {
	var limit *rate.Limiter
	return func(ctx context.Context, n, total int) error {
		if limit == nil {
			limit = rate.NewLimiter(p.fanoutRate(window, spread, total), fanoutChunk)
			limit.AllowN(time.Now(), fanoutChunk) // the first chunk went at once
		}
		if p.cfg.Busy != nil && !p.cfg.Busy() {
			return nil
		}
		return limit.WaitN(ctx, n)
	}
}

// fanoutRate is the pace of a fan-out of total workers for window: spread
// over spread, at least FanoutRate, and done by the time the next window's
// fan-outs are due. One that starts late (a long run before it, a retry)
// has less time left, so a backlog of fan-outs does not carry over from
// window to window; one due after that time is not paced.
func (p *Pipeline) fanoutRate(window int64, spread time.Duration, total int) rate.Limit {
	left := min(spread, p.runAt(window+1).Sub(p.cfg.Now()))
	if left <= 0 {
		return rate.Inf
	}
	return rate.Limit(max(p.cfg.FanoutRate, float64(total)/left.Seconds()))
}

// fanoutSpread is Config.FanoutSpread with its default applied.
func (p *Pipeline) fanoutSpread() time.Duration {
	if p.cfg.FanoutSpread == 0 {
		return p.cfg.Window / time.Duration(len(domain.Professions))
	}
	return p.cfg.FanoutSpread
}

type notifyWorker struct {
	river.WorkerDefaults[NotifyArgs]
	p *Pipeline
}

func (w *notifyWorker) Work(ctx context.Context, job *river.Job[NotifyArgs]) error {
	res, err := w.p.digests.Do(ctx, job.Args)
	if err != nil {
		return err
	}
	if res.Err != nil {
		if domain.ErrorCode(res.Err) == domain.ENOTFOUND {
			return river.JobCancel(res.Err) // the worker is gone: retrying cannot help
		}
		return res.Err
	}
	n := res.Notification
	if n == nil {
		return nil
	}
	w.p.cfg.Metrics.NotificationBuilt(n.Count)
	fields := []zap.Field{zap.Int64("job_id", job.ID), zap.Int64("worker_id", n.WorkerID), zap.String("notification_id", n.ID)}
	w.p.log.Debug("digest built", append(fields, zap.Int("count", n.Count))...)
	// The first attempt happens here, on the notification just built,
	// rather than in a deliver job of its own: one River job per
	// notification instead of two. The digest is committed whatever
	// happens next, so nothing below fails this job: a failed attempt hands
	// the notification to a retrying deliver job, and if even that fails,
	// the lease expires and the sweep does it.
	final := w.p.cfg.MaxDeliveryAttempts <= 1
	status, failure, err := w.p.attempt(ctx, store.Delivery{Notification: *n, Status: "pending", Delivered: map[string]bool{}}, final)
	if err == nil && failure == nil {
		return nil
	}
	if err != nil {
		w.p.log.Warn("first delivery attempt not recorded; the lease sweep will retry it", append(fields, zap.Error(err))...)
		return nil
	}
	if status != "pending" {
		w.p.log.Error("notification delivery failed for good", append(fields, zap.Int("attempt", 1), zap.Error(failure))...)
		return nil
	}
	w.p.log.Warn("notification delivery failed, will retry", append(fields, zap.Int("attempt", 1), zap.Error(failure))...)
	if _, err := w.p.cfg.Store.HandOffDelivery(ctx, n.ID, func(ctx context.Context, tx pgx.Tx) error {
		_, err := w.p.client.InsertTx(ctx, tx, DeliverArgs{NotificationID: n.ID}, &river.InsertOpts{
			MaxAttempts: w.p.cfg.MaxDeliveryAttempts - 1, // the first was this one
			ScheduledAt: time.Now().Add(w.p.cfg.RetryBase),
		})
		return err
	}); err != nil {
		w.p.log.Warn("hand off delivery; the lease sweep will retry it", append(fields, zap.Error(err))...)
	}
	return nil
}

type deliverWorker struct {
	river.WorkerDefaults[DeliverArgs]
	p *Pipeline
}

// NextRetry backs off exponentially from RetryBase, capped at RetryMax.
func (w *deliverWorker) NextRetry(job *river.Job[DeliverArgs]) time.Time {
	d := w.p.cfg.RetryBase << min(job.Attempt-1, 30)
	if d <= 0 || d > w.p.cfg.RetryMax {
		d = w.p.cfg.RetryMax
	}
	return time.Now().Add(d)
}

func (w *deliverWorker) Work(ctx context.Context, job *river.Job[DeliverArgs]) error {
	id := job.Args.NotificationID
	d, err := w.p.cfg.Store.Notification(ctx, id)
	if err != nil {
		return err
	}
	if d.Status != "pending" {
		return nil // delivered (or given up on) by an earlier attempt
	}
	status, failure, err := w.p.attempt(ctx, d, job.Attempt >= job.MaxAttempts)
	if err != nil {
		return err
	}
	if failure == nil {
		return nil
	}
	fields := []zap.Field{zap.Int64("job_id", job.ID), zap.String("notification_id", id),
		zap.Int64("worker_id", d.Notification.WorkerID), zap.Int("attempt", job.Attempt), zap.Error(failure)}
	if status == "failed" {
		w.p.log.Error("notification delivery failed for good", fields...)
	} else {
		w.p.log.Warn("notification delivery failed, will retry", fields...)
	}
	return fmt.Errorf("deliver notification %s: %w", id, failure)
}

// attempt sends d on every configured channel that does not have it yet and
// records the outcome: the notification's status, the channels' joined
// failure (nil when all succeeded), and err when the outcome could not be
// recorded. final marks it failed, rather than pending, if a channel fails.
func (p *Pipeline) attempt(ctx context.Context, d store.Delivery, final bool) (status string, failure, err error) {
	id := d.Notification.ID
	want := slices.Sorted(maps.Keys(p.cfg.Channels))
	var (
		errs      []error
		delivered []string
		todo      []string
	)
	for _, name := range want {
		if !d.Delivered[name] {
			todo = append(todo, name) // never send a channel twice because another failed
		}
	}
	for i, name := range todo {
		if err := p.cfg.Channels[name].Deliver(ctx, d.Notification); err != nil {
			p.cfg.Metrics.Delivery(name, false)
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		p.cfg.Metrics.Delivery(name, true)
		if i < len(todo)-1 {
			// Another channel is still to be tried, and may hang or crash
			// the process: record this success now. The last success is
			// recorded with the attempt's outcome, in one statement.
			if _, err := p.marks.Do(ctx, store.ChannelDelivery{NotificationID: id, Channel: name}); err != nil {
				return "", nil, err
			}
			continue
		}
		delivered = append(delivered, name)
	}
	failure = errors.Join(errs...)
	status, err = p.finishes.Do(ctx, store.DeliveryOutcome{NotificationID: id, Want: want, Delivered: delivered, Err: failure, Final: final})
	return status, failure, err
}

type pruneWorker struct {
	river.WorkerDefaults[PruneArgs]
	p *Pipeline
}

func (w *pruneWorker) Work(ctx context.Context, job *river.Job[PruneArgs]) error {
	openings, events, err := w.p.cfg.Store.Prune(ctx, w.p.cfg.Now(), w.p.cfg.KeepEvents)
	if err != nil {
		return err
	}
	w.p.log.Info("pruned", zap.Int64("job_id", job.ID), zap.Int64("shift_openings", openings), zap.Int64("applied_events", events))
	return nil
}

type sweepWorker struct {
	river.WorkerDefaults[SweepArgs]
	p *Pipeline
}

// sweepBatch bounds one sweep transaction; a sweep loops until none is left.
const sweepBatch = 1000

func (w *sweepWorker) Work(ctx context.Context, job *river.Job[SweepArgs]) error {
	total, err := sweepAll(func() (int, error) {
		return w.p.cfg.Store.ExpiredLeases(ctx, sweepBatch, func(ctx context.Context, tx pgx.Tx, ids []string) error {
			params := make([]river.InsertManyParams, len(ids))
			for i, id := range ids {
				params[i] = river.InsertManyParams{Args: DeliverArgs{NotificationID: id},
					InsertOpts: &river.InsertOpts{MaxAttempts: w.p.cfg.MaxDeliveryAttempts}}
			}
			_, err := w.p.client.InsertManyTx(ctx, tx, params)
			return err
		})
	})
	if err != nil {
		return err
	}
	if total > 0 {
		w.p.log.Warn("notifications whose first delivery was cut short handed to deliver jobs",
			zap.Int64("job_id", job.ID), zap.Int("notifications", total))
	}
	window := w.p.Window(w.p.cfg.Now())
	// After DIGEST_WINDOW was made longer (the sweep runs when River
	// starts): see store.RenumberWindows.
	if n, err := w.p.cfg.Store.RenumberWindows(ctx, window); err != nil {
		return err
	} else if n > 0 {
		w.p.log.Warn("schedules and fan-out marks of a longer digest window's numbering moved to the present",
			zap.Int64("job_id", job.ID), zap.Int64("window", window), zap.Int64("rows", n))
	}
	lost, err := sweepAll(func() (int, error) {
		return w.p.cfg.Store.LostSchedules(ctx, window, sweepBatch, w.p.notifyJobs(window))
	})
	if err != nil {
		return err
	}
	if lost > 0 {
		w.p.log.Warn("workers whose notify job never started scheduled again",
			zap.Int64("job_id", job.ID), zap.Int64("window", window), zap.Int("workers", lost))
	}
	return nil
}

// sweepAll runs step, which handles at most sweepBatch items in a
// transaction, until a step finds fewer, and returns how many were handled.
func sweepAll(step func() (int, error)) (int, error) {
	total := 0
	for {
		n, err := step()
		total += n
		if err != nil || n < sweepBatch {
			return total, err
		}
	}
}

// notifyJobs returns an enqueue inserting the notify jobs of window for
// the workers given, in the caller's transaction.
func (p *Pipeline) notifyJobs(window int64) func(ctx context.Context, tx pgx.Tx, workerIDs []int64) error {
	opts := p.scheduleAt(p.runAt(window))
	return func(ctx context.Context, tx pgx.Tx, workerIDs []int64) error {
		if _, err := p.client.InsertManyTx(ctx, tx, notifyParams(nil, window, workerIDs, opts)); err != nil {
			return fmt.Errorf("insert notify jobs: %w", err)
		}
		return nil
	}
}

// notifyParams appends to params the inserts of window's notify jobs for
// workerIDs.
func notifyParams(params []river.InsertManyParams, window int64, workerIDs []int64, opts *river.InsertOpts) []river.InsertManyParams {
	for _, id := range workerIDs {
		params = append(params, river.InsertManyParams{Args: NotifyArgs{WorkerID: id, Window: window}, InsertOpts: opts})
	}
	return params
}
