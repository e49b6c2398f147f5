package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/publishers"
)

const replaySummary = `Publish the messages of a JSON-lines file in order, waiting for each one's
acknowledgement. FILE is what "shiftcast record" writes (one recorded message
a line: subject, msg_id, headers, data or data_base64), reproduced exactly,
malformed events included; or - for stdin. Lines may also be hand-written
events without an envelope, e.g.
  {"type":"shift.created","id":"demo-1","data":{"id":1,"facility_id":1,"profession":"CNA","start":"2026-12-01T05:00:00Z","end":"2026-12-01T10:00:00Z"}}
whose specversion, source, time (now) and id (random) are filled in. Blank
lines and lines starting with # are skipped. Nothing is validated: the report
counts the messages the consumer would dead-letter.`

// maxReplayLine bounds one line: a 1 MiB NATS payload in base64 with its
// headers fits with room to spare.
const maxReplayLine = 16 << 20

func runReplay(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	return replayCmd(ctx, args, getenv, os.Stdin, stdout)
}

// replayCmd is runReplay with stdin explicit, for tests.
func replayCmd(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	var (
		c          common
		rate       float64
		streamWait time.Duration
		source     string
	)
	fs := newFlagSet("replay", replaySummary, stdout)
	setPositionalUsage(fs, "replay [flags] FILE", replaySummary, stdout)
	c.register(fs, getenv)
	fs.Float64Var(&rate, "rate", 0, "messages per second (0 = as fast as acknowledgements come)")
	fs.DurationVar(&streamWait, "stream-wait", 30*time.Second, "how long to keep retrying a message while no stream captures its subject, e.g. while serve is still creating MARKETPLACE (0 = fail at once)")
	fs.StringVar(&source, "source", publishers.DefaultSource, "CloudEvents source of hand-written events without one")
	pos, help, err := parsePositional(fs, args)
	if help || err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: replay wants one FILE (or -), got %d arguments", errUsage, len(pos))
	}
	if rate < 0 || math.IsNaN(rate) || math.IsInf(rate, 0) {
		return fmt.Errorf("%w: --rate must be a number >= 0", errUsage)
	}
	if streamWait < 0 {
		return fmt.Errorf("%w: --stream-wait must not be negative", errUsage)
	}
	in, name := stdin, "stdin"
	if pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return fmt.Errorf("%w: %w", errUsage, err)
		}
		defer f.Close()
		in, name = f, pos[0]
	}
	logger, err := newLogger(c.logLevel)
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }()

	nc, js, err := connectJetStream(c, "shiftcast replay")
	if err != nil {
		return err
	}
	defer nc.Close()
	opts := publishers.EventPublisherOptions{Source: source, Logger: logger.Named("publisher")}
	if streamWait > 0 {
		// Bound by time, not attempts: the caller said how long to wait.
		opts.RetryAttempts, opts.RetryFor, opts.MaxRetryWait = math.MaxInt32, streamWait, time.Second
	} else {
		opts.RetryAttempts = -1
	}
	pub := publishers.NewEventPublisher(js, opts)
	defaults := publishers.ReplayDefaults{Source: source, Now: time.Now, NewID: uuid.NewString}

	var rep replayReport
	start := time.Now()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), maxReplayLine)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		msg, err := publishers.ParseReplayLine(line, defaults)
		if err != nil {
			return fmt.Errorf("%w: %s line %d: %w", errUsage, name, lineNo, err)
		}
		if rate > 0 {
			due := start.Add(time.Duration(float64(rep.published) / rate * float64(time.Second)))
			if err := sleepCtx(ctx, time.Until(due)); err != nil {
				rep.print(stdout, time.Since(start))
				return fmt.Errorf("replay %s interrupted at line %d: %w", name, lineNo, err)
			}
		}
		ack, err := pub.PublishMsg(ctx, msg)
		if err != nil {
			rep.print(stdout, time.Since(start))
			return fmt.Errorf("replay %s line %d: %w", name, lineNo, err)
		}
		rep.published++
		if ack.Duplicate {
			rep.duplicates++
		}
		if !validEvent(msg) {
			rep.invalid++
		}
	}
	if err := sc.Err(); err != nil {
		rep.print(stdout, time.Since(start))
		return fmt.Errorf("read %s: %w", name, err)
	}
	rep.print(stdout, time.Since(start))
	return nil
}

// replayReport counts what a replay did.
type replayReport struct {
	published, duplicates, invalid int
}

func (r replayReport) print(w io.Writer, elapsed time.Duration) {
	perSec := 0.0
	if elapsed > 0 {
		perSec = float64(r.published) / elapsed.Seconds()
	}
	fmt.Fprintf(w, "replayed %d messages in %s (%.0f/s): %d duplicates (already in the stream), %d not valid events (the consumer will dead-letter them)\n",
		r.published, elapsed.Round(time.Millisecond), perSec, r.duplicates, r.invalid)
}

// validEvent reports whether the consumer would accept msg: a valid event
// on its type's subject.
func validEvent(msg *nats.Msg) bool {
	ev, err := domain.DecodeEvent(msg.Data)
	return err == nil && msg.Subject == domain.Subject(ev.Type)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
