// Package testenv gives integration tests a real PostgreSQL and a real NATS
// server, isolated per test.
//
// One PostgreSQL server is shared by all tests of a test binary and started
// lazily by the first test that asks; each test gets its own database on it.
// The server is, in order of preference:
//
//   - the one at TEST_DATABASE_URL, if set (databases are created on it, so
//     the role needs CREATEDB; several test processes may share it);
//   - a postgres:16-alpine container via testcontainers-go, if a Docker
//     engine answers;
//   - a throwaway cluster from the local server binaries (package localpg).
//
// NATS is per test: TEST_NATS_URL if set (tests must then use unique stream
// and subject names), else an in-process server with JetStream (package
// localnats).
//
// A package using Database or DatabaseFrom must hand its TestMain to Main so
// that the shared server is torn down after the tests:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/shiftcast/shiftcast/localnats"
	"github.com/shiftcast/shiftcast/localpg"
)

const (
	envDatabaseURL = "TEST_DATABASE_URL"
	envNATSURL     = "TEST_NATS_URL"

	// serverStartTimeout covers pulling the container image on a cold machine;
	// a local cluster needs a couple of seconds.
	serverStartTimeout = 3 * time.Minute
	// dockerProbeTimeout keeps machines without Docker from paying for the probe.
	dockerProbeTimeout = 2 * time.Second
	// ddlTimeout bounds CREATE/DROP DATABASE; cloning waits up to 5 s on its
	// own for stray sessions on the template, so leave room for that.
	ddlTimeout = 30 * time.Second
	// prepareTimeout bounds a template's prepare function (migrations, fixtures).
	prepareTimeout = 5 * time.Minute
	// teardownTimeout bounds Main's clean-up after the tests.
	teardownTimeout = time.Minute

	containerImage = "postgres:16-alpine"
)

// Process-wide state: the test binary has one shared database server, started
// on first use and torn down by Main.
var (
	mainCalled atomic.Bool

	pgMu  sync.Mutex
	pg    *pgServer // nil until the first successful start
	pgErr error     // sticky: the server is chosen once per process

	tmplMu    sync.Mutex
	templates = map[string]*template{}

	// cloneMu serializes CREATE DATABASE ... TEMPLATE: it fails when any
	// other session is connected to the template, and a concurrent clone's
	// copy process counts as one.
	cloneMu sync.Mutex
)

// pgServer is the database server the process's tests create databases on.
type pgServer struct {
	source  string   // how it was obtained, for messages
	base    *url.URL // connection URL; the path is replaced per database
	admin   *pgxpool.Pool
	stop    func(context.Context) error // nil for an external server
	shared  bool                        // external: drop what we created
	created sync.Map                    // template names, dropped at teardown on a shared server
}

type template struct {
	once sync.Once
	name string
	err  error
}

// Main runs the tests of a package and then tears down the servers testenv
// started for them, exiting with the tests' status. Call it from TestMain.
func Main(m *testing.M) {
	mainCalled.Store(true)
	code := m.Run()
	if err := teardown(); err != nil {
		// The tests' verdict stands; a failed teardown only leaks resources.
		fmt.Fprintf(os.Stderr, "testenv: teardown: %v\n", err)
	}
	os.Exit(code)
}

// Database returns the URL of a new, empty database, dropped when the test
// and its subtests finish.
func Database(t testing.TB) string {
	t.Helper()
	s := server(t)
	name := newName("testenv", "")
	if err := s.createDatabase(name, ""); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { s.dropOnCleanup(t, name) })
	return s.databaseURL(name)
}

// DatabaseFrom returns the URL of a new database cloned from a template that
// prepare builds (e.g. by running migrations) once per process for key; the
// clone is dropped when the test finishes. Every caller using a key must pass
// an equivalent prepare: only the first one runs. prepare must close its
// connections before returning; any it leaves open are terminated.
func DatabaseFrom(t testing.TB, key string, prepare func(ctx context.Context, databaseURL string) error) string {
	t.Helper()
	s := server(t)

	tmplMu.Lock()
	tm, ok := templates[key]
	if !ok {
		tm = &template{}
		templates[key] = tm
	}
	tmplMu.Unlock()
	tm.once.Do(func() { tm.name, tm.err = s.buildTemplate(key, prepare) })
	if tm.err != nil {
		t.Fatalf("testenv: template %q: %v", key, tm.err)
	}

	name := newName("testenv", "")
	if err := s.createDatabase(name, tm.name); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { s.dropOnCleanup(t, name) })
	return s.databaseURL(name)
}

// NATS returns the URL of a NATS server with JetStream: TEST_NATS_URL if set,
// else a fresh in-process server for this test, shut down when it finishes.
func NATS(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(envNATSURL); u != "" {
		return u
	}
	srv, err := localnats.Start(localnats.Options{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatalf("testenv: start NATS: %v", err)
	}
	// Registered after TempDir's clean-up, so it runs before the store is removed.
	t.Cleanup(srv.Shutdown)
	return srv.ClientURL()
}

// Logger returns a logger writing through t.Log, so output shows up with the
// test that produced it. Logging after the test has finished panics, which
// flags goroutines that outlive their test.
func Logger(t testing.TB) *zap.Logger {
	return zaptest.NewLogger(t)
}

// server returns the process's database server, choosing and starting it on
// first use.
func server(t testing.TB) *pgServer {
	t.Helper()
	if !mainCalled.Load() {
		t.Fatal("testenv: add `func TestMain(m *testing.M) { testenv.Main(m) }` to this package's tests so the shared database server is torn down")
	}
	pgMu.Lock()
	defer pgMu.Unlock()
	if pg == nil && pgErr == nil {
		pg, pgErr = startServer()
	}
	if pgErr != nil {
		t.Fatal(pgErr)
	}
	return pg
}

func startServer() (*pgServer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), serverStartTimeout)
	defer cancel()

	if raw := os.Getenv(envDatabaseURL); raw != "" {
		s, err := connect(ctx, envDatabaseURL, raw, nil)
		if err != nil {
			return nil, fmt.Errorf("testenv: %s: %w", envDatabaseURL, err)
		}
		s.shared = true
		return s, nil
	}

	var reasons []string
	if err := dockerAvailable(); err != nil {
		reasons = append(reasons, "Docker: "+err.Error())
	} else {
		s, err := startContainer(ctx)
		if err == nil {
			return s, nil
		}
		reasons = append(reasons, "Docker: "+err.Error())
		// Docker answered, so whoever runs the tests likely expects it to be
		// used; say why we are not.
		fmt.Fprintf(os.Stderr, "testenv: Docker is available but the PostgreSQL container failed, falling back to local binaries: %v\n", err)
	}

	cluster, err := localpg.Start(ctx, localpg.Options{Durable: false})
	if err == nil {
		s, err := connect(ctx, "local PostgreSQL", cluster.URL(), cluster.Stop)
		if err == nil {
			return s, nil
		}
		_ = cluster.Stop(ctx)
		reasons = append(reasons, "local PostgreSQL: "+err.Error())
	} else {
		reasons = append(reasons, "local PostgreSQL: "+err.Error())
	}
	return nil, fmt.Errorf("testenv: no PostgreSQL for integration tests. Set %s to a server where databases may be created, "+
		"start a Docker engine, or install the PostgreSQL server binaries (apt-get install -y postgresql).\n%s",
		envDatabaseURL, strings.Join(reasons, "\n"))
}

// dockerAvailable asks testcontainers whether a Docker engine answers. It
// runs the probe in a goroutine because testcontainers panics when it finds
// no Docker host and does not bound every call by our context.
func dockerAvailable() error {
	ctx, cancel := context.WithTimeout(context.Background(), dockerProbeTimeout)
	defer cancel()
	result := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				result <- fmt.Errorf("no Docker engine found: %v", firstLine(fmt.Sprint(r)))
			}
		}()
		cli, err := testcontainers.NewDockerClientWithOpts(ctx)
		if err != nil {
			result <- fmt.Errorf("no Docker client: %w", err)
			return
		}
		defer cli.Close()
		if _, err := cli.Ping(ctx); err != nil {
			result <- fmt.Errorf("no answer from the Docker engine: %w", err)
			return
		}
		result <- nil
	}()
	select {
	case err := <-result:
		return err
	case <-ctx.Done():
		return fmt.Errorf("no answer from the Docker engine within %s", dockerProbeTimeout)
	}
}

func startContainer(ctx context.Context) (*pgServer, error) {
	ctr, err := tcpostgres.Run(ctx, containerImage,
		tcpostgres.WithDatabase("postgres"),
		tcpostgres.WithUsername("postgres"),
		tcpostgres.WithPassword("postgres"),
		tcpostgres.BasicWaitStrategies(),
		// Crash safety is pointless for a container that dies with the tests.
		testcontainers.WithCmd("postgres",
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
			"-c", "max_connections=200"),
	)
	if err != nil {
		_ = testcontainers.TerminateContainer(ctr)
		return nil, fmt.Errorf("start %s container: %w", containerImage, err)
	}
	dsn, err := ctr.ConnectionString(ctx, "sslmode=disable")
	if err != nil {
		_ = testcontainers.TerminateContainer(ctr)
		return nil, fmt.Errorf("container connection string: %w", err)
	}
	stop := func(ctx context.Context) error { return ctr.Terminate(ctx) }
	s, err := connect(ctx, containerImage+" container", dsn, stop)
	if err != nil {
		_ = stop(ctx)
		return nil, err
	}
	return s, nil
}

// connect opens the admin pool used for CREATE/DROP DATABASE.
func connect(ctx context.Context, source, raw string, stop func(context.Context) error) (*pgServer, error) {
	base, err := url.Parse(raw)
	if err != nil || (base.Scheme != "postgres" && base.Scheme != "postgresql") {
		// Only URLs can be re-pointed at another database reliably.
		return nil, fmt.Errorf("want a postgres:// URL, got %q", raw)
	}
	cfg, err := pgxpool.ParseConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("parse %s URL: %w", source, err)
	}
	cfg.MaxConns = 4
	admin, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", source, err)
	}
	if err := admin.Ping(ctx); err != nil {
		admin.Close()
		return nil, fmt.Errorf("connect to %s: %w", source, err)
	}
	return &pgServer{source: source, base: base, admin: admin, stop: stop}, nil
}

func (s *pgServer) databaseURL(name string) string {
	u := *s.base
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

func (s *pgServer) createDatabase(name, template string) error {
	ctx, cancel := context.WithTimeout(context.Background(), ddlTimeout)
	defer cancel()
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		sql += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
		cloneMu.Lock()
		defer cloneMu.Unlock()
	}
	if _, err := s.admin.Exec(ctx, sql); err != nil {
		return fmt.Errorf("create database %s on %s: %w", name, s.source, err)
	}
	return nil
}

func (s *pgServer) dropDatabase(ctx context.Context, name string) error {
	// FORCE (PostgreSQL 13+) terminates sessions a test left open, e.g. a pool
	// whose Close was registered after ours and so has not run yet.
	_, err := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	if err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

func (s *pgServer) dropOnCleanup(t testing.TB, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), ddlTimeout)
	defer cancel()
	if err := s.dropDatabase(ctx, name); err != nil {
		t.Errorf("testenv: %v", err)
	}
}

// buildTemplate creates a database, lets prepare fill it, then closes it to
// connections so that it can be cloned.
func (s *pgServer) buildTemplate(key string, prepare func(context.Context, string) error) (name string, err error) {
	name = newName("testenv_tmpl", key)
	if err := s.createDatabase(name, ""); err != nil {
		return "", err
	}
	s.created.Store(name, struct{}{})

	ctx, cancel := context.WithTimeout(context.Background(), prepareTimeout)
	defer cancel()
	defer func() {
		// prepare runs user code; turn a panic into this key's error rather
		// than leaving a half-built template that later clones would copy.
		if r := recover(); r != nil {
			err = fmt.Errorf("prepare panicked: %v", r)
		}
	}()
	if err := prepare(ctx, s.databaseURL(name)); err != nil {
		return "", fmt.Errorf("prepare: %w", err)
	}

	quoted := pgx.Identifier{name}.Sanitize()
	if _, err := s.admin.Exec(ctx, "ALTER DATABASE "+quoted+" WITH ALLOW_CONNECTIONS false"); err != nil {
		return "", fmt.Errorf("seal template %s: %w", name, err)
	}
	if _, err := s.admin.Exec(ctx,
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name); err != nil {
		return "", fmt.Errorf("disconnect sessions from template %s: %w", name, err)
	}
	return name, nil
}

// teardown drops the templates left on a shared server and stops a server we
// started; databases of individual tests were dropped by their clean-ups.
func teardown() error {
	pgMu.Lock()
	s := pg
	pg, pgErr = nil, errors.New("testenv: used after Main finished")
	pgMu.Unlock()
	if s == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), teardownTimeout)
	defer cancel()

	var errs []error
	if s.shared {
		s.created.Range(func(k, _ any) bool {
			errs = append(errs, s.dropDatabase(ctx, k.(string)))
			return true
		})
	}
	s.admin.Close()
	if s.stop != nil {
		if err := s.stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", s.source, err))
		}
	}
	return errors.Join(errs...)
}

var unsafeName = regexp.MustCompile(`[^a-z0-9_]+`)

// newName returns a database name unique across processes (pid plus random
// suffix), so several test binaries can share one server, with a readable
// hint of the key for whoever inspects the server.
func newName(prefix, hint string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := fmt.Sprintf("%s_%d_%s", prefix, os.Getpid(), hex.EncodeToString(b[:]))
	if hint = strings.Trim(unsafeName.ReplaceAllString(strings.ToLower(hint), "_"), "_"); hint != "" {
		name += "_" + hint
	}
	if len(name) > 63 { // NAMEDATALEN-1: PostgreSQL would truncate silently
		name = name[:63]
	}
	return name
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
