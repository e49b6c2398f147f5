package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// version is stamped at build time with -ldflags "-X main.version=..."; it
// must be SemVer, as NATS micro requires.
var version = "0.1.0-dev"

const usage = `shiftcast — eligibility-aware shift notifications for a staffing marketplace.

Usage:
  shiftcast <command> [flags]

Commands:
  serve     run everything a deployment runs: HTTP API and NATS request-reply service
  dev       the one-command local stack: local PostgreSQL and NATS, migrations, demo data, serve
  migrate   apply database migrations (marketplace tables when absent, shiftcast's, River's)
  seed      load a generated dataset (--profile challenge|marketplace)
  publish   publish one marketplace event: shiftcast publish TYPE JSON
  record    write a stream's events to a JSON-lines file
  replay    publish a JSON-lines file of events (as record writes them)
  bench     load-test a running serve (bench query, bench events)

Environment (flags override): DATABASE_URL, NATS_URL, HTTP_ADDR, WEBHOOK_URL,
WEBHOOK_SECRET, DIGEST_WINDOW, LOG_LEVEL.
Run "shiftcast <command> --help" for a command's flags.
`

// errUsage marks errors that are the caller's fault, for exit code 2.
var errUsage = errors.New("usage")

func exitCode(err error) int {
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

// run is the whole program behind main, with its inputs explicit so tests
// can drive it: arguments, the environment, and where to print.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, getenv, stdout)
	case "dev":
		return runDev(ctx, rest, getenv, stdout)
	case "migrate":
		return runMigrate(ctx, rest, getenv, stdout)
	case "seed":
		return runSeed(ctx, rest, getenv, stdout)
	case "bench":
		return runBench(ctx, rest, getenv, stdout)
	case "publish":
		return runPublish(ctx, rest, getenv, stdout)
	case "replay":
		return runReplay(ctx, rest, getenv, stdout)
	case "record":
		return runRecord(ctx, rest, getenv, stdout)
	case "version", "--version":
		fmt.Fprintln(stdout, version)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
}

// common holds the settings every command shares.
type common struct {
	databaseURL string
	natsURL     string
	logLevel    string
	// NATS authentication and TLS; secrets stay in files, never in flags.
	natsCreds, natsNKey           string
	natsCA, natsCert, natsCertKey string
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

func newFlagSet(name, summary string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: shiftcast %s [flags]\n\n%s\n\nFlags:\n", name, summary)
		fs.PrintDefaults()
	}
	return fs
}

func (c *common) register(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&c.databaseURL, "database-url", envOr(getenv, "DATABASE_URL", "postgres://postgres:postgres@localhost:5432/postgres"), "PostgreSQL URL (env DATABASE_URL)")
	fs.StringVar(&c.natsURL, "nats-url", envOr(getenv, "NATS_URL", "nats://127.0.0.1:4222"), "NATS URL (env NATS_URL)")
	fs.StringVar(&c.logLevel, "log-level", envOr(getenv, "LOG_LEVEL", "info"), "log level: debug, info, warn, error (env LOG_LEVEL)")
	fs.StringVar(&c.natsCreds, "nats-creds", getenv("NATS_CREDS"), "NATS credentials file (JWT + NKey seed) (env NATS_CREDS)")
	fs.StringVar(&c.natsNKey, "nats-nkey", getenv("NATS_NKEY"), "NATS NKey seed file (env NATS_NKEY)")
	fs.StringVar(&c.natsCA, "nats-tls-ca", getenv("NATS_TLS_CA"), "CA certificate file to verify the NATS server (env NATS_TLS_CA)")
	fs.StringVar(&c.natsCert, "nats-tls-cert", getenv("NATS_TLS_CERT"), "client certificate file for NATS mutual TLS (env NATS_TLS_CERT)")
	fs.StringVar(&c.natsCertKey, "nats-tls-key", getenv("NATS_TLS_KEY"), "client key file for NATS mutual TLS (env NATS_TLS_KEY)")
}

// natsOptions turns the authentication and TLS settings into connection
// options. User and password, when needed, go in NATS_URL
// (nats://user:pass@host), which is never logged unredacted.
func (c *common) natsOptions() ([]nats.Option, error) {
	var opts []nats.Option
	if c.natsCreds != "" {
		opts = append(opts, nats.UserCredentials(c.natsCreds))
	}
	if c.natsNKey != "" {
		opt, err := nats.NkeyOptionFromSeed(c.natsNKey)
		if err != nil {
			return nil, fmt.Errorf("%w: --nats-nkey: %w", errUsage, err)
		}
		opts = append(opts, opt)
	}
	if c.natsCA != "" {
		opts = append(opts, nats.RootCAs(c.natsCA))
	}
	if (c.natsCert == "") != (c.natsCertKey == "") {
		return nil, fmt.Errorf("%w: --nats-tls-cert and --nats-tls-key go together", errUsage)
	}
	if c.natsCert != "" {
		opts = append(opts, nats.ClientCert(c.natsCert, c.natsCertKey))
	}
	return opts, nil
}

// parse parses args, turning --help into a clean exit and bad flags into a
// usage error.
func parse(fs *flag.FlagSet, args []string) (help bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, fmt.Errorf("%w: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return false, fmt.Errorf("%w: unexpected arguments %q", errUsage, strings.Join(fs.Args(), " "))
	}
	return false, nil
}

// newLogger builds the one logger of the process; components get it Named.
func newLogger(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("%w: log level %q: %w", errUsage, level, err)
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.Sampling = nil
	cfg.EncoderConfig.TimeKey = "time"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	return cfg.Build()
}

// redact hides a URL's password for printing.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Redacted()
}
