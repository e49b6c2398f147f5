package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/publishers"
)

const publishSummary = `Publish one domain event into the MARKETPLACE stream, as the marketplace's
services do: a CloudEvents JSON message on marketplace.TYPE with Nats-Msg-Id
set to the event id. TYPE is an event type (shift.created, worker.activated,
...); JSON is its data object, or - to read it from stdin. The event is
validated as the consumer decodes it, so an invalid one is refused here.

Example:
  shiftcast publish shift.created '{"id":5000001,"facility_id":1,"profession":"CNA","start":"2026-12-01T05:00:00Z","end":"2026-12-01T10:00:00Z"}'`

// maxStdinEvent bounds what publish reads from stdin: NATS refuses
// payloads over 1 MiB by default anyway.
const maxStdinEvent = 8 << 20

func runPublish(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	return publishCmd(ctx, args, getenv, os.Stdin, stdout)
}

// publishCmd is runPublish with stdin explicit, for tests.
func publishCmd(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	var (
		c       common
		id      string
		source  string
		rawTime string
	)
	fs := newFlagSet("publish", publishSummary, stdout)
	setPositionalUsage(fs, "publish [flags] TYPE JSON", publishSummary, stdout)
	c.register(fs, getenv)
	fs.StringVar(&id, "id", "", "event id (default: a random UUID); publishing an id again within the stream's duplicate window is a no-op")
	fs.StringVar(&source, "source", publishers.DefaultSource, "CloudEvents source")
	fs.StringVar(&rawTime, "time", "", "event time, RFC 3339 (default: now)")
	pos, help, err := parsePositional(fs, args)
	if help || err != nil {
		return err
	}
	if len(pos) != 2 {
		return fmt.Errorf("%w: publish wants TYPE and JSON, got %d arguments (see shiftcast publish --help)", errUsage, len(pos))
	}
	typ, data := pos[0], []byte(pos[1])
	if pos[1] == "-" {
		if data, err = io.ReadAll(io.LimitReader(stdin, maxStdinEvent)); err != nil {
			return fmt.Errorf("read event data from stdin: %w", err)
		}
	}
	if !json.Valid(data) {
		return fmt.Errorf("%w: %s data is not valid JSON", errUsage, typ)
	}
	at := time.Now()
	if rawTime != "" {
		if at, err = time.Parse(time.RFC3339Nano, rawTime); err != nil {
			return fmt.Errorf("%w: --time %q is not an RFC 3339 time", errUsage, rawTime)
		}
	}
	if id == "" {
		id = uuid.NewString()
	}
	ev, err := domain.NewEvent(id, source, typ, at, json.RawMessage(data))
	if err != nil {
		return fmt.Errorf("%w: invalid event: %s", errUsage, domain.ErrorMessage(err))
	}
	logger, err := newLogger(c.logLevel)
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }()

	nc, js, err := connectJetStream(c, "shiftcast publish")
	if err != nil {
		return err
	}
	defer nc.Close()
	pub := publishers.NewEventPublisher(js, publishers.EventPublisherOptions{Source: source, Logger: logger.Named("publisher")})
	ack, err := pub.Publish(ctx, ev)
	if err != nil {
		return err
	}
	dup := ""
	if ack.Duplicate {
		dup = " duplicate (already in the stream; not stored again)"
	}
	fmt.Fprintf(stdout, "published %s id=%s stream=%s seq=%d%s\n", ev.Type, ev.ID, ack.Stream, ack.Sequence, dup)
	return nil
}

// connectJetStream connects to NATS for a one-shot command: it fails fast
// when the server is not there, rather than retrying in the background as
// serve does.
func connectJetStream(c common, name string) (*nats.Conn, jetstream.JetStream, error) {
	natsURL := c.natsURL
	opts, err := c.natsOptions()
	if err != nil {
		return nil, nil, err
	}
	nc, err := nats.Connect(natsURL, append(opts, nats.Name(name+" "+version), nats.Timeout(5*time.Second))...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect nats %s: %w", redact(natsURL), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream on %s: %w", redact(natsURL), err)
	}
	return nc, js, nil
}

// setPositionalUsage replaces newFlagSet's usage line for a command that
// takes arguments after its flags.
func setPositionalUsage(fs *flag.FlagSet, synopsis, summary string, stdout io.Writer) {
	fs.Usage = func() {
		fmt.Fprintf(stdout, "Usage: shiftcast %s\n\n%s\n\nFlags:\n", synopsis, summary)
		fs.PrintDefaults()
	}
}

// parsePositional is parse for commands with positional arguments: it
// returns them, and accepts flags after them too (flag stops at the first
// argument otherwise), except after "--".
func parsePositional(fs *flag.FlagSet, args []string) (pos []string, help bool, err error) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, true, nil
			}
			return nil, false, fmt.Errorf("%w: %w", errUsage, err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, false, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), false, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// trimCommas splits a comma-separated flag value, dropping empty items.
func trimCommas(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
