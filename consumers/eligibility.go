// Package consumers holds shiftcast's NATS-facing adapters: the micro
// request-reply responders for the eligibility queries (and, with the event
// pipeline, the JetStream consumers). Each adapter decodes, calls the
// service that owns the logic, and encodes; nothing more.
package consumers

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.uber.org/zap"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/eligibility"
	"github.com/shiftcast/shiftcast/metrics"
	"github.com/shiftcast/shiftcast/reports"
)

// Service identity and subjects, as DESIGN.md section 3 fixes them.
const (
	ServiceName    = "shiftcast"
	SubjectShifts  = "eligibility.v1.shifts"
	SubjectWorkers = "eligibility.v1.workers"
	SubjectExplain = "eligibility.v1.explain"
	SubjectMonthly = "reports.v1.monthly"
)

// ResponderConfig wires the request-reply service.
type ResponderConfig struct {
	Service *eligibility.Service
	// Reports, when set, adds the reports.v1.monthly endpoint.
	Reports *reports.Service
	Version string
	// Concurrency bounds the requests handled at once per instance; micro
	// runs each endpoint's handler on one goroutine, so without dispatching
	// the service would answer one request at a time.
	Concurrency int
	// Timeout bounds each request's work so a stalled database cannot pile
	// up goroutines.
	Timeout time.Duration
	// Metrics, when set, records each request's latency and status.
	Metrics *metrics.Metrics
	Logger  *zap.Logger
}

// Responder is the running micro service.
type Responder struct {
	svc   micro.Service
	cfg   ResponderConfig
	log   *zap.Logger
	stats map[string]*endpointStats

	// Requests go to a fixed pool of goroutines rather than one goroutine
	// each: a new goroutine grows its stack through pgx's call depth on
	// every request (7% of serve's CPU in the profile), a pooled one once.
	queue  chan request
	pool   sync.WaitGroup
	mu     sync.RWMutex // guards closed against sends on a closed queue
	closed bool
}

// request is one message for the pool.
type request struct {
	req    micro.Request
	name   string
	handle func(context.Context, []byte) ([]byte, error)
	stats  *endpointStats
}

// endpointStats is what the service measures itself, because micro's own
// counters only see the dispatch.
type endpointStats struct {
	requests, errors atomic.Int64
	nanos            atomic.Int64
}

// EndpointStatsData is the "data" micro reports per endpoint in `nats micro
// stats`: the real handling figures.
type EndpointStatsData struct {
	Requests              int64  `json:"requests"`
	Errors                int64  `json:"errors"`
	AverageProcessingTime string `json:"average_processing_time"`
}

// StartResponder registers the micro service "shiftcast" on nc with its
// three endpoints in the default queue group, shared by every instance.
func StartResponder(nc *nats.Conn, cfg ResponderConfig) (*Responder, error) {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 64
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	r := &Responder{
		cfg: cfg, log: cfg.Logger,
		queue: make(chan request, cfg.Concurrency),
		stats: map[string]*endpointStats{
			"shifts": {}, "workers": {}, "explain": {}, "monthly": {},
		},
	}
	svc, err := micro.AddService(nc, micro.Config{
		Name:        ServiceName,
		Version:     cfg.Version,
		Description: "Which open shifts can a worker take, who can take a shift, and why not.",
		StatsHandler: func(e *micro.Endpoint) any {
			st, ok := r.stats[e.Name]
			if !ok {
				return nil
			}
			d := EndpointStatsData{Requests: st.requests.Load(), Errors: st.errors.Load()}
			if d.Requests > 0 {
				d.AverageProcessingTime = time.Duration(st.nanos.Load() / d.Requests).String()
			}
			return d
		},
	})
	if err != nil {
		return nil, domain.Unavailable("nats micro service", err)
	}
	r.pool.Add(cfg.Concurrency)
	for range cfg.Concurrency {
		go r.work()
	}
	g := svc.AddGroup("eligibility.v1")
	endpoints := []struct {
		name   string
		handle func(context.Context, []byte) ([]byte, error)
		meta   string
	}{
		{"shifts", r.shifts, `{"worker_id","from","to","limit","cursor"} -> {"shifts":[...],"next_cursor"}`},
		{"workers", r.workers, `{"shift_id","limit","cursor"} -> {"workers":[...],"next_cursor"}`},
		{"explain", r.explain, `{"worker_id","shift_id"} -> {"eligible","reasons"}`},
	}
	for _, ep := range endpoints {
		if err := g.AddEndpoint(ep.name, r.dispatch(ep.name, ep.handle), micro.WithEndpointMetadata(map[string]string{"request": ep.meta})); err != nil {
			_ = r.stop(context.Background(), svc)
			return nil, domain.Unavailable("nats micro endpoint "+ep.name, err)
		}
	}
	if cfg.Reports != nil {
		err := svc.AddGroup("reports.v1").AddEndpoint("monthly", r.dispatch("monthly", r.monthly),
			micro.WithEndpointMetadata(map[string]string{"request": `{"from":"YYYY-MM","to":"YYYY-MM","worker_ids":[...]} -> {"from","to","rows":[...]}`}))
		if err != nil {
			_ = r.stop(context.Background(), svc)
			return nil, domain.Unavailable("nats micro endpoint monthly", err)
		}
	}
	r.svc = svc
	// Subscriptions are buffered client-side; flushing makes "started" mean
	// "the server routes requests to us". While disconnected (serve may
	// start before NATS), they are sent on connect instead.
	if nc.IsConnected() {
		if err := nc.FlushTimeout(5 * time.Second); err != nil {
			r.log.Warn("flush after registering the service", zap.Error(err))
		}
	}
	return r, nil
}

// Info returns micro's description of the running service.
func (r *Responder) Info() micro.Info { return r.svc.Info() }

// Stop unsubscribes the endpoints and waits, within ctx, for requests in
// flight to be answered.
func (r *Responder) Stop(ctx context.Context) error { return r.stop(ctx, r.svc) }

func (r *Responder) stop(ctx context.Context, svc micro.Service) error {
	err := svc.Stop()
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.queue)
	}
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.pool.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return err
}

// dispatch queues each request of endpoint name for the pool. The queue's
// bound is the pool's size, so a burst waits in micro's subscription (and
// NATS's slow-consumer limits) rather than in an unbounded Go queue.
func (r *Responder) dispatch(name string, handle func(context.Context, []byte) ([]byte, error)) micro.HandlerFunc {
	st := r.stats[name]
	return func(req micro.Request) {
		r.mu.RLock()
		defer r.mu.RUnlock()
		if r.closed {
			return // stopping: the requester times out and retries elsewhere
		}
		r.queue <- request{req: req, name: name, handle: handle, stats: st}
	}
}

func (r *Responder) work() {
	defer r.pool.Done()
	for q := range r.queue {
		r.serve(q)
	}
}

func (r *Responder) serve(q request) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.Timeout)
	body, err := q.handle(ctx, q.req.Data())
	cancel()
	q.stats.requests.Add(1)
	if err != nil {
		q.stats.errors.Add(1)
		r.respondError(q.req, q.name, err)
	} else if rerr := q.req.Respond(body); rerr != nil {
		r.log.Warn("respond failed", zap.String("endpoint", q.name), zap.Error(rerr))
	}
	elapsed := time.Since(start)
	q.stats.nanos.Add(int64(elapsed))
	r.cfg.Metrics.Query("nats", q.name, eligibility.Status(domain.ErrorCode(err)), elapsed)
}

func (r *Responder) respondError(req micro.Request, endpoint string, err error) {
	code := domain.ErrorCode(err)
	status := eligibility.Status(code)
	fields := []zap.Field{zap.String("endpoint", endpoint), zap.Int("status", status), zap.Error(err)}
	if status >= 500 {
		r.log.Error("request failed", fields...)
	} else {
		r.log.Debug("request rejected", fields...)
	}
	if rerr := req.Error(strconv.Itoa(status), domain.ErrorMessage(err), eligibility.ErrorBody(err),
		micro.WithHeaders(micro.Headers{"Content-Type": []string{"application/json"}})); rerr != nil {
		r.log.Warn("respond failed", zap.String("endpoint", endpoint), zap.Error(rerr))
	}
}

// Request bodies. Numbers are json.Number so 101 and "101" both work and a
// fraction or a word is a clean 400 from the shared parser.
type (
	shiftsRequest struct {
		WorkerID json.Number `json:"worker_id"`
		From     string      `json:"from"`
		To       string      `json:"to"`
		Limit    json.Number `json:"limit"`
		Cursor   string      `json:"cursor"`
	}
	workersRequest struct {
		ShiftID json.Number `json:"shift_id"`
		Limit   json.Number `json:"limit"`
		Cursor  string      `json:"cursor"`
	}
	explainRequest struct {
		WorkerID json.Number `json:"worker_id"`
		ShiftID  json.Number `json:"shift_id"`
	}
)

func decode(data []byte, v any) error {
	if len(data) == 0 {
		return domain.Errorf(domain.EINVALID, "request body is empty; send a JSON object")
	}
	if err := json.Unmarshal(data, v); err != nil {
		return domain.Errorf(domain.EINVALID, "request body is not a valid JSON request: %v", err)
	}
	return nil
}

func (r *Responder) shifts(ctx context.Context, data []byte) ([]byte, error) {
	var req shiftsRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	resp, err := r.cfg.Service.Shifts(ctx, eligibility.ShiftsParams{
		WorkerID: req.WorkerID.String(), From: req.From, To: req.To, Limit: req.Limit.String(), Cursor: req.Cursor,
	})
	if err != nil {
		return nil, err
	}
	return resp.AppendJSON(make([]byte, 0, 128+len(resp.Shifts)*128)), nil
}

func (r *Responder) workers(ctx context.Context, data []byte) ([]byte, error) {
	var req workersRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	resp, err := r.cfg.Service.Workers(ctx, eligibility.WorkersParams{
		ShiftID: req.ShiftID.String(), Limit: req.Limit.String(), Cursor: req.Cursor,
	})
	if err != nil {
		return nil, err
	}
	return resp.AppendJSON(make([]byte, 0, 128+len(resp.Workers)*96)), nil
}

type monthlyRequest struct {
	From      string        `json:"from"`
	To        string        `json:"to"`
	WorkerIDs []json.Number `json:"worker_ids"`
}

func (r *Responder) monthly(ctx context.Context, data []byte) ([]byte, error) {
	var req monthlyRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	p := reports.MonthlyParams{From: req.From, To: req.To}
	for _, id := range req.WorkerIDs {
		p.WorkerIDs = append(p.WorkerIDs, id.String())
	}
	resp, err := r.cfg.Reports.Monthly(ctx, p)
	if err != nil {
		return nil, err
	}
	return eligibility.MustJSON(resp), nil
}

func (r *Responder) explain(ctx context.Context, data []byte) ([]byte, error) {
	var req explainRequest
	if err := decode(data, &req); err != nil {
		return nil, err
	}
	v, err := r.cfg.Service.Explain(ctx, eligibility.ExplainParams{WorkerID: req.WorkerID.String(), ShiftID: req.ShiftID.String()})
	if err != nil {
		return nil, err
	}
	return eligibility.VerdictJSON(v), nil
}
