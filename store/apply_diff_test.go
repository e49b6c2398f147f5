package store_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/store"
)

// A randomized differential test of ApplyEvents' batching: a batch is sent
// in one pipelined round trip, each event in a savepoint, and an event that
// must be undone (a repeat, a stale event, a missing dependency, a foreign
// key violation) rolls back everything sent after it, which is then sent
// again. Whatever the batch boundaries, the result must be exactly that of
// applying the same deliveries one at a time: the same outcome per event,
// the same jobs, the same tables.

const (
	applyDiffSeeds  = 30
	applyDiffEvents = 150
	// The world: ids 1..n are created by events, id n+1 never is, so
	// references to it always miss (a foreign key violation for inserts).
	applyDiffFacilities = 3
	applyDiffDocuments  = 3
	applyDiffWorkers    = 4
	applyDiffShifts     = 6
	// applyDiffQueryTimeout bounds reading one store's final state.
	applyDiffQueryTimeout = 30 * time.Second
)

func TestApplyEvents_BatchesEqualOneByOne(t *testing.T) {
	t.Parallel()
	for seed := range uint64(applyDiffSeeds) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			applyDiff(t, seed)
		})
	}
}

// applyDiff applies one random delivery sequence to store A in random
// batches and to store B one event at a time, and compares them.
func applyDiff(t *testing.T, seed uint64) {
	a, b := newPipe(t), newPipe(t)
	b.now = a.now // both decide "future" alike
	r := rand.New(rand.NewPCG(seed, 0xba7c4))
	evs := applyDiffDeliveries(t, a, r)

	// B: one event per transaction, through ApplyEvent and ApplyEvents
	// with one event in turn.
	resB := make([]store.Applied, len(evs))
	for i, e := range evs {
		var run batchRun
		if i%2 == 0 {
			run = applyBatch(t, b, []store.EventAt{e}, nil)
			require.NoError(t, run.err, "seed %d: B: event %d %s", seed, i, describeDelivery(e))
		} else {
			run = applyOneEvent(t, b, e)
		}
		resB[i] = run.res[0]
		if eff := resB[i].Effect; resB[i].Err == nil && (len(eff.NotifyWorkers) > 0 || len(eff.Fanouts) > 0) {
			require.Equal(t, []store.Effect{eff}, run.enqueued, "seed %d: B: event %d %s: enqueue gets the effect", seed, i, describeDelivery(e))
		} else {
			require.Empty(t, run.enqueued, "seed %d: B: event %d %s: nothing to enqueue", seed, i, describeDelivery(e))
		}
	}

	// A: the same deliveries in batches of random sizes.
	var bounds []int
	for from := 0; from < len(evs); {
		to := min(len(evs), from+1+r.IntN(store.MaxApplyBatch))
		bounds = append(bounds, to)
		batch := evs[from:to]
		run := applyBatch(t, a, batch, nil)
		require.NoError(t, run.err, "seed %d: A: batch of events %d..%d", seed, from, to-1)
		for k := range batch {
			i := from + k
			ra, rb := run.res[k], resB[i]
			msg := fmt.Sprintf("seed %d: event %d %s (A: batch %d..%d, position %d); A err %v, B err %v",
				seed, i, describeDelivery(evs[i]), from, to-1, k, ra.Err, rb.Err)
			require.Equal(t, rb.Err == nil, ra.Err == nil, msg)
			require.Equal(t, errors.Is(rb.Err, store.ErrMissingDependency), errors.Is(ra.Err, store.ErrMissingDependency), msg)
			require.Equal(t, rb.Effect, ra.Effect, msg)
			if ra.Err != nil {
				require.ErrorIs(t, ra.Err, store.ErrMissingDependency, "%s: the only failures expected here", msg)
			}
		}
		want, ok := mergedEffect(resB[from:to])
		if ok {
			require.Equal(t, []store.Effect{want}, run.enqueued, "seed %d: A: batch %d..%d enqueues the merged effects of its applied events", seed, from, to-1)
		} else {
			require.Empty(t, run.enqueued, "seed %d: A: batch %d..%d has nothing to enqueue", seed, from, to-1)
		}
		from = to
	}

	stateA, stateB := applyDiffState(t, a), applyDiffState(t, b)
	for _, name := range slices.Sorted(maps.Keys(stateB)) {
		require.Equal(t, stateB[name], stateA[name], "seed %d: table %s: A (batches ending at %v) vs B (one by one)", seed, name, bounds)
	}
	applyDiffCoverage(t, seed, evs, resB)
}

// applyOneEvent applies e with ApplyEvent, recording enqueue's calls, as
// applyBatch does for ApplyEvents.
func applyOneEvent(t testing.TB, p *pipe, e store.EventAt) batchRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), applyBatchTimeout)
	defer cancel()
	var run batchRun
	eff, err := p.st.ApplyEvent(ctx, e.Event, e.Seq, p.now, func(_ context.Context, tx pgx.Tx, eff store.Effect) error {
		require.NotNil(t, tx)
		run.enqueued = append(run.enqueued, eff)
		return nil
	})
	run.res = []store.Applied{{Effect: eff, Err: err}}
	return run
}

// applyDiffDeliveries generates a random delivery sequence over a small
// world, with every event type, events ahead of what they depend on,
// repeats of earlier deliveries (same sequence, later, earlier) and fresh
// events delivered at an older stream sequence than their entity's.
func applyDiffDeliveries(t testing.TB, p *pipe, r *rand.Rand) []store.EventAt {
	t.Helper()
	// Creations come twice in the draw: a world that mostly exists, so
	// that the other events mostly apply.
	types := slices.Clone(domain.EventTypes)
	for typ := range applyDiffCreations {
		types = append(types, typ)
	}
	slices.Sort(types) // map order is random; the draws must not be
	// Fresh events' types are dealt from a shuffled deck, so that every
	// seed has every type, several times.
	var deck []string
	draw := func() string {
		if len(deck) == 0 {
			deck = slices.Clone(types)
			r.Shuffle(len(deck), func(i, j int) { deck[i], deck[j] = deck[j], deck[i] })
		}
		typ := deck[0]
		deck = deck[1:]
		return typ
	}
	var out, moves []store.EventAt // moves: deliveries of events with a position
	for len(out) < applyDiffEvents {
		var e store.EventAt
		switch n := r.IntN(100); {
		case n < 8 && len(out) > 0: // the same delivery again
			e = out[r.IntN(len(out))]
		case n < 14 && len(out) > 0: // redelivered later in the stream
			e = store.EventAt{Event: out[r.IntN(len(out))].Event, Seq: p.next()}
		case n < 18 && len(out) > 0: // redelivered at an older sequence
			e = out[r.IntN(len(out))]
			e.Seq = max(1, e.Seq-uint64(r.IntN(40)))
		case n < 24 && p.seq > 0: // a new event, delivered out of order
			typ := draw()
			// Anywhere before the stream's end; it may tie an entity's
			// position, which makes it stale too.
			seq := 1 + uint64(r.IntN(int(p.seq)))
			e = store.EventAt{Event: batchEvent(t, p, typ, applyDiffData(p, r, typ)), Seq: seq}
		case n < 34 && len(moves) > 0: // a new event older than one delivered for its entity
			older := moves[r.IntN(len(moves))]
			typ, data := applyDiffSameEntity(r, older.Event)
			e = store.EventAt{Event: batchEvent(t, p, typ, data), Seq: max(1, older.Seq-uint64(r.IntN(10)))}
		default:
			typ := draw()
			e = atNext(p, batchEvent(t, p, typ, applyDiffData(p, r, typ)))
		}
		out = append(out, e)
		if _, ok := applyDiffCreations[e.Event.Type]; !ok {
			moves = append(moves, e)
		}
	}
	return out
}

// applyDiffCreations are the event types without a position.
var applyDiffCreations = map[string]struct{}{
	domain.TypeShiftCreated: {}, domain.TypeWorkerCreated: {}, domain.TypeFacilityCreated: {}, domain.TypeDocumentCreated: {},
}

// applyDiffData draws the data of an event of type typ: creations of ids
// 1..n, with varying contents so that which creation wins matters;
// references to 1..n, or now and then to n+1, which never exists.
func applyDiffData(p *pipe, r *rand.Rand, typ string) any {
	id := func(n int) int64 { return int64(1 + r.IntN(n)) }
	ref := func(n int) int64 {
		if r.IntN(8) == 0 {
			return int64(n + 1)
		}
		return id(n)
	}
	name := func(what string, id int64) string { return fmt.Sprintf("%s %d v%d", what, id, r.IntN(3)) }
	prof := domain.Professions[r.IntN(len(domain.Professions))]
	switch typ {
	case domain.TypeShiftCreated:
		// Some in the past: not fanned out.
		start := p.at(time.Duration(r.IntN(145)-48) * time.Hour)
		return shiftData(id(applyDiffShifts), ref(applyDiffFacilities), prof, start)
	case domain.TypeShiftClaimed:
		return &domain.ShiftClaimed{ShiftID: ref(applyDiffShifts), WorkerID: ref(applyDiffWorkers)}
	case domain.TypeShiftReleased, domain.TypeShiftDeleted:
		return &domain.ShiftRef{ShiftID: ref(applyDiffShifts)}
	case domain.TypeWorkerCreated:
		w := id(applyDiffWorkers)
		return &domain.WorkerCreated{ID: w, Name: name("worker", w), Profession: prof, IsActive: r.IntN(4) > 0}
	case domain.TypeWorkerActivated, domain.TypeWorkerDeactivated:
		return &domain.WorkerRef{WorkerID: ref(applyDiffWorkers)}
	case domain.TypeWorkerDocumentAdded, domain.TypeWorkerDocumentRemoved:
		return &domain.WorkerDocument{WorkerID: ref(applyDiffWorkers), DocumentID: ref(applyDiffDocuments)}
	case domain.TypeFacilityCreated:
		f := id(applyDiffFacilities)
		return &domain.FacilityCreated{ID: f, Name: name("facility", f), IsActive: r.IntN(4) > 0}
	case domain.TypeFacilityActivated, domain.TypeFacilityDeactivated:
		return &domain.FacilityRef{FacilityID: ref(applyDiffFacilities)}
	case domain.TypeFacilityRequirementAdded, domain.TypeFacilityRequirementRemoved:
		return &domain.FacilityRequirement{FacilityID: ref(applyDiffFacilities), DocumentID: ref(applyDiffDocuments)}
	case domain.TypeDocumentCreated:
		d := id(applyDiffDocuments)
		return &domain.DocumentCreated{ID: d, Name: name("document", d), IsActive: r.IntN(2) == 0}
	}
	panic("applyDiffData: unknown event type " + typ)
}

// applyDiffSameEntity draws an event that moves the same entity as ev,
// which must not be a creation (creations have no position).
func applyDiffSameEntity(r *rand.Rand, ev domain.Event) (string, any) {
	pick := func(types ...string) string { return types[r.IntN(len(types))] }
	switch d := ev.Data.(type) {
	case *domain.ShiftClaimed:
		return pick(domain.TypeShiftReleased, domain.TypeShiftDeleted), &domain.ShiftRef{ShiftID: d.ShiftID}
	case *domain.ShiftRef:
		if typ := pick(domain.TypeShiftClaimed, domain.TypeShiftReleased, domain.TypeShiftDeleted); typ != domain.TypeShiftClaimed {
			return typ, &domain.ShiftRef{ShiftID: d.ShiftID}
		}
		return domain.TypeShiftClaimed, &domain.ShiftClaimed{ShiftID: d.ShiftID, WorkerID: int64(1 + r.IntN(applyDiffWorkers))}
	case *domain.WorkerRef:
		return pick(domain.TypeWorkerActivated, domain.TypeWorkerDeactivated), &domain.WorkerRef{WorkerID: d.WorkerID}
	case *domain.WorkerDocument:
		return pick(domain.TypeWorkerDocumentAdded, domain.TypeWorkerDocumentRemoved), &domain.WorkerDocument{WorkerID: d.WorkerID, DocumentID: d.DocumentID}
	case *domain.FacilityRef:
		return pick(domain.TypeFacilityActivated, domain.TypeFacilityDeactivated), &domain.FacilityRef{FacilityID: d.FacilityID}
	case *domain.FacilityRequirement:
		return pick(domain.TypeFacilityRequirementAdded, domain.TypeFacilityRequirementRemoved),
			&domain.FacilityRequirement{FacilityID: d.FacilityID, DocumentID: d.DocumentID}
	}
	panic(fmt.Sprintf("applyDiffSameEntity: %s has no position", ev.Type))
}

// mergedEffect is what one ApplyEvents call enqueues for results: the
// effects of the events without error, each worker and fan-out once, in
// order, with the first one's outcome; ok is false when there is nothing
// to enqueue.
func mergedEffect(res []store.Applied) (all store.Effect, ok bool) {
	for _, a := range res {
		if a.Err != nil {
			continue
		}
		if all.Outcome == "" {
			all.Outcome = a.Effect.Outcome
		}
		for _, w := range a.Effect.NotifyWorkers {
			if !slices.Contains(all.NotifyWorkers, w) {
				all.NotifyWorkers = append(all.NotifyWorkers, w)
			}
		}
		for _, f := range a.Effect.Fanouts {
			if !slices.Contains(all.Fanouts, f) {
				all.Fanouts = append(all.Fanouts, f)
			}
		}
	}
	return all, len(all.NotifyWorkers) > 0 || len(all.Fanouts) > 0
}

// applyDiffQueries read what applying events leaves, one text row per table
// row, without what legitimately differs between two databases: serial
// row ids (a rolled-back insert still takes one), transaction ids and
// clock times.
var applyDiffQueries = map[string]string{
	"Shift":               `SELECT format('%s|%s|%s|%s|%s|%s|%s', id, start, "end", profession, is_deleted, facility_id, worker_id) FROM "Shift"`,
	"Worker":              `SELECT format('%s|%s|%s|%s', id, name, is_active, profession) FROM "Worker"`,
	"Facility":            `SELECT format('%s|%s|%s', id, name, is_active) FROM "Facility"`,
	"Document":            `SELECT format('%s|%s|%s', id, name, is_active) FROM "Document"`,
	"FacilityRequirement": `SELECT format('%s|%s', facility_id, document_id) FROM "FacilityRequirement"`,
	"DocumentWorker":      `SELECT format('%s|%s', worker_id, document_id) FROM "DocumentWorker"`,
	"applied_events":      `SELECT format('%s|%s|%s|%s|%s', event_id, event_type, stream_seq, event_time, outcome) FROM shiftcast.applied_events`,
	"entity_positions":    `SELECT format('%s|%s|%s|%s', kind, id1, id2, seq) FROM shiftcast.entity_positions`,
	"shift_openings":      `SELECT format('%s|%s|%s|%s|%s', shift_id, start, "end", facility_id, profession) FROM shiftcast.shift_openings`,
	// Kept by triggers on the tables above.
	"facility_requirements": `SELECT format('%s|%s', facility_id, document_ids) FROM shiftcast.facility_requirements`,
	"worker_documents":      `SELECT format('%s|%s', worker_id, document_ids) FROM shiftcast.worker_documents`,
	"worker_notify_state":   `SELECT format('%s|%s|%s|%s', worker_id, facilities, snapshot IS NULL, notified_at IS NULL) FROM shiftcast.worker_notify_state`,
	"monthly_stats":         `SELECT format('%s|%s|%s|%s|%s', month, worker_id, shifts, seconds, notifications) FROM shiftcast.monthly_stats`,
	"facility_version":      `SELECT version::text FROM shiftcast.facility_version`,
}

// applyDiffState reads every table of applyDiffQueries, rows sorted.
func applyDiffState(t testing.TB, p *pipe) map[string][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), applyDiffQueryTimeout)
	defer cancel()
	out := map[string][]string{}
	for name, q := range applyDiffQueries {
		rows, err := p.b.pool.Query(ctx, q)
		require.NoError(t, err, q)
		var got []string
		for rows.Next() {
			var s string
			require.NoError(t, rows.Scan(&s), q)
			got = append(got, s)
		}
		require.NoError(t, rows.Err(), q)
		slices.Sort(got)
		out[name] = got
	}
	return out
}

// applyDiffCoverage requires that a seed exercised what the test is about:
// every event type, and every outcome, failures included.
func applyDiffCoverage(t testing.TB, seed uint64, evs []store.EventAt, res []store.Applied) {
	t.Helper()
	types := map[string]bool{}
	outcomes := map[string]int{}
	for i, e := range evs {
		types[e.Event.Type] = true
		switch a := res[i]; {
		case errors.Is(a.Err, store.ErrMissingDependency):
			outcomes["missing"]++
			switch e.Event.Type {
			// Plain inserts: only a foreign key can refuse them.
			case domain.TypeShiftCreated, domain.TypeWorkerDocumentAdded, domain.TypeFacilityRequirementAdded:
				outcomes["missing (foreign key)"]++
			}
		case a.Err != nil:
			outcomes["error"]++
		default:
			outcomes[a.Effect.Outcome]++
		}
	}
	for _, typ := range domain.EventTypes {
		require.True(t, types[typ], "seed %d generated no %s", seed, typ)
	}
	for _, o := range []string{store.OutcomeApplied, store.OutcomeDuplicate, store.OutcomeStale, "missing", "missing (foreign key)"} {
		require.Positive(t, outcomes[o], "seed %d: no event with outcome %q: %v", seed, o, outcomes)
	}
	t.Logf("seed %d: %d deliveries: %v", seed, len(evs), outcomes)
}

// describeDelivery names a delivery for failure messages.
func describeDelivery(e store.EventAt) string {
	data := strings.TrimPrefix(fmt.Sprintf("%+v", e.Event.Data), "&")
	return fmt.Sprintf("%s %s seq %d %s", e.Event.Type, e.Event.ID, e.Seq, data)
}
