package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/shiftcast/shiftcast/localnats"
	"github.com/shiftcast/shiftcast/localpg"
	"github.com/shiftcast/shiftcast/seed"
	"github.com/shiftcast/shiftcast/store"
)

func runDev(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var (
		cfg      serveConfig
		dir      string
		natsPort int
		pgPort   int
		profile  string
		seedN    int64
		serve    bool
		demoRate float64
	)
	fs := newFlagSet("dev", `Run the whole stack locally on embedded defaults: an in-process NATS server
with JetStream, PostgreSQL from DATABASE_URL or else a local cluster started
from the installed PostgreSQL server, migrations, demo data (first run only)
and serve. Data lives under --dir and is reused by the next run. Ctrl-C stops
everything.`, stdout)
	cfg.common.register(fs, getenv)
	cfg.register(fs, getenv)
	if err := cfg.pipeline.register(fs, getenv); err != nil {
		return err
	}
	fs.StringVar(&dir, "dir", ".shiftcast", "directory for the local PostgreSQL and NATS data")
	fs.IntVar(&natsPort, "nats-port", 4222, "port of the embedded NATS server (unless NATS_URL is set)")
	fs.IntVar(&pgPort, "pg-port", 5433, "port of the local PostgreSQL cluster (unless DATABASE_URL is set)")
	fs.StringVar(&profile, "profile", "marketplace", "dataset loaded into an empty database: marketplace or challenge")
	fs.Float64Var(&demoRate, "demo-rate", 2, "demo events published per second while running (0: none)")
	fs.BoolVar(&serve, "serve", true, "also run serve in this process; false keeps only PostgreSQL and NATS up (to run serve or a benchmark separately)")
	fs.Int64Var(&seedN, "seed", 1, "demo dataset seed")
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	logger, err := newLogger(cfg.logLevel)
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }()
	dir, err = filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}

	socketURL := "" // the local cluster's unix-socket URL, when dev started one
	if !explicit["database-url"] && getenv("DATABASE_URL") == "" {
		if _, err := localpg.Find(); err != nil {
			return fmt.Errorf("no DATABASE_URL and no local PostgreSQL server: %w", err)
		}
		pgLog, err := os.OpenFile(filepath.Join(dir, "postgres.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer pgLog.Close()
		fmt.Fprintf(stdout, "starting PostgreSQL in %s ...\n", filepath.Join(dir, "pg"))
		cluster, err := localpg.Start(ctx, localpg.Options{Dir: filepath.Join(dir, "pg"), Port: pgPort, Durable: true, Log: pgLog})
		if err != nil {
			return fmt.Errorf("start local postgres (log: %s): %w", pgLog.Name(), err)
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := cluster.Stop(sctx); err != nil {
				logger.Warn("stop postgres", zap.Error(err))
			}
		}()
		cfg.databaseURL = cluster.URL()
		socketURL = cluster.SocketURL()
	}
	if !explicit["nats-url"] && getenv("NATS_URL") == "" {
		ns, err := localnats.Start(localnats.Options{Host: "127.0.0.1", Port: natsPort, StoreDir: filepath.Join(dir, "nats"), ServerName: "shiftcast-dev"})
		if err != nil {
			return fmt.Errorf("start embedded nats on port %d (try --nats-port): %w", natsPort, err)
		}
		defer ns.Shutdown()
		cfg.natsURL = ns.ClientURL()
	}

	st, err := store.Open(ctx, cfg.databaseURL, store.Config{MaxConns: 4})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	has, err := st.HasMarketplaceData(ctx)
	if err != nil {
		return err
	}
	if !has {
		fmt.Fprintf(stdout, "loading the %s demo dataset (first run only) ...\n", profile)
		if err := seed.Run(ctx, st, seed.Options{Profile: profile, Seed: seedN, Now: time.Now().UTC()}, stdout); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}

	if !serve {
		fmt.Fprintf(stdout, "\nPostgreSQL and NATS are up (no serve).\n  DATABASE_URL=%s\n  NATS_URL=%s\n", cfg.databaseURL, cfg.natsURL)
		if socketURL != "" {
			fmt.Fprintf(stdout, "  (on this host, faster: DATABASE_URL=%s)\n", socketURL)
		}
		fmt.Fprintln(stdout, "Press Ctrl-C to stop.")
		<-ctx.Done()
		return nil
	}
	cfg.migrate = false // done above
	if cfg.adminToken == "" {
		cfg.adminToken = "dev" // local only; a deployment sets ADMIN_TOKEN
	}
	serveCfg := cfg
	if socketURL != "" {
		serveCfg.databaseURL = socketURL // same host: skip TCP loopback
	}
	app, err := startServe(ctx, serveCfg, logger)
	if err != nil {
		return err
	}
	if demoRate > 0 {
		go runDemo(ctx, st, app.nc, demoRate, logger.Named("demo"))
	}
	base := app.http.URL()
	fmt.Fprintf(stdout, `
shiftcast is running.
  operator page   %[1]s/  (admin token: %[4]s)
  HTTP API        %[1]s  (OpenAPI: %[1]s/openapi.json)
  try             curl '%[1]s/v1/workers/1/eligible-shifts?limit=5'
  NATS            %[2]s  (service "shiftcast": nats micro ls)
  PostgreSQL      %[3]s
  demo events     %.1[5]f/s (--demo-rate)
Press Ctrl-C to stop.
`, base, cfg.natsURL, redact(cfg.databaseURL), cfg.adminToken, demoRate)
	<-ctx.Done()
	fmt.Fprintln(stdout, "stopping ...")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdown)
	defer cancel()
	if err := app.close(sctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
