package seed_test

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/eligibility"
	"github.com/shiftcast/shiftcast/seed"
)

// The challenge's deterministic workers, on a challenge-shaped dataset,
// page for page against the rules applied in Go to the generator's own
// output: the end-to-end check that generator, loader, triggers, SQL and
// cursors agree.
func TestRun_ChallengeDeterministicWorkersMatchOracle(t *testing.T) {
	t.Parallel()
	const shifts = 200_000
	opts := seed.Options{Profile: seed.ProfileChallenge, Seed: 7}
	ds, err := seed.GenerateSized(opts, shifts, 0)
	require.NoError(t, err)
	d := migratedDB(t)
	require.NoError(t, seed.RunSized(ctxFor(t), d.st, opts, io.Discard, shifts, 0))

	facilities := map[int64]*domain.Facility{}
	for _, f := range ds.Bulk.Facilities {
		facilities[f.ID] = &f
	}
	for _, r := range ds.Bulk.Requirements {
		facilities[r.FacilityID].RequiredDocumentIDs = append(facilities[r.FacilityID].RequiredDocumentIDs, r.DocumentID)
	}
	workers := map[int64]*domain.Worker{}
	for _, w := range ds.Bulk.Workers {
		workers[w.ID] = &w
	}
	for _, h := range ds.Bulk.WorkerDocuments {
		workers[h.WorkerID].DocumentIDs = append(workers[h.WorkerID].DocumentIDs, h.DocumentID)
	}
	require.Len(t, ds.Deterministic, 3)

	want := map[int64][]domain.Shift{}
	for s := range ds.Bulk.Shifts {
		for _, dw := range ds.Deterministic {
			if domain.Eligible(*workers[dw.ID], s, *facilities[s.FacilityID]) {
				want[dw.ID] = append(want[dw.ID], s)
			}
		}
	}

	svc := eligibility.NewService(d.st)
	for _, dw := range ds.Deterministic {
		exp := want[dw.ID]
		slices.SortFunc(exp, func(a, b domain.Shift) int {
			return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.ID, b.ID))
		})
		require.NotEmpty(t, exp, "worker %d should be eligible somewhere", dw.ID)
		var got []eligibility.ShiftJSON
		params := eligibility.ShiftsParams{WorkerID: fmt.Sprint(dw.ID), Limit: "500"}
		for pages := 0; ; pages++ {
			require.Less(t, pages, len(exp)/500+2, "pagination must terminate")
			resp, err := svc.Shifts(ctxFor(t), params)
			require.NoError(t, err)
			got = append(got, resp.Shifts...)
			if resp.NextCursor == nil {
				break
			}
			params.Cursor = *resp.NextCursor
		}
		require.Len(t, got, len(exp), "worker %d", dw.ID)
		for i, s := range exp {
			g := got[i]
			require.Equal(t, []any{s.ID, s.FacilityID, string(s.Profession), s.Start, s.End},
				[]any{g.ID, g.FacilityID, g.Profession, g.Start, g.End}, "worker %d, position %d", dw.ID, i)
		}
	}
}
