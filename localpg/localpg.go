// Package localpg runs a PostgreSQL cluster from the server binaries installed
// on the machine (Debian's postgresql package or anything on PATH).
//
// It exists so that tests and `shiftcast dev` get a real PostgreSQL without a
// Docker engine: the cluster is a child process of the caller, dies with it,
// and can either live in a throwaway directory or reuse a data directory
// across runs.
package localpg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// startTimeout bounds how long Start waits for the server to accept
	// connections when the caller's context has no earlier deadline; a healthy
	// cluster is ready in well under a second, so this only guards against hangs.
	startTimeout = 60 * time.Second
	// stopTimeout bounds the fast shutdown before Stop escalates to SIGKILL.
	stopTimeout = 30 * time.Second
	// bindAttempts is how often Start retries with a new port when it picked
	// the port itself and lost the race for it to another process.
	bindAttempts = 3
	// serverUser is the OS user the server runs as when we are root, because
	// initdb and postgres refuse to run as root.
	serverUser = "postgres"
)

// Options configures Start.
type Options struct {
	// Dir is the data directory. Empty means a temporary directory that Stop
	// removes. An existing cluster in Dir (one with PG_VERSION) is reused.
	Dir string
	// Port is the TCP port on 127.0.0.1. Zero picks a free port.
	Port int
	// Settings are extra server settings passed as -c name=value; they win
	// over the defaults set by Start.
	Settings map[string]string
	// Durable keeps PostgreSQL's crash-safety settings. When false, fsync,
	// synchronous_commit and full_page_writes are turned off, which is much
	// faster and fine for data that may be lost on a machine crash.
	Durable bool
	// Log receives the server's log output. Nil discards it.
	Log io.Writer
}

// Cluster is a running PostgreSQL server started by Start.
type Cluster struct {
	binDir    string
	dataDir   string
	socketDir string
	port      int
	tempDir   string // removed by Stop when Start created it

	cmd  *exec.Cmd
	done chan struct{} // closed when the server process has exited
	// waitErr is the process's exit status, valid once done is closed.
	waitErr error
	logTail *tailBuffer

	stopOnce sync.Once
	stopErr  error
}

// Find locates the directory holding the PostgreSQL server binaries: initdb
// and postgres on PATH first, else the newest /usr/lib/postgresql/<ver>/bin,
// which is where Debian and Ubuntu install them without putting them on PATH.
func Find() (binDir string, err error) {
	if initdb, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(initdb)
		// initdb locates postgres next to itself, so both must share a directory.
		if isExecutable(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	candidates, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(candidates, func(i, j int) bool {
		return versionOf(candidates[i]) > versionOf(candidates[j])
	})
	for _, dir := range candidates {
		if isExecutable(filepath.Join(dir, "initdb")) && isExecutable(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	return "", errors.New("localpg: PostgreSQL server binaries (initdb, postgres) not found on PATH or in /usr/lib/postgresql/*/bin: " +
		"install them (Debian/Ubuntu: apt-get install -y postgresql) or set DATABASE_URL to use an existing server")
}

// versionOf extracts the major version from /usr/lib/postgresql/<ver>/bin so
// that 16 sorts above 9.6; unparsable versions sort last.
func versionOf(binDir string) float64 {
	v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	if err != nil {
		return -1
	}
	return v
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// Start initialises the data directory if it holds no cluster yet, starts the
// server as a child process and waits until it accepts connections.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	binDir, err := Find()
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}

	c := &Cluster{binDir: binDir, dataDir: opts.Dir, logTail: &tailBuffer{max: 16 << 10}}
	ok := false
	defer func() {
		if !ok {
			c.removeDirs()
		}
	}()

	if c.dataDir == "" {
		c.tempDir, err = os.MkdirTemp("", "localpg-")
		if err != nil {
			return nil, fmt.Errorf("localpg: create temporary directory: %w", err)
		}
		c.dataDir = filepath.Join(c.tempDir, "data")
		if err := chownTo(c.tempDir, cred); err != nil {
			return nil, err
		}
	}
	if c.dataDir, err = filepath.Abs(c.dataDir); err != nil {
		return nil, fmt.Errorf("localpg: resolve data directory: %w", err)
	}
	// The socket lives in its own short directory because unix socket paths
	// are limited to ~107 bytes and a caller's Dir can be arbitrarily deep.
	if c.socketDir, err = os.MkdirTemp("", "localpg-sock-"); err != nil {
		return nil, fmt.Errorf("localpg: create socket directory: %w", err)
	}
	if err := chownTo(c.socketDir, cred); err != nil {
		return nil, err
	}

	logw := io.Writer(c.logTail)
	if opts.Log != nil {
		logw = io.MultiWriter(c.logTail, opts.Log)
	}

	if err := c.initIfNeeded(ctx, opts, cred, logw); err != nil {
		return nil, err
	}
	removeStalePID(c.dataDir)

	if _, hasDeadline := ctx.Deadline(); !hasDeadline {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}

	for attempt := 1; ; attempt++ {
		c.port = opts.Port
		if c.port == 0 {
			if c.port, err = freePort(); err != nil {
				return nil, err
			}
		}
		err = c.run(ctx, opts, cred, logw)
		if err == nil {
			break
		}
		// Picking a free port and binding it later is racy; another process
		// may take it in between, so retry with a fresh one.
		if opts.Port == 0 && attempt < bindAttempts && strings.Contains(c.logTail.String(), "could not bind") {
			continue
		}
		return nil, err
	}
	ok = true
	return c, nil
}

// initIfNeeded runs initdb unless the directory already holds a cluster, so a
// second run against the same Dir keeps its data.
func (c *Cluster) initIfNeeded(ctx context.Context, opts Options, cred *syscall.Credential, logw io.Writer) error {
	if _, err := os.Stat(filepath.Join(c.dataDir, "PG_VERSION")); err == nil {
		return chownTree(c.dataDir, cred)
	}
	// Parents get 0755 so that, when we are root, the server user can reach
	// the data directory; the directory itself must be 0700 for postgres.
	if err := os.MkdirAll(filepath.Dir(c.dataDir), 0o755); err != nil {
		return fmt.Errorf("localpg: create data directory parent: %w", err)
	}
	if err := os.Mkdir(c.dataDir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("localpg: create data directory: %w", err)
	}
	if err := chownTree(c.dataDir, cred); err != nil {
		return err
	}
	if err := checkReachable(c.dataDir, cred); err != nil {
		return err
	}
	args := []string{"-D", c.dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"}
	if !opts.Durable {
		// -N skips the fsyncs at the end of initdb, a noticeable share of its run time.
		args = append(args, "-N")
	}
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, "initdb"), args...)
	cmd.Stdout, cmd.Stderr = logw, logw
	cmd.Dir = "/" // the caller's cwd may be unreadable by the server user
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("localpg: initdb %s: %w\n%s", c.dataDir, err, c.logTail.String())
	}
	return nil
}

// run starts the postmaster and waits until it accepts connections, killing
// it again on failure.
func (c *Cluster) run(ctx context.Context, opts Options, cred *syscall.Credential, logw io.Writer) error {
	settings := map[string]string{
		"max_connections": "200",
		"shared_buffers":  "128MB",
	}
	if !opts.Durable {
		settings["fsync"] = "off"
		settings["synchronous_commit"] = "off"
		settings["full_page_writes"] = "off"
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	args := []string{"-D", c.dataDir, "-p", strconv.Itoa(c.port), "-h", "127.0.0.1", "-k", c.socketDir}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-c", k+"="+settings[k])
	}

	// Not CommandContext: the server must outlive Start's context.
	cmd := exec.Command(filepath.Join(c.binDir, "postgres"), args...) //nolint:noctx // outlives Start's ctx by design
	cmd.Stdout, cmd.Stderr = logw, logw
	cmd.Dir = "/"
	// Pdeathsig makes the kernel kill the server if we die without Stop, so
	// crashed or interrupted test runs do not leave clusters behind. The
	// kernel ties it to the forking OS thread, which Go only retires when a
	// goroutine exits while locked to it (runtime.LockOSThread); callers must
	// not start a cluster from such a goroutine. Go sets it after switching
	// credentials, which would otherwise clear it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("localpg: start postgres: %w", err)
	}
	c.cmd = cmd
	c.done = make(chan struct{})
	go func() {
		c.waitErr = cmd.Wait()
		close(c.done)
	}()

	if err := c.waitReady(ctx); err != nil {
		_ = cmd.Process.Kill()
		<-c.done
		return err
	}
	return nil
}

func (c *Cluster) waitReady(ctx context.Context) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(attemptCtx, c.URL())
		cancel()
		if err == nil {
			closeCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = conn.Close(closeCtx)
			cancel()
			return nil
		}
		select {
		case <-c.done:
			return fmt.Errorf("localpg: postgres exited during start-up (%w)\n%s", c.waitErr, c.logTail.String())
		case <-ctx.Done():
			return fmt.Errorf("localpg: postgres on port %d not ready: %w (last error: %w)\n%s", c.port, ctx.Err(), err, c.logTail.String())
		case <-tick.C:
		}
	}
}

// URL returns a connection URL for the postgres superuser and database.
func (c *Cluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// SocketURL is URL over the server's unix socket: for clients on the same
// host it skips the TCP loopback stack, which measured a few percent of the
// query path's throughput on a 2-core machine.
func (c *Cluster) SocketURL() string {
	return fmt.Sprintf("postgres://postgres@/postgres?host=%s&port=%d", url.QueryEscape(c.socketDir), c.port)
}

// Port returns the TCP port the server listens on.
func (c *Cluster) Port() int { return c.port }

// DataDir returns the cluster's data directory.
func (c *Cluster) DataDir() string { return c.dataDir }

// SocketDir returns the directory holding the server's unix socket, for
// clients such as psql -h.
func (c *Cluster) SocketDir() string { return c.socketDir }

// Stop shuts the server down (fast shutdown: sessions are disconnected,
// nothing waits for them), kills it if that does not finish in time, and
// removes the directories Start created. Calling it again is a no-op.
func (c *Cluster) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() { c.stopErr = c.stop(ctx) })
	return c.stopErr
}

func (c *Cluster) stop(ctx context.Context) error {
	defer c.removeDirs()
	if err := c.cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("localpg: signal postgres: %w", err)
	}
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
	case <-timer.C:
	}
	_ = c.cmd.Process.Kill()
	// SIGKILL cannot be ignored, so this wait is short; the bound only
	// protects against an unkillable (D-state) process.
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
	}
	return fmt.Errorf("localpg: postgres did not shut down in time; killed it")
}

func (c *Cluster) removeDirs() {
	if c.socketDir != "" {
		_ = os.RemoveAll(c.socketDir)
	}
	if c.tempDir != "" {
		_ = os.RemoveAll(c.tempDir)
	}
}

// serverCredential returns the credential to run initdb and postgres with:
// nil (our own) normally, the postgres OS user when we are root.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(serverUser)
	if err != nil {
		return nil, fmt.Errorf("localpg: running as root, PostgreSQL refuses root, and OS user %q is unavailable (install the postgresql package to create it): %w", serverUser, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("localpg: uid of %q: %w", serverUser, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("localpg: gid of %q: %w", serverUser, err)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil {
				cred.Groups = append(cred.Groups, uint32(g))
			}
		}
	}
	return cred, nil
}

func chownTo(path string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	if err := os.Chown(path, int(cred.Uid), int(cred.Gid)); err != nil {
		return fmt.Errorf("localpg: hand %s to OS user %s: %w", path, serverUser, err)
	}
	return nil
}

// chownTree gives a data directory to the server user; it only walks the tree
// when the top is not already theirs, which keeps reuse of a large cluster cheap.
func chownTree(dir string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("localpg: stat data directory: %w", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid == cred.Uid {
		return nil
	}
	err = filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(cred.Uid), int(cred.Gid))
	})
	if err != nil {
		return fmt.Errorf("localpg: hand %s to OS user %s: %w", dir, serverUser, err)
	}
	return nil
}

// checkReachable reports, before initdb fails with a terse message, a parent
// directory the server user cannot traverse. This bites when root passes a
// directory below a 0700 one such as /root or a t.TempDir().
func checkReachable(dir string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("localpg: stat %s: %w", p, err)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && !canSearch(st, cred) {
			return fmt.Errorf("localpg: data directory %s is unreachable for OS user %s (PostgreSQL refuses to run as root): %s is not searchable by it; "+
				"choose a directory outside it or grant search permission (chmod o+x %s)", dir, serverUser, p, p)
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

func canSearch(st *syscall.Stat_t, cred *syscall.Credential) bool {
	mode := st.Mode
	if st.Uid == cred.Uid {
		return mode&0o100 != 0
	}
	inGroup := st.Gid == cred.Gid
	for _, g := range cred.Groups {
		inGroup = inGroup || st.Gid == g
	}
	if inGroup {
		return mode&0o010 != 0
	}
	return mode&0o001 != 0
}

// removeStalePID deletes a postmaster.pid left by a server that was killed,
// when its pid now belongs to an unrelated process. PostgreSQL itself only
// treats the file as stale if that pid is dead, which after a reboot or in a
// container (where pids are small and reused) is often not the case. A live
// postgres whose working directory is this data directory keeps its file, so
// starting twice still fails loudly rather than corrupting data.
func removeStalePID(dataDir string) {
	pidFile := filepath.Join(dataDir, "postmaster.pid")
	data, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	first, _, _ := strings.Cut(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err == nil && strings.TrimSpace(string(comm)) == "postgres" {
		cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
		if err != nil || cwd == dataDir {
			return // a live server (or one we cannot inspect): leave it to postgres
		}
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return // no /proc to ask: leave the decision to postgres
	}
	_ = os.Remove(pidFile)
}

// freePort asks the kernel for an unused loopback port.
func freePort() (int, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("localpg: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tailBuffer keeps the last max bytes written to it, so start-up failures can
// quote the server log even when the caller discards it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
