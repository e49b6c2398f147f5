package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/shiftcast/shiftcast/bench"
)

const benchUsage = `Usage: shiftcast bench <mode> [flags]

Modes:
  query       load-test the eligible-shifts query against a running serve
              (--transport nats|http) or the challenge's usual SQL straight
              against a database (--transport baseline)
  events      publish a realistic mix of marketplace events at --rate against
              a running serve and report events/s applied and the latency
              from publication to the apply transaction
  deliveries  run a webhook receiver, publish shifts that reach many workers
              and report notifications delivered/s (serve's --webhook-url must
              point at --listen)
  receiver    only run the webhook receiver, until interrupted, then print
              what it got: keeps serve's deliveries succeeding between other
              runs
`

func runBench(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, benchUsage)
		return nil
	}
	switch args[0] {
	case "query":
		return runBenchQuery(ctx, args[1:], getenv, stdout)
	case "events":
		return runBenchEvents(ctx, args[1:], getenv, stdout)
	case "deliveries":
		return runBenchDeliveries(ctx, args[1:], getenv, stdout)
	case "receiver":
		return runBenchReceiver(ctx, args[1:], getenv, stdout)
	}
	return fmt.Errorf("%w: unknown bench mode %q (want query, events, deliveries or receiver)", errUsage, args[0])
}

// receiverFlags registers --listen and --webhook-secret for a mode that
// runs serve's webhook receiver.
func receiverFlags(fs *flag.FlagSet, listen, secret *string, getenv func(string) string) {
	fs.StringVar(listen, "listen", bench.DefaultListen, "address of the webhook receiver (serve's --webhook-url must point at it)")
	fs.StringVar(secret, "webhook-secret", getenv("WEBHOOK_SECRET"), "serve's Standard Webhooks secret, whsec_ + base64 (env WEBHOOK_SECRET)")
}

// needSecret refuses a receiver without serve's secret.
func needSecret(secret string) error {
	if secret == "" {
		return fmt.Errorf("%w: --webhook-secret is required (serve's secret)", errUsage)
	}
	return nil
}

// startReceiver runs a webhook receiver checking secret's signatures on
// addr until stop is called.
func startReceiver(ctx context.Context, addr, secret string) (*bench.Receiver, func(context.Context) error, error) {
	rc, err := bench.NewReceiver(secret)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: --webhook-secret: %w", errUsage, err)
	}
	stop, err := rc.Listen(ctx, addr)
	if err != nil {
		return nil, nil, err
	}
	return rc, stop, nil
}

func runBenchReceiver(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var listen, secret string
	fs := newFlagSet("bench receiver", "Run the benchmarks' webhook receiver until SIGINT/SIGTERM, then print the requests it got.", stdout)
	receiverFlags(fs, &listen, &secret, getenv)
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	if err := needSecret(secret); err != nil {
		return err
	}
	rc, stop, err := startReceiver(ctx, listen, secret)
	if err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err = stop(sctx)
	st := rc.Stats(time.Time{})
	fmt.Fprintf(stdout, "receiver     %d distinct notifications, %d requests, %d repeats, %d signature failures, %d bad requests\n",
		st.Distinct, st.Requests, st.Repeats, st.SignatureFailures, st.BadRequests)
	return err
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

func printReport(stdout io.Writer, asJSON bool, rep interface{ Print(io.Writer) }) error {
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.Print(stdout)
	return nil
}

const benchEventsSummary = `Publish a realistic mix of marketplace events (new shifts, claims, releases,
cancellations, document and activation changes ...) into JetStream at --rate
events/s for --duration against a running serve on a seeded database, wait
until every one is recorded in shiftcast.applied_events, and report events/s
applied and the latency from each event's time (stamped at publish) to
applied_at, the moment the apply transaction recorded it (its River jobs are
inserted in that same transaction, which then commits). --rate 0 publishes as
fast as possible (bound it with --events).`

func runBenchEvents(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var (
		c      common
		cfg    bench.EventsConfig
		listen string
		secret string
		asJSON bool
		quiet  bool
	)
	fs := newFlagSet("bench events", benchEventsSummary, stdout)
	c.register(fs, getenv)
	fs.Float64Var(&cfg.Rate, "rate", bench.DefaultEventsRate, "target events per second (0: as fast as possible)")
	fs.DurationVar(&cfg.Duration, "duration", bench.DefaultEventsDuration, "length of the publish phase")
	fs.Int64Var(&cfg.MaxEvents, "events", 0, "stop publishing after this many events (0: no limit)")
	fs.IntVar(&cfg.Publishers, "publishers", bench.DefaultEventsPublishers, "publishing goroutines, each with its own NATS connection")
	fs.IntVar(&cfg.InFlight, "in-flight", bench.DefaultEventsInFlight, "unacknowledged async publishes per publisher")
	fs.Int64Var(&cfg.Seed, "seed", 0, "generator seed (0: from the clock)")
	fs.IntVar(&cfg.Cooldown, "cooldown", bench.DefaultCooldown, "events that must pass before an entity an event changed is changed again")
	mix := fs.String("mix", "realistic", "event mix: realistic (mostly shifts' lifecycle) or churn (eligibility changing all the time)")
	fs.DurationVar(&cfg.Wait, "wait", bench.DefaultEventsWait, "how long to wait for the published events to be applied")
	fs.IntVar(&cfg.OpenShifts, "open-shifts", bench.DefaultEventsOpenShifts, "existing open shifts loaded for claims and deletions")
	fs.StringVar(&listen, "listen", "", "also run a webhook receiver on this address during the run and count what it gets (needs --webhook-secret)")
	fs.StringVar(&secret, "webhook-secret", getenv("WEBHOOK_SECRET"), "Standard Webhooks secret for --listen (env WEBHOOK_SECRET)")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	fs.BoolVar(&quiet, "quiet", false, "no progress lines on stderr")
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	var ok bool
	if cfg.Mix, ok = bench.Mixes[*mix]; !ok {
		return fmt.Errorf("%w: --mix %q: want realistic or churn", errUsage, *mix)
	}
	cfg.NATSURL, cfg.DatabaseURL = c.natsURL, c.databaseURL
	natsOpts, err := c.natsOptions()
	if err != nil {
		return err
	}
	cfg.NATSOptions = natsOpts
	if !quiet {
		cfg.Progress = os.Stderr
	}
	if listen != "" {
		rc, stop, err := startReceiver(ctx, listen, secret)
		if err != nil {
			return err
		}
		defer func() { _ = stop(context.Background()) }()
		cfg.Receiver = rc
	}
	rep, err := bench.RunEvents(ctx, cfg)
	if err != nil {
		if rep.Published > 0 {
			rep.Print(stdout)
		}
		return err
	}
	return printReport(stdout, asJSON, rep)
}

const benchDeliveriesSummary = `Run a Standard Webhooks receiver on --listen (signatures verified, 204
answered, distinct webhook-ids and repeats counted), publish a new shift of
every profession at the --facilities active facilities with the fewest
requirements, wait until the receiver has every notification the fan-out
should produce (one per distinct eligible worker), and report deliveries/s
(distinct received / first to last receipt). serve must run with
--webhook-url http://LISTEN and the same --webhook-secret.`

func runBenchDeliveries(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var (
		c      common
		cfg    bench.DeliveriesConfig
		asJSON bool
		quiet  bool
	)
	fs := newFlagSet("bench deliveries", benchDeliveriesSummary, stdout)
	c.register(fs, getenv)
	receiverFlags(fs, &cfg.Listen, &cfg.Secret, getenv)
	fs.IntVar(&cfg.Facilities, "facilities", bench.DefaultDeliveriesFacilities, "facilities that get a new shift of every profession")
	fs.DurationVar(&cfg.Wait, "wait", bench.DefaultDeliveriesWait, "how long to wait for the expected notifications")
	fs.DurationVar(&cfg.Linger, "linger", bench.DefaultDeliveriesLinger, "how long to keep counting (repeats) after the last expected one")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	fs.BoolVar(&quiet, "quiet", false, "no progress lines on stderr")
	if help, err := parse(fs, args); help || err != nil {
		return err
	}
	cfg.NATSURL, cfg.DatabaseURL = c.natsURL, c.databaseURL
	natsOpts, err := c.natsOptions()
	if err != nil {
		return err
	}
	cfg.NATSOptions = natsOpts
	if err := needSecret(cfg.Secret); err != nil {
		return err
	}
	if !quiet {
		cfg.Progress = os.Stderr
	}
	rep, err := bench.RunDeliveries(ctx, cfg)
	if err != nil {
		if rep.Shifts > 0 {
			rep.Print(stdout)
		}
		return err
	}
	return printReport(stdout, asJSON, rep)
}
