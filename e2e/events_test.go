package e2e_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Per event type: the announcements each must and must not cause. Each
// test replays its phases one after the other, waiting for the pipeline to
// be idle in between, and asserts the cumulative announcements (per worker,
// every shift announced, repeats included) on the webhook and on NATS.

// worker.created: an active worker's first digest lists every eligible
// future shift (not past, claimed, deleted, other-profession shifts, nor
// shifts of inactive facilities or facilities whose documents they lack);
// an inactive worker gets nothing. document.created and facility.created
// announce nothing by themselves.
func TestEvents_WorkerCreated(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.serve()

	e.play("worker_created_1_world.jsonl") // facilities, shifts; only an inactive worker
	e.expect(nil)

	e.play("worker_created_2_workers.jsonl")
	want := map[int64][]int64{1: {101, 102}, 3: {106}}
	e.expect(want)
	for _, n := range e.hook.notifications() {
		if n.WorkerID == 1 {
			require.Equal(t, 2, n.Count, "worker 1's first digest lists every eligible shift at once")
		}
	}

	e.play("worker_created_3_catalog.jsonl") // a document, an active and an inactive facility
	e.expect(want)
}

// worker.activated announces everything the worker is eligible for;
// worker.deactivated announces nothing (a shift created meanwhile is not
// announced to them) and, after a new activation, everything eligible is
// announced again. Activating an active worker announces nothing new.
func TestEvents_WorkerActivation(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.serve()

	// Worker 1 is created inactive and then activated; worker 2 is active.
	e.play("worker_activation_1_world.jsonl")
	e.expect(map[int64][]int64{1: {201, 202}, 2: {201, 202}})

	e.play("worker_activation_2_deactivate.jsonl") // and shift 203 created
	e.expect(map[int64][]int64{1: {201, 202}, 2: {201, 202, 203}})

	e.play("worker_activation_3_reactivate.jsonl") // worker 1 again; worker 2, already active
	e.expect(map[int64][]int64{1: {201, 202, 201, 202, 203}, 2: {201, 202, 203}})
}

// worker.document_added makes a facility's shifts available when it
// completes the facility's requirements; a document the worker already
// holds announces nothing new. worker.document_removed announces nothing,
// and the facility's later shifts are not announced to the worker.
func TestEvents_WorkerDocuments(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.serve()

	// Facility 1 needs document 1, facility 2 document 2, facility 3
	// nothing; worker 1 holds document 2, worker 2 document 1. The catalog
	// goes first, so that no digest sees a facility without its
	// requirements.
	e.play("worker_documents_0_catalog.jsonl")
	e.settleEvents()
	e.play("worker_documents_1_world.jsonl")
	e.expect(map[int64][]int64{1: {302, 303}, 2: {301, 303}})

	// Worker 1 gets document 2 again (nothing new) and document 1 (the
	// shifts of facility 1).
	e.play("worker_documents_2_already_held_and_new.jsonl")
	e.expect(map[int64][]int64{1: {302, 303, 301}, 2: {301, 303}})

	e.play("worker_documents_3_remove.jsonl") // and shift 304 at facility 1
	e.expect(map[int64][]int64{1: {302, 303, 301}, 2: {301, 303, 304}})
}

// facility.activated announces its shifts to eligible workers;
// facility.deactivated stops its new shifts from being announced;
// facility.requirement_added stops a facility's new shifts from reaching
// workers lacking the document; facility.requirement_removed announces the
// facility's shifts to workers who lacked it and nothing new to those who
// had it.
func TestEvents_Facilities(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.serve()

	// Facility 1 open, 2 inactive, 3 needs document 1; worker 1 (CNA) has
	// no document, worker 2 (CNA) has document 1, worker 3 is an RN.
	e.play("facilities_0_catalog.jsonl")
	e.settleEvents()
	e.play("facilities_1_world.jsonl")
	e.expect(map[int64][]int64{1: {401}, 2: {401, 406}})

	e.play("facilities_2_activate.jsonl")
	e.expect(map[int64][]int64{1: {401, 402}, 2: {401, 406, 402}, 3: {403}})

	// Facility 2 deactivated, then shift 404 there; facility 1 now needs
	// document 1, then shift 405 there.
	e.play("facilities_3_deactivate_and_requirement_added.jsonl")
	e.expect(map[int64][]int64{1: {401, 402}, 2: {401, 406, 402, 405}, 3: {403}})

	e.play("facilities_4_requirement_removed.jsonl") // facility 3 needs nothing now
	e.expect(map[int64][]int64{1: {401, 402, 406}, 2: {401, 406, 402, 405}, 3: {403}})
}

// shift.created announces a future shift; one claimed or deleted within
// its window, and past shifts, are never announced; a claim announces
// nothing; a released shift is announced again (a past one is not); a
// deletion announces nothing.
//
// The first phase is applied by an events-only instance before a
// jobs-only instance starts, so the digests certainly see the claims and
// deletions of their window.
func TestEvents_Shifts(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.serve("--jobs=false")

	e.play("shifts_1_world.jsonl")
	e.settleEvents()
	e.serve("--events=false")
	e.expect(map[int64][]int64{1: {501, 502}, 2: {501, 502}})

	e.play("shifts_2_claim.jsonl")
	e.expect(map[int64][]int64{1: {501, 502}, 2: {501, 502}})

	// 501 and 504 released, 506 too but it is past; 502 deleted.
	e.play("shifts_3_release_and_delete.jsonl")
	e.expect(map[int64][]int64{1: {501, 502, 501, 504}, 2: {501, 502, 501, 504}})
}
