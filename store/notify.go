package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/shiftcast/shiftcast/domain"
)

// fanoutSQL selects every worker who can take open shifts of profession $2
// at facility $1: active, of that profession, holding every required
// document. One set-based query (array containment, GIN-indexed) whatever
// the workforce's size.
const fanoutSQL = `
	WITH f AS (
		SELECT COALESCE(fr.document_ids, '{}') AS req
		FROM "Facility" fa
		LEFT JOIN shiftcast.facility_requirements fr ON fr.facility_id = fa.id
		WHERE fa.id = $1 AND fa.is_active
	)
	SELECT w.id
	FROM f
	JOIN "Worker" w ON w.is_active AND w.profession = $2::"Profession"
	LEFT JOIN shiftcast.worker_documents wd ON wd.worker_id = w.id
	WHERE f.req = '{}' OR wd.document_ids @> f.req`

// FanoutWorkers returns, in id order, every worker who can take open shifts
// of the given profession at the facility.
func (s *Store) FanoutWorkers(ctx context.Context, facilityID int64, profession domain.Profession) ([]int64, error) {
	what := fmt.Sprintf("fan out facility %d %s", facilityID, profession)
	rows, err := s.pool.Query(ctx, fanoutSQL+` ORDER BY w.id`, facilityID, string(profession))
	if err != nil {
		return nil, classify(what, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, classify(what, err)
	}
	return ids, nil
}

// FanoutNotify schedules the digests of FanoutWorkers(facilityID,
// profession) for window: in one transaction it marks, in
// shiftcast.notify_scheduled, those not yet marked for window (or a later one) and
// calls enqueue with their ids, in id order, to insert their notify jobs.
// Workers another fan-out of the window already scheduled are skipped, so
// overlapping fan-outs insert each worker's job once. It returns how many
// it scheduled.
func (s *Store) FanoutNotify(ctx context.Context, facilityID int64, profession domain.Profession, window int64, enqueue func(ctx context.Context, tx pgx.Tx, workerIDs []int64) error) (int, error) {
	var ids []int64
	err := s.asyncTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		// Inserting in id order keeps concurrent fan-outs of one profession
		// from deadlocking on each other's workers. A row already at this
		// window (or a later one) is left alone and not returned.
		rows, err := tx.Query(ctx, `
			WITH e AS (`+fanoutSQL+`)
			INSERT INTO shiftcast.notify_scheduled AS ns (worker_id, notify_window)
			SELECT id, $3 FROM e ORDER BY id
			ON CONFLICT (worker_id) DO UPDATE SET notify_window = EXCLUDED.notify_window
			WHERE ns.notify_window < EXCLUDED.notify_window
			RETURNING ns.worker_id`, facilityID, string(profession), window)
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
		return 0, classify(fmt.Sprintf("fan out facility %d %s", facilityID, profession), err)
	}
	return len(ids), nil
}

// digestSQL finds the shifts new to worker $1: eligible now, starting after
// $2, and either at a facility the worker was not eligible for at its last
// push or opened by a transaction that push's snapshot did not see. The
// first branch only runs for newly eligible facilities; the second starts
// from openings at or after the snapshot's xmin, so both stay small. It
// always returns one row or more: the worker's eligible facilities now (for
// the new watermark), then the first $3 new shifts and their total count.
const digestSQL = `
WITH st AS (
    SELECT facilities, snapshot FROM shiftcast.worker_notify_state WHERE worker_id = $1
), w AS (
    SELECT w.profession, COALESCE(wd.document_ids, '{}') AS docs
    FROM "Worker" w
    LEFT JOIN shiftcast.worker_documents wd ON wd.worker_id = w.id
    WHERE w.id = $1 AND w.is_active
), ef AS (
    SELECT COALESCE(array_agg(fa.id ORDER BY fa.id), '{}') AS ids
    FROM w, "Facility" fa
    LEFT JOIN shiftcast.facility_requirements fr ON fr.facility_id = fa.id
    WHERE fa.is_active AND COALESCE(fr.document_ids, '{}') <@ w.docs
), recent AS MATERIALIZED (
    -- Openings the last push did not see. Materialized so the plan starts
    -- from these few rows and looks shifts up by key, instead of scanning
    -- every open shift at the worker's facilities. Without a snapshot the
    -- worker knows nothing and the "fresh" branch already covers all.
    -- Only openings the digest may announce (the worker's profession, a
    -- facility eligible now) are read, off the (profession, facility_id,
    -- opened_xid) index.
    SELECT o.shift_id
    FROM st, w, ef, shiftcast.shift_openings o
    WHERE st.snapshot IS NOT NULL
      AND o.profession = w.profession
      AND o.facility_id = ANY (ef.ids)
      AND o.opened_xid >= pg_snapshot_xmin(st.snapshot)
      AND NOT pg_visible_in_snapshot(o.opened_xid, st.snapshot)
      AND o.start > $2
), fresh AS (
    SELECT ARRAY(SELECT unnest(ef.ids) EXCEPT SELECT unnest(st.facilities)) AS ids FROM ef, st
), cand AS (
    SELECT s.id, s.facility_id, s.start, s."end"
    FROM w, fresh, "Shift" s
    WHERE s.facility_id = ANY (fresh.ids) AND s.profession = w.profession
      AND NOT s.is_deleted AND s.worker_id IS NULL AND s.start > $2
    UNION
    SELECT s.id, s.facility_id, s.start, s."end"
    FROM w, ef, recent o
    JOIN "Shift" s ON s.id = o.shift_id
    WHERE s.facility_id = ANY (ef.ids) AND s.profession = w.profession
      AND NOT s.is_deleted AND s.worker_id IS NULL AND s.start > $2
)
SELECT ef.ids, page.id, page.facility_id, page.profession, page.start, page."end", page.total
FROM ef
LEFT JOIN LATERAL (
    SELECT c.id, c.facility_id, w.profession::text AS profession, c.start, c."end", count(*) OVER () AS total
    FROM cand c, w
    ORDER BY c.start, c.id
    LIMIT $3
) page ON true`

// BuildDigest builds worker workerID's digest from current state: the
// shifts that became available to them since their last push, at most k
// listed (soonest first) and all counted. When there are any, it records the
// notification and, if enqueue is set, calls it with the notification's id
// in the same transaction. With lease > 0 the notification is committed
// leased to the caller for that long (it delivers it itself; see
// HandOffDelivery and ExpiredLeases). Either way it moves the worker's
// watermark to now, so nothing is announced twice. It returns nil when there
// is nothing new.
func (s *Store) BuildDigest(ctx context.Context, workerID int64, now time.Time, k int, lease time.Duration, enqueue func(ctx context.Context, tx pgx.Tx, notificationID string) error) (*domain.Notification, error) {
	var n *domain.Notification
	// REPEATABLE READ: the candidates and the snapshot stored as the new
	// watermark must be one and the same view of the data. Two digests of
	// one worker racing make one fail to serialize; River retries it.
	err := s.asyncTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		n = nil
		rows, err := tx.Query(ctx, digestSQL, workerID, now.UTC(), k)
		if err != nil {
			return err
		}
		var (
			shifts     []domain.NotificationShift
			total      int
			facilities []int32
			id, fac    pgtype.Int4
			prof       pgtype.Text
			start, end pgtype.Timestamp
			count      pgtype.Int8
		)
		_, err = pgx.ForEachRow(rows, []any{&facilities, &id, &fac, &prof, &start, &end, &count}, func() error {
			if id.Valid {
				shifts = append(shifts, domain.NotificationShift{
					ID: int64(id.Int32), FacilityID: int64(fac.Int32), Profession: internProfession(prof.String),
					Start: start.Time, End: end.Time,
				})
				total = int(count.Int64)
			}
			return nil
		})
		if err != nil {
			return err
		}
		// The new watermark: what was eligible and visible in this very
		// transaction's snapshot.
		tag, err := tx.Exec(ctx, `
			UPDATE shiftcast.worker_notify_state
			SET facilities = $2, snapshot = pg_current_snapshot(), notified_at = now()
			WHERE worker_id = $1`, workerID, facilities)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return domain.Errorf(domain.ENOTFOUND, "worker %d has no notification state", workerID)
		}
		if total == 0 {
			return nil
		}
		body, err := json.Marshal(shifts)
		if err != nil {
			return err
		}
		n = &domain.Notification{Type: domain.NotificationTypeShiftsAvailable, WorkerID: workerID, Count: total, Shifts: shifts}
		if err := tx.QueryRow(ctx, `
			INSERT INTO shiftcast.notifications (worker_id, count, shifts, lease_until)
			VALUES ($1, $2, $3, CASE WHEN $4::bigint > 0 THEN now() + $4::bigint * interval '1 microsecond' END)
			RETURNING id::text, created_at`, workerID, total, body, lease.Microseconds()).Scan(&n.ID, &n.CreatedAt); err != nil {
			return err
		}
		n.CreatedAt = n.CreatedAt.UTC()
		if enqueue == nil {
			return nil
		}
		return enqueue(ctx, tx, n.ID)
	})
	if err != nil {
		return nil, classify(fmt.Sprintf("build digest for worker %d", workerID), err)
	}
	return n, nil
}

// asyncTx runs fn in a transaction that commits without waiting for the
// WAL flush. It is safe for job bookkeeping because River then records the
// job's completion in a later, synchronous commit, and the WAL is flushed in
// order: a crash loses this transaction only together with that completion,
// and the retried job redoes it (or, for a notify job's delivery, the lease
// sweep does). Event application never uses it (its ack
// must follow a durable commit).
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

// MarkChannelDelivered records at once that channel has the notification,
// so that a crash while another channel is being tried cannot make a retry
// send this one again.
func (s *Store) MarkChannelDelivered(ctx context.Context, id, channel string) error {
	col := map[string]string{ChannelWebhook: "webhook_delivered_at", ChannelNATS: "nats_delivered_at"}[channel]
	if col == "" {
		return fmt.Errorf("unknown channel %q", channel)
	}
	err := s.asyncTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, fmt.Sprintf(`
			UPDATE shiftcast.notifications SET %[1]s = COALESCE(%[1]s, now()) WHERE id = $1`, col), id)
		return err
	})
	if err != nil {
		return classify("mark notification "+id+" delivered on "+channel, err)
	}
	return nil
}

// FinishDelivery records one delivery attempt in one statement: the
// channels that now have the notification (so a retry never sends them
// again), the attempt count and last error, and the status: delivered when
// every wanted channel has it, failed when final is set and one does not,
// pending otherwise. A crash between a channel's success and this write
// only means that channel is sent again, with the same id.
func (s *Store) FinishDelivery(ctx context.Context, id string, want, delivered []string, lastErr error, final bool) (string, error) {
	errText := ""
	if lastErr != nil {
		errText = lastErr.Error()
	}
	var status string
	err := s.asyncTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `
		WITH n AS (
			SELECT id,
			       CASE WHEN $6 THEN COALESCE(webhook_delivered_at, now()) ELSE webhook_delivered_at END AS webhook_at,
			       CASE WHEN $7 THEN COALESCE(nats_delivered_at, now()) ELSE nats_delivered_at END AS nats_at
			FROM shiftcast.notifications WHERE id = $1
		)
		UPDATE shiftcast.notifications t SET
			webhook_delivered_at = n.webhook_at,
			nats_delivered_at = n.nats_at,
			attempts = t.attempts + 1,
			last_error = NULLIF($2, ''),
			status = CASE
				WHEN ($3 AND n.webhook_at IS NULL) OR ($4 AND n.nats_at IS NULL)
				THEN CASE WHEN $5 THEN 'failed' ELSE 'pending' END
				ELSE 'delivered' END,
			delivered_at = CASE
				WHEN ($3 AND n.webhook_at IS NULL) OR ($4 AND n.nats_at IS NULL) THEN NULL
				ELSE now() END,
			lease_until = CASE
				WHEN ($3 AND n.webhook_at IS NULL) OR ($4 AND n.nats_at IS NULL)
				THEN CASE WHEN $5 THEN NULL ELSE t.lease_until END
				ELSE NULL END
		FROM n WHERE t.id = n.id
		RETURNING t.status`, id, errText, contains(want, ChannelWebhook), contains(want, ChannelNATS), final,
			contains(delivered, ChannelWebhook), contains(delivered, ChannelNATS)).Scan(&status)
	})
	if err != nil {
		return "", classify("finish delivery of notification "+id, err)
	}
	return status, nil
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

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
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
// dropped, since a reloaded dataset reuses entity ids.
func (s *Store) ResetPipelineState(ctx context.Context) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
			TRUNCATE shiftcast.applied_events, shiftcast.entity_positions, shiftcast.shift_openings, shiftcast.notify_scheduled;
			DELETE FROM shiftcast.worker_notify_state ns WHERE NOT EXISTS (SELECT 1 FROM "Worker" w WHERE w.id = ns.worker_id);
			INSERT INTO shiftcast.worker_notify_state (worker_id, facilities, snapshot, notified_at)
			`+baselineSQL+`
			ON CONFLICT (worker_id) DO UPDATE SET
				facilities = EXCLUDED.facilities, snapshot = EXCLUDED.snapshot, notified_at = EXCLUDED.notified_at`)
		return err
	})
	return classify("reset pipeline state", err)
}
