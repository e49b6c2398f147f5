package e2e_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The basic stream: announcements follow the rules; a past, a deleted and
// a claimed-within-the-window shift are never announced; both channels
// carry the same notifications; each shift is announced once per worker.
func TestPipeline_Basic(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.serve()
	// The world (documents, facilities, requirements, workers) settles
	// before any shift exists: applied concurrently and out of order, a
	// requirement retried after its facility's creation must not leave a
	// gap in which a digest could see a facility without it.
	lines := readLines(t, "basic.jsonl")
	const world = 9
	e.publish(lines[:world])
	e.settleEvents()
	e.publish(lines[world:])
	want := map[int64][]int64{1: {101, 102}, 2: {102}, 3: {103}}
	e.waitFor(e.hook, want, 2*time.Second)
	e.waitFor(e.natsSeen, want, 0)
	require.Zero(t, e.hook.badSig)
	for _, n := range e.hook.notifications() {
		require.Equal(t, "shifts.available", n.Type)
		require.Equal(t, len(n.Shifts), n.Count)
	}
	// New CNA shifts at two facilities: a window has one fan-out job per
	// profession, however many of its facilities the events touched.
	require.Positive(t, e.queryInt(`SELECT count(*) FROM river_job WHERE kind = 'shiftcast.fanout'`))
	require.Zero(t, e.queryInt(`
		SELECT count(*) FROM (
			SELECT 1 FROM river_job WHERE kind = 'shiftcast.fanout'
			GROUP BY args->>'profession', args->>'window' HAVING count(*) > 1) d`))
}
