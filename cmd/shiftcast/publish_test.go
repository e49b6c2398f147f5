package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/publishers"
	"github.com/shiftcast/shiftcast/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const shiftJSON = `{"id":5000001,"facility_id":1,"profession":"CNA","start":"2026-12-01T05:00:00Z","end":"2026-12-01T10:00:00Z"}`

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// natsEnv returns a fresh NATS server's JetStream and a getenv pointing the
// commands at it.
func natsEnv(t *testing.T) (jetstream.JetStream, func(string) string) {
	t.Helper()
	url := testenv.NATS(t)
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return js, func(key string) string {
		switch key {
		case "NATS_URL":
			return url
		case "LOG_LEVEL":
			return "error"
		}
		return ""
	}
}

func marketplaceStream(ctx context.Context, t *testing.T, js jetstream.JetStream) jetstream.Stream {
	t.Helper()
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: "MARKETPLACE", Subjects: []string{"marketplace.>"}, Duplicates: 2 * time.Minute,
	})
	require.NoError(t, err)
	return s
}

// storedMsg is a message as a stream keeps it, for comparisons.
type storedMsg struct {
	Subject, MsgID string
	Data           []byte
}

func streamMsgs(ctx context.Context, t *testing.T, s jetstream.Stream) []storedMsg {
	t.Helper()
	info, err := s.Info(ctx)
	require.NoError(t, err)
	var out []storedMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		require.NoError(t, err)
		out = append(out, storedMsg{Subject: m.Subject, MsgID: m.Header.Get(jetstream.MsgIDHeader), Data: m.Data})
	}
	return out
}

func TestRunPublish(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	js, getenv := natsEnv(t)
	stream := marketplaceStream(ctx, t, js)

	var out bytes.Buffer
	require.NoError(t, runPublish(ctx, []string{"--id", "cli-1", "shift.created", shiftJSON}, getenv, &out))
	require.Equal(t, "published shift.created id=cli-1 stream=MARKETPLACE seq=1\n", out.String())

	out.Reset()
	require.NoError(t, runPublish(ctx, []string{"shift.created", shiftJSON, "--id", "cli-1"}, getenv, &out), "flags after the arguments")
	require.Contains(t, out.String(), "seq=1 duplicate")

	out.Reset()
	require.NoError(t, publishCmd(ctx, []string{"--source", "stdin-test", "--time", "2026-01-01T00:00:00Z", "worker.activated", "-"}, getenv,
		strings.NewReader(`{"worker_id": 7}`), &out))
	require.Regexp(t, `^published worker.activated id=[0-9a-f-]{36} stream=MARKETPLACE seq=2\n$`, out.String())

	msgs := streamMsgs(ctx, t, stream)
	require.Len(t, msgs, 2)
	require.Equal(t, "marketplace.shift.created", msgs[0].Subject)
	require.Equal(t, "cli-1", msgs[0].MsgID)
	ev, err := domain.DecodeEvent(msgs[1].Data)
	require.NoError(t, err)
	require.Equal(t, "stdin-test", ev.Source)
	require.Equal(t, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), ev.Time)
	require.Equal(t, &domain.WorkerRef{WorkerID: 7}, ev.Data)
}

func TestRunPublish_invalid(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	js, getenv := natsEnv(t)
	stream := marketplaceStream(ctx, t, js)

	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"shift.created", strings.Replace(shiftJSON, "10:00", "04:00", 1)}, "is not after start"},
		{[]string{"shift.created", `{"id":1`}, "not valid JSON"},
		{[]string{"shift.exploded", `{}`}, `unknown event type "shift.exploded"`},
		{[]string{"worker.activated", `{"worker_id":"7"}`}, `"worker_id" must be a JSON integer`},
		{[]string{"shift.created"}, "wants TYPE and JSON"},
		{[]string{"--time", "yesterday", "worker.activated", `{"worker_id":7}`}, "not an RFC 3339 time"},
		{[]string{"--nope"}, "flag provided but not defined"},
	} {
		var out bytes.Buffer
		err := runPublish(ctx, tc.args, getenv, &out)
		require.ErrorIs(t, err, errUsage, "%q", tc.args)
		require.ErrorContains(t, err, tc.msg, "%q", tc.args)
		require.Equal(t, 2, exitCode(err))
	}
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	require.Zero(t, info.State.Msgs)

	var out bytes.Buffer
	require.NoError(t, runPublish(ctx, []string{"--help"}, getenv, &out))
	require.Contains(t, out.String(), "Usage: shiftcast publish [flags] TYPE JSON")
}

func TestRunPublish_noStream(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	_, getenv := natsEnv(t)
	start := time.Now()
	err := runPublish(ctx, []string{"worker.activated", `{"worker_id":7}`}, getenv, &bytes.Buffer{})
	require.ErrorIs(t, err, jetstream.ErrNoStreamResponse)
	require.ErrorContains(t, err, "MARKETPLACE stream")
	require.Equal(t, 1, exitCode(err))
	require.Less(t, time.Since(start), 10*time.Second)
}

func TestRunRecord_replayRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	jsA, envA := natsEnv(t)
	streamA := marketplaceStream(ctx, t, jsA)
	pub := publishers.NewEventPublisher(jsA, publishers.EventPublisherOptions{})
	for i := range 3 {
		_, _, err := pub.PublishData(ctx, domain.TypeShiftReleased, domain.ShiftRef{ShiftID: int64(i + 1)})
		require.NoError(t, err)
	}
	// What a buggy producer might send: the consumer dead-letters these,
	// and replay must reproduce them exactly so users can test that.
	_, err := pub.PublishRaw(ctx, "marketplace.shift.created", []byte("{\"type\": \"shift.created\",\n \"data\": <oops>"), "bad-1")
	require.NoError(t, err)
	_, err = pub.PublishRaw(ctx, "marketplace.worker.created", []byte(`{"specversion":"1.0","name":"<Ann & Co>"}`), "")
	require.NoError(t, err)
	want := streamMsgs(ctx, t, streamA)
	require.Len(t, want, 5)

	file := filepath.Join(t.TempDir(), "events.jsonl")
	var out bytes.Buffer
	require.NoError(t, runRecord(ctx, []string{file}, envA, &out))
	require.Equal(t, "recorded 5 messages from MARKETPLACE (seq 1..5) to "+file+"\n", out.String())
	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	require.Len(t, lines, 5)
	var first map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &first))
	require.Contains(t, first, "data", "a valid event is embedded, readable")
	require.JSONEq(t, `"MARKETPLACE"`, string(first["stream"]))
	require.Contains(t, lines[3], `"data_base64"`, "malformed bytes are kept as base64")

	jsB, envB := natsEnv(t)
	streamB := marketplaceStream(ctx, t, jsB)
	out.Reset()
	require.NoError(t, runReplay(ctx, []string{file}, envB, &out))
	require.Contains(t, out.String(), "replayed 5 messages")
	require.Contains(t, out.String(), "0 duplicates")
	require.Contains(t, out.String(), "2 not valid events")
	require.Equal(t, want, streamMsgs(ctx, t, streamB), "subjects, ids and bytes as recorded")

	out.Reset()
	require.NoError(t, runReplay(ctx, []string{file}, envB, &out))
	require.Contains(t, out.String(), "replayed 5 messages", "a second replay")
	require.Contains(t, out.String(), "4 duplicates", "is dropped by the stream, except the message without an id")

	out.Reset()
	require.NoError(t, runRecord(ctx, []string{"-"}, envA, &out), "to stdout")
	require.Equal(t, string(raw), out.String(), "the same lines, and nothing else")

	// Subject filter and start sequence.
	out.Reset()
	require.NoError(t, runRecord(ctx, []string{"--subjects", "marketplace.shift.>", "--from-seq", "2", file}, envA, &out))
	require.Contains(t, out.String(), "recorded 3 messages")
}

func TestRunRecord_emptyAndFollow(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	js, getenv := natsEnv(t)
	file := filepath.Join(t.TempDir(), "out.jsonl")

	err := runRecord(ctx, []string{file}, getenv, &bytes.Buffer{})
	require.ErrorIs(t, err, jetstream.ErrStreamNotFound)

	marketplaceStream(ctx, t, js)
	var out bytes.Buffer
	start := time.Now()
	require.NoError(t, runRecord(ctx, []string{file}, getenv, &out))
	require.Less(t, time.Since(start), 5*time.Second, "an empty stream is caught up at once")
	require.Equal(t, "recorded 0 messages from MARKETPLACE\n", out.String())

	pub := publishers.NewEventPublisher(js, publishers.EventPublisherOptions{})
	_, _, err = pub.PublishData(ctx, domain.TypeShiftDeleted, domain.ShiftRef{ShiftID: 1})
	require.NoError(t, err)
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	out.Reset()
	go func() { done <- runRecord(fctx, []string{"--follow", file}, getenv, &out) }()
	_, _, err = pub.PublishData(ctx, domain.TypeShiftDeleted, domain.ShiftRef{ShiftID: 2})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		raw, _ := os.ReadFile(file)
		return bytes.Count(raw, []byte("\n")) == 2
	}, 10*time.Second, 20*time.Millisecond, "--follow writes new messages as they come")
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err, "interrupting --follow is its normal end")
	case <-time.After(10 * time.Second):
		t.Fatal("record --follow did not stop when interrupted")
	}
	require.Contains(t, out.String(), "recorded 2 messages")
}

func TestRunReplay_handWritten(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	js, getenv := natsEnv(t)
	lines := `# a hand-written test stream
{"type":"facility.created","id":"f-1","data":{"id":1,"name":"Acme","is_active":true}}

{"type":"shift.created","id":"s-1","data":` + shiftJSON + `}
{"type":"shift.claimed","data":{"shift_id":5000001,"worker_id":"seven"}}
`
	file := filepath.Join(t.TempDir(), "hand.jsonl")
	require.NoError(t, os.WriteFile(file, []byte(lines), 0o600))

	// The stream appears only after replay started: --stream-wait covers a
	// stack that is still coming up.
	go func() {
		time.Sleep(300 * time.Millisecond)
		_, _ = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "MARKETPLACE", Subjects: []string{"marketplace.>"}})
	}()
	var out bytes.Buffer
	start := time.Now()
	require.NoError(t, runReplay(ctx, []string{"--rate", "10", "--stream-wait", "10s", "--source", "hand", file}, getenv, &out))
	require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond, "--rate 10 spaces three messages 100ms apart")
	require.Contains(t, out.String(), "replayed 3 messages")
	require.Contains(t, out.String(), "1 not valid events")

	stream, err := js.Stream(ctx, "MARKETPLACE")
	require.NoError(t, err)
	msgs := streamMsgs(ctx, t, stream)
	require.Len(t, msgs, 3)
	require.Equal(t, "marketplace.facility.created", msgs[0].Subject)
	require.Equal(t, "f-1", msgs[0].MsgID)
	ev, err := domain.DecodeEvent(msgs[1].Data)
	require.NoError(t, err)
	require.Equal(t, "s-1", ev.ID)
	require.Equal(t, "hand", ev.Source)
	require.WithinDuration(t, time.Now(), ev.Time, time.Minute)
	require.NotEmpty(t, msgs[2].MsgID, "an event without an id gets one")
	_, err = domain.DecodeEvent(msgs[2].Data)
	require.Error(t, err, "published as written, for the consumer to dead-letter")

	// A bad line names itself, and stops the replay there.
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	require.NoError(t, os.WriteFile(bad, []byte(`{"type":"worker.activated","data":{"worker_id":1}}`+"\n"+`{"nope":1}`+"\n"), 0o600))
	err = runReplay(ctx, []string{bad}, getenv, &bytes.Buffer{})
	require.ErrorIs(t, err, errUsage)
	require.ErrorContains(t, err, "line 2")
	require.ErrorContains(t, err, "with \"subject\"")
}

func TestRunReplay_stdin(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	js, getenv := natsEnv(t)
	stream := marketplaceStream(ctx, t, js)
	var out bytes.Buffer
	in := `{"subject":"marketplace.worker.activated","msg_id":"w-7","data_base64":"bm90IGFuIGV2ZW50"}`
	require.NoError(t, replayCmd(ctx, []string{"-"}, getenv, strings.NewReader(in), &out))
	msgs := streamMsgs(ctx, t, stream)
	require.Equal(t, []storedMsg{{Subject: "marketplace.worker.activated", MsgID: "w-7", Data: []byte("not an event")}}, msgs)

	err := replayCmd(ctx, []string{"-", "extra"}, getenv, strings.NewReader(in), &out)
	require.ErrorIs(t, err, errUsage)
}

func TestParsePositional(t *testing.T) {
	t.Parallel()
	fs := newFlagSet("x", "", &bytes.Buffer{})
	id := fs.String("id", "", "")
	pos, help, err := parsePositional(fs, []string{"a", "--id", "7", "-", "--", "--id", "b"})
	require.NoError(t, err)
	require.False(t, help)
	require.Equal(t, "7", *id)
	require.Equal(t, []string{"a", "-", "--id", "b"}, pos)
	_, _, err = parsePositional(fs, []string{"a", "--bad"})
	require.True(t, errors.Is(err, errUsage))
}
