package publishers

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shiftcast/shiftcast/domain"
)

// Recorded is one line of a recording (JSON lines, as `shiftcast record`
// writes and `shiftcast replay` reads): a message as the stream stored it.
//
// The payload is embedded as Data when it is compact JSON, so recordings
// stay readable and editable, and as DataBase64 otherwise (malformed
// events, pretty-printed JSON, binary), because embedding would change its
// bytes. Replaying a line publishes Subject, MsgID as Nats-Msg-Id, Headers
// and the payload exactly as recorded. Stream, Seq and StoredAt say where
// the message came from; replay ignores them.
type Recorded struct {
	Subject    string          `json:"subject"`
	MsgID      string          `json:"msg_id,omitempty"`
	Headers    nats.Header     `json:"headers,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
	DataBase64 *string         `json:"data_base64,omitempty"`
	Stream     string          `json:"stream,omitempty"`
	Seq        uint64          `json:"seq,omitempty"`
	StoredAt   *time.Time      `json:"stored_at,omitempty"`
}

// NewRecorded returns the recording of a message. Nats-Msg-Id moves to
// MsgID; the Nats-Expected-* headers are dropped because they are
// conditions on the stream the message was first published to, which
// a replay into another stream would fail.
func NewRecorded(subject string, header nats.Header, data []byte) Recorded {
	r := Recorded{Subject: subject, MsgID: header.Get(jetstream.MsgIDHeader)}
	for k, vs := range header {
		if k == jetstream.MsgIDHeader || strings.HasPrefix(k, "Nats-Expected-") {
			continue
		}
		if r.Headers == nil {
			r.Headers = nats.Header{}
		}
		r.Headers[k] = append([]string(nil), vs...)
	}
	if embeddable(data) {
		r.Data = append(json.RawMessage(nil), data...)
	} else {
		b64 := base64.StdEncoding.EncodeToString(data)
		r.DataBase64 = &b64
	}
	return r
}

// embeddable reports whether data survives being embedded in a JSON line
// byte for byte: valid UTF-8 JSON with no insignificant whitespace (which
// the encoder would strip, and whose newlines would break the line).
func embeddable(data []byte) bool {
	if len(data) == 0 || !utf8.Valid(data) || !json.Valid(data) {
		return false
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, data); err != nil {
		return false
	}
	return bytes.Equal(buf.Bytes(), data)
}

// MarshalLine returns r as one JSON line, newline included.
func (r Recorded) MarshalLine() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// With HTML escaping on, the encoder would rewrite <, > and & inside
	// an embedded payload, and replay would publish different bytes.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, fmt.Errorf("encode recorded message %s %s: %w", r.Subject, r.MsgID, err)
	}
	return buf.Bytes(), nil
}

// Payload returns the recorded message's bytes.
func (r Recorded) Payload() ([]byte, error) {
	switch {
	case r.DataBase64 != nil:
		data, err := base64.StdEncoding.DecodeString(*r.DataBase64)
		if err != nil {
			return nil, fmt.Errorf("data_base64 is not standard base64: %w", err)
		}
		return data, nil
	case r.Data != nil:
		return append([]byte(nil), r.Data...), nil
	}
	return nil, fmt.Errorf("line has neither data nor data_base64")
}

// Msg returns the message a replay publishes for r.
func (r Recorded) Msg() (*nats.Msg, error) {
	if r.Subject == "" {
		return nil, fmt.Errorf("subject is empty")
	}
	if r.Data != nil && r.DataBase64 != nil {
		return nil, fmt.Errorf("line has both data and data_base64")
	}
	data, err := r.Payload()
	if err != nil {
		return nil, err
	}
	msg := &nats.Msg{Subject: r.Subject, Data: data, Header: nats.Header{}}
	for k, vs := range r.Headers {
		msg.Header[k] = append([]string(nil), vs...)
	}
	if r.MsgID != "" {
		msg.Header.Set(jetstream.MsgIDHeader, r.MsgID)
	}
	return msg, nil
}

// ReplayDefaults fills what a hand-written replay line leaves out.
type ReplayDefaults struct {
	// Source is the CloudEvents source of events without one.
	Source string
	// Now is the time of events without one.
	Now func() time.Time
	// NewID returns the id of events without one.
	NewID func() string
}

// ParseReplayLine returns the message a replay line stands for. A line
// with a "subject" is a Recorded message, reproduced exactly. A line
// without one is a hand-written event, e.g.
//
//	{"type":"shift.created","id":"s-1","data":{"id":1,...}}
//
// whose missing envelope attributes (specversion, id, source, time,
// datacontenttype) are filled from d; it goes to domain.Subject(type)
// with Nats-Msg-Id set to its id. Neither form is validated as an event:
// hand-written files may hold malformed events on purpose, to exercise
// dead-lettering.
func ParseReplayLine(line []byte, d ReplayDefaults) (*nats.Msg, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(line, &fields); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if _, ok := fields["subject"]; ok {
		var r Recorded
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("recorded message: %w", err)
		}
		return r.Msg()
	}
	var typ string
	if raw, ok := fields["type"]; !ok || json.Unmarshal(raw, &typ) != nil || typ == "" {
		return nil, fmt.Errorf(`want a recorded message (with "subject") or an event (with a string "type")`)
	}
	var id string
	if raw, ok := fields["id"]; ok {
		if err := json.Unmarshal(raw, &id); err != nil {
			return nil, fmt.Errorf("event id must be a string: %w", err)
		}
	} else {
		id = d.NewID()
		fields["id"] = mustJSON(id)
	}
	setDefault(fields, "specversion", "1.0")
	setDefault(fields, "source", d.Source)
	setDefault(fields, "time", d.Now().UTC().Format(time.RFC3339Nano))
	setDefault(fields, "datacontenttype", "application/json")
	data, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("encode event: %w", err)
	}
	msg := &nats.Msg{Subject: domain.Subject(typ), Data: data, Header: nats.Header{}}
	if id != "" {
		msg.Header.Set(jetstream.MsgIDHeader, id)
	}
	return msg, nil
}

func setDefault(fields map[string]json.RawMessage, key, value string) {
	if _, ok := fields[key]; !ok {
		fields[key] = mustJSON(value)
	}
}

// mustJSON encodes a string, which cannot fail.
func mustJSON(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}
