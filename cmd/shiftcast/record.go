package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shiftcast/shiftcast/publishers"
)

const recordSummary = `Write the messages of a stream to FILE (- for stdout) as JSON lines, one
message a line, in the format "shiftcast replay" reads:
  {"subject":"marketplace.shift.created","msg_id":"...","data":{...},"stream":"MARKETPLACE","seq":1,"stored_at":"..."}
The payload is embedded as "data" when it is compact JSON and as
"data_base64" otherwise, so that replay publishes the very bytes recorded.
Reads from the start (or --from-seq / --since) until caught up, or with
--follow until interrupted. Reading does not disturb the stream's consumers.`

// recordIdle is how long record waits for a message before asking the
// server whether any are left: messages can vanish (limits, purges)
// between the count at start and their delivery.
const recordIdle = 2 * time.Second

func runRecord(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var (
		c        common
		stream   string
		subjects string
		fromSeq  uint64
		since    string
		follow   bool
	)
	fs := newFlagSet("record", recordSummary, stdout)
	setPositionalUsage(fs, "record [flags] FILE", recordSummary, stdout)
	c.register(fs, getenv)
	fs.StringVar(&stream, "stream", "MARKETPLACE", "stream to read")
	fs.StringVar(&subjects, "subjects", "", "comma-separated subject filters, e.g. marketplace.shift.> (default: all)")
	fs.Uint64Var(&fromSeq, "from-seq", 0, "first stream sequence to record")
	fs.StringVar(&since, "since", "", "record messages stored since this RFC 3339 time, or this long ago (e.g. 1h)")
	fs.BoolVar(&follow, "follow", false, "keep recording new messages until interrupted")
	pos, help, err := parsePositional(fs, args)
	if help || err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: record wants one FILE (or -), got %d arguments", errUsage, len(pos))
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: trimCommas(subjects)}
	switch {
	case fromSeq > 0 && since != "":
		return fmt.Errorf("%w: --from-seq and --since are exclusive", errUsage)
	case fromSeq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, fromSeq
	case since != "":
		t, err := parseSince(since, time.Now())
		if err != nil {
			return err
		}
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}

	nc, js, err := connectJetStream(c, "shiftcast record")
	if err != nil {
		return err
	}
	defer nc.Close()
	cons, err := js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return fmt.Errorf("record stream %s: %w", stream, err)
	}

	var file *os.File
	out, report := stdout, stdout
	if pos[0] != "-" {
		if file, err = os.Create(pos[0]); err != nil {
			return fmt.Errorf("%w: %w", errUsage, err)
		}
		defer file.Close()
		out = file
	} else {
		// stdout carries the recording; the report must not end up in it.
		report = os.Stderr
	}
	w := bufio.NewWriter(out)
	n, first, last, err := recordMessages(ctx, cons, w, follow)
	if ferr := w.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("write %s: %w", pos[0], ferr)
	}
	if file != nil && err == nil {
		// Close errors are write errors on some file systems; the deferred
		// Close then only returns os.ErrClosed, ignored.
		if cerr := file.Close(); cerr != nil {
			err = fmt.Errorf("write %s: %w", pos[0], cerr)
		}
	}
	if err != nil {
		return fmt.Errorf("record stream %s after %d messages: %w", stream, n, err)
	}
	if n == 0 {
		fmt.Fprintf(report, "recorded 0 messages from %s\n", stream)
	} else {
		fmt.Fprintf(report, "recorded %d messages from %s (seq %d..%d) to %s\n", n, stream, first, last, pos[0])
	}
	return nil
}

// messageSource is the part of an ordered consumer record reads from.
type messageSource interface {
	Messages(opts ...jetstream.PullMessagesOpt) (jetstream.MessagesContext, error)
	Info(ctx context.Context) (*jetstream.ConsumerInfo, error)
	CachedInfo() *jetstream.ConsumerInfo
}

var _ messageSource = (jetstream.Consumer)(nil)

// recordMessages writes cons's messages to w until none is pending (or,
// following, until ctx ends) and returns how many it wrote and their
// first and last stream sequences.
func recordMessages(ctx context.Context, cons messageSource, w *bufio.Writer, follow bool) (n int, first, last uint64, err error) {
	it, err := cons.Messages()
	if err != nil {
		return 0, 0, 0, err
	}
	defer it.Stop()
	pending := func() (bool, error) {
		info, err := cons.Info(ctx)
		if err != nil {
			return false, fmt.Errorf("consumer info: %w", err)
		}
		return info.NumPending > 0, nil
	}
	// The count when the consumer was created, before anything was pulled:
	// asking the server now could answer 0 for messages already buffered here.
	if info := cons.CachedInfo(); !follow && info != nil && info.NumPending == 0 {
		return 0, 0, 0, nil
	}
	for {
		nctx, cancel := context.WithTimeout(ctx, recordIdle)
		msg, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				if follow {
					return n, first, last, nil // interrupted: the normal end of --follow
				}
				return n, first, last, ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
				if follow {
					// Idle: hand what we have to a reader tailing the file.
					if err := w.Flush(); err != nil {
						return n, first, last, err
					}
					continue
				}
				if more, err := pending(); err != nil || !more {
					return n, first, last, err
				}
				continue
			}
			return n, first, last, err
		}
		meta, err := msg.Metadata()
		if err != nil {
			return n, first, last, fmt.Errorf("message metadata: %w", err)
		}
		rec := publishers.NewRecorded(msg.Subject(), msg.Headers(), msg.Data())
		rec.Stream, rec.Seq = meta.Stream, meta.Sequence.Stream
		stored := meta.Timestamp.UTC()
		rec.StoredAt = &stored
		line, err := rec.MarshalLine()
		if err != nil {
			return n, first, last, err
		}
		if _, err := w.Write(line); err != nil {
			return n, first, last, err
		}
		if n == 0 {
			first = meta.Sequence.Stream
		}
		n, last = n+1, meta.Sequence.Stream
		if meta.NumPending == 0 {
			if !follow {
				return n, first, last, nil
			}
			if err := w.Flush(); err != nil {
				return n, first, last, err
			}
		}
	}
}

// parseSince reads --since: an RFC 3339 time, or a duration before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%w: --since %q is neither an RFC 3339 time nor a duration such as 1h", errUsage, s)
}
