package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/store"
)

// Tests of ApplyEvents: many events in one transaction, each in a
// savepoint, with one enqueue call for the batch.

// applyBatchTimeout bounds one ApplyEvents call.
const applyBatchTimeout = 30 * time.Second

// batchRun is one ApplyEvents call: its results and error, and the effects
// its enqueue was called with.
type batchRun struct {
	res      []store.Applied
	err      error
	enqueued []store.Effect
}

// applyBatch applies evs in one ApplyEvents call, recording enqueue's
// calls; enqueue returns enqueueErr.
func applyBatch(t testing.TB, p *pipe, evs []store.EventAt, enqueueErr error) batchRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), applyBatchTimeout)
	defer cancel()
	var run batchRun
	run.res, run.err = p.st.ApplyEvents(ctx, evs, p.now, func(_ context.Context, tx pgx.Tx, eff store.Effect) error {
		require.NotNil(t, tx)
		run.enqueued = append(run.enqueued, eff)
		return enqueueErr
	})
	if run.err == nil {
		require.Len(t, run.res, len(evs), "one result per event")
	}
	return run
}

// mustApplyBatch applies evs in one ApplyEvents call that must succeed.
func mustApplyBatch(t testing.TB, p *pipe, evs ...store.EventAt) batchRun {
	t.Helper()
	run := applyBatch(t, p, evs, nil)
	require.NoError(t, run.err)
	return run
}

// batchEvent builds a valid event of type typ with a fresh id.
func batchEvent(t testing.TB, p *pipe, typ string, data any) domain.Event {
	t.Helper()
	p.ids++
	ev, err := domain.NewEvent(fmt.Sprintf("%s/batch/%d", t.Name(), p.ids), "shiftcast/test", typ, p.now, data)
	require.NoError(t, err)
	return ev
}

// atNext pairs ev with the next stream sequence.
func atNext(p *pipe, ev domain.Event) store.EventAt {
	return store.EventAt{Event: ev, Seq: p.next()}
}

// requireApplied requires result i to be applied without error.
func requireApplied(t testing.TB, run batchRun, i int) store.Effect {
	t.Helper()
	require.NoError(t, run.res[i].Err, "event %d", i)
	require.Equal(t, store.OutcomeApplied, run.res[i].Effect.Outcome, "event %d", i)
	return run.res[i].Effect
}

// requireMissing requires result i to be a missing dependency, with no
// effect.
func requireMissing(t testing.TB, run batchRun, i int) {
	t.Helper()
	require.ErrorIs(t, run.res[i].Err, store.ErrMissingDependency, "event %d", i)
	require.Equal(t, store.Effect{}, run.res[i].Effect, "event %d: a failed event has no effect", i)
}

// recorded returns how many applied_events rows ev left.
func recorded(t testing.TB, p *pipe, ev domain.Event) int {
	t.Helper()
	var n int
	require.NoError(t, p.b.pool.QueryRow(bg, `SELECT count(*) FROM shiftcast.applied_events WHERE event_id = $1`, ev.ID).Scan(&n))
	return n
}

// A batch with events whose dependency is missing in the middle applies
// the others; the failing ones leave no trace, so they apply once their
// dependency has arrived, in a later batch or later in the same one.
func TestApplyEvents_MissingDependencyFailsOnlyThatEvent(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	basicWorld(t, p) // worker 1 (CNA) holds document 1; facility 2 requires nothing

	shift := batchEvent(t, p, domain.TypeShiftCreated, shiftData(10, 2, domain.CNA, p.at(24*time.Hour)))
	// Caught by the store: no shift row to update.
	claimUnknown := batchEvent(t, p, domain.TypeShiftClaimed, &domain.ShiftClaimed{ShiftID: 900, WorkerID: 1})
	worker := batchEvent(t, p, domain.TypeWorkerCreated, &domain.WorkerCreated{ID: 2, Name: "new", Profession: domain.CNA, IsActive: true})
	// Caught by PostgreSQL: a foreign key violation, which aborts the
	// transaction unless rolled back to the savepoint.
	docUnknownWorker := batchEvent(t, p, domain.TypeWorkerDocumentAdded, &domain.WorkerDocument{WorkerID: 77, DocumentID: 1})
	docAdd := batchEvent(t, p, domain.TypeWorkerDocumentAdded, &domain.WorkerDocument{WorkerID: 2, DocumentID: 1})
	evs := []store.EventAt{atNext(p, shift), atNext(p, claimUnknown), atNext(p, worker), atNext(p, docUnknownWorker), atNext(p, docAdd)}

	run := mustApplyBatch(t, p, evs...)
	eff := requireApplied(t, run, 0)
	require.Equal(t, fanouts(2, domain.CNA), eff.Fanouts)
	requireMissing(t, run, 1)
	require.ErrorContains(t, run.res[1].Err, claimUnknown.ID, "the error names the event")
	eff = requireApplied(t, run, 2)
	require.Equal(t, []int64{2}, eff.NotifyWorkers)
	requireMissing(t, run, 3)
	eff = requireApplied(t, run, 4)
	require.Equal(t, []int64{2}, eff.NotifyWorkers)
	require.Equal(t, []store.Effect{{Outcome: store.OutcomeApplied, NotifyWorkers: []int64{2}, Fanouts: fanouts(2, domain.CNA)}},
		run.enqueued, "one enqueue, with the applied events' effects only")

	// The applied events changed the tables.
	require.Equal(t, 1, p.count(t, `SELECT count(*) FROM "Shift" WHERE id = 10 AND worker_id IS NULL`))
	require.Equal(t, 1, p.count(t, `SELECT count(*) FROM "Worker" WHERE id = 2 AND is_active`))
	require.Equal(t, 1, p.count(t, `SELECT count(*) FROM "DocumentWorker" WHERE worker_id = 2 AND document_id = 1`))
	require.Equal(t, []int64{10}, p.digest(t, 1))
	require.Equal(t, []int64{10}, p.digest(t, 2))
	for _, ev := range []domain.Event{shift, worker, docAdd} {
		require.Equal(t, 1, recorded(t, p, ev), ev.Type)
	}
	// The failing ones left nothing: no id record, no position, no row.
	require.Zero(t, recorded(t, p, claimUnknown))
	require.Zero(t, recorded(t, p, docUnknownWorker))
	require.Zero(t, p.count(t, `SELECT count(*) FROM shiftcast.entity_positions WHERE (kind = 'shift' AND id1 = 900) OR (kind = 'worker_document' AND id1 = 77)`))
	require.Zero(t, p.count(t, `SELECT count(*) FROM "DocumentWorker" WHERE worker_id = 77`))

	// Once their dependencies exist, the same events (same ids, same
	// sequences) apply.
	run = mustApplyBatch(t, p,
		atNext(p, batchEvent(t, p, domain.TypeShiftCreated, shiftData(900, 2, domain.CNA, p.at(30*time.Hour)))),
		atNext(p, batchEvent(t, p, domain.TypeWorkerCreated, &domain.WorkerCreated{ID: 77, Name: "late", Profession: domain.RN, IsActive: true})),
		evs[1], evs[3])
	for i := range run.res {
		requireApplied(t, run, i)
	}
	require.Equal(t, 1, p.count(t, `SELECT count(*) FROM "Shift" WHERE id = 900 AND worker_id = 1`))
	require.Equal(t, 1, p.count(t, `SELECT count(*) FROM "DocumentWorker" WHERE worker_id = 77 AND document_id = 1`))
	require.Equal(t, 1, recorded(t, p, claimUnknown))
	require.Equal(t, 1, recorded(t, p, docUnknownWorker))

	// Within one batch: the failed event is not recorded, so it applies
	// when repeated after its dependency.
	claim := atNext(p, batchEvent(t, p, domain.TypeShiftClaimed, &domain.ShiftClaimed{ShiftID: 901, WorkerID: 2}))
	run = mustApplyBatch(t, p,
		claim,
		atNext(p, batchEvent(t, p, domain.TypeShiftCreated, shiftData(901, 2, domain.CNA, p.at(40*time.Hour)))),
		claim)
	requireMissing(t, run, 0)
	requireApplied(t, run, 1)
	requireApplied(t, run, 2)
	require.Equal(t, 1, p.count(t, `SELECT count(*) FROM "Shift" WHERE id = 901 AND worker_id = 2`))
	require.Equal(t, 1, recorded(t, p, claim.Event))
}

// Enqueue is called once per batch, inside its transaction, with the merged
// effects of the applied events: each worker and fan-out once.
func TestApplyEvents_EnqueueOnceWithMergedEffects(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	basicWorld(t, p)

	evs := []store.EventAt{
		atNext(p, batchEvent(t, p, domain.TypeWorkerCreated, &domain.WorkerCreated{ID: 2, Name: "two", Profession: domain.CNA, IsActive: true})),
		atNext(p, batchEvent(t, p, domain.TypeWorkerDocumentAdded, &domain.WorkerDocument{WorkerID: 2, DocumentID: 1})),
		atNext(p, batchEvent(t, p, domain.TypeWorkerDocumentAdded, &domain.WorkerDocument{WorkerID: 1, DocumentID: 2})),
		atNext(p, batchEvent(t, p, domain.TypeShiftCreated, shiftData(10, 1, domain.CNA, p.at(24*time.Hour)))),
		atNext(p, batchEvent(t, p, domain.TypeShiftCreated, shiftData(11, 1, domain.CNA, p.at(26*time.Hour)))),
		atNext(p, batchEvent(t, p, domain.TypeShiftCreated, shiftData(12, 2, domain.RN, p.at(28*time.Hour)))),
		atNext(p, batchEvent(t, p, domain.TypeFacilityActivated, &domain.FacilityRef{FacilityID: 3})),
		atNext(p, batchEvent(t, p, domain.TypeWorkerDocumentAdded, &domain.WorkerDocument{WorkerID: 2, DocumentID: 2})),
		atNext(p, batchEvent(t, p, domain.TypeDocumentCreated, &domain.DocumentCreated{ID: 3, Name: "three", IsActive: true})),
	}
	var (
		calls      []store.Effect
		inTx, seen int
	)
	ctx, cancel := context.WithTimeout(context.Background(), applyBatchTimeout)
	defer cancel()
	res, err := p.st.ApplyEvents(ctx, evs, p.now, func(ctx context.Context, tx pgx.Tx, eff store.Effect) error {
		calls = append(calls, eff)
		// The batch's own transaction sees its uncommitted changes;
		// another connection does not yet.
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM "Worker" WHERE id = 2`).Scan(&inTx); err != nil {
			return err
		}
		return p.b.pool.QueryRow(ctx, `SELECT count(*) FROM "Worker" WHERE id = 2`).Scan(&seen)
	})
	require.NoError(t, err)
	require.Len(t, res, len(evs))
	for i := range res {
		require.NoError(t, res[i].Err, "event %d", i)
		require.Equal(t, store.OutcomeApplied, res[i].Effect.Outcome, "event %d", i)
	}
	// Each result has its own event's effect.
	require.Equal(t, []int64{2}, res[0].Effect.NotifyWorkers)
	require.Equal(t, []int64{2}, res[1].Effect.NotifyWorkers)
	require.Equal(t, []int64{1}, res[2].Effect.NotifyWorkers)
	require.Equal(t, fanouts(1, domain.CNA), res[3].Effect.Fanouts)
	require.Equal(t, fanouts(1, domain.CNA), res[4].Effect.Fanouts)
	require.Equal(t, fanouts(2, domain.RN), res[5].Effect.Fanouts)
	require.Equal(t, allFanouts(3), res[6].Effect.Fanouts)
	noEffect(t, res[8].Effect)

	require.Len(t, calls, 1, "enqueue once per batch")
	require.Equal(t, store.OutcomeApplied, calls[0].Outcome)
	require.ElementsMatch(t, []int64{2, 1}, calls[0].NotifyWorkers, "each worker once")
	require.ElementsMatch(t, append(fanouts(1, domain.CNA), append(fanouts(2, domain.RN), allFanouts(3)...)...), calls[0].Fanouts,
		"each fan-out once")
	require.Equal(t, 1, inTx, "enqueue runs in the batch's transaction")
	require.Zero(t, seen, "before it commits")
	require.Equal(t, 1, p.count(t, `SELECT count(*) FROM "Worker" WHERE id = 2`), "committed after enqueue")

	// A batch without consequences enqueues nothing.
	run := mustApplyBatch(t, p,
		atNext(p, batchEvent(t, p, domain.TypeDocumentCreated, &domain.DocumentCreated{ID: 4, Name: "four", IsActive: true})),
		atNext(p, batchEvent(t, p, domain.TypeShiftClaimed, &domain.ShiftClaimed{ShiftID: 10, WorkerID: 1})),
		atNext(p, batchEvent(t, p, domain.TypeShiftClaimed, &domain.ShiftClaimed{ShiftID: 999, WorkerID: 1})), // missing
	)
	requireApplied(t, run, 0)
	requireApplied(t, run, 1)
	requireMissing(t, run, 2)
	require.Empty(t, run.enqueued)
}

// The same event twice in one batch: the second is a duplicate, with no
// effect, whatever its sequence.
func TestApplyEvents_DuplicateInBatch(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	basicWorld(t, p)
	earlier := batchEvent(t, p, domain.TypeWorkerCreated, &domain.WorkerCreated{ID: 3, Name: "three", Profession: domain.CNA, IsActive: true})
	mustApplyBatch(t, p, atNext(p, earlier))

	created := atNext(p, batchEvent(t, p, domain.TypeWorkerCreated, &domain.WorkerCreated{ID: 2, Name: "two", Profession: domain.CNA, IsActive: true}))
	deactivate := atNext(p, batchEvent(t, p, domain.TypeWorkerDeactivated, &domain.WorkerRef{WorkerID: 1}))
	redelivered := deactivate
	redelivered.Seq = p.next() // redelivered later in the stream
	run := mustApplyBatch(t, p,
		created,
		deactivate,
		created,
		redelivered,
		atNext(p, earlier), // applied by an earlier batch
	)
	requireApplied(t, run, 0)
	requireApplied(t, run, 1)
	for _, i := range []int{2, 3, 4} {
		require.NoError(t, run.res[i].Err, "event %d", i)
		require.Equal(t, store.OutcomeDuplicate, run.res[i].Effect.Outcome, "event %d", i)
		noEffect(t, run.res[i].Effect)
	}
	require.Equal(t, []store.Effect{{Outcome: store.OutcomeApplied, NotifyWorkers: []int64{2}}}, run.enqueued)
	require.Equal(t, 1, recorded(t, p, created.Event))
	require.Equal(t, 1, p.count(t, `SELECT count(*) FROM shiftcast.applied_events WHERE event_id = $1 AND stream_seq = $2 AND outcome = 'applied'`,
		deactivate.Event.ID, int64(deactivate.Seq)), "the first delivery is the one recorded")
	require.Equal(t, 1, p.count(t, `SELECT count(*) FROM shiftcast.entity_positions WHERE kind = 'worker' AND id1 = 1 AND seq = $1`,
		int64(deactivate.Seq)), "the duplicate did not move the position")
	require.False(t, p.flag(t, `SELECT is_active FROM "Worker" WHERE id = 1`))
}

// An event older than one applied before it in the same batch, for the
// same entity, is stale: it changes nothing and announces nothing.
func TestApplyEvents_StaleInBatch(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	basicWorld(t, p)
	p.shift(t, 10, 1, domain.CNA, 24*time.Hour)
	require.Equal(t, []int64{10}, p.digest(t, 1))
	base := p.next() + 100

	claim := batchEvent(t, p, domain.TypeShiftClaimed, &domain.ShiftClaimed{ShiftID: 10, WorkerID: 1})
	release := batchEvent(t, p, domain.TypeShiftReleased, &domain.ShiftRef{ShiftID: 10})
	deactivate := batchEvent(t, p, domain.TypeWorkerDeactivated, &domain.WorkerRef{WorkerID: 1})
	activate := batchEvent(t, p, domain.TypeWorkerActivated, &domain.WorkerRef{WorkerID: 1})
	run := mustApplyBatch(t, p,
		store.EventAt{Event: claim, Seq: base + 20},
		store.EventAt{Event: release, Seq: base + 10}, // older than the claim
		store.EventAt{Event: deactivate, Seq: base + 40},
		store.EventAt{Event: activate, Seq: base + 30}, // older than the deactivation
	)
	requireApplied(t, run, 0)
	requireApplied(t, run, 2)
	for _, i := range []int{1, 3} {
		require.NoError(t, run.res[i].Err, "event %d", i)
		require.Equal(t, store.OutcomeStale, run.res[i].Effect.Outcome, "event %d", i)
		noEffect(t, run.res[i].Effect)
	}
	require.Empty(t, run.enqueued, "neither applied event has consequences; the stale ones' are not taken")

	require.Equal(t, 1, p.count(t, `SELECT count(*) FROM "Shift" WHERE id = 10 AND worker_id = 1`), "still claimed")
	require.Empty(t, p.openings(t), "a claimed shift is not open")
	require.False(t, p.flag(t, `SELECT is_active FROM "Worker" WHERE id = 1`), "still inactive")
	require.Equal(t, 1, p.count(t, `SELECT count(*) FROM shiftcast.entity_positions WHERE kind = 'shift' AND id1 = 10 AND seq = $1`, int64(base+20)))
	require.Equal(t, 1, p.count(t, `SELECT count(*) FROM shiftcast.entity_positions WHERE kind = 'worker' AND id1 = 1 AND seq = $1`, int64(base+40)))
	for _, ev := range []domain.Event{release, activate} {
		require.Equal(t, 1, p.count(t, `SELECT count(*) FROM shiftcast.applied_events WHERE event_id = $1 AND outcome = 'stale'`, ev.ID), ev.Type)
	}
	require.Nil(t, p.digest(t, 1))
}

// A batch whose jobs cannot be inserted is applied again an event at a
// time: the events whose own jobs are refused fail alone, with the error,
// and leave no trace; the others are applied.
func TestApplyEvents_EnqueueErrorIsolatesTheEvents(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	basicWorld(t, p)
	evs := []store.EventAt{
		atNext(p, batchEvent(t, p, domain.TypeWorkerCreated, &domain.WorkerCreated{ID: 2, Name: "two", Profession: domain.CNA, IsActive: true})),
		atNext(p, batchEvent(t, p, domain.TypeShiftCreated, shiftData(10, 2, domain.CNA, p.at(24*time.Hour)))),
		atNext(p, batchEvent(t, p, domain.TypeShiftClaimed, &domain.ShiftClaimed{ShiftID: 900, WorkerID: 1})), // missing
		atNext(p, batchEvent(t, p, domain.TypeWorkerDocumentAdded, &domain.WorkerDocument{WorkerID: 2, DocumentID: 1})),
		atNext(p, batchEvent(t, p, domain.TypeWorkerDeactivated, &domain.WorkerRef{WorkerID: 1})),
	}

	// The queue refuses worker 2's notify job only.
	queueDown := errors.New("queue down")
	var calls []store.Effect
	ctx, cancel := context.WithTimeout(context.Background(), applyBatchTimeout)
	defer cancel()
	res, err := p.st.ApplyEvents(ctx, evs, p.now, func(_ context.Context, _ pgx.Tx, eff store.Effect) error {
		calls = append(calls, eff)
		if slices.Contains(eff.NotifyWorkers, 2) {
			return queueDown
		}
		return nil
	})
	require.NoError(t, err)
	require.Len(t, res, len(evs))
	require.ErrorIs(t, res[0].Err, queueDown, "worker 2's creation: its job was refused")
	require.Zero(t, recorded(t, p, evs[0].Event), "and it left no trace")
	require.NoError(t, res[1].Err)
	require.Equal(t, store.OutcomeApplied, res[1].Effect.Outcome)
	require.ErrorIs(t, res[2].Err, store.ErrMissingDependency)
	require.Error(t, res[3].Err, "worker 2 does not exist: its creation failed")
	require.NoError(t, res[4].Err)
	require.False(t, p.flag(t, `SELECT is_active FROM "Worker" WHERE id = 1`), "the deactivation is applied")
	require.Equal(t, 1, recorded(t, p, evs[1].Event))
	require.Greater(t, len(calls), 1, "the batch, then its events one at a time")

	// Once the queue takes jobs again, the failed events apply.
	run := mustApplyBatch(t, p, evs[0], evs[3])
	requireApplied(t, run, 0)
	requireApplied(t, run, 1)
	require.Equal(t, []int64{10}, p.digest(t, 2))
}

// Batches are bounded by MaxApplyBatch: a larger one applies nothing; one
// of exactly that size applies everything; an empty one does nothing.
func TestApplyEvents_MaxApplyBatch(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	workers := func(from, n int) []store.EventAt {
		evs := make([]store.EventAt, n)
		for i := range evs {
			id := int64(from + i)
			evs[i] = atNext(p, batchEvent(t, p, domain.TypeWorkerCreated,
				&domain.WorkerCreated{ID: id, Name: fmt.Sprintf("w%d", id), Profession: domain.RN, IsActive: true}))
		}
		return evs
	}
	before := p.tables(t)
	run := applyBatch(t, p, workers(1, store.MaxApplyBatch+1), nil)
	require.Error(t, run.err)
	require.ErrorContains(t, run.err, fmt.Sprint(store.MaxApplyBatch))
	require.Nil(t, run.res)
	require.Empty(t, run.enqueued)
	require.Equal(t, before, p.tables(t), "nothing applied")

	run = mustApplyBatch(t, p, workers(1000, store.MaxApplyBatch)...)
	want := make([]int64, store.MaxApplyBatch)
	for i := range run.res {
		requireApplied(t, run, i)
		want[i] = int64(1000 + i)
	}
	require.Len(t, run.enqueued, 1)
	require.ElementsMatch(t, want, run.enqueued[0].NotifyWorkers)
	require.Equal(t, store.MaxApplyBatch, p.count(t, `SELECT count(*) FROM "Worker"`))

	run = mustApplyBatch(t, p)
	require.Empty(t, run.res)
	require.Empty(t, run.enqueued)
}

// Results come back in the order of the events, whatever their outcomes.
func TestApplyEvents_ResultsInInputOrder(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	basicWorld(t, p)
	earlier := batchEvent(t, p, domain.TypeWorkerCreated, &domain.WorkerCreated{ID: 5, Name: "five", Profession: domain.CNA, IsActive: true})
	deactivate := atNext(p, batchEvent(t, p, domain.TypeWorkerDeactivated, &domain.WorkerRef{WorkerID: 1}))
	mustApplyBatch(t, p, atNext(p, earlier), deactivate)

	created := func(id int64, active bool) store.EventAt {
		return atNext(p, batchEvent(t, p, domain.TypeWorkerCreated,
			&domain.WorkerCreated{ID: id, Name: fmt.Sprintf("w%d", id), Profession: domain.CNA, IsActive: active}))
	}
	staleActivate := store.EventAt{Event: batchEvent(t, p, domain.TypeWorkerActivated, &domain.WorkerRef{WorkerID: 1}), Seq: deactivate.Seq - 1}
	run := mustApplyBatch(t, p,
		created(7, true), // 0
		atNext(p, batchEvent(t, p, domain.TypeShiftClaimed, &domain.ShiftClaimed{ShiftID: 950, WorkerID: 1})), // 1: missing
		atNext(p, earlier), // 2: duplicate
		created(3, true),   // 3
		atNext(p, batchEvent(t, p, domain.TypeShiftCreated, shiftData(10, 1, domain.CNA, p.at(24*time.Hour)))), // 4
		staleActivate,     // 5: stale
		created(9, true),  // 6
		created(2, false), // 7: inactive, no one to notify
		atNext(p, batchEvent(t, p, domain.TypeWorkerDocumentAdded, &domain.WorkerDocument{WorkerID: 8, DocumentID: 1})), // 8: missing
		created(4, true), // 9
	)
	require.Equal(t, []int64{7}, requireApplied(t, run, 0).NotifyWorkers)
	requireMissing(t, run, 1)
	require.Equal(t, store.OutcomeDuplicate, run.res[2].Effect.Outcome)
	require.NoError(t, run.res[2].Err)
	require.Equal(t, []int64{3}, requireApplied(t, run, 3).NotifyWorkers)
	require.Equal(t, fanouts(1, domain.CNA), requireApplied(t, run, 4).Fanouts)
	require.Equal(t, store.OutcomeStale, run.res[5].Effect.Outcome)
	require.NoError(t, run.res[5].Err)
	require.Equal(t, []int64{9}, requireApplied(t, run, 6).NotifyWorkers)
	noEffect(t, requireApplied(t, run, 7))
	requireMissing(t, run, 8)
	require.Equal(t, []int64{4}, requireApplied(t, run, 9).NotifyWorkers)

	require.Len(t, run.enqueued, 1)
	require.ElementsMatch(t, []int64{7, 3, 9, 4}, run.enqueued[0].NotifyWorkers)
	require.Equal(t, fanouts(1, domain.CNA), run.enqueued[0].Fanouts)
}
