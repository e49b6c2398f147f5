package publishers_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/publishers"
)

func TestRecorded_MarshalLine(t *testing.T) {
	t.Parallel()
	for name, data := range map[string][]byte{
		"event":           []byte(`{"specversion":"1.0","id":"a","data":{"name":"<b>&co"}}`),
		"escaped html":    []byte(`{"name":"\u003cb\u003e"}`),
		"pretty JSON":     []byte("{\n  \"a\": 1\n}"),
		"leading space":   []byte(` {"a":1}`),
		"null":            []byte(`null`),
		"number":          []byte(`42`),
		"not JSON":        []byte(`{"a":`),
		"binary":          {0xff, 0x00, '\n', 0xfe},
		"empty":           {},
		"line separators": []byte("\"\u2028\""),
	} {
		h := nats.Header{}
		h.Set(jetstream.MsgIDHeader, "id-"+name)
		h.Set("Nats-Expected-Last-Sequence", "3")
		h.Set("Traceparent", "00-abc")
		rec := publishers.NewRecorded("marketplace.shift.created", h, data)
		line, err := rec.MarshalLine()
		require.NoError(t, err, name)
		require.Equal(t, 1, bytes.Count(line, []byte("\n")), "%s: one line", name)
		require.True(t, bytes.HasSuffix(line, []byte("\n")), name)

		msg, err := publishers.ParseReplayLine(bytes.TrimSpace(line), publishers.ReplayDefaults{})
		require.NoError(t, err, name)
		require.Equal(t, "marketplace.shift.created", msg.Subject, name)
		require.Equal(t, string(data), string(msg.Data), "%s: the payload round-trips byte for byte", name)
		require.Equal(t, "id-"+name, msg.Header.Get(jetstream.MsgIDHeader), name)
		require.Equal(t, "00-abc", msg.Header.Get("Traceparent"), name)
		require.Empty(t, msg.Header.Get("Nats-Expected-Last-Sequence"), "%s: stream conditions are not replayed", name)
	}
	// Readable when it can be: compact JSON is embedded, not base64.
	line, err := publishers.NewRecorded("s", nil, []byte(`{"a":1}`)).MarshalLine()
	require.NoError(t, err)
	require.JSONEq(t, `{"subject":"s","data":{"a":1}}`, string(line))
}

func TestParseReplayLine_handWritten(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	d := publishers.ReplayDefaults{Source: "hand", Now: func() time.Time { return at }, NewID: func() string { return "generated" }}

	msg, err := publishers.ParseReplayLine([]byte(`{"type":"shift.released","id":"r-1","data":{"shift_id":9}}`), d)
	require.NoError(t, err)
	require.Equal(t, "marketplace.shift.released", msg.Subject)
	require.Equal(t, "r-1", msg.Header.Get(jetstream.MsgIDHeader))
	ev, err := domain.DecodeEvent(msg.Data)
	require.NoError(t, err)
	require.Equal(t, "hand", ev.Source)
	require.Equal(t, at, ev.Time)
	require.Equal(t, &domain.ShiftRef{ShiftID: 9}, ev.Data)

	msg, err = publishers.ParseReplayLine([]byte(`{"type":"shift.released","source":"mine","time":"2020-01-01T00:00:00Z","data":{"shift_id":"nine"}}`), d)
	require.NoError(t, err, "hand-written events are not validated: they may be malformed on purpose")
	require.Equal(t, "generated", msg.Header.Get(jetstream.MsgIDHeader))
	var env map[string]any
	require.NoError(t, json.Unmarshal(msg.Data, &env))
	require.Equal(t, "mine", env["source"])
	require.Equal(t, "2020-01-01T00:00:00Z", env["time"])
	require.Equal(t, "generated", env["id"])
	_, err = domain.DecodeEvent(msg.Data)
	require.Error(t, err)

	for _, bad := range []string{`[1]`, `{"data":{}}`, `{"type":1}`, `{"subject":"s"}`, `{"subject":"s","data":1,"data_base64":"MQ=="}`, `{"subject":"s","data_base64":"*"}`, `{"subject":"s","dat":1}`} {
		_, err := publishers.ParseReplayLine([]byte(bad), d)
		require.Error(t, err, bad)
	}
}
