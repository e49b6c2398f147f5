package e2e_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Duplicates, reordering, webhook failures and poison messages.

// The same events published twice within JetStream's duplicate window:
// the stream drops the copies, nothing is applied or announced twice.
func TestDuplicates_WithinWindow(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.serve("--jobs=false")
	lines := readLines(t, "duplicates.jsonl")
	e.publish(lines)
	e.settleEvents()
	e.serve("--events=false")
	want := map[int64][]int64{1: {701, 702}, 2: {701, 702}}
	e.expect(want)

	for _, ack := range e.publish(lines) {
		require.True(t, ack.Duplicate, "JetStream keeps a copy of %d within the window", ack.Sequence)
	}
	require.EqualValues(t, len(lines), e.streamMsgs())
	e.expect(want)
	require.Len(t, e.appliedEvents(), len(lines))
}

// The same events published again after JetStream's duplicate window: the
// stream stores them again, shiftcast recognizes every one by its id and
// applies nothing (a re-applied release, creation or activation would
// announce again).
func TestDuplicates_BeyondWindow(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.serve("--jobs=false", "--stream-duplicate-window", "1s")
	lines := readLines(t, "duplicates.jsonl")
	e.publish(lines)
	e.settleEvents()
	e.serve("--events=false")
	want := map[int64][]int64{1: {701, 702}, 2: {701, 702}}
	e.expect(want)

	positions := e.positions()
	time.Sleep(2 * time.Second) // the window is 1 s
	for _, ack := range e.publish(lines) {
		require.False(t, ack.Duplicate, "JetStream dropped a copy of %d beyond its window", ack.Sequence)
	}
	require.EqualValues(t, 2*len(lines), e.streamMsgs())
	e.expect(want)
	require.ElementsMatch(t, eventIDs(t, lines), keys(e.appliedEvents()))
	require.Equal(t, positions, e.positions(), "the copies moved no entity's position: none was applied")
	require.Equal(t, map[string]string{"702": "<nil>", "703": "1"}, e.shiftClaims(702, 703))
}

// A claim published before its shift's creation (events are not ordered
// across subjects): it is retried until the shift exists, then applied; the
// shift ends claimed, is never announced, and nothing is dead-lettered.
func TestOutOfOrder_ClaimBeforeCreate(t *testing.T) {
	t.Parallel()
	e := setup(t)
	// Retries at 0.5 s, 1 s, 2 s...: the waits below key on the 2 s one.
	events := e.serve("--jobs=false", "--event-retry", "500ms")
	e.play("out_of_order_claim_1_world.jsonl")
	e.settleEvents()

	e.play("out_of_order_claim_2_claim.jsonl")
	// The claim came first and was put back; wait until its next try is
	// seconds away, so that the creation certainly applies before it.
	e.waitLog(events, `"event not applicable yet`, `"event_id":"cl-802"`, `"in":2,`)
	e.play("out_of_order_claim_3_create.jsonl")
	e.settleEvents()
	require.Empty(t, e.deadLettered())
	require.Equal(t, "applied", e.appliedEvents()["cl-802"])
	require.Equal(t, map[string]string{"802": "2"}, e.shiftClaims(802))

	e.serve("--events=false")
	e.expect(map[int64][]int64{1: {801}, 2: {801}})
}

// A stale event: worker 1's document addition is delivered first but
// cannot apply (the worker does not exist yet); the worker's creation and
// the document's removal, published after it, apply; the addition's
// redelivery is older than the removal and is ignored. Worker 1 ends
// without the document and never hears of the facility that requires it.
func TestOutOfOrder_StaleRedeliveryIgnored(t *testing.T) {
	t.Parallel()
	e := setup(t)
	// Retries at 0.5 s, 1 s, 2 s...: the waits below key on the 2 s one.
	events := e.serve("--jobs=false", "--event-retry", "500ms")
	e.play("out_of_order_document_1_world.jsonl")
	e.settleEvents()

	added := e.play("out_of_order_document_2_added.jsonl")
	// Wait until the addition's next try is seconds away, so that the
	// creation and the removal certainly apply before it.
	e.waitLog(events, `"event not applicable yet`, `"event_id":"wd-1-1"`, `"in":2,`)
	removed := e.play("out_of_order_document_3_created_and_removed.jsonl")[1]
	require.Greater(t, removed.Sequence, added[0].Sequence)
	e.settleEvents()

	applied := e.appliedEvents()
	require.Equal(t, "applied", applied["wdr-1-1"])
	require.Equal(t, "stale", applied["wd-1-1"], "the addition's redelivery came after the removal")
	require.Zero(t, e.queryInt(`SELECT count(*) FROM "DocumentWorker" WHERE worker_id = 1 AND document_id = 1`))
	require.EqualValues(t, removed.Sequence, e.queryInt(
		`SELECT seq FROM shiftcast.entity_positions WHERE kind = 'worker_document' AND id1 = 1 AND id2 = 1`))
	require.Empty(t, e.deadLettered())

	e.serve("--events=false")
	e.expect(map[int64][]int64{1: {812}, 2: {811, 812}})
}

// A webhook receiver failing three times, then recovering: the
// notification is delivered once, under one webhook-id for every attempt,
// and NATS carries it exactly once (the webhook's retries do not resend
// it there).
func TestWebhook_FailsThenRecovers(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.hook.mu.Lock()
	e.hook.fail = 3
	e.hook.mu.Unlock()
	e.playThenRunJobs("webhook.jsonl")
	e.expect(map[int64][]int64{1: {901, 902}})

	notes := e.hook.notifications()
	require.Len(t, notes, 1)
	e.hook.mu.Lock()
	require.Equal(t, map[string]int{notes[0].ID: 4}, e.hook.attempts)
	e.hook.mu.Unlock()
	status, attempts, lastErr := e.notificationState(notes[0].ID)
	require.Equal(t, "delivered", status)
	require.EqualValues(t, 4, attempts)
	require.Empty(t, lastErr)
}

// A webhook receiver that always fails: after the last attempt the
// notification is marked failed, with its attempts and last error, and
// NATS still got it exactly once.
func TestWebhook_AlwaysFails(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.hook.mu.Lock()
	e.hook.fail = 1 << 30
	e.hook.mu.Unlock()
	e.playThenRunJobs("webhook.jsonl", "--delivery-attempts", "3")
	e.settle()

	require.Empty(t, e.hook.notifications())
	notes := e.natsSeen.notifications()
	require.Len(t, notes, 1)
	require.Equal(t, map[int64][]int64{1: {901, 902}}, sorted(e.natsSeen.announced()))
	id := notes[0].ID
	e.hook.mu.Lock()
	require.Equal(t, map[string]int{id: 3}, e.hook.attempts)
	e.hook.mu.Unlock()
	status, attempts, lastErr := e.notificationState(id)
	require.Equal(t, "failed", status)
	require.EqualValues(t, 3, attempts)
	require.Contains(t, lastErr, "webhook")
	require.Contains(t, lastErr, "503")
	require.EqualValues(t, 1, e.queryInt(`SELECT count(*) FROM shiftcast.notifications`))
}

// Poison messages between good events: each bad one is dead-lettered with
// a reason naming its problem, and the good ones are all applied and
// announced.
func TestPoison_DeadLettered(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.serve("--event-max-deliver", "3")
	lines := readLines(t, "poison.jsonl")
	acks := e.publish(lines)
	e.expect(map[int64][]int64{1: {1001, 1002}, 2: {1001, 1002}})

	want := map[string][]string{ // msg id → subject, words of the reason
		"bad-not-json":         {"marketplace.shift.created", "not a CloudEvents JSON object"},
		"bad-unknown-type":     {"marketplace.shift.teleported", `unknown event type "shift.teleported"`},
		"bad-missing-field":    {"marketplace.shift.created", `field "end" is missing`},
		"bad-wrong-type":       {"marketplace.worker.created", `field "id" must be a JSON integer`},
		"bad-never-applicable": {"marketplace.shift.claimed", "not applied after 3 deliveries", "shift 9999"},
		"bad-end-before-start": {"marketplace.shift.created", "is not after start"},
		"bad-subject":          {"marketplace.shift.created", `"worker.created" arrived on subject "marketplace.shift.created"`},
	}
	idAt := map[string]string{} // stream sequence → event id
	for i, id := range eventIDs(t, lines) {
		idAt[strconv.FormatUint(acks[i].Sequence, 10)] = id
	}
	got := map[string]bool{}
	for _, m := range e.deadLettered() {
		id := idAt[m.Header.Get("Shiftcast-Stream-Sequence")]
		w, ok := want[id]
		require.True(t, ok, "unexpected dead letter %s: %s", id, m.Header.Get("Shiftcast-Dlq-Reason"))
		require.False(t, got[id], "%s dead-lettered twice", id)
		got[id] = true
		require.Equal(t, "dlq."+w[0], m.Subject, id)
		require.Equal(t, w[0], m.Header.Get("Shiftcast-Original-Subject"), id)
		reason := m.Header.Get("Shiftcast-Dlq-Reason")
		for _, word := range w[1:] {
			require.Contains(t, reason, word, id)
		}
		if id == "bad-not-json" {
			require.Equal(t, "not json at all", string(m.Data), "the original bytes are kept")
		}
	}
	require.Len(t, got, len(want), "every bad message is dead-lettered")

	applied := e.appliedEvents()
	require.ElementsMatch(t, []string{"fac-1", "wrk-1", "wrk-2", "sh-1001", "sh-1002"}, keys(applied))
	require.Equal(t, len(lines)-len(want), len(applied))
}

// playThenRunJobs applies a stream with an events-only instance, then
// starts a jobs-only one (with extra flags): the stream's digests are
// built once all of it is applied, whatever the window boundaries, so each
// worker gets exactly one notification.
func (e *env) playThenRunJobs(name string, jobFlags ...string) {
	e.t.Helper()
	e.serve("--jobs=false")
	e.play(name)
	e.settleEvents()
	e.serve(append([]string{"--events=false"}, jobFlags...)...)
}

// positions returns shiftcast.entity_positions, as "kind id1 id2" → seq.
func (e *env) positions() map[string]int64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := e.db().Query(ctx, `SELECT kind || ' ' || id1 || ' ' || id2, seq FROM shiftcast.entity_positions`)
	require.NoError(e.t, err)
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var k string
		var seq int64
		require.NoError(e.t, rows.Scan(&k, &seq))
		out[k] = seq
	}
	require.NoError(e.t, rows.Err())
	return out
}

// shiftClaims returns, per shift id, who claimed it ("<nil>" for nobody).
func (e *env) shiftClaims(ids ...int64) map[string]string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := e.db().Query(ctx, `SELECT id::text, coalesce(worker_id::text, '<nil>') FROM "Shift" WHERE id = ANY($1)`, ids)
	require.NoError(e.t, err)
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, w string
		require.NoError(e.t, rows.Scan(&id, &w))
		out[id] = w
	}
	require.NoError(e.t, rows.Err())
	return out
}

// notificationState returns a notification's delivery state.
func (e *env) notificationState(id string) (status string, attempts int64, lastErr string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(e.t, e.db().QueryRow(ctx,
		`SELECT status, attempts, coalesce(last_error, '') FROM shiftcast.notifications WHERE id = $1`, id).
		Scan(&status, &attempts, &lastErr))
	return status, attempts, lastErr
}

// waitLog waits, bounded, until p logged a line containing every one of words.
func (e *env) waitLog(p *proc, words ...string) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(grepLog(p.logText(e.t), words...)) == 0 {
		require.True(e.t, time.Now().Before(deadline), "serve never logged %q", words)
		time.Sleep(50 * time.Millisecond)
	}
}
