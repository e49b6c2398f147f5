package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/shiftcast/shiftcast/domain"
)

// fanoutSQL selects every worker who can take open shifts of profession $2
// at one of the facilities $1: active, of that profession, holding every
// document one of them requires. One set-based pass over the profession's
// workers, whatever the workforce's size, checking each against the
// facilities' distinct requirement sets until one is met.
const fanoutSQL = `
	WITH f AS MATERIALIZED (
		SELECT DISTINCT COALESCE(fr.document_ids, '{}') AS req
		FROM "Facility" fa
		LEFT JOIN shiftcast.facility_requirements fr ON fr.facility_id = fa.id
		WHERE fa.id = ANY ($1::int[]) AND fa.is_active
	)
	SELECT w.id
	FROM "Worker" w
	LEFT JOIN shiftcast.worker_documents wd ON wd.worker_id = w.id
	WHERE w.is_active AND w.profession = $2::"Profession"
	  AND EXISTS (SELECT 1 FROM f WHERE f.req <@ COALESCE(wd.document_ids, '{}'))`

// FanoutWorkers returns, in id order, every worker who can take open shifts
// of the given profession at the facility.
func (s *Store) FanoutWorkers(ctx context.Context, facilityID int64, profession domain.Profession) ([]int64, error) {
	ids, err := s.fanoutWorkers(ctx, []int64{facilityID}, profession)
	if err != nil {
		return nil, classify(fmt.Sprintf("fan out facility %d %s", facilityID, profession), err)
	}
	return ids, nil
}

// fanoutWorkers returns, in id order, every worker who can take open shifts
// of the given profession at one of the facilities.
func (s *Store) fanoutWorkers(ctx context.Context, facilities []int64, profession domain.Profession) ([]int64, error) {
	rows, err := s.pool.Query(ctx, fanoutSQL+` ORDER BY w.id`, facilities, string(profession))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

// MarkFanouts records, in the caller's transaction, that the (facility,
// profession) pairs fs have news for digest window window; FanoutNotify
// takes the marks.
func (s *Store) MarkFanouts(ctx context.Context, tx pgx.Tx, window int64, fs []Fanout) error {
	facilities, profs := pairColumns(fs)
	_, err := tx.Exec(ctx, `
		INSERT INTO shiftcast.fanout_marks (profession, notify_window, facility_id)
		SELECT u.profession::"Profession", $3, u.facility_id
		FROM unnest($1::int[], $2::text[]) AS u(facility_id, profession)
		ORDER BY 1, 3
		ON CONFLICT DO NOTHING`, facilities, profs, window)
	if err != nil {
		return fmt.Errorf("mark fan-outs for window %d: %w", window, err)
	}
	return nil
}

// FanoutRun is one fan-out of a profession's marked facilities for a
// digest window (see FanoutNotify).
type FanoutRun struct {
	Profession domain.Profession
	Window     int64
	// Extra facilities are expanded whether marked or not (a fan-out
	// enqueued by an earlier version, before marks existed).
	Extra []int64
	// Chunk bounds the workers scheduled in one transaction; 0 schedules
	// them all in one.
	Chunk int
	// Enqueue inserts, in a chunk's transaction, the notify jobs of the
	// workers the chunk schedules, given in id order.
	Enqueue func(ctx context.Context, tx pgx.Tx, workerIDs []int64) error
	// Pause, when set, runs after every chunk but the last, outside any
	// transaction, with the number of workers the chunk scheduled and the
	// number of workers the run read: the caller paces the inserts with it.
	Pause func(ctx context.Context, scheduled, total int) error
}

// FanoutNotify schedules, for r.Window, the digests of the workers who can
// take open shifts of r.Profession at the facilities marked for it (by
// MarkFanouts, for that window or an earlier one), plus r.Extra. It reads
// the marks and the workers once, then schedules the workers in chunks of
// r.Chunk, a transaction each: the workers that need a job for the window
// (see ScheduleNotify: not those already scheduled for it or a later one,
// nor those whose newest job has yet to start building) are marked in
// shiftcast.notify_scheduled and handed to r.Enqueue to insert their notify
// jobs. The marks it read are deleted last, so a run that fails or is
// killed half-way leaves them to its retry, which finds the workers
// already scheduled marked and skips them: each worker's job is inserted
// once per window. It returns how many workers it scheduled.
//
// Chunks, not one transaction, so that a window's thousands of notify jobs
// can be inserted over seconds (r.Pause) without holding a connection and
// locks meanwhile: inserted at once, they took the database from the
// events at every window's end.
func (s *Store) FanoutNotify(ctx context.Context, r FanoutRun) (int, error) {
	what := fmt.Sprintf("fan out %s for window %d", r.Profession, r.Window)
	rows, err := s.pool.Query(ctx, `
		SELECT notify_window, facility_id FROM shiftcast.fanout_marks
		WHERE profession = $1::"Profession" AND notify_window <= $2`, string(r.Profession), r.Window)
	if err != nil {
		return 0, classify(what, err)
	}
	var markWindows, markFacilities []int64
	var mw, mf int64
	if _, err := pgx.ForEachRow(rows, []any{&mw, &mf}, func() error {
		markWindows, markFacilities = append(markWindows, mw), append(markFacilities, mf)
		return nil
	}); err != nil {
		return 0, classify(what, err)
	}
	facilities := append(slices.Clone(markFacilities), r.Extra...)
	if len(facilities) == 0 {
		return 0, nil
	}
	slices.Sort(facilities)
	workers, err := s.fanoutWorkers(ctx, slices.Compact(facilities), r.Profession)
	if err != nil {
		return 0, classify(what, err)
	}
	chunk := r.Chunk
	if chunk <= 0 {
		chunk = max(1, len(workers))
	}
	scheduled := 0
	for start := 0; start < len(workers); start += chunk {
		ids := workers[start:min(start+chunk, len(workers))]
		var got []int64
		err := s.asyncTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
			var err error
			if got, err = scheduleNotify(ctx, tx, r.Window, ids); err != nil || len(got) == 0 {
				return err
			}
			return r.Enqueue(ctx, tx, got)
		})
		if err != nil {
			return scheduled, classify(what, err)
		}
		scheduled += len(got)
		if r.Pause != nil && start+chunk < len(workers) {
			if err := r.Pause(ctx, len(got), len(workers)); err != nil {
				return scheduled, fmt.Errorf("%s: %w", what, err)
			}
		}
	}
	if len(markWindows) > 0 {
		// Only the marks read: one committed since is left to the next
		// window's fan-out.
		_, err := s.pool.Exec(ctx, `
			DELETE FROM shiftcast.fanout_marks m
			USING unnest($2::bigint[], $3::int[]) AS u(notify_window, facility_id)
			WHERE m.profession = $1::"Profession" AND m.notify_window = u.notify_window AND m.facility_id = u.facility_id`,
			string(r.Profession), markWindows, markFacilities)
		if err != nil {
			return scheduled, classify(what, err)
		}
	}
	return scheduled, nil
}

// PendingWindows is how many windows a worker's notify job may wait to
// start building (see ScheduleNotify) before it is presumed lost (cancelled,
// discarded, deleted by hand) and the worker is scheduled again: by the
// next scheduler of the worker, or by LostSchedules, which the sweep job
// runs, so a lost job delays a worker's news by about this many windows.
const PendingWindows = 10

// scheduleNotifySQL marks workers $1 as scheduled for window $2 and returns
// those that need a notify job for it: not those already scheduled for it
// or a later window, nor those whose newest job has not started building
// (built_window, see ClaimNotify) and is at most $3 windows older. Rows
// are taken in id order, so that transactions scheduling overlapping
// workers (fan-out chunks, events) do not deadlock.
const scheduleNotifySQL = `
	INSERT INTO shiftcast.notify_scheduled AS ns (worker_id, notify_window)
	SELECT DISTINCT id, $2::bigint FROM unnest($1::int[]) AS u(id) ORDER BY id
	ON CONFLICT (worker_id) DO UPDATE SET notify_window = EXCLUDED.notify_window
	WHERE ns.notify_window < EXCLUDED.notify_window
	  AND (ns.built_window >= ns.notify_window OR ns.notify_window < EXCLUDED.notify_window - $3)
	RETURNING ns.worker_id`

// ScheduleNotify marks workerIDs as scheduled for window in tx and returns,
// in id order, those that need a notify job inserted (in tx as well): not
// those already scheduled for window or a later one, nor those whose
// newest job has not started to build, unless it is more than
// PendingWindows older. Such a job builds its digest from the state it
// finds when it starts, after tx commits (ClaimNotify waits for tx's lock
// on the worker's row), so it announces what tx makes new as well: a
// backlog of digests coalesces into one job per worker.
func (s *Store) ScheduleNotify(ctx context.Context, tx pgx.Tx, window int64, workerIDs []int64) ([]int64, error) {
	got, err := scheduleNotify(ctx, tx, window, workerIDs)
	if err != nil {
		return nil, fmt.Errorf("schedule notify jobs for window %d: %w", window, err)
	}
	return got, nil
}

func scheduleNotify(ctx context.Context, tx pgx.Tx, window int64, workerIDs []int64) ([]int64, error) {
	rows, err := tx.Query(ctx, scheduleNotifySQL, workerIDs, window, int64(PendingWindows))
	if err != nil {
		return nil, err
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	slices.Sort(got)
	return got, err
}

// LostSchedules reschedules for window, at most limit at a time, the
// workers whose newest notify job has waited more than PendingWindows
// windows without starting to build: presumed lost (cancelled, discarded
// after its attempts, deleted by hand), it may hold news that later
// windows coalesced into it, so without this they would wait for the
// worker's next news. Their rows move to window and enqueue inserts their
// jobs, in the same transaction. A job that was only late (a backlog that
// long) builds as well; the second finds nothing new. It returns how many
// workers it rescheduled.
func (s *Store) LostSchedules(ctx context.Context, window int64, limit int, enqueue func(ctx context.Context, tx pgx.Tx, workerIDs []int64) error) (int, error) {
	var ids []int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			UPDATE shiftcast.notify_scheduled ns SET notify_window = $1
			FROM (
				SELECT worker_id FROM shiftcast.notify_scheduled
				WHERE (built_window IS NULL OR built_window < notify_window) AND notify_window < $1::bigint - $2::bigint
				ORDER BY worker_id
				LIMIT $3
				FOR UPDATE SKIP LOCKED
			) l
			WHERE ns.worker_id = l.worker_id
			RETURNING ns.worker_id`, window, int64(PendingWindows), limit)
		if err != nil {
			return err
		}
		if ids, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil || len(ids) == 0 {
			return err
		}
		slices.Sort(ids)
		return enqueue(ctx, tx, ids)
	})
	if err != nil {
		return 0, classify("reschedule lost notify jobs", err)
	}
	return len(ids), nil
}

// RenumberWindows moves the workers' schedules and the fan-out marks that
// are numbered for windows after window+1 back to the present: window
// numbers count DIGEST_WINDOWs since the epoch, so after the window is
// made longer every number already stored is far in the future, and would
// keep its worker from being scheduled again, or its mark from being
// expanded, for years. Schedules go to window-1, counted as started, so
// window schedules its own jobs; marks go to window. A clock up to one
// window ahead on another instance is left alone. It returns the rows
// moved.
func (s *Store) RenumberWindows(ctx context.Context, window int64) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			UPDATE shiftcast.notify_scheduled SET notify_window = $1::bigint - 1, built_window = $1::bigint - 1
			WHERE notify_window > $1::bigint + 1`, window)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		tag, err = tx.Exec(ctx, `
			WITH moved AS (
				DELETE FROM shiftcast.fanout_marks WHERE notify_window > $1::bigint + 1
				RETURNING profession, facility_id
			)
			INSERT INTO shiftcast.fanout_marks (profession, notify_window, facility_id)
			SELECT DISTINCT profession, $1::bigint, facility_id FROM moved
			ON CONFLICT DO NOTHING`, window)
		n += tag.RowsAffected()
		return err
	})
	return n, classify("renumber digest windows", err)
}

// ClaimNotify records that the notify jobs of workerIDs[i] for windows[i]
// start to build, in a transaction of its own that the caller commits
// before reading anything for the digests: from then on, scheduling one of
// these workers (ScheduleNotify) inserts a new job rather than counting on
// this one, which may have read the state before the scheduler's change.
// A scheduler that took a worker's row first holds it until its commit,
// and ClaimNotify waits for it, so the digest's reads come after that
// commit. A crash after ClaimNotify and before the digest leaves the job
// to River's retry.
func (s *Store) ClaimNotify(ctx context.Context, workerIDs, windows []int64) error {
	// Asynchronous: whatever commits after it and depends on it (a
	// scheduler's job, the digest) flushes the WAL past it.
	err := s.asyncTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
		WITH u AS (
			SELECT worker_id, max(notify_window) AS notify_window
			FROM unnest($1::int[], $2::bigint[]) AS u(worker_id, notify_window)
			GROUP BY worker_id
		), c AS (
			SELECT ns.worker_id, u.notify_window
			FROM u JOIN shiftcast.notify_scheduled ns ON ns.worker_id = u.worker_id
			WHERE ns.built_window IS NULL OR ns.built_window < u.notify_window
			ORDER BY ns.worker_id
			FOR UPDATE OF ns
		)
		UPDATE shiftcast.notify_scheduled ns SET built_window = c.notify_window
		FROM c WHERE ns.worker_id = c.worker_id`, workerIDs, windows)
		return err
	})
	return classify("claim notify jobs", err)
}

// DigestResult is one worker's outcome in BuildDigests: the notification
// built (nil when nothing was new), or the error that kept this worker's
// digest from being built.
type DigestResult struct {
	WorkerID     int64
	Notification *domain.Notification
	Err          error
}

// BuildDigests builds the digests of many workers in one transaction: for
// each, the shifts that became available to them since their last push, at
// most k listed (soonest first) and all counted. It records a notification
// for each worker with something new (with lease > 0, leased to the caller
// for that long: it delivers them itself; see HandOffDelivery and
// ExpiredLeases) and moves every worker's watermark to now, so nothing is
// announced twice. Results come in the order of workerIDs; a repeated id
// finds nothing new, as a second call would. A worker without notification
// state gets an ENOTFOUND result; any other failure fails the whole batch,
// and nothing is recorded.
//
// The database is read once per batch (the workers, the active facilities'
// requirements, the openings their snapshots may not have seen, the open
// shifts of facilities fresh to some of them) and each worker's digest is
// worked out from that in Go (domain.DigestBuilder): a digest costs about
// the same whether a hundred or a thousand shifts are new to it, and the
// cost of the shared reading is spread over the batch.
//
// A batch that fails to serialize (a digest of one of its workers, or a
// deactivation, committed meanwhile) is read again at once, up to three
// times: a batch holds many workers, and handing the failure to each one's
// job would delay them all by a retry's backoff.
func (s *Store) BuildDigests(ctx context.Context, workerIDs []int64, now time.Time, k int, lease time.Duration) ([]DigestResult, error) {
	for attempt := 1; ; attempt++ {
		res, err := s.buildDigests(ctx, workerIDs, now, k, lease, nil)
		if attempt == 3 || !isSerializationFailure(err) {
			return res, err
		}
	}
}

// BuildDigest builds one worker's digest as BuildDigests does and, when a
// notification is recorded and enqueue is set, calls enqueue with its id in
// the same transaction. It returns nil when there is nothing new.
func (s *Store) BuildDigest(ctx context.Context, workerID int64, now time.Time, k int, lease time.Duration, enqueue func(ctx context.Context, tx pgx.Tx, notificationID string) error) (*domain.Notification, error) {
	res, err := s.buildDigests(ctx, []int64{workerID}, now, k, lease, enqueue)
	if err != nil {
		return nil, err
	}
	return res[0].Notification, res[0].Err
}

func (s *Store) buildDigests(ctx context.Context, workerIDs []int64, now time.Time, k int, lease time.Duration, enqueue func(ctx context.Context, tx pgx.Tx, notificationID string) error) ([]DigestResult, error) {
	ids := slices.Clone(workerIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var built map[int64]DigestResult
	// REPEATABLE READ: everything read and the snapshot stored as the new
	// watermark must be one and the same view of the data. Two digests of
	// one worker racing make one fail to serialize (BuildDigests reads
	// again; a lone BuildDigest returns the failure).
	//
	// The commit is durable, unlike the other job bookkeeping's: the
	// notifications are delivered right after it, and a digest lost in a
	// crash after its delivery would be built again, under a new id, and
	// announce its shifts twice. (Its flush also makes durable every
	// transaction committed before it, the events it announces included.)
	// One flush per batch costs little.
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		var err error
		built, err = digestTx(ctx, tx, ids, now.UTC(), k, lease, enqueue)
		return err
	})
	if err != nil {
		return nil, classify(fmt.Sprintf("build digests for %d workers", len(ids)), err)
	}
	// A worker named twice (two of its notify jobs, for two windows, run
	// at once) gets its digest once: the repeat finds nothing new, as a
	// second call would, so that only one caller delivers it.
	out := make([]DigestResult, len(workerIDs))
	given := make(map[int64]bool, len(ids))
	for i, id := range workerIDs {
		out[i] = built[id]
		if given[id] && out[i].Err == nil {
			out[i].Notification = nil
		}
		given[id] = true
	}
	return out, nil
}

// digestWorkersSQL reads the batch's workers: who they are now and what
// their last push took into account.
const digestWorkersSQL = `
	SELECT b.id, st.worker_id IS NOT NULL, COALESCE(w.profession::text, ''), COALESCE(w.is_active, false),
	       COALESCE(wd.document_ids, '{}'), COALESCE(st.facilities, '{}'), st.snapshot::text,
	       r.reset_xid::text::bigint
	FROM unnest($1::int[]) AS b(id)
	LEFT JOIN shiftcast.worker_notify_state st ON st.worker_id = b.id
	LEFT JOIN shiftcast.worker_resets r ON r.worker_id = b.id
	LEFT JOIN "Worker" w ON w.id = b.id
	LEFT JOIN shiftcast.worker_documents wd ON wd.worker_id = b.id`

// activeFacilitiesSQL is every active facility and its requirements.
const activeFacilitiesSQL = `
	SELECT fa.id, COALESCE(fr.document_ids, '{}')
	FROM "Facility" fa
	LEFT JOIN shiftcast.facility_requirements fr ON fr.facility_id = fa.id
	WHERE fa.is_active
	ORDER BY fa.id`

// digestOpeningsSQL reads the openings of professions $1 by transactions at
// or after $2 of shifts starting after $3. Openings are exactly the open
// shifts (see migration 00011), so the shifts' rows are not read.
const digestOpeningsSQL = `
	SELECT opened_xid::text::bigint, shift_id, facility_id, profession::text, start, "end"
	FROM shiftcast.shift_openings
	WHERE profession = ANY ($1::"Profession"[]) AND opened_xid >= $2::text::xid8 AND start > $3`

// staleOpeningsSQL reads, for each (facility $1, profession $2) pair, the
// openings by transactions from $3 (that pair's oldest watermark) up to,
// not including, $4, of shifts starting after $5.
const staleOpeningsSQL = `
	SELECT o.opened_xid::text::bigint, o.shift_id, o.facility_id, o.profession::text, o.start, o."end"
	FROM unnest($1::int[], $2::text[], $3::text[]) AS q(facility_id, profession, xmin)
	JOIN shiftcast.shift_openings o
	  ON o.profession = q.profession::"Profession" AND o.facility_id = q.facility_id
	 AND o.opened_xid >= q.xmin::xid8 AND o.opened_xid < $4::text::xid8
	WHERE o.start > $5`

// freshShiftsSQL counts the open future shifts of each (facility,
// profession) pair given and lists the first $4 of each, soonest first, in
// one pass over each pair's open shifts (the count is taken before the
// limit).
const freshShiftsSQL = `
	SELECT p.facility_id, p.profession, COALESCE(s.total, 0), s.id, s.start, s."end"
	FROM unnest($1::int[], $2::text[]) AS p(facility_id, profession)
	LEFT JOIN LATERAL (
		SELECT id, start, "end", count(*) OVER () AS total FROM "Shift"
		WHERE facility_id = p.facility_id AND profession = p.profession::"Profession"
		  AND NOT is_deleted AND worker_id IS NULL AND start > $3
		ORDER BY start, id
		LIMIT $4
	) s ON true`

func digestTx(ctx context.Context, tx pgx.Tx, ids []int64, now time.Time, k int, lease time.Duration, enqueue func(ctx context.Context, tx pgx.Tx, notificationID string) error) (map[int64]DigestResult, error) {
	// Three round trips, each a pipeline of the statements that need
	// nothing from one another (who, then what is new, then the records):
	// under load every round trip waits on a busy database and a busy
	// client, so their number, not the statements', bounds a batch.
	b := &pgx.Batch{}
	b.Queue(digestWorkersSQL, ids)
	b.Queue(activeFacilitiesSQL)
	br := tx.SendBatch(ctx, b)
	workers, missing, err := readDigestWorkers(br.Query())
	var active []domain.FacilityRequirements
	if err == nil {
		active, err = readActiveFacilities(br.Query())
	}
	if err := errors.Join(err, br.Close()); err != nil {
		return nil, err
	}
	plans := make([]domain.DigestPlan, len(workers))
	var (
		fresh    []domain.FacilityProfession
		seenPair = map[domain.FacilityProfession]bool{}
		reading  []int // the workers that read openings
		xmins    []uint64
	)
	for i := range workers {
		w := &workers[i]
		plans[i] = domain.PlanDigest(w, active)
		for _, f := range plans[i].Fresh {
			fp := domain.FacilityProfession{FacilityID: f, Profession: w.Profession}
			if !seenPair[fp] {
				seenPair[fp] = true
				fresh = append(fresh, fp)
			}
		}
		if w.Snapshot != nil && len(plans[i].Eligible) > len(plans[i].Fresh) {
			reading = append(reading, i)
			xmins = append(xmins, w.Snapshot.Xmin)
		}
	}
	builder := &domain.DigestBuilder{K: k}
	b = &pgx.Batch{}
	var openings *openingsReader
	if len(reading) > 0 {
		// Nine workers in ten share one range read, from the oldest of
		// their watermarks; the older ones' earlier openings are read by
		// facility, only where they are eligible.
		slices.Sort(xmins)
		split := xmins[len(xmins)/10]
		var (
			profs []string
			older = map[domain.FacilityProfession]uint64{}
		)
		for _, i := range reading {
			w := &workers[i]
			if !slices.Contains(profs, string(w.Profession)) {
				profs = append(profs, string(w.Profession))
			}
			if w.Snapshot.Xmin >= split {
				continue
			}
			for _, f := range plans[i].Eligible {
				if _, isFresh := slices.BinarySearch(plans[i].Fresh, f); isFresh {
					continue // counted whole
				}
				fp := domain.FacilityProfession{FacilityID: f, Profession: w.Profession}
				if x, ok := older[fp]; !ok || w.Snapshot.Xmin < x {
					older[fp] = w.Snapshot.Xmin
				}
			}
		}
		openings = queueOpenings(b, profs, split, older, now)
	}
	if len(fresh) > 0 {
		facs, profs := pairColumns(fresh)
		b.Queue(freshShiftsSQL, facs, profs, now, k)
	}
	if b.Len() > 0 {
		br := tx.SendBatch(ctx, b)
		if openings != nil {
			builder.Openings, err = openings.read(br)
		}
		if err == nil && len(fresh) > 0 {
			builder.Open, err = readFreshShifts(br.Query())
		}
		if err := errors.Join(err, br.Close()); err != nil {
			return nil, err
		}
	}

	out := make(map[int64]DigestResult, len(ids))
	for _, id := range missing {
		out[id] = DigestResult{WorkerID: id, Err: domain.Errorf(domain.ENOTFOUND, "worker %d has no notification state", id)}
	}
	var (
		stateIDs        = make([]int64, len(workers))
		stateFacs       = make([]string, len(workers))
		newIDs          []int64
		newCounts       []int64
		newBodies       [][]byte
		notificationIDs []uuid.UUID
		digests         = map[int64]domain.Digest{}
		facilities      []byte
	)
	for i := range workers {
		w := &workers[i]
		stateIDs[i] = w.ID
		facilities = appendIntArray(facilities[:0], plans[i].Eligible)
		stateFacs[i] = string(facilities)
		d := builder.Build(w, plans[i])
		out[w.ID] = DigestResult{WorkerID: w.ID}
		if d.Count == 0 {
			continue
		}
		body, err := json.Marshal(d.Shifts)
		if err != nil {
			return nil, err
		}
		digests[w.ID] = d
		// Time-ordered ids (UUIDv7): the primary key grows at its end, as
		// a serial would, instead of at a random leaf of an index as large
		// as the notification history.
		nid, err := uuid.NewV7()
		if err != nil {
			return nil, fmt.Errorf("notification id: %w", err)
		}
		newIDs, newCounts, newBodies, notificationIDs = append(newIDs, w.ID), append(newCounts, int64(d.Count)), append(newBodies, body), append(notificationIDs, nid)
	}
	if len(stateIDs) == 0 {
		return out, nil
	}
	b = &pgx.Batch{}
	// The new watermark: what was eligible and visible in this very
	// transaction's snapshot.
	b.Queue(`
		UPDATE shiftcast.worker_notify_state st
		SET facilities = u.facilities::int[], snapshot = pg_current_snapshot(), notified_at = now()
		FROM unnest($1::int[], $2::text[]) AS u(worker_id, facilities)
		WHERE st.worker_id = u.worker_id`, stateIDs, stateFacs)
	if len(newIDs) > 0 {
		b.Queue(`
			INSERT INTO shiftcast.notifications (id, worker_id, count, shifts, lease_until)
			SELECT u.id, u.worker_id, u.count, u.shifts,
			       CASE WHEN $4::bigint > 0 THEN now() + $4::bigint * interval '1 microsecond' END
			FROM unnest($5::uuid[], $1::int[], $2::int[], $3::jsonb[]) AS u(id, worker_id, count, shifts)
			RETURNING id::text, worker_id, created_at`, newIDs, newCounts, newBodies, lease.Microseconds(), notificationIDs)
	}
	br = tx.SendBatch(ctx, b)
	_, err = br.Exec()
	var recorded []*domain.Notification
	if err == nil && len(newIDs) > 0 {
		var (
			rows    pgx.Rows
			nid     string
			wid     int64
			created time.Time
		)
		if rows, err = br.Query(); err == nil {
			_, err = pgx.ForEachRow(rows, []any{&nid, &wid, &created}, func() error {
				d := digests[wid]
				n := &domain.Notification{ID: nid, Type: domain.NotificationTypeShiftsAvailable, WorkerID: wid,
					Count: d.Count, Shifts: d.Shifts, CreatedAt: created.UTC()}
				out[wid] = DigestResult{WorkerID: wid, Notification: n}
				recorded = append(recorded, n)
				return nil
			})
		}
	}
	if err := errors.Join(err, br.Close()); err != nil {
		return nil, err
	}
	if enqueue != nil {
		for _, n := range recorded {
			if err := enqueue(ctx, tx, n.ID); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// readDigestWorkers reads digestWorkersSQL's rows: the workers that have
// notification state, and the ids of the others, missing.
func readDigestWorkers(rows pgx.Rows, err error) (workers []domain.DigestWorker, missing []int64, _ error) {
	if err != nil {
		return nil, nil, err
	}
	var (
		id               int64
		hasState, isAct  bool
		prof             string
		docs, facilities []int64
		snapshot         pgtype.Text
		reset            pgtype.Int8
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &hasState, &prof, &isAct, &docs, &facilities, &snapshot, &reset}, func() error {
		if !hasState {
			missing = append(missing, id)
			return nil
		}
		w := domain.DigestWorker{ID: id, Profession: internProfession(prof), Active: isAct,
			Documents: slices.Clone(docs), Facilities: slices.Clone(facilities)}
		slices.Sort(w.Facilities)
		if snapshot.Valid {
			snap, err := domain.ParseSnapshot(snapshot.String)
			if err != nil {
				return err
			}
			w.Snapshot = &snap
		}
		if reset.Valid && (w.Snapshot == nil || !w.Snapshot.Visible(uint64(reset.Int64))) {
			// Deactivated since the last push: the worker knows nothing.
			w.Facilities, w.Snapshot = nil, nil
		}
		workers = append(workers, w)
		return nil
	})
	return workers, missing, err
}

// readActiveFacilities reads activeFacilitiesSQL's rows.
func readActiveFacilities(rows pgx.Rows, err error) ([]domain.FacilityRequirements, error) {
	if err != nil {
		return nil, err
	}
	var (
		out []domain.FacilityRequirements
		id  int64
		req []int64
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &req}, func() error {
		out = append(out, domain.FacilityRequirements{ID: id, Required: slices.Clone(req)})
		return nil
	})
	return out, err
}

// digestOpenings reads, per profession in (start, id) order, the openings
// of professions profs from transaction split on, and those of the pairs
// in older from each one's xmin up to split.
// openingsReader reads the openings queueOpenings queued.
type openingsReader struct{ stale bool }

// queueOpenings queues the reads of the openings of professions profs by
// transactions from split on and, for each pair in older, of that pair's
// openings from its xmin up to split: all of shifts starting after now.
func queueOpenings(b *pgx.Batch, profs []string, split uint64, older map[domain.FacilityProfession]uint64, now time.Time) *openingsReader {
	b.Queue(digestOpeningsSQL, profs, strconv.FormatUint(split, 10), now)
	if len(older) == 0 {
		return &openingsReader{}
	}
	pairs := make([]domain.FacilityProfession, 0, len(older))
	xmins := make([]string, 0, len(older))
	for fp, x := range older {
		pairs, xmins = append(pairs, fp), append(xmins, strconv.FormatUint(x, 10))
	}
	facs, ps := pairColumns(pairs)
	b.Queue(staleOpeningsSQL, facs, ps, xmins, strconv.FormatUint(split, 10), now)
	return &openingsReader{stale: true}
}

// read returns the openings by profession, each list in shift order.
func (r *openingsReader) read(br pgx.BatchResults) (map[domain.Profession][]domain.Opening, error) {
	out := map[domain.Profession][]domain.Opening{}
	var (
		xid        int64
		o          domain.NotificationShift
		prof       string
		start, end time.Time
	)
	scan := []any{&xid, &o.ID, &o.FacilityID, &prof, &start, &end}
	add := func() error {
		o.Profession, o.Start, o.End = internProfession(prof), start.UTC(), end.UTC()
		out[o.Profession] = append(out[o.Profession], domain.Opening{XID: uint64(xid), Shift: o})
		return nil
	}
	reads := 1
	if r.stale {
		reads = 2
	}
	for range reads {
		rows, err := br.Query()
		if err != nil {
			return nil, err
		}
		if _, err := pgx.ForEachRow(rows, scan, add); err != nil {
			return nil, err
		}
	}
	for _, list := range out {
		slices.SortFunc(list, func(a, b domain.Opening) int { return domain.CompareShifts(a.Shift, b.Shift) })
	}
	return out, nil
}

// readFreshShifts reads freshShiftsSQL's rows: each pair's open shifts.
func readFreshShifts(rows pgx.Rows, err error) (map[domain.FacilityProfession]domain.OpenShifts, error) {
	if err != nil {
		return nil, err
	}
	out := map[domain.FacilityProfession]domain.OpenShifts{}
	var (
		fac        int64
		prof       string
		total      int64
		id         pgtype.Int8
		start, end pgtype.Timestamp
	)
	_, err = pgx.ForEachRow(rows, []any{&fac, &prof, &total, &id, &start, &end}, func() error {
		key := domain.FacilityProfession{FacilityID: fac, Profession: internProfession(prof)}
		o := out[key]
		o.Count = int(total)
		if id.Valid {
			o.First = append(o.First, domain.NotificationShift{ID: id.Int64, FacilityID: fac, Profession: key.Profession,
				Start: start.Time, End: end.Time})
		}
		out[key] = o
		return nil
	})
	return out, err
}

// pairColumns splits (facility, profession) pairs into the two arrays a
// statement unnests.
func pairColumns(pairs []domain.FacilityProfession) (facilities []int64, professions []string) {
	facilities = make([]int64, len(pairs))
	professions = make([]string, len(pairs))
	for i, p := range pairs {
		facilities[i], professions[i] = p.FacilityID, string(p.Profession)
	}
	return facilities, professions
}

// appendIntArray appends ids as a PostgreSQL array literal, "{1,2,3}".
func appendIntArray(dst []byte, ids []int64) []byte {
	dst = append(dst, '{')
	for i, id := range ids {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = strconv.AppendInt(dst, id, 10)
	}
	return append(dst, '}')
}

// asyncTx runs fn in a transaction that commits without waiting for the
// WAL flush. It is safe for job bookkeeping because River then records the
// job's completion in a later, synchronous commit, and the WAL is flushed in
// order: a crash loses this transaction only together with that completion,
// and the retried job redoes it (or, for a notify job's delivery, the lease
// sweep does). Digests and event application never use it: a
// notification's delivery, and an event's ack, must follow a durable
// commit.
func (s *Store) asyncTx(ctx context.Context, opts pgx.TxOptions, fn func(tx pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, opts, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
			return err
		}
		return fn(tx)
	})
}

// Delivery channels, as recorded on a notification.
const (
	ChannelWebhook = "webhook"
	ChannelNATS    = "nats"
)

// Delivery is a notification and which channels already have it.
type Delivery struct {
	Notification domain.Notification
	Status       string
	Delivered    map[string]bool
}

// Notification loads a notification for delivery.
func (s *Store) Notification(ctx context.Context, id string) (Delivery, error) {
	d := Delivery{Delivered: map[string]bool{}}
	var (
		shifts          []byte
		webhook, natsAt *time.Time
		n               = &d.Notification
	)
	err := s.pool.QueryRow(ctx, `
		SELECT id::text, worker_id, count, shifts, created_at, status, webhook_delivered_at, nats_delivered_at
		FROM shiftcast.notifications WHERE id = $1`, id).
		Scan(&n.ID, &n.WorkerID, &n.Count, &shifts, &n.CreatedAt, &d.Status, &webhook, &natsAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, domain.Errorf(domain.ENOTFOUND, "notification %s not found", id)
	}
	if err != nil {
		return d, classify("load notification "+id, err)
	}
	if err := json.Unmarshal(shifts, &n.Shifts); err != nil {
		return d, fmt.Errorf("decode notification %s shifts: %w", id, err)
	}
	n.Type, n.CreatedAt = domain.NotificationTypeShiftsAvailable, n.CreatedAt.UTC()
	d.Delivered[ChannelWebhook], d.Delivered[ChannelNATS] = webhook != nil, natsAt != nil
	return d, nil
}

// ChannelDelivery is one notification received on one channel.
type ChannelDelivery struct {
	NotificationID, Channel string
}

// MarkChannelsDelivered records at once that each channel of ds has its
// notification, so that a crash while another channel is being tried
// cannot make a retry send this one again. A notification named twice is
// recorded as two calls would record it.
func (s *Store) MarkChannelsDelivered(ctx context.Context, ds []ChannelDelivery) error {
	ids := make([]string, len(ds))
	webhook := make([]bool, len(ds))
	for i, d := range ds {
		ids[i] = d.NotificationID
		switch d.Channel {
		case ChannelWebhook:
			webhook[i] = true
		case ChannelNATS:
		default:
			return fmt.Errorf("unknown channel %q", d.Channel)
		}
	}
	err := s.asyncTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		for _, round := range rounds(ids) {
			_, err := tx.Exec(ctx, `
				UPDATE shiftcast.notifications t SET
					webhook_delivered_at = CASE WHEN u.webhook THEN COALESCE(t.webhook_delivered_at, now()) ELSE t.webhook_delivered_at END,
					nats_delivered_at = CASE WHEN u.webhook THEN t.nats_delivered_at ELSE COALESCE(t.nats_delivered_at, now()) END
				FROM unnest($1::uuid[], $2::bool[]) AS u(id, webhook)
				WHERE t.id = u.id`, pick(ids, round), pick(webhook, round))
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return classify(fmt.Sprintf("mark %d notification channels delivered", len(ds)), err)
	}
	return nil
}

// DeliveryOutcome is one delivery attempt of a notification: the channels
// wanted, those that have it now, the attempt's failure (nil if none) and
// whether it was the last attempt.
type DeliveryOutcome struct {
	NotificationID  string
	Want, Delivered []string
	Err             error
	Final           bool
}

// FinishDelivery records one delivery attempt in one statement: the
// channels that now have the notification (so a retry never sends them
// again), the attempt count and last error, and the status: delivered when
// every wanted channel has it, failed when final is set and one does not,
// pending otherwise. A crash between a channel's success and this write
// only means that channel is sent again, with the same id.
func (s *Store) FinishDelivery(ctx context.Context, id string, want, delivered []string, lastErr error, final bool) (string, error) {
	statuses, err := s.FinishDeliveries(ctx, []DeliveryOutcome{{NotificationID: id, Want: want, Delivered: delivered, Err: lastErr, Final: final}})
	if err != nil {
		return "", err
	}
	return statuses[0], nil
}

// FinishDeliveries records many delivery attempts, as FinishDelivery does,
// in one statement, and returns each notification's status in order.
func (s *Store) FinishDeliveries(ctx context.Context, outcomes []DeliveryOutcome) ([]string, error) {
	n := len(outcomes)
	var (
		ids                    = make([]string, n)
		errs                   = make([]string, n)
		wantHook, wantNATS     = make([]bool, n), make([]bool, n)
		final, gotHook, gotNAT = make([]bool, n), make([]bool, n), make([]bool, n)
	)
	for i, o := range outcomes {
		ids[i], final[i] = o.NotificationID, o.Final
		if o.Err != nil {
			errs[i] = o.Err.Error()
		}
		wantHook[i], wantNATS[i] = slices.Contains(o.Want, ChannelWebhook), slices.Contains(o.Want, ChannelNATS)
		gotHook[i], gotNAT[i] = slices.Contains(o.Delivered, ChannelWebhook), slices.Contains(o.Delivered, ChannelNATS)
	}
	out := make([]string, n)
	err := s.asyncTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		for _, round := range rounds(ids) {
			rows, err := tx.Query(ctx, `
		WITH n AS (
			SELECT t.id, u.err, u.want_webhook, u.want_nats, u.final,
			       CASE WHEN u.got_webhook THEN COALESCE(t.webhook_delivered_at, now()) ELSE t.webhook_delivered_at END AS webhook_at,
			       CASE WHEN u.got_nats THEN COALESCE(t.nats_delivered_at, now()) ELSE t.nats_delivered_at END AS nats_at
			FROM unnest($1::uuid[], $2::text[], $3::bool[], $4::bool[], $5::bool[], $6::bool[], $7::bool[])
			     AS u(id, err, want_webhook, want_nats, final, got_webhook, got_nats)
			JOIN shiftcast.notifications t ON t.id = u.id
		)
		UPDATE shiftcast.notifications t SET
			webhook_delivered_at = n.webhook_at,
			nats_delivered_at = n.nats_at,
			attempts = t.attempts + 1,
			last_error = NULLIF(n.err, ''),
			status = CASE
				WHEN (n.want_webhook AND n.webhook_at IS NULL) OR (n.want_nats AND n.nats_at IS NULL)
				THEN CASE WHEN n.final THEN 'failed' ELSE 'pending' END
				ELSE 'delivered' END,
			delivered_at = CASE
				WHEN (n.want_webhook AND n.webhook_at IS NULL) OR (n.want_nats AND n.nats_at IS NULL) THEN NULL
				ELSE now() END,
			lease_until = CASE
				WHEN (n.want_webhook AND n.webhook_at IS NULL) OR (n.want_nats AND n.nats_at IS NULL)
				THEN CASE WHEN n.final THEN NULL ELSE t.lease_until END
				ELSE NULL END
		FROM n WHERE t.id = n.id
		RETURNING t.id::text, t.status`, pick(ids, round), pick(errs, round), pick(wantHook, round),
				pick(wantNATS, round), pick(final, round), pick(gotHook, round), pick(gotNAT, round))
			if err != nil {
				return err
			}
			status := map[string]string{}
			var id, st string
			if _, err := pgx.ForEachRow(rows, []any{&id, &st}, func() error {
				status[id] = st
				return nil
			}); err != nil {
				return err
			}
			for _, i := range round {
				if out[i] = status[ids[i]]; out[i] == "" {
					// Rolls back the others: a caller retrying never
					// counts an attempt twice.
					return domain.Errorf(domain.ENOTFOUND, "notification %s not found", ids[i])
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, classify(fmt.Sprintf("finish delivery of %d notifications", n), err)
	}
	return out, nil
}

// rounds splits the indexes of ids so that no id repeats within a round:
// the k-th occurrence of an id goes to round k. An UPDATE ... FROM changes a
// row once however many input rows match it, so repeats need a statement
// of their own, after the first, as separate calls would have run.
func rounds(ids []string) [][]int {
	var (
		out  [][]int
		seen = map[string]int{}
	)
	for i, id := range ids {
		k := seen[id]
		seen[id] = k + 1
		if k == len(out) {
			out = append(out, nil)
		}
		out[k] = append(out[k], i)
	}
	return out
}

// pick returns the elements of xs at indexes idx.
func pick[T any](xs []T, idx []int) []T {
	out := make([]T, len(idx))
	for j, i := range idx {
		out[j] = xs[i]
	}
	return out
}

// HandOffDelivery passes a leased notification to a retrying job: in one
// transaction it clears the lease and calls enqueue. It does nothing, and
// returns false, when the lease is already gone (an expired lease swept, or
// the notification finished).
func (s *Store) HandOffDelivery(ctx context.Context, id string, enqueue func(ctx context.Context, tx pgx.Tx) error) (bool, error) {
	handed := false
	err := s.asyncTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		handed = false
		tag, err := tx.Exec(ctx, `
			UPDATE shiftcast.notifications SET lease_until = NULL
			WHERE id = $1 AND status = 'pending' AND lease_until IS NOT NULL`, id)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		handed = true
		return enqueue(ctx, tx)
	})
	if err != nil {
		return false, classify("hand off delivery of notification "+id, err)
	}
	return handed, nil
}

// ExpiredLeases finds up to limit pending notifications whose builder's
// lease ran out (it died or hung mid-delivery), clears their leases and
// calls enqueue with their ids, in one transaction. It returns how many it
// handed over.
func (s *Store) ExpiredLeases(ctx context.Context, limit int, enqueue func(ctx context.Context, tx pgx.Tx, ids []string) error) (int, error) {
	var ids []string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			UPDATE shiftcast.notifications SET lease_until = NULL
			WHERE id IN (
				SELECT id FROM shiftcast.notifications
				WHERE lease_until < now() AND status = 'pending'
				ORDER BY lease_until
				LIMIT $1
				FOR UPDATE SKIP LOCKED)
			RETURNING id::text`, limit)
		if err != nil {
			return err
		}
		if ids, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil || len(ids) == 0 {
			return err
		}
		return enqueue(ctx, tx, ids)
	})
	if err != nil {
		return 0, classify("sweep expired notification leases", err)
	}
	return len(ids), nil
}

// Prune deletes what the pipeline no longer needs: openings of shifts that
// have started (they can never be announced again) and event-id records
// older than keepEvents (redeliveries that old are not expected; the entity
// positions still stop them from undoing newer state).
func (s *Store) Prune(ctx context.Context, now time.Time, keepEvents time.Duration) (openings, events int64, err error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM shiftcast.shift_openings WHERE start <= $1`, now.UTC())
	if err != nil {
		return 0, 0, classify("prune shift openings", err)
	}
	openings = tag.RowsAffected()
	tag, err = s.pool.Exec(ctx, `DELETE FROM shiftcast.applied_events WHERE applied_at < $1`, now.Add(-keepEvents))
	if err != nil {
		return openings, 0, classify("prune applied events", err)
	}
	return openings, tag.RowsAffected(), nil
}

// baselineSQL is every worker's eligible facilities now, set-based (one
// pass over workers against the few active facilities' requirement arrays),
// with the current snapshot: the state of a worker who has been told
// everything there is.
const baselineSQL = `
	SELECT w.id,
	       COALESCE(array_agg(f.id ORDER BY f.id) FILTER (WHERE f.id IS NOT NULL), '{}'),
	       pg_current_snapshot(), now()
	FROM "Worker" w
	LEFT JOIN shiftcast.worker_documents wd ON wd.worker_id = w.id
	LEFT JOIN (
		SELECT fa.id, COALESCE(fr.document_ids, '{}') AS req
		FROM "Facility" fa
		LEFT JOIN shiftcast.facility_requirements fr ON fr.facility_id = fa.id
		WHERE fa.is_active
	) f ON w.is_active AND f.req <@ COALESCE(wd.document_ids, '{}')
	GROUP BY w.id`

// ResetPipelineState makes the current marketplace data the pipeline's
// baseline after a bulk load: every worker's notifications start from what
// they are eligible for now (seeded shifts are not news), and the event
// bookkeeping of data that was replaced (ids, positions, openings) is
// dropped, as is the notification history of its workers, since a
// reloaded dataset reuses entity ids.
func (s *Store) ResetPipelineState(ctx context.Context) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
			TRUNCATE shiftcast.applied_events, shiftcast.entity_positions, shiftcast.shift_openings, shiftcast.fanout_marks, shiftcast.worker_resets, shiftcast.notifications;
			-- Every schedule moves a window back and counts as started, so
			-- that the present window schedules its workers again: what was
			-- scheduled before the reset is no news after it, and its River
			-- job may be gone (the benchmarks truncate river_job after a
			-- reset) or done. One still waiting is the same job for River
			-- (unique while in flight): inserted again, it is skipped.
			UPDATE shiftcast.notify_scheduled SET notify_window = notify_window - 1, built_window = notify_window - 1;
			UPDATE shiftcast.monthly_stats SET notifications = 0 WHERE notifications <> 0;
			DELETE FROM shiftcast.worker_notify_state ns WHERE NOT EXISTS (SELECT 1 FROM "Worker" w WHERE w.id = ns.worker_id);
			INSERT INTO shiftcast.worker_notify_state (worker_id, facilities, snapshot, notified_at)
			`+baselineSQL+`
			ON CONFLICT (worker_id) DO UPDATE SET
				facilities = EXCLUDED.facilities, snapshot = EXCLUDED.snapshot, notified_at = EXCLUDED.notified_at`)
		return err
	})
	return classify("reset pipeline state", err)
}
