package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
// one transaction's begin, job insert and durable commit (one WAL flush).
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
		var all Effect
		for i, e := range evs {
			eff, err := applyOne(ctx, tx, e.Event, e.Seq, now)
			if be := (errBatch{}); errors.As(err, &be) {
				return be.err
			}
			out[i] = Applied{Effect: eff, Err: err}
			if err == nil {
				all.merge(eff)
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

// applyOne applies one event inside a savepoint of tx. An error of the
// event's own (a constraint, a missing dependency) rolls back to the
// savepoint and is returned as the event's; one that leaves the
// transaction unusable is returned as an errBatch.
func applyOne(ctx context.Context, tx pgx.Tx, ev domain.Event, seq uint64, now time.Time) (Effect, error) {
	eff, err := applyInTx(ctx, tx, ev, seq, now)
	if err == nil {
		return eff, nil
	}
	var be errBatch
	if errors.As(err, &be) || isUnavailable(err) || isConflict(err) || ctx.Err() != nil {
		return Effect{}, errBatch{err}
	}
	if err := rollbackEvent(ctx, tx); err != nil {
		return Effect{}, err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23503" { // foreign_key_violation
		err = fmt.Errorf("%w: %s", ErrMissingDependency, pgErr.Detail)
	}
	return Effect{}, fmt.Errorf("apply %s %s: %w", ev.Type, ev.ID, err)
}

// rollbackEvent undoes what the current event did, back to its savepoint.
func rollbackEvent(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT apply_event"); err != nil {
		return errBatch{err}
	}
	return nil
}

// applyInTx records the event id, advances the entity's position and
// applies the event, all in tx, inside a savepoint it opens.
//
// The savepoint, the id record and the position go in one round trip: the
// position is advanced before knowing whether the event is a repeat, and a
// repeat (rare) rolls back to the savepoint. Savepoints are not released:
// releasing costs a round trip and frees nothing (the subtransaction stays
// in the transaction until commit), and ROLLBACK TO names the latest one.
func applyInTx(ctx context.Context, tx pgx.Tx, ev domain.Event, seq uint64, now time.Time) (Effect, error) {
	var eff Effect
	b := &pgx.Batch{}
	b.Queue("SAVEPOINT apply_event")
	b.Queue(recordEventSQL, ev.ID, ev.Type, int64(seq), ev.Time, OutcomeApplied)
	// Creations only insert what is absent, so they can never undo a
	// newer state, and they must not move the position either: a claim
	// retried because it arrived before its shift's creation carries an
	// older stream sequence than that creation and must still apply.
	positioned := !isCreation(ev.Type)
	if positioned {
		kind, id1, id2 := entityOf(ev)
		b.Queue(`
			INSERT INTO shiftcast.entity_positions (kind, id1, id2, seq) VALUES ($1, $2, $3, $4)
			ON CONFLICT (kind, id1, id2) DO UPDATE SET seq = EXCLUDED.seq
			WHERE entity_positions.seq < EXCLUDED.seq
			RETURNING true`, kind, id1, id2, int64(seq))
	}
	// The most frequent events' own statements go in the same round trip,
	// before knowing whether the event is a repeat or stale: those rare
	// cases roll back to the savepoint.
	read := queueApply(b, ev, now)
	br := tx.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		return eff, errBatch{err}
	}
	tag, err := br.Exec()
	newer := false
	if err == nil && positioned {
		err = br.QueryRow().Scan(&newer)
		if errors.Is(err, pgx.ErrNoRows) {
			err = nil
		}
	}
	fresh := err == nil && tag.RowsAffected() == 1 && (!positioned || newer)
	if fresh && read != nil {
		err = read(br, &eff)
	}
	cerr := br.Close()
	if err == nil && fresh {
		err = cerr
	}
	if err != nil {
		return eff, err
	}
	// What the statements queued after the bookkeeping did (or failed to
	// do, cerr) does not count for a repeat or a stale event: undone.
	speculated := read != nil || newer
	switch {
	case tag.RowsAffected() == 0:
		eff.Outcome = OutcomeDuplicate
		if speculated {
			return eff, rollbackEvent(ctx, tx)
		}
		return eff, nil
	case positioned && !newer:
		eff.Outcome = OutcomeStale
		if read != nil {
			if err := rollbackEvent(ctx, tx); err != nil {
				return eff, err
			}
			_, err = tx.Exec(ctx, recordEventSQL, ev.ID, ev.Type, int64(seq), ev.Time, OutcomeStale)
			return eff, err
		}
		_, err = tx.Exec(ctx, `UPDATE shiftcast.applied_events SET outcome = 'stale' WHERE event_id = $1`, ev.ID)
		return eff, err
	}
	eff.Outcome = OutcomeApplied
	if read != nil {
		return eff, nil
	}
	return eff, apply(ctx, tx, ev, now, &eff)
}

// recordEventSQL records event $1 with its outcome; a repeat changes
// nothing (and reports no row).
const recordEventSQL = `
	INSERT INTO shiftcast.applied_events (event_id, event_type, stream_seq, event_time, outcome)
	VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING`

// queueApply queues the statements of the events applied in the same
// round trip as their bookkeeping (new and claimed shifts: most of them)
// and returns what reads their results into the effect; nil for the
// others, which apply runs statement by statement.
func queueApply(b *pgx.Batch, ev domain.Event, now time.Time) func(br pgx.BatchResults, eff *Effect) error {
	switch d := ev.Data.(type) {
	case *domain.ShiftCreated:
		b.Queue(`
			INSERT INTO "Shift" (id, start, "end", profession, is_deleted, facility_id, worker_id)
			VALUES ($1, $2, $3, $4, false, $5, NULL) ON CONFLICT (id) DO NOTHING`,
			d.ID, d.Start, d.End, string(d.Profession), d.FacilityID)
		b.Queue(openedSQL, d.ID, now.UTC())
		return func(br pgx.BatchResults, eff *Effect) error {
			if _, err := br.Exec(); err != nil {
				return err
			}
			return readOpened(br.QueryRow(), eff)
		}
	case *domain.ShiftClaimed:
		b.Queue(`UPDATE "Shift" SET worker_id = $2 WHERE id = $1`, d.ShiftID, d.WorkerID)
		b.Queue(`DELETE FROM shiftcast.shift_openings WHERE shift_id = $1`, d.ShiftID)
		return func(br pgx.BatchResults, _ *Effect) error {
			if err := rowOrMissing("shift", d.ShiftID)(br.Exec()); err != nil {
				return err
			}
			_, err := br.Exec()
			return err
		}
	}
	return nil
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

// updateOrMissing runs an UPDATE of entity what/id; no row updated means
// the entity's creation has not arrived yet.
func updateOrMissing(ctx context.Context, tx pgx.Tx, what string, id int64, sql string, args ...any) error {
	return rowOrMissing(what, id)(tx.Exec(ctx, sql, args...))
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

// apply changes the marketplace tables for one event (new and claimed
// shifts: see queueApply) and fills in who may have new shifts. Events
// carry the state they set, so applying one whose
// state is already there (a shared database, a replay after the id record
// was pruned) changes nothing; who to notify is decided regardless, because
// the notify job, not the event, decides what is actually new.
func apply(ctx context.Context, tx pgx.Tx, ev domain.Event, now time.Time, eff *Effect) error {
	switch d := ev.Data.(type) {
	case *domain.ShiftRef:
		if ev.Type == domain.TypeShiftReleased {
			if err := updateOrMissing(ctx, tx, "shift", d.ShiftID, `UPDATE "Shift" SET worker_id = NULL WHERE id = $1`, d.ShiftID); err != nil {
				return err
			}
			return opened(ctx, tx, d.ShiftID, now, eff)
		}
		if err := updateOrMissing(ctx, tx, "shift", d.ShiftID, `UPDATE "Shift" SET is_deleted = true WHERE id = $1`, d.ShiftID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM shiftcast.shift_openings WHERE shift_id = $1`, d.ShiftID)
		return err

	case *domain.WorkerCreated:
		if _, err := tx.Exec(ctx, `
			INSERT INTO "Worker" (id, name, is_active, profession) VALUES ($1, $2, $3, $4)
			ON CONFLICT (id) DO NOTHING`, d.ID, d.Name, d.IsActive, string(d.Profession)); err != nil {
			return err
		}
		if d.IsActive {
			eff.NotifyWorkers = append(eff.NotifyWorkers, d.ID)
		}
		return nil

	case *domain.WorkerRef:
		active := ev.Type == domain.TypeWorkerActivated
		if err := updateOrMissing(ctx, tx, "worker", d.WorkerID, `UPDATE "Worker" SET is_active = $2 WHERE id = $1`, d.WorkerID, active); err != nil {
			return err
		}
		if active {
			eff.NotifyWorkers = append(eff.NotifyWorkers, d.WorkerID)
			return nil
		}
		// A deactivated worker has left every shift's eligible set: when
		// they come back, everything they can take is news to them.
		_, err := tx.Exec(ctx, `
			UPDATE shiftcast.worker_notify_state SET facilities = '{}', snapshot = NULL WHERE worker_id = $1`, d.WorkerID)
		return err

	case *domain.WorkerDocument:
		if ev.Type == domain.TypeWorkerDocumentAdded {
			if _, err := tx.Exec(ctx, `
				INSERT INTO "DocumentWorker" (worker_id, document_id)
				SELECT $1, $2 WHERE NOT EXISTS (
					SELECT 1 FROM "DocumentWorker" WHERE worker_id = $1 AND document_id = $2)`,
				d.WorkerID, d.DocumentID); err != nil {
				return err
			}
			eff.NotifyWorkers = append(eff.NotifyWorkers, d.WorkerID)
			return nil
		}
		return deleteOrMissing(ctx, tx,
			`DELETE FROM "DocumentWorker" WHERE worker_id = $1 AND document_id = $2`,
			`SELECT EXISTS (SELECT 1 FROM "Worker" WHERE id = $1)`, "worker", d.WorkerID, d.DocumentID)

	case *domain.FacilityCreated:
		_, err := tx.Exec(ctx, `
			INSERT INTO "Facility" (id, name, is_active) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`,
			d.ID, d.Name, d.IsActive)
		return err

	case *domain.FacilityRef:
		active := ev.Type == domain.TypeFacilityActivated
		if err := updateOrMissing(ctx, tx, "facility", d.FacilityID, `UPDATE "Facility" SET is_active = $2 WHERE id = $1`, d.FacilityID, active); err != nil {
			return err
		}
		if active {
			eff.Fanouts = append(eff.Fanouts, allProfessions(d.FacilityID)...)
		}
		return nil

	case *domain.FacilityRequirement:
		if ev.Type == domain.TypeFacilityRequirementAdded {
			_, err := tx.Exec(ctx, `
				INSERT INTO "FacilityRequirement" (facility_id, document_id)
				SELECT $1, $2 WHERE NOT EXISTS (
					SELECT 1 FROM "FacilityRequirement" WHERE facility_id = $1 AND document_id = $2)`,
				d.FacilityID, d.DocumentID)
			return err
		}
		if err := deleteOrMissing(ctx, tx,
			`DELETE FROM "FacilityRequirement" WHERE facility_id = $1 AND document_id = $2`,
			`SELECT EXISTS (SELECT 1 FROM "Facility" WHERE id = $1)`, "facility", d.FacilityID, d.DocumentID); err != nil {
			return err
		}
		eff.Fanouts = append(eff.Fanouts, allProfessions(d.FacilityID)...)
		return nil

	case *domain.DocumentCreated:
		_, err := tx.Exec(ctx, `
			INSERT INTO "Document" (id, name, is_active) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`,
			d.ID, d.Name, d.IsActive)
		return err
	}
	return fmt.Errorf("no handler for event data %T", ev.Data)
}

// deleteOrMissing removes a pair's rows (all of them: the tables allow
// repeats). Removing what is not there is a no-op, unless the owner itself
// is unknown, which means its creation has not arrived yet.
func deleteOrMissing(ctx context.Context, tx pgx.Tx, del, exists, what string, owner, doc int64) error {
	tag, err := tx.Exec(ctx, del, owner, doc)
	if err != nil || tag.RowsAffected() > 0 {
		return err
	}
	var ok bool
	if err := tx.QueryRow(ctx, exists, owner).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return missing("%s %d", what, owner)
	}
	return nil
}

// opened records that shift id (is now) open, in this transaction, and fans
// it out when it is in the future. A shift that is deleted or claimed after
// all (a shared database ahead of the event) is not open: nothing to do.
func opened(ctx context.Context, tx pgx.Tx, id int64, now time.Time, eff *Effect) error {
	return readOpened(tx.QueryRow(ctx, openedSQL, id, now.UTC()), eff)
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
