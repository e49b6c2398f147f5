package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shiftcast/shiftcast/domain"
)

// ErrMissingDependency means an event refers to an entity shiftcast has not
// seen yet (a claim before its shift's creation, a document added to an
// unknown worker). Events are not ordered across subjects, so this is
// usually transient: the consumer redelivers later, and dead-letters only
// once its delivery attempts are spent.
var ErrMissingDependency = errors.New("missing dependency")

// Outcomes of applying an event.
const (
	OutcomeApplied   = "applied"
	OutcomeDuplicate = "duplicate"
	OutcomeStale     = "stale"
)

// Fanout is a (facility, profession) whose open shifts may have become
// available to workers: a fan-out job expands it into workers' notify jobs.
type Fanout = domain.FacilityProfession

// Effect is what applying an event did and who may have new shifts: the
// consumer turns NotifyWorkers and Fanouts into River jobs in the same
// transaction.
type Effect struct {
	Outcome       string
	NotifyWorkers []int64
	Fanouts       []Fanout
}

// EnqueueFunc inserts the jobs carrying an effect, inside the transaction
// that applied it, so the change and its consequences commit together.
type EnqueueFunc func(ctx context.Context, tx pgx.Tx, eff Effect) error

// EventAt is an event and the stream sequence it was delivered at.
type EventAt struct {
	Event domain.Event
	Seq   uint64
}

// Applied is one event's outcome in ApplyEvents: its effect, or the error
// that kept it from being applied (ErrMissingDependency when it came
// before an event it depends on).
type Applied struct {
	Effect Effect
	Err    error
}

// ApplyEvent applies ev, delivered at stream sequence seq, in one
// transaction: it records the event id (a repeat is a no-op, however late),
// advances the entity's position (an older event than the last applied one
// is a no-op), changes the marketplace tables, and calls enqueue with the
// effect before committing. now decides which shifts are in the future.
func (s *Store) ApplyEvent(ctx context.Context, ev domain.Event, seq uint64, now time.Time, enqueue EnqueueFunc) (Effect, error) {
	res, err := s.ApplyEvents(ctx, []EventAt{{Event: ev, Seq: seq}}, now, enqueue)
	if err != nil {
		return Effect{}, err
	}
	return res[0].Effect, res[0].Err
}

// MaxApplyBatch bounds ApplyEvents' batches: each savepoint with writes
// takes a subtransaction id, and PostgreSQL tracks 64 per transaction
// before every snapshot taken meanwhile gets slower.
const MaxApplyBatch = 64

// ApplyEvents applies events as ApplyEvent does, in order, all in one
// transaction: each inside a savepoint, so that one that cannot be applied
// (reported in its result) leaves the others applied, and enqueue is called
// once with the merged effects of those applied. Many events then share
// one transaction's begin, job insert and durable commit (one WAL flush),
// and, unless one of them must be undone, one round trip (see applyRun).
// A batch that deadlocks with another is applied again, up to three times.
// One that fails otherwise, while the database is reachable, is applied
// again an event at a time, so that an event whose consequences cannot be
// recorded (its jobs refused, say) fails alone instead of taking the
// others with it. An error fails the whole batch: nothing is applied.
func (s *Store) ApplyEvents(ctx context.Context, evs []EventAt, now time.Time, enqueue EnqueueFunc) ([]Applied, error) {
	if len(evs) > MaxApplyBatch {
		return nil, fmt.Errorf("apply %d events: at most %d per batch", len(evs), MaxApplyBatch)
	}
	res, err := s.applyBatch(ctx, evs, now, enqueue)
	if err == nil || len(evs) == 1 || domain.ErrorCode(err) == domain.EUNAVAILABLE || ctx.Err() != nil {
		return res, err
	}
	res = make([]Applied, len(evs))
	for i := range evs {
		one, err := s.applyBatch(ctx, evs[i:i+1], now, enqueue)
		if domain.ErrorCode(err) == domain.EUNAVAILABLE {
			return nil, err
		}
		if err != nil {
			res[i] = Applied{Err: err}
			continue
		}
		res[i] = one[0]
	}
	return res, nil
}

// applyBatch runs applyEvents, again when it conflicts with another
// transaction (up to three times in all).
func (s *Store) applyBatch(ctx context.Context, evs []EventAt, now time.Time, enqueue EnqueueFunc) ([]Applied, error) {
	for attempt := 1; ; attempt++ {
		res, err := s.applyEvents(ctx, evs, now, enqueue)
		if attempt < 3 && isConflict(err) {
			continue
		}
		if err != nil {
			return nil, classify(fmt.Sprintf("apply %d events", len(evs)), err)
		}
		return res, nil
	}
}

// isConflict reports a deadlock or serialization failure: the transaction
// was rolled back and may simply be run again.
func isConflict(err error) bool {
	code := sqlState(err)
	return code == "40P01" || code == "40001"
}

// isSerializationFailure reports a REPEATABLE READ transaction that met a
// concurrent update.
func isSerializationFailure(err error) bool { return sqlState(err) == "40001" }

// sqlState is err's PostgreSQL error code, "" when it has none.
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// errBatch marks an error that broke the batch's transaction rather than
// one event.
type errBatch struct{ err error }

func (e errBatch) Error() string { return e.err.Error() }
func (e errBatch) Unwrap() error { return e.err }

func (s *Store) applyEvents(ctx context.Context, evs []EventAt, now time.Time, enqueue EnqueueFunc) ([]Applied, error) {
	out := make([]Applied, len(evs))
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for next := 0; next < len(evs); {
			var err error
			if next, err = applyRun(ctx, tx, evs, next, now, out); err != nil {
				return err
			}
		}
		var all Effect
		for _, a := range out {
			if a.Err == nil {
				all.merge(a.Effect)
			}
		}
		if enqueue != nil && (len(all.NotifyWorkers) > 0 || len(all.Fanouts) > 0) {
			if err := enqueue(ctx, tx, all); err != nil {
				return fmt.Errorf("enqueue jobs: %w", err)
			}
		}
		return nil
	})
	return out, err
}

// applyRun sends the events from evs[from] on in one round trip, each
// inside a savepoint of its own: its id record, its position and its own
// statements, queued before knowing whether it is a repeat or stale. It
// reads their outcomes into out and returns len(evs), or stops at the first
// event that must be undone (a repeat, a stale event, one that failed): it
// rolls back to that event's savepoint, which undoes the events sent after
// it too, settles that event and returns the index of the next one, for the
// caller to send again. Those cases are rare, so a batch usually takes one
// round trip whatever its size: under load, when every round trip waits
// for a busy database, that is what keeps events flowing.
//
// Savepoints are not released: releasing frees nothing (the subtransaction
// stays in the transaction until commit) and would cost a statement each.
func applyRun(ctx context.Context, tx pgx.Tx, evs []EventAt, from int, now time.Time, out []Applied) (int, error) {
	b := &pgx.Batch{}
	type queued struct {
		positioned bool
		read       func(br pgx.BatchResults, eff *Effect) error
	}
	qs := make([]queued, 0, len(evs)-from)
	for i := from; i < len(evs); i++ {
		ev, seq := evs[i].Event, evs[i].Seq
		b.Queue("SAVEPOINT " + savepoint(i))
		b.Queue(recordEventSQL, ev.ID, ev.Type, int64(seq), ev.Time, OutcomeApplied)
		// Creations only insert what is absent, so they can never undo a
		// newer state, and they must not move the position either: a claim
		// retried because it arrived before its shift's creation carries an
		// older stream sequence than that creation and must still apply.
		q := queued{positioned: !isCreation(ev.Type)}
		if q.positioned {
			kind, id1, id2 := entityOf(ev)
			b.Queue(`
				INSERT INTO shiftcast.entity_positions (kind, id1, id2, seq) VALUES ($1, $2, $3, $4)
				ON CONFLICT (kind, id1, id2) DO UPDATE SET seq = EXCLUDED.seq
				WHERE entity_positions.seq < EXCLUDED.seq
				RETURNING true`, kind, id1, id2, int64(seq))
		}
		q.read = queueApply(b, ev, now)
		qs = append(qs, q)
	}
	br := tx.SendBatch(ctx, b)
	for k, q := range qs {
		i := from + k
		ev, seq := evs[i].Event, evs[i].Seq
		if _, err := br.Exec(); err != nil { // the savepoint
			_ = br.Close()
			return 0, errBatch{err}
		}
		tag, err := br.Exec()
		newer := false
		if err == nil && q.positioned {
			err = br.QueryRow().Scan(&newer)
			if errors.Is(err, pgx.ErrNoRows) {
				err = nil
			}
		}
		var eff Effect
		switch {
		case err != nil:
		case tag.RowsAffected() == 0:
			eff.Outcome = OutcomeDuplicate
		case q.positioned && !newer:
			eff.Outcome = OutcomeStale
		case q.read == nil:
			err = fmt.Errorf("no handler for event data %T", ev.Data)
		default:
			eff.Outcome = OutcomeApplied
			err = q.read(br, &eff)
		}
		if err == nil && eff.Outcome == OutcomeApplied {
			out[i] = Applied{Effect: eff}
			continue
		}
		// Everything sent from this event on is undone: this event is
		// settled here and the caller sends the rest again.
		_ = br.Close()
		if err != nil {
			if isUnavailable(err) || isConflict(err) || ctx.Err() != nil {
				return 0, errBatch{err}
			}
			if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "23503" { // foreign_key_violation
				err = fmt.Errorf("%w: %s", ErrMissingDependency, pgErr.Detail)
			}
			out[i] = Applied{Err: fmt.Errorf("apply %s %s: %w", ev.Type, ev.ID, err)}
		} else {
			out[i] = Applied{Effect: eff}
		}
		// (Not in a batch with what follows: in a transaction a failed
		// statement aborted, PostgreSQL refuses to prepare anything else.)
		if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT "+savepoint(i)); err != nil {
			return 0, errBatch{err}
		}
		if eff.Outcome == OutcomeStale {
			// A stale event is recorded, as such, so that a repeat of it
			// is known for one.
			if _, err := tx.Exec(ctx, recordEventSQL, ev.ID, ev.Type, int64(seq), ev.Time, OutcomeStale); err != nil {
				return 0, errBatch{err}
			}
		}
		return i + 1, nil
	}
	if err := br.Close(); err != nil {
		return 0, errBatch{err}
	}
	return len(evs), nil
}

// savepoint names event i's savepoint in its batch: each its own, so that
// undoing one event leaves those before it applied.
func savepoint(i int) string { return "apply_event_" + strconv.Itoa(i) }

// merge adds other's workers and fan-outs to e's, without repeats (River
// cannot insert one unique job twice in a statement). The outcome is the
// first one merged.
func (e *Effect) merge(other Effect) {
	if e.Outcome == "" {
		e.Outcome = other.Outcome
	}
	for _, w := range other.NotifyWorkers {
		if !slices.Contains(e.NotifyWorkers, w) {
			e.NotifyWorkers = append(e.NotifyWorkers, w)
		}
	}
	for _, f := range other.Fanouts {
		if !slices.Contains(e.Fanouts, f) {
			e.Fanouts = append(e.Fanouts, f)
		}
	}
}

// recordEventSQL records event $1 with its outcome; a repeat changes
// nothing (and reports no row).
const recordEventSQL = `
	INSERT INTO shiftcast.applied_events (event_id, event_type, stream_seq, event_time, outcome)
	VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING`

// queueApply queues the statements applying ev to the marketplace tables
// and returns what reads their results and fills in who may have new
// shifts; nil for an event it does not know. Its statements run whether or
// not the event turns out to be a repeat or stale (applyRun then undoes
// them), and all are sent before any result is read, so what one sends
// cannot depend on what an earlier one returned: an entity that is not
// there yet is found out by the reader, as ErrMissingDependency.
//
// Events carry the state they set, so applying one whose state is already
// there (a shared database, a replay after the id record was pruned)
// changes nothing; who to notify is decided regardless, because the notify
// job, not the event, decides what is actually new.
func queueApply(b *pgx.Batch, ev domain.Event, now time.Time) func(br pgx.BatchResults, eff *Effect) error {
	switch d := ev.Data.(type) {
	case *domain.ShiftCreated:
		b.Queue(`
			INSERT INTO "Shift" (id, start, "end", profession, is_deleted, facility_id, worker_id)
			VALUES ($1, $2, $3, $4, false, $5, NULL) ON CONFLICT (id) DO NOTHING`,
			d.ID, d.Start, d.End, string(d.Profession), d.FacilityID)
		return queueOpened(b, d.ID, now, nil)

	case *domain.ShiftClaimed:
		b.Queue(`UPDATE "Shift" SET worker_id = $2 WHERE id = $1`, d.ShiftID, d.WorkerID)
		b.Queue(closedSQL, d.ShiftID)
		return execAll(2, rowOrMissing("shift", d.ShiftID), Effect{})

	case *domain.ShiftRef:
		if ev.Type == domain.TypeShiftReleased {
			// A released shift is open again, in this transaction.
			b.Queue(`UPDATE "Shift" SET worker_id = NULL WHERE id = $1`, d.ShiftID)
			return queueOpened(b, d.ShiftID, now, rowOrMissing("shift", d.ShiftID))
		}
		b.Queue(`UPDATE "Shift" SET is_deleted = true WHERE id = $1`, d.ShiftID)
		b.Queue(closedSQL, d.ShiftID)
		return execAll(2, rowOrMissing("shift", d.ShiftID), Effect{})

	case *domain.WorkerCreated:
		b.Queue(`
			INSERT INTO "Worker" (id, name, is_active, profession) VALUES ($1, $2, $3, $4)
			ON CONFLICT (id) DO NOTHING`, d.ID, d.Name, d.IsActive, string(d.Profession))
		var eff Effect
		if d.IsActive {
			eff.NotifyWorkers = []int64{d.ID}
		}
		return execAll(1, nil, eff)

	case *domain.WorkerRef:
		b.Queue(`UPDATE "Worker" SET is_active = $2 WHERE id = $1`, d.WorkerID, ev.Type == domain.TypeWorkerActivated)
		if ev.Type == domain.TypeWorkerActivated {
			return execAll(1, rowOrMissing("worker", d.WorkerID), Effect{NotifyWorkers: []int64{d.WorkerID}})
		}
		// A deactivated worker has left every shift's eligible set: when
		// they come back, everything they can take is news to them.
		// (Recorded apart from the notification state, which the digests
		// update: see migration 00013.)
		b.Queue(`
			INSERT INTO shiftcast.worker_resets (worker_id, reset_xid) VALUES ($1, pg_current_xact_id())
			ON CONFLICT (worker_id) DO UPDATE SET reset_xid = EXCLUDED.reset_xid`, d.WorkerID)
		return execAll(2, rowOrMissing("worker", d.WorkerID), Effect{})

	case *domain.WorkerDocument:
		if ev.Type == domain.TypeWorkerDocumentAdded {
			queueAddPair(b, `"DocumentWorker"`, "worker_id", d.WorkerID, d.DocumentID)
			return execAll(1, nil, Effect{NotifyWorkers: []int64{d.WorkerID}})
		}
		return queueRemovePair(b, `"DocumentWorker"`, "worker_id", `"Worker"`, "worker", d.WorkerID, d.DocumentID, Effect{})

	case *domain.FacilityCreated:
		b.Queue(`
			INSERT INTO "Facility" (id, name, is_active) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`,
			d.ID, d.Name, d.IsActive)
		return execAll(1, nil, Effect{})

	case *domain.FacilityRef:
		active := ev.Type == domain.TypeFacilityActivated
		b.Queue(`UPDATE "Facility" SET is_active = $2 WHERE id = $1`, d.FacilityID, active)
		var eff Effect
		if active {
			eff.Fanouts = allProfessions(d.FacilityID)
		}
		return execAll(1, rowOrMissing("facility", d.FacilityID), eff)

	case *domain.FacilityRequirement:
		if ev.Type == domain.TypeFacilityRequirementAdded {
			queueAddPair(b, `"FacilityRequirement"`, "facility_id", d.FacilityID, d.DocumentID)
			return execAll(1, nil, Effect{})
		}
		return queueRemovePair(b, `"FacilityRequirement"`, "facility_id", `"Facility"`, "facility", d.FacilityID, d.DocumentID,
			Effect{Fanouts: allProfessions(d.FacilityID)})

	case *domain.DocumentCreated:
		b.Queue(`
			INSERT INTO "Document" (id, name, is_active) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`,
			d.ID, d.Name, d.IsActive)
		return execAll(1, nil, Effect{})
	}
	return nil
}

// closedSQL forgets shift $1's opening: it is claimed or deleted.
const closedSQL = `DELETE FROM shiftcast.shift_openings WHERE shift_id = $1`

// execAll reads the results of the n statements an event queued: the
// first one's through first (when set), the others' for their errors only.
// The event's effect is then eff.
func execAll(n int, first func(pgconn.CommandTag, error) error, eff Effect) func(br pgx.BatchResults, out *Effect) error {
	return func(br pgx.BatchResults, out *Effect) error {
		err := readFirst(br, first)
		for i := 1; i < n && err == nil; i++ {
			_, err = br.Exec()
		}
		if err != nil {
			return err
		}
		out.merge(eff)
		return nil
	}
}

// queueAddPair queues the insert of an (owner, document) pair into table,
// unless it is there already.
func queueAddPair(b *pgx.Batch, table, ownerColumn string, owner, doc int64) {
	b.Queue(`
		INSERT INTO `+table+` (`+ownerColumn+`, document_id)
		SELECT $1, $2 WHERE NOT EXISTS (
			SELECT 1 FROM `+table+` WHERE `+ownerColumn+` = $1 AND document_id = $2)`, owner, doc)
}

// queueRemovePair queues the removal of an (owner, document) pair's rows
// from table (all of them: the tables allow repeats) and a check that the
// owner exists in ownerTable. Removing what is not there is a no-op, unless
// the owner itself is unknown, which means its creation has not arrived
// yet. The event's effect is then eff.
func queueRemovePair(b *pgx.Batch, table, ownerColumn, ownerTable, what string, owner, doc int64, eff Effect) func(br pgx.BatchResults, out *Effect) error {
	b.Queue(`DELETE FROM `+table+` WHERE `+ownerColumn+` = $1 AND document_id = $2`, owner, doc)
	b.Queue(`SELECT EXISTS (SELECT 1 FROM `+ownerTable+` WHERE id = $1)`, owner)
	return func(br pgx.BatchResults, out *Effect) error {
		tag, err := br.Exec()
		if err != nil {
			return err
		}
		var ok bool
		if err := br.QueryRow().Scan(&ok); err != nil {
			return err
		}
		if tag.RowsAffected() == 0 && !ok {
			return missing("%s %d", what, owner)
		}
		out.merge(eff)
		return nil
	}
}

func isCreation(typ string) bool {
	switch typ {
	case domain.TypeShiftCreated, domain.TypeWorkerCreated, domain.TypeFacilityCreated, domain.TypeDocumentCreated:
		return true
	}
	return false
}

// entityOf names the entity whose position an event advances. Pairs
// (a worker's document, a facility's requirement) are entities of their own.
func entityOf(ev domain.Event) (kind string, id1, id2 int64) {
	switch d := ev.Data.(type) {
	case *domain.ShiftCreated:
		return "shift", d.ID, 0
	case *domain.ShiftClaimed:
		return "shift", d.ShiftID, 0
	case *domain.ShiftRef:
		return "shift", d.ShiftID, 0
	case *domain.WorkerCreated:
		return "worker", d.ID, 0
	case *domain.WorkerRef:
		return "worker", d.WorkerID, 0
	case *domain.WorkerDocument:
		return "worker_document", d.WorkerID, d.DocumentID
	case *domain.FacilityCreated:
		return "facility", d.ID, 0
	case *domain.FacilityRef:
		return "facility", d.FacilityID, 0
	case *domain.FacilityRequirement:
		return "facility_requirement", d.FacilityID, d.DocumentID
	case *domain.DocumentCreated:
		return "document", d.ID, 0
	}
	panic(fmt.Sprintf("store: no entity for event data %T", ev.Data))
}

// rowOrMissing reads an UPDATE's outcome for entity what/id: its error, or
// a missing dependency when it changed no row.
func rowOrMissing(what string, id int64) func(pgconn.CommandTag, error) error {
	return func(tag pgconn.CommandTag, err error) error {
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return missing("%s %d", what, id)
		}
		return nil
	}
}

func missing(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMissingDependency, fmt.Sprintf(format, args...))
}

// allProfessions fans a facility-wide change out to every profession.
func allProfessions(facilityID int64) []Fanout {
	out := make([]Fanout, len(domain.Professions))
	for i, p := range domain.Professions {
		out[i] = Fanout{FacilityID: facilityID, Profession: p}
	}
	return out
}

// openedSQL records shift $1's opening if it is open, and returns its
// facility, profession and whether it starts after $2.
const openedSQL = `
	WITH s AS (
		SELECT id, facility_id, profession, start, "end" FROM "Shift"
		WHERE id = $1 AND NOT is_deleted AND worker_id IS NULL
	), o AS (
		INSERT INTO shiftcast.shift_openings (shift_id, opened_xid, start, "end", facility_id, profession)
		SELECT id, pg_current_xact_id(), start, "end", facility_id, profession FROM s
		-- An existing row means the shift has been open all along (claims
		-- and deletions remove it): keep its opening, or a republished
		-- event would make the shift news again.
		ON CONFLICT (shift_id) DO NOTHING
	)
	SELECT facility_id, profession::text, start > $2 FROM s`

// queueOpened queues openedSQL for shift id after the statement that
// changed the shift, and returns the reader of both: the change's result
// through first (when set), then the opening.
func queueOpened(b *pgx.Batch, id int64, now time.Time, first func(pgconn.CommandTag, error) error) func(br pgx.BatchResults, eff *Effect) error {
	b.Queue(openedSQL, id, now.UTC())
	return func(br pgx.BatchResults, eff *Effect) error {
		if err := readFirst(br, first); err != nil {
			return err
		}
		return readOpened(br.QueryRow(), eff)
	}
}

// readFirst reads the next statement's result, through first when set.
func readFirst(br pgx.BatchResults, first func(pgconn.CommandTag, error) error) error {
	tag, err := br.Exec()
	if first != nil {
		err = first(tag, err)
	}
	return err
}

// readOpened reads openedSQL's row into eff: a future open shift is fanned
// out; no row (not open) is nothing to do.
func readOpened(row pgx.Row, eff *Effect) error {
	var (
		facilityID int64
		profession string
		future     bool
	)
	err := row.Scan(&facilityID, &profession, &future)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	if future {
		eff.Fanouts = append(eff.Fanouts, Fanout{FacilityID: facilityID, Profession: domain.Profession(profession)})
	}
	return nil
}
