package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/shiftcast/shiftcast/admin"
	"github.com/shiftcast/shiftcast/consumers"
	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/eligibility"
	"github.com/shiftcast/shiftcast/httpapi"
	"github.com/shiftcast/shiftcast/metrics"
	"github.com/shiftcast/shiftcast/reports"
	"github.com/shiftcast/shiftcast/store"
)

type serveConfig struct {
	common
	pipeline       pipelineConfig
	httpAddr       string
	readURL        string
	migrate        bool
	maxConns       int
	concurrency    int
	requestTimeout time.Duration
	shutdown       time.Duration
	debugAddr      string
	adminToken     string
}

func (c *serveConfig) register(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&c.httpAddr, "http-addr", envOr(getenv, "HTTP_ADDR", ":8080"), "HTTP listen address (env HTTP_ADDR)")
	fs.StringVar(&c.readURL, "read-database-url", getenv("READ_DATABASE_URL"), "PostgreSQL the queries (eligibility, reports) read from, e.g. a streaming replica of DATABASE_URL; DATABASE_URL when empty (env READ_DATABASE_URL)")
	fs.BoolVar(&c.migrate, "migrate", true, "apply migrations at start (retried in the background while the database is down)")
	fs.IntVar(&c.maxConns, "db-max-conns", 4*runtime.GOMAXPROCS(0), "PostgreSQL pool size (more connections than a few per core only add contention)")
	fs.IntVar(&c.concurrency, "nats-concurrency", 64, "NATS requests handled at once")
	fs.DurationVar(&c.requestTimeout, "request-timeout", 5*time.Second, "per-request time limit")
	fs.DurationVar(&c.shutdown, "shutdown-timeout", 15*time.Second, "how long to wait for in-flight work on shutdown")
	fs.StringVar(&c.adminToken, "admin-token", getenv("ADMIN_TOKEN"), "bearer token of the admin routes; they are disabled without one (env ADMIN_TOKEN)")
	fs.StringVar(&c.debugAddr, "debug-addr", "", "serve Go's pprof profiles on this address (e.g. 127.0.0.1:6060); off when empty")
}

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var cfg serveConfig
	fs := newFlagSet("serve", "Run the HTTP API and the NATS request-reply service until SIGINT/SIGTERM.", stdout)
	cfg.common.register(fs, getenv)
	cfg.register(fs, getenv)
	if err := cfg.pipeline.register(fs, getenv); err != nil {
		return err
	}
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	logger, err := newLogger(cfg.logLevel)
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }()
	app, err := startServe(ctx, cfg, logger)
	if err != nil {
		return err
	}
	logger.Info("serving", zap.String("http", app.http.URL()), zap.String("nats", redact(cfg.natsURL)), zap.String("version", version))
	<-ctx.Done()
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdown)
	defer cancel()
	return app.close(sctx)
}

// serveApp is the running composition of serve: every long-lived component,
// so dev and tests can start it in-process and stop it cleanly.
type serveApp struct {
	store     *store.Store
	reads     *store.Store // the queries' database, when apart from store
	nc        *nats.Conn
	responder *consumers.Responder
	http      *httpapi.Server
	pipeline  *pipeline
	stopRun   context.CancelFunc
	log       *zap.Logger
	cancel    context.CancelFunc
}

// migrationState reports readiness until migrations have been applied.
type migrationState struct{ done atomic.Bool }

func (m *migrationState) Ping(context.Context) error {
	if !m.done.Load() {
		return domain.Errorf(domain.EUNAVAILABLE, "migrations not applied yet")
	}
	return nil
}

// startServe wires pgx, NATS, the micro responder and the HTTP server. It
// succeeds while PostgreSQL or NATS are down: queries answer 503 and the
// connections are retried, so a deployment can start in any order.
func startServe(ctx context.Context, cfg serveConfig, logger *zap.Logger) (*serveApp, error) {
	bg, cancel := context.WithCancel(context.Background())
	app := &serveApp{log: logger, cancel: cancel}
	st, err := store.Open(ctx, cfg.databaseURL, store.Config{MaxConns: int32(cfg.maxConns)})
	if err != nil {
		cancel()
		return nil, err
	}
	app.store = st

	migrated := &migrationState{}
	if cfg.migrate {
		go migrateUntilDone(bg, st, migrated, logger.Named("migrate"))
	} else {
		migrated.done.Store(true)
	}

	nlog := logger.Named("nats")
	natsOpts, err := cfg.natsOptions()
	if err != nil {
		app.closeQuiet()
		return nil, err
	}
	nc, err := nats.Connect(cfg.natsURL, append(natsOpts,
		nats.Name("shiftcast "+version),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				nlog.Warn("disconnected", zap.Error(err))
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { nlog.Info("reconnected", zap.String("url", c.ConnectedUrlRedacted())) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			nlog.Error("async error", zap.String("subject", subject), zap.Error(err))
		}),
	)...)
	if err != nil {
		app.closeQuiet()
		return nil, fmt.Errorf("connect nats %s: %w", redact(cfg.natsURL), err)
	}
	app.nc = nc

	// The queries read from a replica when one is given: the design's way
	// to scale them, and it keeps them off the primary the pipeline
	// writes to. A replica lags a little: a shift claimed a moment ago may
	// still be listed (a claim is checked by the marketplace anyway).
	reads := st
	if cfg.readURL != "" {
		if reads, err = store.Open(ctx, cfg.readURL, store.Config{MaxConns: int32(cfg.maxConns)}); err != nil {
			app.closeQuiet()
			return nil, fmt.Errorf("read database: %w", err)
		}
		app.reads = reads
	}
	m := metrics.New()
	svc := eligibility.NewService(reads)
	rep := reports.NewService(reads)
	app.responder, err = consumers.StartResponder(nc, consumers.ResponderConfig{
		Service: svc, Reports: rep, Version: version, Concurrency: cfg.concurrency, Timeout: cfg.requestTimeout,
		Metrics: m, Logger: logger.Named("responder"),
	})
	if err != nil {
		app.closeQuiet()
		return nil, err
	}
	ready := map[string]httpapi.Pinger{"postgres": st, "migrations": migrated, "nats": natsPinger{nc}}
	if app.reads != nil {
		ready["postgres_read"] = app.reads
	}
	var adm httpapi.Admin
	if cfg.pipeline.events || cfg.pipeline.work {
		pl, err := newPipeline(cfg.pipeline, st, nc, m, logger.Named("pipeline"))
		if err != nil {
			app.closeQuiet()
			return nil, err
		}
		js, err := jetstream.New(nc)
		if err != nil {
			app.closeQuiet()
			return nil, fmt.Errorf("jetstream: %w", err)
		}
		adm = admin.New(js, pl.jobs.Client(), st)
		registerLagGauge(m, js)
		runCtx, stopRun := context.WithCancel(bg)
		app.pipeline, app.stopRun = pl, stopRun
		go pl.run(runCtx, cfg.pipeline, st, nc, migrated)
		ready["pipeline"] = pl
	}
	if cfg.debugAddr != "" {
		startDebugServer(bg, cfg.debugAddr, logger.Named("debug"))
	}
	app.http = httpapi.New(httpapi.Config{
		Addr:       cfg.httpAddr,
		Service:    svc,
		Ready:      ready,
		Admin:      adm,
		AdminToken: cfg.adminToken,
		Metrics:    m,
		Reports:    rep,
		Feed:       httpapi.FeedFrom(st, consumers.NewNotificationFeed(nc, logger.Named("feed"))),
		Logger:     logger.Named("http"),
	})
	if err := app.http.Open(ctx); err != nil {
		app.closeQuiet()
		return nil, err
	}
	return app, nil
}

func migrateUntilDone(ctx context.Context, st *store.Store, state *migrationState, log *zap.Logger) {
	wait := 500 * time.Millisecond
	for {
		err := st.Migrate(ctx)
		if err == nil {
			state.done.Store(true)
			log.Info("migrations applied")
			return
		}
		if domain.ErrorCode(err) != domain.EUNAVAILABLE {
			log.Error("migrations failed; not retrying", zap.Error(err))
			return
		}
		log.Warn("database unavailable, retrying migrations", zap.Duration("in", wait), zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, 10*time.Second)
	}
}

// registerLagGauge exposes the durable consumer's lag, read from the
// server at scrape time (bounded, so a slow server cannot stall scrapes).
func registerLagGauge(m *metrics.Metrics, js jetstream.JetStream) {
	m.GaugeFunc("shiftcast_consumer_lag", "Marketplace events not yet delivered to the shiftcast consumer (-1 when unknown).", func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := js.Consumer(ctx, consumers.StreamMarketplace, consumers.DurableName)
		if err != nil {
			return -1
		}
		info, err := c.Info(ctx)
		if err != nil {
			return -1
		}
		return float64(info.NumPending)
	})
}

type natsPinger struct{ nc *nats.Conn }

func (p natsPinger) Ping(context.Context) error {
	if !p.nc.IsConnected() {
		return domain.Errorf(domain.EUNAVAILABLE, "nats is %s", p.nc.Status())
	}
	return nil
}

// close stops accepting work, lets in-flight requests finish within ctx,
// then releases connections, in reverse order of start.
func (a *serveApp) close(ctx context.Context) error {
	var errs []error
	if a.pipeline != nil {
		errs = append(errs, a.pipeline.stop(ctx, a.stopRun))
	}
	if a.http != nil {
		errs = append(errs, a.http.Close(ctx))
	}
	if a.responder != nil {
		errs = append(errs, a.responder.Stop(ctx))
	}
	if a.nc != nil {
		if err := a.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, err)
		}
	}
	a.cancel()
	if a.reads != nil {
		a.reads.Close()
	}
	if a.store != nil {
		a.store.Close()
	}
	return errors.Join(errs...)
}

func (a *serveApp) closeQuiet() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.close(ctx); err != nil {
		a.log.Warn("cleanup after failed start", zap.Error(err))
	}
}
