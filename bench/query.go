// Package bench is the load generator behind `shiftcast bench query`: it
// drives the eligible-shifts query over NATS request-reply, over HTTP, or —
// as the comparison point — directly against PostgreSQL with the query as the
// challenge's solutions usually write it, and reports throughput and latency
// percentiles.
//
// The generator is meant to share a small machine with the service it
// measures, so the hot loop is kept cheap: request bodies and URLs are built
// once, buffers are reused, each client goroutine records latencies in its own
// slice (no locks, no logging), and the slices are merged and sorted once at
// the end.
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/shiftcast/shiftcast/store"
)

// Transports accepted in QueryConfig.Transport.
const (
	TransportNATS     = "nats"
	TransportHTTP     = "http"
	TransportBaseline = "baseline"
)

// SubjectShifts is the NATS request-reply subject for eligible shifts.
const SubjectShifts = "eligibility.v1.shifts"

// natsErrorCodeHeader and natsErrorHeader are nats.go micro's error headers
// (micro.ErrorCodeHeader, micro.ErrorHeader).
const (
	natsErrorCodeHeader = "Nats-Service-Error-Code"
	natsErrorHeader     = "Nats-Service-Error"
)

// Defaults applied by RunQuery to zero-valued QueryConfig fields.
const (
	DefaultLimit       = 50
	DefaultConcurrency = 32
	DefaultDuration    = 10 * time.Second
	DefaultWarmup      = 2 * time.Second
	DefaultTimeout     = 2 * time.Second
	// DefaultBaselineTimeout is the baseline's per-request default: the
	// unindexed query can take seconds on the challenge dataset, and a
	// timeout there would hide its latency behind errors.
	DefaultBaselineTimeout = 30 * time.Second
	DefaultNATSURL         = "nats://127.0.0.1:4222"
	DefaultHTTPURL         = "http://127.0.0.1:8080"
	DefaultDatabaseURL     = "postgres://postgres:postgres@localhost:5432/postgres"
)

// DefaultWorkerIDs are the workers queried when QueryConfig.WorkerIDs is
// empty: 101–103, as PERFORMANCE.md records.
var DefaultWorkerIDs = []int64{101, 102, 103}

// QueryConfig describes one `bench query` run. Zero values take the defaults
// above.
type QueryConfig struct {
	// Transport is "nats", "http" or "baseline".
	Transport string
	// NATSURL is the NATS server for the nats transport.
	NATSURL string
	// HTTPURL is the API's base URL for the http transport, e.g.
	// http://127.0.0.1:8080.
	HTTPURL string
	// DatabaseURL is the PostgreSQL database for the baseline transport.
	DatabaseURL string
	// WorkerIDs are queried round-robin (each client starts at a different
	// offset). Default 101, 102, 103.
	WorkerIDs []int64
	// Limit is the page size asked for. Default 50.
	Limit int
	// Concurrency is the number of clients issuing requests back to back.
	// Default 32.
	Concurrency int
	// Duration is the measured window. Default 10s.
	Duration time.Duration
	// Warmup runs before the measured window and is excluded from the
	// report. Default 2s; negative means no warmup.
	Warmup time.Duration
	// Timeout bounds each request. Default 2s (30s for the baseline).
	Timeout time.Duration
	// Connections is the number of NATS connections the clients share
	// (default min(Concurrency, max(2, 2×GOMAXPROCS))), the HTTP connection
	// limit (default Concurrency), or the PostgreSQL pool size for the
	// baseline (default Concurrency).
	Connections int
}

// Report is the outcome of a run. Percentiles are over successful requests in
// the measured window; failed requests are counted in Errors.
type Report struct {
	Transport   string        `json:"transport"`
	Target      string        `json:"target,omitempty"`
	WorkerIDs   []int64       `json:"worker_ids"`
	Limit       int           `json:"limit"`
	Concurrency int           `json:"concurrency"`
	Connections int           `json:"connections"`
	Duration    time.Duration `json:"duration_ns"`
	Requests    int64         `json:"requests"`
	Errors      int64         `json:"errors"`
	RPS         float64       `json:"rps"`
	P50         time.Duration `json:"p50_ns"`
	P95         time.Duration `json:"p95_ns"`
	P99         time.Duration `json:"p99_ns"`
	Max         time.Duration `json:"max_ns"`
	FirstError  string        `json:"first_error,omitempty"`
}

// Print writes r as a compact human-readable block.
func (r Report) Print(w io.Writer) {
	ids := make([]string, len(r.WorkerIDs))
	for i, id := range r.WorkerIDs {
		ids[i] = strconv.FormatInt(id, 10)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "transport    %s", r.Transport)
	if r.Target != "" {
		fmt.Fprintf(&b, " %s", r.Target)
	}
	fmt.Fprintf(&b, " (%d connections)\n", r.Connections)
	fmt.Fprintf(&b, "query        workers %s, limit %d\n", strings.Join(ids, ","), r.Limit)
	fmt.Fprintf(&b, "concurrency  %d\n", r.Concurrency)
	fmt.Fprintf(&b, "duration     %s (after warmup)\n", r.Duration.Round(time.Millisecond))
	fmt.Fprintf(&b, "requests     %d (%d errors)\n", r.Requests, r.Errors)
	fmt.Fprintf(&b, "throughput   %.1f req/s\n", r.RPS)
	fmt.Fprintf(&b, "latency      p50 %s  p95 %s  p99 %s  max %s\n",
		fmtLatency(r.P50), fmtLatency(r.P95), fmtLatency(r.P99), fmtLatency(r.Max))
	if r.FirstError != "" {
		fmt.Fprintf(&b, "first error  %s\n", r.FirstError)
	}
	_, _ = io.WriteString(w, b.String())
}

func fmtLatency(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64) + "ms"
}

// Percentile returns the p-th percentile (0 < p ≤ 100) of sorted by the
// nearest-rank method: the smallest value such that at least p% of the
// values are ≤ it. It returns 0 for an empty slice.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	if p <= 0 {
		return sorted[0]
	}
	if p >= 100 {
		return sorted[n-1]
	}
	// Ceil(p/100 × n), less a small epsilon so that float rounding (e.g.
	// 0.95×100 = 95.00000000000001) does not push the rank up by one.
	rank := int(math.Ceil(p/100*float64(n) - 1e-9))
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	return sorted[rank-1]
}

// caller issues one request for WorkerIDs[idx]. Each client goroutine owns
// its caller, so implementations may keep per-client state without locks.
// full asks for a full decode and validation of the reply rather than the
// cheap check.
type caller interface {
	call(ctx context.Context, idx int, full bool) error
}

// target is what a transport sets up once per run.
type target struct {
	name      string // where requests go, for the report
	conns     int
	newCaller func(ctx context.Context, client int) caller
	close     func()
}

// RunQuery runs the benchmark described by cfg and returns its report. It
// first sends one request per worker id and returns an error at once if any
// fails (service not running, wrong URL, error replies). It also returns an
// error, alongside the report, when no request in the measured window
// succeeded or ctx ended the run early.
func RunQuery(ctx context.Context, cfg QueryConfig) (Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Report{}, err
	}
	var t target
	switch cfg.Transport {
	case TransportNATS:
		t, err = natsTarget(ctx, cfg)
	case TransportHTTP:
		t, err = httpTarget(cfg)
	case TransportBaseline:
		t, err = baselineTarget(ctx, cfg)
	}
	if err != nil {
		return Report{}, err
	}
	defer t.close()

	rep := Report{
		Transport:   cfg.Transport,
		Target:      t.name,
		WorkerIDs:   slices.Clone(cfg.WorkerIDs),
		Limit:       cfg.Limit,
		Concurrency: cfg.Concurrency,
		Connections: t.conns,
	}

	// Preflight: one fully validated request per worker id.
	pre := t.newCaller(ctx, 0)
	for i, id := range cfg.WorkerIDs {
		if err := pre.call(ctx, i, true); err != nil {
			return rep, fmt.Errorf("bench %s: preflight request for worker %d: %w", cfg.Transport, id, err)
		}
	}

	return run(ctx, cfg, t, rep)
}

// clientResult is one client goroutine's own record.
type clientResult struct {
	latencies []time.Duration
	requests  int64
	errors    int64
	firstErr  error
}

func run(ctx context.Context, cfg QueryConfig, t target, rep Report) (Report, error) {
	n := len(cfg.WorkerIDs)
	results := make([]clientResult, cfg.Concurrency)
	callers := make([]caller, cfg.Concurrency)
	for i := range callers {
		callers[i] = t.newCaller(ctx, i)
	}

	// Room for up to ~50k req/s over the window without growing.
	perClient := int(cfg.Duration.Seconds()*50_000)/cfg.Concurrency + 16
	perClient = min(perClient, 1<<20)

	var (
		wg    sync.WaitGroup
		ready = make(chan struct{})
	)
	var measureFrom, end time.Time
	for g := range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ready
			res := &results[g]
			res.latencies = make([]time.Duration, 0, perClient)
			c := callers[g]
			validated := make([]bool, n)
			idx := g % n
			for ctx.Err() == nil {
				start := time.Now()
				if !start.Before(end) {
					break
				}
				full := !validated[idx]
				err := c.call(ctx, idx, full)
				lat := time.Since(start)
				if err == nil {
					validated[idx] = true
				}
				if !start.Before(measureFrom) {
					res.requests++
					if err != nil {
						res.errors++
						if res.firstErr == nil {
							res.firstErr = err
						}
					} else {
						res.latencies = append(res.latencies, lat)
					}
				}
				if idx++; idx == n {
					idx = 0
				}
			}
		}()
	}
	began := time.Now()
	measureFrom = began.Add(cfg.Warmup)
	end = measureFrom.Add(cfg.Duration)
	close(ready)
	wg.Wait()
	finished := time.Now()

	window := cfg.Duration
	if finished.Before(end) { // cut short by ctx
		window = max(finished.Sub(measureFrom), 0)
	}

	total := 0
	var firstErr error
	for i := range results {
		r := &results[i]
		total += len(r.latencies)
		rep.Requests += r.requests
		rep.Errors += r.errors
		if firstErr == nil && r.firstErr != nil {
			firstErr = r.firstErr
		}
	}
	all := make([]time.Duration, 0, total)
	for i := range results {
		all = append(all, results[i].latencies...)
		results[i].latencies = nil
	}
	slices.Sort(all)

	rep.Duration = window
	if window > 0 {
		rep.RPS = float64(len(all)) / window.Seconds()
	}
	rep.P50 = Percentile(all, 50)
	rep.P95 = Percentile(all, 95)
	rep.P99 = Percentile(all, 99)
	if len(all) > 0 {
		rep.Max = all[len(all)-1]
	}
	if firstErr != nil {
		rep.FirstError = firstErr.Error()
	}

	switch {
	case ctx.Err() != nil:
		return rep, fmt.Errorf("bench %s: run interrupted: %w", cfg.Transport, ctx.Err())
	case rep.Requests == 0:
		return rep, fmt.Errorf("bench %s: no request completed in the measured window", cfg.Transport)
	case len(all) == 0:
		return rep, fmt.Errorf("bench %s: all %d requests failed, first: %w", cfg.Transport, rep.Requests, firstErr)
	}
	return rep, nil
}

func (c QueryConfig) withDefaults() (QueryConfig, error) {
	c.Transport = strings.ToLower(strings.TrimSpace(c.Transport))
	switch c.Transport {
	case TransportNATS, TransportHTTP, TransportBaseline:
	case "":
		c.Transport = TransportNATS
	default:
		return c, fmt.Errorf("bench: unknown transport %q (want nats, http or baseline)", c.Transport)
	}
	if len(c.WorkerIDs) == 0 {
		c.WorkerIDs = slices.Clone(DefaultWorkerIDs)
	}
	if c.Limit == 0 {
		c.Limit = DefaultLimit
	}
	if c.Limit < 0 {
		return c, fmt.Errorf("bench: limit must be positive, got %d", c.Limit)
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Concurrency < 0 {
		return c, fmt.Errorf("bench: concurrency must be positive, got %d", c.Concurrency)
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Duration < 0 {
		return c, fmt.Errorf("bench: duration must be positive, got %s", c.Duration)
	}
	switch {
	case c.Warmup == 0:
		c.Warmup = DefaultWarmup
	case c.Warmup < 0:
		c.Warmup = 0
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
		if c.Transport == TransportBaseline {
			c.Timeout = DefaultBaselineTimeout
		}
	}
	if c.Connections < 0 {
		return c, fmt.Errorf("bench: connections must be positive, got %d", c.Connections)
	}
	if c.Connections == 0 {
		switch c.Transport {
		case TransportNATS:
			c.Connections = min(c.Concurrency, max(2, 2*runtime.GOMAXPROCS(0)))
		default:
			c.Connections = c.Concurrency
		}
	}
	if c.NATSURL == "" {
		c.NATSURL = DefaultNATSURL
	}
	if c.HTTPURL == "" {
		c.HTTPURL = DefaultHTTPURL
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = DefaultDatabaseURL
	}
	return c, nil
}

// --- reply validation ---

var shiftsPrefix = []byte(`{"shifts":[`)

type shiftsReply struct {
	Shifts *[]struct {
		ID         int64     `json:"id"`
		FacilityID int64     `json:"facility_id"`
		Profession string    `json:"profession"`
		Start      time.Time `json:"start"`
		End        time.Time `json:"end"`
	} `json:"shifts"`
	NextCursor json.RawMessage `json:"next_cursor"`
}

// checkShifts validates an eligible-shifts reply body. The cheap path only
// checks the `{"shifts":[` prefix; full (or a body not starting that way)
// decodes it.
func checkShifts(body []byte, full bool, limit int) error {
	if !full && bytes.HasPrefix(body, shiftsPrefix) {
		return nil
	}
	var r shiftsReply
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("decode reply: %w (body %s)", err, snippet(body))
	}
	if r.Shifts == nil {
		return fmt.Errorf(`reply has no "shifts" array (body %s)`, snippet(body))
	}
	if len(*r.Shifts) > limit {
		return fmt.Errorf("reply has %d shifts, more than the limit %d", len(*r.Shifts), limit)
	}
	for _, s := range *r.Shifts {
		if s.ID == 0 || s.Start.IsZero() {
			return fmt.Errorf("reply has a shift without id or start (body %s)", snippet(body))
		}
	}
	return nil
}

func snippet(b []byte) string {
	const maxLen = 200
	if len(b) > maxLen {
		return strconv.Quote(string(b[:maxLen])) + "..."
	}
	return strconv.Quote(string(b))
}

// --- NATS ---

func natsTarget(ctx context.Context, cfg QueryConfig) (target, error) {
	bodies := make([][]byte, len(cfg.WorkerIDs))
	for i, id := range cfg.WorkerIDs {
		bodies[i] = []byte(`{"worker_id":` + strconv.FormatInt(id, 10) + `,"limit":` + strconv.Itoa(cfg.Limit) + `}`)
	}
	conns := make([]*nats.Conn, 0, cfg.Connections)
	closeAll := func() {
		for _, nc := range conns {
			nc.Close()
		}
	}
	for i := range cfg.Connections {
		nc, err := nats.Connect(cfg.NATSURL,
			nats.Name("shiftcast-bench-"+strconv.Itoa(i)),
			nats.Timeout(cfg.Timeout),
		)
		if err != nil {
			closeAll()
			return target{}, fmt.Errorf("bench nats: connect %s: %w", cfg.NATSURL, err)
		}
		conns = append(conns, nc)
	}
	// nc.Request does not take a context: close the connections when ctx
	// ends so that in-flight requests return at once.
	stop := context.AfterFunc(ctx, closeAll)
	return target{
		name:  cfg.NATSURL,
		conns: len(conns),
		newCaller: func(_ context.Context, client int) caller {
			return &natsCaller{nc: conns[client%len(conns)], bodies: bodies, timeout: cfg.Timeout, limit: cfg.Limit}
		},
		close: func() {
			stop()
			closeAll()
		},
	}, nil
}

type natsCaller struct {
	nc      *nats.Conn
	bodies  [][]byte
	timeout time.Duration
	limit   int
}

func (c *natsCaller) call(_ context.Context, idx int, full bool) error {
	msg, err := c.nc.Request(SubjectShifts, c.bodies[idx], c.timeout)
	if err != nil {
		return err
	}
	if code := msg.Header.Get(natsErrorCodeHeader); code != "" {
		return fmt.Errorf("service error %s %s: %s", code, msg.Header.Get(natsErrorHeader), snippet(msg.Data))
	}
	return checkShifts(msg.Data, full, c.limit)
}

// --- HTTP ---

func httpTarget(cfg QueryConfig) (target, error) {
	base, err := url.Parse(strings.TrimRight(cfg.HTTPURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return target{}, fmt.Errorf("bench http: invalid base URL %q", cfg.HTTPURL)
	}
	urls := make([]string, len(cfg.WorkerIDs))
	for i, id := range cfg.WorkerIDs {
		urls[i] = base.String() + "/v1/workers/" + strconv.FormatInt(id, 10) +
			"/eligible-shifts?limit=" + strconv.Itoa(cfg.Limit)
	}
	idle := max(cfg.Concurrency, cfg.Connections)
	tr := &http.Transport{
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   cfg.Timeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          idle,
		MaxIdleConnsPerHost:   idle,
		MaxConnsPerHost:       cfg.Connections,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: cfg.Timeout,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
	}
	client := &http.Client{Transport: tr, Timeout: cfg.Timeout}
	return target{
		name:  base.String(),
		conns: cfg.Connections,
		newCaller: func(ctx context.Context, _ int) caller {
			// One request per worker id, reused: a client sends them one at
			// a time and only after the previous body is closed.
			reqs := make([]*http.Request, len(urls))
			for i, u := range urls {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
				if err != nil { // urls were built from a parsed URL
					panic(err)
				}
				req.Header = http.Header{"Accept": []string{"application/json"}}
				reqs[i] = req
			}
			return &httpCaller{client: client, reqs: reqs, limit: cfg.Limit}
		},
		close: tr.CloseIdleConnections,
	}, nil
}

type httpCaller struct {
	client *http.Client
	reqs   []*http.Request
	buf    bytes.Buffer
	limit  int
}

func (c *httpCaller) call(_ context.Context, idx int, full bool) error {
	resp, err := c.client.Do(c.reqs[idx])
	if err != nil {
		return err
	}
	c.buf.Reset()
	_, err = c.buf.ReadFrom(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, snippet(c.buf.Bytes()))
	}
	return checkShifts(c.buf.Bytes(), full, c.limit)
}

// --- baseline (PostgreSQL, the challenge's usual query) ---

func baselineTarget(ctx context.Context, cfg QueryConfig) (target, error) {
	conns := int32(min(cfg.Connections, 1<<30))
	st, err := store.Open(ctx, cfg.DatabaseURL, store.Config{MaxConns: conns, MinConns: conns})
	if err != nil {
		return target{}, fmt.Errorf("bench baseline: %w", err)
	}
	return target{
		name:  redactURL(cfg.DatabaseURL),
		conns: int(conns),
		newCaller: func(context.Context, int) caller {
			return &baselineCaller{st: st, ids: cfg.WorkerIDs, limit: cfg.Limit, timeout: cfg.Timeout}
		},
		close: st.Close,
	}, nil
}

type baselineCaller struct {
	st      *store.Store
	ids     []int64
	limit   int
	timeout time.Duration
}

func (c *baselineCaller) call(ctx context.Context, idx int, _ bool) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	n, err := c.st.BaselineEligibleShifts(ctx, c.ids[idx], c.limit)
	cancel()
	if err != nil {
		return err
	}
	if n > c.limit {
		return errors.New("baseline query returned more rows than the limit")
	}
	return nil
}

// redactURL hides a password in a database URL for the report.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}
