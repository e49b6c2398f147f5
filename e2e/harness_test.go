package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/publishers"
	"github.com/shiftcast/shiftcast/store"
	"github.com/shiftcast/shiftcast/testenv"
)

// binary is the shiftcast binary under test, built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shiftcast-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "shiftcast")
	out, err := exec.Command("go", "build", "-o", binary, "../cmd/shiftcast").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build shiftcast: %v\n%s", err, out)
		os.Exit(1)
	}
	defer os.RemoveAll(dir)
	testenv.Main(m)
}

const secret = "whsec_c2hpZnRjYXN0LWUyZS10ZXN0LXNlY3JldC0wMTIzNDU2Nzg5"

// env is one test's world: its own database, NATS server, webhook
// receiver and NATS notification subscriber.
type env struct {
	t        *testing.T
	dbURL    string
	natsURL  string
	nc       *nats.Conn
	js       jetstream.JetStream
	hook     *receiver
	natsSeen *receiver
	pool     *pgxpool.Pool // see db
}

func setup(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dbURL: testenv.DatabaseFrom(t, "shiftcast", store.MigrateDatabase), natsURL: testenv.NATS(t)}
	nc, err := nats.Connect(e.natsURL)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	e.nc = nc
	e.js, err = jetstream.New(nc)
	require.NoError(t, err)

	e.hook = newReceiver()
	srv := httptest.NewServer(e.hook)
	t.Cleanup(srv.Close)
	e.hook.url = srv.URL

	e.natsSeen = newReceiver()
	sub, err := nc.Subscribe(domain.NotificationSubjectPrefix+">", func(m *nats.Msg) {
		e.natsSeen.record(m.Header.Get("Nats-Msg-Id"), m.Data)
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	require.NoError(t, nc.Flush())
	return e
}

// receiver collects notifications, by channel, verifying webhook signatures.
type receiver struct {
	url string
	mu  sync.Mutex
	// fail makes the next n webhook calls answer 503.
	fail int
	// delay holds each webhook call that long before answering; inflight
	// counts the calls being held. A call whose client goes away meanwhile
	// is dropped, unrecorded, as a real receiver's would be.
	delay      time.Duration
	inflight   int
	attempts   map[string]int // webhook-id → deliveries seen
	notes      []domain.Notification
	badSig     int
	lastChange time.Time
}

func newReceiver() *receiver { return &receiver{attempts: map[string]int{}} }

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	if d := r.delay; d > 0 {
		r.inflight++
		r.mu.Unlock()
		select {
		case <-time.After(d):
		case <-req.Context().Done():
		}
		r.mu.Lock()
		r.inflight--
		if req.Context().Err() != nil {
			r.mu.Unlock()
			return
		}
	}
	defer r.mu.Unlock()
	if err := publishers.Verify(secret, req.Header, body, 5*time.Minute); err != nil {
		r.badSig++
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	id := req.Header.Get("webhook-id")
	r.attempts[id]++
	if r.fail > 0 {
		r.fail--
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	r.recordLocked(id, body)
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) record(id string, body []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recordLocked(id, body)
}

func (r *receiver) recordLocked(id string, body []byte) {
	var n domain.Notification
	if err := json.Unmarshal(body, &n); err != nil || n.ID != id {
		r.badSig++ // counted as a defect either way
		return
	}
	r.notes = append(r.notes, n)
	r.lastChange = time.Now()
}

// announced returns, per worker, every shift id announced, in order of
// announcement, repeats included.
func (r *receiver) announced() map[int64][]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[int64][]int64{}
	for _, n := range r.notes {
		for _, s := range n.Shifts {
			out[n.WorkerID] = append(out[n.WorkerID], s.ID)
		}
	}
	return out
}

func (r *receiver) notifications() []domain.Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.notes)
}

// waitFor waits, bounded, until the receiver's announcements equal want
// (as sets per worker, repeats kept) and then stay so for quiet.
func (e *env) waitFor(r *receiver, want map[int64][]int64, quiet time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := sorted(r.announced())
		if fmt.Sprint(got) == fmt.Sprint(sorted(want)) {
			r.mu.Lock()
			last := r.lastChange
			r.mu.Unlock()
			if time.Since(last) >= quiet {
				return
			}
		}
		if time.Now().After(deadline) {
			require.Equal(e.t, sorted(want), got, "announcements never settled on the expected set")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func sorted(m map[int64][]int64) map[int64][]int64 {
	out := map[int64][]int64{}
	for k, v := range m {
		if len(v) > 0 {
			out[k] = slices.Sorted(slices.Values(v))
		}
	}
	return out
}

// replay publishes a testdata stream, as `shiftcast replay` does.
func (e *env) replay(name string) int {
	e.t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	require.NoError(e.t, err)
	defer f.Close()
	pub := publishers.NewEventPublisher(e.js, publishers.EventPublisherOptions{})
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		msg, err := publishers.ParseReplayLine(sc.Bytes(), publishers.ReplayDefaults{
			Source: "e2e", Now: time.Now, NewID: func() string { return strconv.Itoa(n) },
		})
		require.NoError(e.t, err, sc.Text())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = pub.PublishMsg(ctx, msg)
		cancel()
		require.NoError(e.t, err)
		n++
	}
	require.NoError(e.t, sc.Err())
	return n
}

// proc is a running `shiftcast serve`.
type proc struct {
	cmd  *exec.Cmd
	url  string
	done chan error
	log  *os.File
}

// serve starts `shiftcast serve` against the env, with a short digest
// window, and waits until it is ready (pipeline included).
func (e *env) serve(args ...string) *proc {
	e.t.Helper()
	port := freePort(e.t)
	logf, err := os.CreateTemp(e.t.TempDir(), "serve-*.log")
	require.NoError(e.t, err)
	all := append([]string{"serve", "--http-addr", fmt.Sprintf("127.0.0.1:%d", port),
		"--webhook-url", e.hook.url, "--webhook-secret", secret,
		"--digest-window", "1s", "--digest-grace", "1s", "--delivery-retry", "100ms",
		"--event-ack-wait", "3s", "--log-level", "debug"}, args...)
	cmd := exec.Command(binary, all...)
	cmd.Env = append(os.Environ(), "DATABASE_URL="+e.dbURL, "NATS_URL="+e.natsURL)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(e.t, cmd.Start())
	p := &proc{cmd: cmd, url: fmt.Sprintf("http://127.0.0.1:%d", port), done: make(chan error, 1), log: logf}
	go func() { p.done <- cmd.Wait() }()
	e.t.Cleanup(func() {
		p.stop()
		if e.t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			e.t.Logf("serve log (%s):\n%s", logf.Name(), tail(b, 60))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case err := <-p.done:
			p.done <- err
			b, _ := os.ReadFile(logf.Name())
			e.t.Fatalf("serve exited during start-up: %v\n%s", err, tail(b, 40))
		default:
		}
		require.True(e.t, time.Now().Before(deadline), "serve not ready within 30s")
		time.Sleep(100 * time.Millisecond)
	}
}

// stop asks serve to shut down and waits for it, bounded.
func (p *proc) stop() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
	}
}

// kill ends serve at once, as a crash would.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	err := <-p.done
	p.done <- err
}

// exited waits, bounded, for serve to exit by itself and returns its code.
func (p *proc) exited(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(within):
		t.Fatalf("serve did not exit within %s", within)
		return 0
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func tail(b []byte, lines int) string {
	n := 0
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			n++
			if n > lines {
				return string(b[i+1:])
			}
		}
	}
	return string(b)
}
