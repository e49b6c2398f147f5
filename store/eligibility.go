package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/shiftcast/shiftcast/domain"
)

// Bounds used when a listing has no from/to or cursor. They are plain
// timestamps, not ±infinity, so every bound is a typed parameter and one
// prepared statement serves every request.
var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)
)

// eligibleShiftsSQL answers "which open shifts can worker $1 take" in one
// round trip. It returns no row when the worker does not exist, one row with
// a NULL shift when the worker exists but has nothing (or is inactive), and
// the page otherwise. The worker's eligible facilities are an initplan (few
// facilities, one array containment each against the worker's documents);
// the shifts then come off the partial covering index
// shift_open_profession_start in (start, id) order, so a page costs a
// bounded index-only range scan however large "Shift" is. This shape (no
// CTEs, no aggregate node) measured 13% more queries/s than the CTE form.
//
// The facility set is its own subquery (OFFSET 0 keeps it one) so that an
// empty set is a one-time filter that skips the scan: without it, a worker
// whose documents satisfy no facility read every open shift of their
// profession to return nothing (166,000 index entries, 18 ms, on the
// challenge dataset, where that is all but three workers).
//
// The last three columns are what facilityCache needs to skip the initplan
// next time; this statement is the cache's fallback and refresh.
const eligibleShiftsSQL = `
SELECT s.id, s.facility_id, s.start, s."end",
       w.profession::text, w.is_active, COALESCE(wd.document_ids, '{}'),
       (SELECT version FROM shiftcast.facility_version)
FROM "Worker" w
LEFT JOIN shiftcast.worker_documents wd ON wd.worker_id = w.id
LEFT JOIN LATERAL (
    SELECT ARRAY(
        SELECT fa.id
        FROM "Facility" fa
        LEFT JOIN shiftcast.facility_requirements fr ON fr.facility_id = fa.id
        WHERE fa.is_active AND COALESCE(fr.document_ids, '{}') <@ COALESCE(wd.document_ids, '{}')) AS ids
    OFFSET 0
) f ON true
LEFT JOIN LATERAL (
    SELECT s.id, s.facility_id, s.start, s."end"
    FROM "Shift" s
    WHERE cardinality(f.ids) > 0
      AND s.profession = w.profession
      AND NOT s.is_deleted
      AND s.worker_id IS NULL
      AND s.facility_id = ANY (f.ids)
      AND (s.start, s.id) > ($2::timestamp, $3::integer)
      AND s.start >= $4::timestamp
      AND s.start < $5::timestamp
    ORDER BY s.start, s.id
    LIMIT $6
) s ON w.is_active
WHERE w.id = $1`

// eligibleShiftsCachedSQL is the hot path: the same page, with the worker's
// eligible facilities ($9) taken from facilityCache. Its one-time filters
// (initplans, run once per statement) re-read in the statement's snapshot
// what the entry was computed from: the worker active with profession $10,
// holding exactly documents $8, and facility version $7. If anything
// changed, or the worker is gone, it returns no row and the caller falls
// back to eligibleShiftsSQL. Initplans rather than joins: in this shape it
// measured about 20% more statements/s than eligibleShiftsSQL
// (scripts/bench-statements.sh); written as a join it gained nothing.
const eligibleShiftsCachedSQL = `
SELECT s.id, s.facility_id, s.start, s."end"
FROM "Shift" s
WHERE s.profession = (SELECT w.profession FROM "Worker" w
                      WHERE w.id = $1 AND w.is_active AND w.profession::text = $10::text)
  AND (SELECT version FROM shiftcast.facility_version) = $7::bigint
  AND COALESCE((SELECT wd.document_ids FROM shiftcast.worker_documents wd WHERE wd.worker_id = $1), '{}') = $8::integer[]
  AND NOT s.is_deleted
  AND s.worker_id IS NULL
  AND s.facility_id = ANY ($9::integer[])
  AND (s.start, s.id) > ($2::timestamp, $3::integer)
  AND s.start >= $4::timestamp
  AND s.start < $5::timestamp
ORDER BY s.start, s.id
LIMIT $6`

// EligibleShifts returns up to q.Limit open shifts worker q.WorkerID can
// take, in (start, id) order. An unknown worker is ENOTFOUND; an inactive
// one gets an empty page.
func (s *Store) EligibleShifts(ctx context.Context, q domain.ShiftsQuery) (domain.ShiftsPage, error) {
	if q.WorkerID > math.MaxInt32 {
		return domain.ShiftsPage{}, domain.Errorf(domain.ENOTFOUND, "worker %d not found", q.WorkerID)
	}
	afterStart, afterID, from, to := minTime, int64(0), minTime, maxTime
	if q.After != nil {
		afterStart, afterID = q.After.Start.UTC(), q.After.ID
	}
	if q.From != nil {
		from = q.From.UTC()
	}
	if q.To != nil {
		to = q.To.UTC()
	}
	what := fmt.Sprintf("eligible shifts of worker %d", q.WorkerID)
	// An empty page is not trusted from the hot statement: it also means
	// "the entry is stale", and only the full statement tells 404, inactive
	// and nothing-open apart.
	// Nor is the hot statement sent for a worker with no eligible facility:
	// its page is empty, so the full statement would follow anyway.
	if e, ok := s.facilities.get(q.WorkerID); ok && e.active && len(e.facilities) > 0 {
		res, err := s.listings.Do(ctx, cachedListing{
			workerID: q.WorkerID, afterStart: afterStart, afterID: afterID, from: from, to: to,
			limit: q.Limit, entry: e,
		})
		if err == nil {
			err = res.err
		}
		if err != nil {
			return domain.ShiftsPage{}, classify(what, err)
		}
		if page := res.page; len(page.Shifts) > 0 {
			s.facilities.hits.Add(1)
			return page, nil
		}
	}
	s.facilities.misses.Add(1)
	rows, err := s.pool.Query(ctx, eligibleShiftsSQL, q.WorkerID, afterStart, afterID, from, to, q.Limit+1)
	if err != nil {
		return domain.ShiftsPage{}, classify(what, err)
	}
	var st workerState
	page, err := scanShifts(rows, q.Limit, "", &st)
	if err != nil {
		return domain.ShiftsPage{}, classify(what, err)
	}
	if !st.found {
		return domain.ShiftsPage{}, domain.Errorf(domain.ENOTFOUND, "worker %d not found", q.WorkerID)
	}
	s.rememberWorker(ctx, q.WorkerID, st)
	return page, nil
}

// cachedListing is one run of eligibleShiftsCachedSQL: the page asked for
// and the worker's cache entry.
type cachedListing struct {
	workerID             int64
	afterStart, from, to time.Time
	afterID              int64
	limit                int
	entry                workerFacilities
}

func (l *cachedListing) args() []any {
	e := &l.entry
	return []any{l.workerID, l.afterStart, l.afterID, l.from, l.to, l.limit + 1,
		e.version, e.documents, e.facilities, e.profession}
}

// same reports whether l and o read the same rows when run in one
// snapshot: the same page of the same worker, checked against the same
// cache entry.
func (l *cachedListing) same(o *cachedListing) bool {
	return l.workerID == o.workerID && l.afterID == o.afterID && l.limit == o.limit &&
		l.afterStart.Equal(o.afterStart) && l.from.Equal(o.from) && l.to.Equal(o.to) &&
		l.entry.version == o.entry.version && l.entry.profession == o.entry.profession &&
		slices.Equal(l.entry.documents, o.entry.documents) && slices.Equal(l.entry.facilities, o.entry.facilities)
}

type listingResult struct {
	page domain.ShiftsPage
	err  error
}

const (
	// maxListingBatch bounds the listings sent in one round trip.
	maxListingBatch = 16
	// listingTimeout bounds a batch of listings: it runs for many
	// requests, so under none's context.
	listingTimeout = 10 * time.Second
)

// runListings sends listings in one round trip (a pipeline, as pgbench's
// \startpipeline: scripts/bench-statements.sh measured about 40% more
// statements a second four at a time than one at a time on these cores).
// The statements are independent reads; an error is each one's own, and
// one that breaks the connection fails the listings after it.
//
// Equal listings in one batch are sent once and share the page (callers
// only read it). That is not a cache: every one of them was asked for
// before the statement ran, so each gets an answer as fresh as if it had
// been sent alone. It is what makes a hot page (a worker's app polling,
// many clients of one worker, a retry storm) cost one statement a round
// trip.
func (s *Store) runListings(ctx context.Context, items []cachedListing) ([]listingResult, error) {
	// of[i] is the position, in sent, of the statement answering items[i].
	of := make([]int, len(items))
	sent := make([]int, 0, len(items))
	for i := range items {
		of[i] = -1
		for j, k := range sent {
			if items[k].same(&items[i]) {
				of[i] = j
				break
			}
		}
		if of[i] < 0 {
			of[i] = len(sent)
			sent = append(sent, i)
		}
	}
	s.facilities.coalesced.Add(int64(len(items) - len(sent)))
	res := make([]listingResult, len(sent))
	read := func(j int, rows pgx.Rows, err error) {
		it := &items[sent[j]]
		if err == nil {
			res[j].page, err = scanShifts(rows, it.limit, internProfession(it.entry.profession), nil)
		}
		res[j].err = err
	}
	if len(sent) == 1 {
		rows, err := s.pool.Query(ctx, eligibleShiftsCachedSQL, items[sent[0]].args()...)
		read(0, rows, err)
	} else {
		s.facilities.pipelined.Add(int64(len(sent)))
		b := &pgx.Batch{}
		for _, i := range sent {
			b.Queue(eligibleShiftsCachedSQL, items[i].args()...)
		}
		br := s.pool.SendBatch(ctx, b)
		for j := range sent {
			rows, err := br.Query()
			read(j, rows, err)
		}
		// Every listing has its own outcome by now (a broken connection
		// fails the ones read after it), so Close has nothing to add.
		_ = br.Close()
	}
	out := make([]listingResult, len(items))
	for i := range items {
		out[i] = res[of[i]]
	}
	return out, nil
}

// workerState is what eligibleShiftsSQL reports about the worker besides the
// page.
type workerState struct {
	found      bool
	active     bool
	profession string
	documents  []int64
	version    int64
}

// rememberWorker refreshes the worker's facilityCache entry, loading the
// facility map first when it is older than what the statement saw. A
// failure only costs the cache, never the answer already read.
func (s *Store) rememberWorker(ctx context.Context, id int64, st workerState) {
	if s.facilities.remember(id, st.active, st.profession, st.documents, st.version) {
		return
	}
	if err := s.loadFacilities(ctx); err != nil {
		return
	}
	s.facilities.remember(id, st.active, st.profession, st.documents, st.version)
}

// scanShifts reads a listing into a page of at most limit shifts, setting
// More when the statement returned the extra row. With st set, rows are
// eligibleShiftsSQL's (the worker's state follows the shift, which is NULL
// when there is none); otherwise eligibleShiftsCachedSQL's, all of
// profession p.
func scanShifts(rows pgx.Rows, limit int, p domain.Profession, st *workerState) (domain.ShiftsPage, error) {
	page := domain.ShiftsPage{Shifts: make([]domain.Shift, 0, min(limit+1, 64))}
	// pgtype values scan without the pointer-to-pointer plans nullable Go
	// pointers need; on this path that was a sixth of serve's CPU.
	var (
		id, facilityID pgtype.Int4
		start, end     pgtype.Timestamp
		dest           = []any{&id, &facilityID, &start, &end}
		profession     pgtype.Text
		active         pgtype.Bool
		version        pgtype.Int8
	)
	if st != nil {
		dest = append(dest, &profession, &active, &st.documents, &version)
	}
	_, err := pgx.ForEachRow(rows, dest, func() error {
		if st != nil && !st.found {
			st.found, st.active, st.profession, st.version = true, active.Bool, profession.String, version.Int64
			p = internProfession(profession.String)
		}
		if !id.Valid {
			return nil
		}
		page.Shifts = append(page.Shifts, domain.Shift{
			ID: int64(id.Int32), FacilityID: int64(facilityID.Int32), Profession: p,
			Start: start.Time, End: end.Time,
		})
		return nil
	})
	if err != nil {
		return domain.ShiftsPage{}, err
	}
	if len(page.Shifts) > limit {
		page.Shifts, page.More = page.Shifts[:limit], true
	}
	return page, nil
}

// eligibleWorkersSQL answers "who can take shift $1": no row for an unknown
// shift, one NULL row when nobody can, the page otherwise. Workers without
// any document have no worker_documents row and hold the empty set.
const eligibleWorkersSQL = `
WITH s AS (
    SELECT s.profession,
           fa.is_active AND NOT s.is_deleted AND s.worker_id IS NULL AS open,
           COALESCE(fr.document_ids, '{}') AS req
    FROM "Shift" s
    JOIN "Facility" fa ON fa.id = s.facility_id
    LEFT JOIN shiftcast.facility_requirements fr ON fr.facility_id = s.facility_id
    WHERE s.id = $1
)
SELECT w.id, w.name, w.profession::text
FROM s
LEFT JOIN LATERAL (
    SELECT w.id, w.name, w.profession
    FROM "Worker" w
    LEFT JOIN shiftcast.worker_documents wd ON wd.worker_id = w.id
    WHERE s.open
      AND w.is_active
      AND w.profession = s.profession
      AND w.id > $2::integer
      AND COALESCE(wd.document_ids, '{}') @> s.req
    ORDER BY w.id
    LIMIT $3
) w ON true`

// EligibleWorkers returns up to q.Limit workers who can take shift
// q.ShiftID, in id order. An unknown shift is ENOTFOUND.
func (s *Store) EligibleWorkers(ctx context.Context, q domain.WorkersQuery) (domain.WorkersPage, error) {
	if q.ShiftID > math.MaxInt32 {
		return domain.WorkersPage{}, domain.Errorf(domain.ENOTFOUND, "shift %d not found", q.ShiftID)
	}
	afterID := min(q.AfterID, math.MaxInt32)
	rows, err := s.pool.Query(ctx, eligibleWorkersSQL, q.ShiftID, afterID, q.Limit+1)
	if err != nil {
		return domain.WorkersPage{}, classify(fmt.Sprintf("eligible workers of shift %d", q.ShiftID), err)
	}
	page := domain.WorkersPage{Workers: make([]domain.Worker, 0, min(q.Limit, 64))}
	found := false
	var (
		id               *int64
		name, profession *string
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &name, &profession}, func() error {
		found = true
		if id == nil {
			return nil
		}
		page.Workers = append(page.Workers, domain.Worker{
			ID: *id, Name: *name, IsActive: true, Profession: domain.Profession(*profession),
		})
		return nil
	})
	if err != nil {
		return domain.WorkersPage{}, classify(fmt.Sprintf("eligible workers of shift %d", q.ShiftID), err)
	}
	if !found {
		return domain.WorkersPage{}, domain.Errorf(domain.ENOTFOUND, "shift %d not found", q.ShiftID)
	}
	if len(page.Workers) > q.Limit {
		page.Workers, page.More = page.Workers[:q.Limit], true
	}
	return page, nil
}

// explainSQL loads everything the rules look at for one (worker, shift) in
// one round trip; the rules themselves run in Go (domain.Explain).
const explainSQL = `
SELECT w.id, w.name, w.is_active, w.profession::text, COALESCE(wd.document_ids, '{}'),
       s.id, s.facility_id, s.profession::text, s.start, s."end", s.is_deleted, s.worker_id,
       fa.name, fa.is_active, COALESCE(fr.document_ids, '{}')
FROM (SELECT $1::integer AS worker_id, $2::integer AS shift_id) p
LEFT JOIN "Worker" w ON w.id = p.worker_id
LEFT JOIN shiftcast.worker_documents wd ON wd.worker_id = w.id
LEFT JOIN "Shift" s ON s.id = p.shift_id
LEFT JOIN "Facility" fa ON fa.id = s.facility_id
LEFT JOIN shiftcast.facility_requirements fr ON fr.facility_id = s.facility_id`

// ExplainInputs loads the worker, the shift and the shift's facility, each
// with its document set. Either id unknown is ENOTFOUND.
func (s *Store) ExplainInputs(ctx context.Context, workerID, shiftID int64) (domain.Worker, domain.Shift, domain.Facility, error) {
	var (
		w                          domain.Worker
		sh                         domain.Shift
		f                          domain.Facility
		wID, sID, facilityID       *int64
		wName, wProf, sProf, fName *string
		wActive, sDeleted, fActive *bool
		start, end                 *time.Time
	)
	if workerID > math.MaxInt32 {
		return w, sh, f, domain.Errorf(domain.ENOTFOUND, "worker %d not found", workerID)
	}
	if shiftID > math.MaxInt32 {
		return w, sh, f, domain.Errorf(domain.ENOTFOUND, "shift %d not found", shiftID)
	}
	err := s.pool.QueryRow(ctx, explainSQL, workerID, shiftID).Scan(
		&wID, &wName, &wActive, &wProf, &w.DocumentIDs,
		&sID, &facilityID, &sProf, &start, &end, &sDeleted, &sh.WorkerID,
		&fName, &fActive, &f.RequiredDocumentIDs,
	)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return w, sh, f, classify(fmt.Sprintf("explain worker %d shift %d", workerID, shiftID), err)
	}
	if wID == nil {
		return w, sh, f, domain.Errorf(domain.ENOTFOUND, "worker %d not found", workerID)
	}
	if sID == nil {
		return w, sh, f, domain.Errorf(domain.ENOTFOUND, "shift %d not found", shiftID)
	}
	w.ID, w.Name, w.IsActive, w.Profession = *wID, *wName, *wActive, domain.Profession(*wProf)
	sh.ID, sh.FacilityID, sh.Profession = *sID, *facilityID, domain.Profession(*sProf)
	sh.Start, sh.End, sh.IsDeleted = start.UTC(), end.UTC(), *sDeleted
	f.ID, f.Name, f.IsActive = *facilityID, *fName, *fActive
	return w, sh, f, nil
}

// internProfession maps the enum's text to the package constants, so rows
// share one string instead of each holding a copy.
func internProfession(s string) domain.Profession {
	for _, p := range domain.Professions {
		if string(p) == s {
			return p
		}
	}
	return domain.Profession(s)
}
