package seed

import (
	"fmt"
	"time"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/store"
)

// The challenge generator's sizes and odds (DESIGN.md section 2).
const (
	challengeFacilities      = 10
	challengeDocuments       = 10
	challengeWorkers         = 100
	challengeRequirements    = 2000
	challengeWorkerDocuments = 500
	challengeShifts          = 2_000_000
	challengeShiftHours      = 5
)

// challengeStartHours are the only start times the challenge uses.
var challengeStartHours = [3]int{5, 13, 20}

// Random streams of the challenge profile.
const (
	streamChallengeEntities = iota + 1
	streamChallengeShifts
)

// challenge reproduces the challenge's generator: documents, facilities and
// workers with fair-coin is_active and hex names; uniformly random
// requirement and holding rows (duplicates included); nShifts random shifts
// (0 means the real 2,000,000); then three active deterministic workers, one
// per profession, holding every document. Ids follow the original's insertion
// order, so the deterministic workers are 101, 102 and 103.
func challenge(seed int64, nShifts int) Dataset {
	if nShifts <= 0 {
		nShifts = challengeShifts
	}
	r := newRand(seed, streamChallengeEntities)
	coin := func() bool { return r.IntN(2) == 0 }
	oneTo := func(n int) int64 { return int64(r.IntN(n)) + 1 }

	var b store.Bulk
	for i := range challengeDocuments {
		b.Documents = append(b.Documents, store.Document{ID: int64(i + 1), Name: hexName(r), IsActive: coin()})
	}
	for i := range challengeFacilities {
		b.Facilities = append(b.Facilities, domain.Facility{ID: int64(i + 1), Name: hexName(r), IsActive: coin()})
	}
	for i := range challengeWorkers {
		b.Workers = append(b.Workers, domain.Worker{
			ID: int64(i + 1), Name: hexName(r), IsActive: coin(), Profession: domain.Professions[r.IntN(3)],
		})
	}
	for i := range challengeRequirements {
		b.Requirements = append(b.Requirements, store.FacilityRequirement{
			ID: int64(i + 1), FacilityID: oneTo(challengeFacilities), DocumentID: oneTo(challengeDocuments),
		})
	}
	for i := range challengeWorkerDocuments {
		b.WorkerDocuments = append(b.WorkerDocuments, store.DocumentWorker{
			ID: int64(i + 1), WorkerID: oneTo(challengeWorkers), DocumentID: oneTo(challengeDocuments),
		})
	}
	b.Shifts = challengeShiftsSeq(seed, nShifts)

	// The deterministic workers come after the shifts in the original, which
	// is why no random shift is claimed by them.
	var det []domain.Worker
	for i, p := range domain.Professions {
		w := domain.Worker{
			ID: int64(challengeWorkers + i + 1), Name: fmt.Sprintf("Deterministic #%d", i+1),
			IsActive: true, Profession: p,
		}
		for d := range challengeDocuments {
			b.WorkerDocuments = append(b.WorkerDocuments, store.DocumentWorker{
				ID: int64(len(b.WorkerDocuments) + 1), WorkerID: w.ID, DocumentID: int64(d + 1),
			})
			w.DocumentIDs = append(w.DocumentIDs, int64(d+1))
		}
		b.Workers = append(b.Workers, w)
		det = append(det, w)
	}
	return Dataset{Bulk: b, ShiftCount: nShifts, Deterministic: det}
}

// challengeShiftsSeq yields the challenge's random shifts. Each run of the
// sequence starts the stream afresh, so it yields the same shifts every time.
func challengeShiftsSeq(seed int64, n int) func(yield func(domain.Shift) bool) {
	return func(yield func(domain.Shift) bool) {
		r := newRand(seed, streamChallengeShifts)
		// Worker ids 1..100 boxed once; a shift points at one of them.
		ids := make([]int64, challengeWorkers)
		for i := range ids {
			ids[i] = int64(i + 1)
		}
		for i := range n {
			// February 2023 has 28 days; time.Date rolls days 29..31 over
			// into March 1..3, as the original's Date.setFullYear does.
			day := r.IntN(31) + 1
			hour := challengeStartHours[r.IntN(3)]
			start := time.Date(2023, time.February, day, hour, 0, 0, 0, time.UTC)
			s := domain.Shift{
				ID:         int64(i + 1),
				Start:      start,
				End:        start.Add(challengeShiftHours * time.Hour),
				Profession: domain.Professions[r.IntN(3)],
				IsDeleted:  r.IntN(2) == 0,
				FacilityID: int64(r.IntN(challengeFacilities)) + 1,
			}
			if r.IntN(2) == 0 {
				s.WorkerID = &ids[r.IntN(challengeWorkers)]
			}
			if !yield(s) {
				return
			}
		}
	}
}
