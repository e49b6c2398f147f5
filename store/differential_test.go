package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/eligibility"
)

// dataset is a small random marketplace, held as the raw rows the tables
// hold, so the oracle below reads the rules off rows exactly as written,
// independently of the domain package and of the SQL.
type dataset struct {
	facilities []facilityRow
	documents  []docRow
	workers    []workerRow
	reqs       [][2]int64 // facility_id, document_id; may repeat
	held       [][2]int64 // worker_id, document_id; may repeat
	shifts     []shiftRow
}

type facilityRow struct {
	id     int64
	active bool
}
type docRow struct {
	id     int64
	active bool
}
type workerRow struct {
	id         int64
	active     bool
	profession string
}
type shiftRow struct {
	id, facility int64
	profession   string
	start        time.Time
	deleted      bool
	worker       *int64
}

var professions = []string{"CNA", "LVN", "RN"}

func randomDataset(r *rand.Rand) dataset {
	var d dataset
	for i := range 1 + r.IntN(5) {
		d.facilities = append(d.facilities, facilityRow{int64(i + 1), r.IntN(4) > 0})
	}
	for i := range 1 + r.IntN(6) {
		// Document is_active is not a rule: inactive documents still count.
		d.documents = append(d.documents, docRow{int64(i + 1), r.IntN(2) == 0})
	}
	for i := range 1 + r.IntN(8) {
		d.workers = append(d.workers, workerRow{int64(i + 1), r.IntN(5) > 0, professions[r.IntN(3)]})
	}
	for _, f := range d.facilities {
		if r.IntN(4) == 0 {
			continue // some facilities require nothing
		}
		for range r.IntN(4) {
			doc := d.documents[r.IntN(len(d.documents))].id
			d.reqs = append(d.reqs, [2]int64{f.id, doc})
			if r.IntN(3) == 0 {
				d.reqs = append(d.reqs, [2]int64{f.id, doc}) // duplicated row
			}
		}
	}
	for _, w := range d.workers {
		for range r.IntN(len(d.documents) + 2) {
			doc := d.documents[r.IntN(len(d.documents))].id
			d.held = append(d.held, [2]int64{w.id, doc})
		}
	}
	// Few distinct start times, so pages split runs of equal starts.
	base := time.Date(2023, 2, 1, 5, 0, 0, 0, time.UTC)
	starts := []time.Time{base, base, base.Add(8 * time.Hour), base.Add(24 * time.Hour), base.Add(24*time.Hour + 15*time.Hour), base.Add(72 * time.Hour)}
	for i := range r.IntN(40) {
		s := shiftRow{
			id:         int64(i + 1),
			facility:   d.facilities[r.IntN(len(d.facilities))].id,
			profession: professions[r.IntN(3)],
			start:      starts[r.IntN(len(starts))],
			deleted:    r.IntN(4) == 0,
		}
		if r.IntN(4) == 0 {
			w := d.workers[r.IntN(len(d.workers))].id
			s.worker = &w
		}
		d.shifts = append(d.shifts, s)
	}
	return d
}

// oracle reads the six rules of DESIGN.md section 1 off the rows.
func (d dataset) eligible(w workerRow, s shiftRow) bool {
	var fac facilityRow
	for _, f := range d.facilities {
		if f.id == s.facility {
			fac = f
		}
	}
	if !fac.active || s.deleted || !w.active || s.worker != nil || s.profession != w.profession {
		return false
	}
	for _, req := range d.reqs {
		if req[0] != fac.id {
			continue
		}
		holds := false
		for _, h := range d.held {
			if h[0] == w.id && h[1] == req[1] {
				holds = true
			}
		}
		if !holds {
			return false
		}
	}
	return true
}

func (d dataset) oracleShifts(w workerRow, from, to *time.Time) []int64 {
	var out []shiftRow
	for _, s := range d.shifts {
		if d.eligible(w, s) && (from == nil || !s.start.Before(*from)) && (to == nil || s.start.Before(*to)) {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b shiftRow) int {
		if c := a.start.Compare(b.start); c != 0 {
			return c
		}
		return int(a.id - b.id)
	})
	ids := []int64{}
	for _, s := range out {
		ids = append(ids, s.id)
	}
	return ids
}

func (d dataset) oracleWorkers(s shiftRow) []int64 {
	ids := []int64{}
	for _, w := range d.workers { // already in id order
		if d.eligible(w, s) {
			ids = append(ids, w.id)
		}
	}
	return ids
}

func (d dataset) load(t testing.TB, b *testBundle) {
	t.Helper()
	ctx := context.Background()
	b.exec(t, `TRUNCATE "Shift", "DocumentWorker", "FacilityRequirement", "Worker", "Document", "Facility" RESTART IDENTITY CASCADE`)
	batch := &pgx.Batch{}
	for _, f := range d.facilities {
		batch.Queue(`INSERT INTO "Facility" (id, name, is_active) VALUES ($1, $2, $3)`, f.id, fmt.Sprintf("F%d", f.id), f.active)
	}
	for _, doc := range d.documents {
		batch.Queue(`INSERT INTO "Document" (id, name, is_active) VALUES ($1, $2, $3)`, doc.id, fmt.Sprintf("D%d", doc.id), doc.active)
	}
	for _, w := range d.workers {
		batch.Queue(`INSERT INTO "Worker" (id, name, is_active, profession) VALUES ($1, $2, $3, $4)`, w.id, fmt.Sprintf("W%d", w.id), w.active, w.profession)
	}
	for _, r := range d.reqs {
		batch.Queue(`INSERT INTO "FacilityRequirement" (facility_id, document_id) VALUES ($1, $2)`, r[0], r[1])
	}
	for _, h := range d.held {
		batch.Queue(`INSERT INTO "DocumentWorker" (worker_id, document_id) VALUES ($1, $2)`, h[0], h[1])
	}
	for _, s := range d.shifts {
		batch.Queue(`INSERT INTO "Shift" (id, start, "end", profession, is_deleted, facility_id, worker_id) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			s.id, s.start, s.start.Add(5*time.Hour), s.profession, s.deleted, s.facility, s.worker)
	}
	require.NoError(t, b.pool.SendBatch(ctx, batch).Close())
}

// mutate exercises the triggers' delete and update paths: it removes one
// requirement row and one held-document row, and moves another held row to
// a different document, in the database and in the dataset alike. It also
// flips a facility's and a worker's is_active and changes a worker's
// profession: everything the query path's facility cache must notice.
func (d *dataset) mutate(t testing.TB, b *testBundle, r *rand.Rand) {
	t.Helper()
	if i := r.IntN(len(d.facilities)); r.IntN(2) == 0 {
		d.facilities[i].active = !d.facilities[i].active
		b.exec(t, `UPDATE "Facility" SET is_active = $2 WHERE id = $1`, d.facilities[i].id, d.facilities[i].active)
	}
	if i := r.IntN(len(d.workers)); r.IntN(2) == 0 {
		d.workers[i].active = !d.workers[i].active
		b.exec(t, `UPDATE "Worker" SET is_active = $2 WHERE id = $1`, d.workers[i].id, d.workers[i].active)
	}
	if i := r.IntN(len(d.workers)); r.IntN(2) == 0 {
		d.workers[i].profession = professions[r.IntN(3)]
		b.exec(t, `UPDATE "Worker" SET profession = $2 WHERE id = $1`, d.workers[i].id, d.workers[i].profession)
	}
	if len(d.reqs) > 0 {
		i := r.IntN(len(d.reqs))
		b.exec(t, `DELETE FROM "FacilityRequirement" WHERE id = $1`, i+1)
		d.reqs[i] = [2]int64{-1, -1}
	}
	if len(d.held) > 1 {
		i, j := r.IntN(len(d.held)), r.IntN(len(d.held))
		if i != j {
			b.exec(t, `DELETE FROM "DocumentWorker" WHERE id = $1`, i+1)
			d.held[i] = [2]int64{-1, -1}
			doc := d.documents[r.IntN(len(d.documents))].id
			b.exec(t, `UPDATE "DocumentWorker" SET document_id = $2 WHERE id = $1`, j+1, doc)
			d.held[j][1] = doc
		}
	}
}

func TestStore_Differential(t *testing.T) {
	t.Parallel()
	const shards, perShard = 4, 30 // 120 random datasets
	for shard := range shards {
		t.Run(fmt.Sprintf("shard%d", shard), func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			svc := eligibility.NewService(b.store)
			for i := range perShard {
				seed := uint64(shard*perShard + i)
				r := rand.New(rand.NewPCG(seed, 0x5eed))
				d := randomDataset(r)
				d.load(t, b)
				checkDataset(t, svc, d, r, seed)
				// Again after a change, with the query path's facility
				// cache warm from the first check.
				if r.IntN(2) == 0 {
					d.mutate(t, b, r)
					checkDataset(t, svc, d, r, seed)
				}
			}
		})
	}
}

func checkDataset(t *testing.T, svc *eligibility.Service, d dataset, r *rand.Rand, seed uint64) {
	t.Helper()
	ctx := context.Background()
	msg := func(format string, args ...any) string {
		return fmt.Sprintf("dataset seed %d: ", seed) + fmt.Sprintf(format, args...)
	}
	bounds := []time.Time{time.Date(2023, 2, 1, 5, 0, 0, 0, time.UTC), time.Date(2023, 2, 1, 13, 0, 0, 0, time.UTC), time.Date(2023, 2, 2, 20, 0, 0, 0, time.UTC)}

	for _, w := range d.workers {
		var from, to *time.Time
		if r.IntN(3) == 0 {
			from = &bounds[r.IntN(2)]
		}
		if r.IntN(3) == 0 {
			to = &bounds[2]
		}
		limit := 1 + r.IntN(7)
		var got []int64
		params := eligibility.ShiftsParams{WorkerID: fmt.Sprint(w.id), Limit: fmt.Sprint(limit)}
		if from != nil {
			params.From = from.Format(time.RFC3339)
		}
		if to != nil {
			params.To = to.Format(time.RFC3339)
		}
		for pages := 0; ; pages++ {
			require.Less(t, pages, 100, msg("pagination does not terminate"))
			resp, err := svc.Shifts(ctx, params)
			require.NoError(t, err, msg("shifts of worker %d", w.id))
			require.LessOrEqual(t, len(resp.Shifts), limit)
			for _, s := range resp.Shifts {
				got = append(got, s.ID)
				require.Equal(t, w.profession, s.Profession)
			}
			if resp.NextCursor == nil {
				break
			}
			require.Len(t, resp.Shifts, limit, msg("a page before the last must be full"))
			params.Cursor = *resp.NextCursor
		}
		if got == nil {
			got = []int64{}
		}
		require.Equal(t, d.oracleShifts(w, from, to), got, msg("eligible shifts of worker %d (limit %d, from %v, to %v)", w.id, limit, from, to))
	}

	for _, s := range d.shifts {
		limit := 1 + r.IntN(5)
		got := []int64{}
		params := eligibility.WorkersParams{ShiftID: fmt.Sprint(s.id), Limit: fmt.Sprint(limit)}
		for pages := 0; ; pages++ {
			require.Less(t, pages, 100, msg("pagination does not terminate"))
			resp, err := svc.Workers(ctx, params)
			require.NoError(t, err, msg("workers of shift %d", s.id))
			for _, w := range resp.Workers {
				got = append(got, w.ID)
			}
			if resp.NextCursor == nil {
				break
			}
			params.Cursor = *resp.NextCursor
		}
		require.Equal(t, d.oracleWorkers(s), got, msg("eligible workers of shift %d", s.id))

		for _, w := range d.workers {
			v, err := svc.Explain(ctx, eligibility.ExplainParams{WorkerID: fmt.Sprint(w.id), ShiftID: fmt.Sprint(s.id)})
			require.NoError(t, err)
			require.Equal(t, d.eligible(w, s), v.Eligible, msg("explain worker %d shift %d: %+v", w.id, s.id, v.Reasons))
			var gotMissing []int64
			for _, reason := range v.Reasons {
				if reason.Code == domain.ReasonMissingDocuments {
					gotMissing = reason.DocumentIDs
				}
			}
			require.Equal(t, d.missing(w, s), gotMissing, msg("missing documents of worker %d for shift %d", w.id, s.id))
		}
	}
}

func (d dataset) missing(w workerRow, s shiftRow) []int64 {
	var out []int64
	for _, req := range d.reqs {
		if req[0] != s.facility || slices.Contains(out, req[1]) {
			continue
		}
		if !slices.ContainsFunc(d.held, func(h [2]int64) bool { return h[0] == w.id && h[1] == req[1] }) {
			out = append(out, req[1])
		}
	}
	slices.Sort(out)
	return out
}

// Listings asked for at once share round trips (see Store.EligibleShifts):
// under concurrent load each request must still get its own page, and equal
// listings sent together share one statement.
func TestStore_EligibleShiftsConcurrent(t *testing.T) {
	t.Parallel()
	b := setup(t) // 4 connections: 32 callers make batches
	svc := eligibility.NewService(b.store)
	ctx := context.Background()
	r := rand.New(rand.NewPCG(7, 0x5eed))
	d := randomDataset(r)
	d.load(t, b)
	type ask struct {
		params eligibility.ShiftsParams
		want   []int64
	}
	var asks []ask
	for _, w := range d.workers {
		want := d.oracleShifts(w, nil, nil)
		for limit := 1; limit <= 3; limit++ {
			asks = append(asks, ask{
				params: eligibility.ShiftsParams{WorkerID: fmt.Sprint(w.id), Limit: fmt.Sprint(limit)},
				want:   want[:min(limit, len(want))],
			})
		}
		// Listings that differ from those above only by cursor or by
		// from: sharing a statement between any two of them would answer
		// one with the other's page.
		if len(want) >= 2 {
			first := d.shift(want[0])
			cursor := domain.EncodeCursor(domain.CursorKindShifts, domain.Cursor{Start: first.start, ID: first.id})
			asks = append(asks, ask{
				params: eligibility.ShiftsParams{WorkerID: fmt.Sprint(w.id), Limit: "2", Cursor: cursor},
				want:   want[1:min(3, len(want))],
			})
			from := d.shift(want[len(want)-1]).start
			fromWant := d.oracleShifts(w, &from, nil)
			asks = append(asks, ask{
				params: eligibility.ShiftsParams{WorkerID: fmt.Sprint(w.id), Limit: "2", From: from.Format(time.RFC3339)},
				want:   fromWant[:min(2, len(fromWant))],
			})
		}
		// Warm the facility cache, so that the hot statement answers.
		_, err := svc.Shifts(ctx, eligibility.ShiftsParams{WorkerID: fmt.Sprint(w.id)})
		require.NoError(t, err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 60 {
				a := asks[(g*7+i)%len(asks)]
				resp, err := svc.Shifts(ctx, a.params)
				if err != nil {
					errs <- err
					return
				}
				got := make([]int64, 0, len(resp.Shifts))
				for _, s := range resp.Shifts {
					got = append(got, s.ID)
				}
				if !slices.Equal(a.want, got) {
					errs <- fmt.Errorf("worker %s, limit %s: got %v, want %v", a.params.WorkerID, a.params.Limit, got, a.want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	stats := b.store.FacilityCacheStats()
	require.Positive(t, stats.Pipelined, "no listings were sent together: the test did not exercise the pipeline")
	require.Positive(t, stats.Coalesced, "no equal listings shared a statement: the test did not exercise coalescing")
}

// shift returns the shift with id id.
func (d dataset) shift(id int64) shiftRow {
	i := slices.IndexFunc(d.shifts, func(s shiftRow) bool { return s.id == id })
	return d.shifts[i]
}
