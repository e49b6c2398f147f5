package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/shiftcast/shiftcast/bench"
)

const benchUsage = `Usage: shiftcast bench <mode> [flags]

Modes:
  query   load-test the eligible-shifts query against a running serve
          (--transport nats|http) or the challenge's usual SQL straight
          against a database (--transport baseline)
`

func runBench(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, benchUsage)
		return nil
	}
	if args[0] == "query" {
		return runBenchQuery(ctx, args[1:], getenv, stdout)
	}
	return fmt.Errorf("%w: unknown bench mode %q (want query)", errUsage, args[0])
}

func runBenchQuery(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var (
		c         common
		cfg       bench.QueryConfig
		workerIDs string
		asJSON    bool
	)
	fs := newFlagSet("bench query", "Issue back-to-back eligible-shifts requests from --concurrency clients for --duration and print requests/s and latency percentiles.", stdout)
	c.register(fs, getenv)
	fs.StringVar(&cfg.Transport, "transport", "nats", "nats, http, or baseline (the challenge's usual SQL run directly on --database-url)")
	fs.StringVar(&cfg.HTTPURL, "http-url", envOr(getenv, "SHIFTCAST_URL", bench.DefaultHTTPURL), "base URL of serve's HTTP API (env SHIFTCAST_URL)")
	fs.StringVar(&workerIDs, "workers", "101,102,103", "comma-separated worker ids, queried round-robin")
	fs.IntVar(&cfg.Limit, "limit", 50, "page size")
	fs.IntVar(&cfg.Concurrency, "concurrency", 32, "concurrent clients")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured duration")
	fs.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "warm-up excluded from the figures (negative: none)")
	fs.DurationVar(&cfg.Timeout, "timeout", 0, "per-request time limit (0 = 2s, 30s for baseline)")
	fs.IntVar(&cfg.Connections, "connections", 0, "NATS connections / HTTP connections / PostgreSQL pool size (0 = automatic)")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	cfg.NATSURL, cfg.DatabaseURL = c.natsURL, c.databaseURL
	for _, f := range strings.Split(workerIDs, ",") {
		id, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil || id < 1 {
			return fmt.Errorf("%w: --workers: %q is not a worker id", errUsage, f)
		}
		cfg.WorkerIDs = append(cfg.WorkerIDs, id)
	}
	if cfg.Warmup == 0 {
		cfg.Warmup = -1 // the package reads 0 as "default"; on the command line 0 means none
	}
	rep, err := bench.RunQuery(ctx, cfg)
	if err != nil {
		if rep.Requests > 0 || rep.Errors > 0 {
			rep.Print(stdout) // the error count and first error explain the failure
		}
		return fmt.Errorf("bench query: %w", err)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.Print(stdout)
	return nil
}
