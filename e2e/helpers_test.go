package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/consumers"
	"github.com/shiftcast/shiftcast/publishers"
)

// Helpers shared by the scenario tests: publishing generated streams,
// waiting for the whole pipeline to be idle, exact assertions on both
// channels, and looks into the database and the dead-letter stream.

// line returns one hand-written replay line: an event of type typ with
// the given id and data.
func line(typ, id string, data any) []byte {
	b, err := json.Marshal(map[string]any{"type": typ, "id": id, "data": data})
	if err != nil {
		panic(err)
	}
	return b
}

// readLines returns the non-empty lines of a testdata stream.
func readLines(t *testing.T, name string) [][]byte {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	require.NoError(t, err)
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		if b := bytes.TrimSpace(sc.Bytes()); len(b) > 0 {
			out = append(out, bytes.Clone(b))
		}
	}
	require.NoError(t, sc.Err())
	return out
}

// publish publishes replay lines (hand-written or recorded), in order, as
// `shiftcast replay` does, and returns the stream's acknowledgements.
// Every line must carry its own id: generated ids would collide across
// the phases of one test.
func (e *env) publish(lines [][]byte) []*jetstream.PubAck {
	e.t.Helper()
	acks, err := e.tryPublish(lines, 0)
	require.NoError(e.t, err)
	return acks
}

// tryPublish is publish for other goroutines than the test's: it returns
// the first error. pace, when positive, is the pause after each line.
func (e *env) tryPublish(lines [][]byte, pace time.Duration) ([]*jetstream.PubAck, error) {
	pub := publishers.NewEventPublisher(e.js, publishers.EventPublisherOptions{})
	acks := make([]*jetstream.PubAck, 0, len(lines))
	for _, l := range lines {
		msg, err := publishers.ParseReplayLine(l, publishers.ReplayDefaults{
			Source: "e2e", Now: time.Now, NewID: func() string { return "" },
		})
		if err != nil {
			return acks, fmt.Errorf("%s: %w", l, err)
		}
		if msg.Header.Get(jetstream.MsgIDHeader) == "" {
			return acks, fmt.Errorf("replay line without an id: %s", l)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ack, err := pub.PublishMsg(ctx, msg)
		cancel()
		if err != nil {
			return acks, fmt.Errorf("%s: %w", l, err)
		}
		acks = append(acks, ack)
		time.Sleep(pace)
	}
	return acks, nil
}

// play publishes a testdata stream and returns the acknowledgements.
func (e *env) play(name string) []*jetstream.PubAck {
	e.t.Helper()
	return e.publish(readLines(e.t, name))
}

// db returns a pool on the test's database, closed when the test ends.
func (e *env) db() *pgxpool.Pool {
	e.t.Helper()
	if e.pool == nil {
		pool, err := pgxpool.New(context.Background(), e.dbURL)
		require.NoError(e.t, err)
		e.t.Cleanup(pool.Close)
		e.pool = pool
	}
	return e.pool
}

func (e *env) queryInt(sql string, args ...any) int64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n int64
	require.NoError(e.t, e.db().QueryRow(ctx, sql, args...).Scan(&n), sql)
	return n
}

// idle reports whether the pipeline has nothing left to do: every event
// delivered and acknowledged (or terminated), and no River job of the
// pipeline waiting, scheduled, running or retrying.
func (e *env) idle(ctx context.Context, jobs bool) (bool, string) {
	cons, err := e.js.Consumer(ctx, consumers.StreamMarketplace, consumers.DurableName)
	if err != nil {
		return false, fmt.Sprintf("consumer: %v", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return false, fmt.Sprintf("consumer info: %v", err)
	}
	if info.NumPending > 0 || info.NumAckPending > 0 {
		return false, fmt.Sprintf("consumer: %d pending, %d awaiting ack", info.NumPending, info.NumAckPending)
	}
	if !jobs {
		return true, ""
	}
	var n int64
	var kinds string
	err = e.db().QueryRow(ctx, `
		SELECT count(*), coalesce(string_agg(DISTINCT kind || ':' || state::text, ','), '')
		FROM river_job
		WHERE state IN ('available', 'pending', 'running', 'retryable', 'scheduled') AND kind <> 'shiftcast.prune'`).Scan(&n, &kinds)
	if err != nil {
		return false, fmt.Sprintf("river jobs: %v", err)
	}
	if n > 0 {
		return false, fmt.Sprintf("%d river jobs to do (%s)", n, kinds)
	}
	return true, ""
}

// settle waits, bounded, until the pipeline is idle and stays so for a
// moment: everything published so far has been applied and every
// notification it causes has been built and delivered (or given up on).
func (e *env) settle() {
	e.t.Helper()
	e.settleWithin(90*time.Second, true)
}

// settleEvents waits, bounded, until every event published so far has been
// applied (or dead-lettered); jobs may still wait.
func (e *env) settleEvents() {
	e.t.Helper()
	e.settleWithin(90*time.Second, false)
}

func (e *env) settleWithin(limit time.Duration, jobs bool) {
	e.t.Helper()
	deadline := time.Now().Add(limit)
	calm := 0
	why := ""
	for calm < 3 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ok, reason := e.idle(ctx, jobs)
		cancel()
		if ok {
			calm++
		} else {
			calm, why = 0, reason
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("pipeline not idle within %s: %s", limit, why)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// expect settles the pipeline and asserts the exact announcements on both
// channels: per worker, every shift announced, repeats included; both
// channels carry the same notifications, each once, validly signed, with
// every counted shift listed.
func (e *env) expect(want map[int64][]int64) {
	e.t.Helper()
	e.settle()
	e.expectNow(want)
}

// expectNow is expect without settling first.
func (e *env) expectNow(want map[int64][]int64) {
	e.t.Helper()
	want = sorted(want)
	// The webhook is recorded before it answers; NATS reaches the
	// subscriber an instant after the delivery job ends.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && fmt.Sprint(sorted(e.natsSeen.announced())) != fmt.Sprint(want) {
		time.Sleep(50 * time.Millisecond)
	}
	require.Equal(e.t, want, sorted(e.hook.announced()), "webhook announcements")
	require.Equal(e.t, want, sorted(e.natsSeen.announced()), "NATS announcements")
	e.checkNotifications()
}

// checkNotifications checks what expect checks beyond the shifts.
func (e *env) checkNotifications() {
	e.t.Helper()
	require.Zero(e.t, e.hook.badSig, "webhook calls with a bad signature or body")
	require.Zero(e.t, e.natsSeen.badSig, "NATS notifications with a bad body")
	ids := func(r *receiver) []string {
		var out []string
		for _, n := range r.notifications() {
			require.Equal(e.t, "shifts.available", n.Type)
			require.Equal(e.t, n.Count, len(n.Shifts), "notification %s lists fewer shifts than it counts", n.ID)
			out = append(out, n.ID)
		}
		slices.Sort(out)
		return out
	}
	hook, nats := ids(e.hook), ids(e.natsSeen)
	require.Equal(e.t, slices.Compact(slices.Clone(hook)), hook, "a notification reached the webhook twice")
	require.Equal(e.t, slices.Compact(slices.Clone(nats)), nats, "a notification reached NATS twice")
	require.Equal(e.t, hook, nats, "the channels carry different notifications")
}

// dlqMsg is a dead-lettered message.
type dlqMsg struct {
	Subject string
	Header  nats.Header
	Data    []byte
}

// deadLettered returns the messages in MARKETPLACE_DLQ, in order.
func (e *env) deadLettered() []dlqMsg {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, consumers.StreamDLQ)
	require.NoError(e.t, err)
	info, err := s.Info(ctx)
	require.NoError(e.t, err)
	var out []dlqMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		require.NoError(e.t, err)
		out = append(out, dlqMsg{Subject: m.Subject, Header: m.Header, Data: m.Data})
	}
	return out
}

// streamMsgs returns how many messages MARKETPLACE holds.
func (e *env) streamMsgs() uint64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := e.js.Stream(ctx, consumers.StreamMarketplace)
	require.NoError(e.t, err)
	info, err := s.Info(ctx)
	require.NoError(e.t, err)
	return info.State.Msgs
}

// appliedEvents returns shiftcast.applied_events as event id → outcome.
func (e *env) appliedEvents() map[string]string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := e.db().Query(ctx, `SELECT event_id, outcome FROM shiftcast.applied_events`)
	require.NoError(e.t, err)
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, outcome string
		require.NoError(e.t, rows.Scan(&id, &outcome))
		out[id] = outcome
	}
	require.NoError(e.t, rows.Err())
	return out
}

// eventIDs returns the ids of replay lines (hand-written or recorded).
func eventIDs(t *testing.T, lines [][]byte) []string {
	t.Helper()
	var out []string
	for _, l := range lines {
		var v struct {
			ID    string `json:"id"`
			MsgID string `json:"msg_id"`
		}
		require.NoError(t, json.Unmarshal(l, &v))
		out = append(out, v.ID+v.MsgID)
	}
	return out
}

// serveLog returns what a serve process logged so far.
func (p *proc) logText(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(p.log.Name())
	require.NoError(t, err)
	return string(b)
}

// grepLog returns the log lines containing every one of words.
func grepLog(log string, words ...string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		ok := true
		for _, w := range words {
			if !strings.Contains(l, w) {
				ok = false
				break
			}
		}
		if ok && l != "" {
			out = append(out, l)
		}
	}
	return out
}

// keys returns a map's keys, sorted.
func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
