-- The monthly report: per (month, worker), shifts claimed, hours claimed and
-- notifications delivered. Aggregating "Shift" on every request cannot
-- answer a year of all workers in milliseconds, so the figures are kept in
-- a rollup maintained by statement-level triggers: each statement adds its
-- rows' deltas (new rows minus old rows) in one upsert, so bulk loads cost
-- one aggregate and concurrent writers only add to rows (commutative,
-- locked in key order).
--
-- A shift counts for the month of its start (UTC) while it is claimed and
-- not deleted; hours are end - start.

-- +goose Up
CREATE TABLE shiftcast.monthly_stats (
    month         DATE    NOT NULL,
    worker_id     INTEGER NOT NULL,
    shifts        BIGINT  NOT NULL DEFAULT 0,
    seconds       BIGINT  NOT NULL DEFAULT 0,
    notifications BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (month, worker_id)
);
CREATE INDEX monthly_stats_worker ON shiftcast.monthly_stats (worker_id, month);

-- +goose StatementBegin
CREATE FUNCTION shiftcast.shift_claims_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        UPDATE shiftcast.monthly_stats SET shifts = 0, seconds = 0 WHERE shifts <> 0 OR seconds <> 0;
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO shiftcast.monthly_stats AS m (month, worker_id, shifts, seconds)
        SELECT date_trunc('month', start)::date, worker_id, count(*), sum(extract(epoch FROM "end" - start))::bigint
        FROM new_rows WHERE worker_id IS NOT NULL AND NOT is_deleted
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (month, worker_id) DO UPDATE
        SET shifts = m.shifts + EXCLUDED.shifts, seconds = m.seconds + EXCLUDED.seconds;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO shiftcast.monthly_stats AS m (month, worker_id, shifts, seconds)
        SELECT date_trunc('month', start)::date, worker_id, -count(*), -sum(extract(epoch FROM "end" - start))::bigint
        FROM old_rows WHERE worker_id IS NOT NULL AND NOT is_deleted
        GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (month, worker_id) DO UPDATE
        SET shifts = m.shifts + EXCLUDED.shifts, seconds = m.seconds + EXCLUDED.seconds;
    ELSE
        INSERT INTO shiftcast.monthly_stats AS m (month, worker_id, shifts, seconds)
        SELECT month, worker_id, sum(n), sum(secs)
        FROM (
            SELECT date_trunc('month', start)::date AS month, worker_id, 1 AS n,
                   extract(epoch FROM "end" - start)::bigint AS secs
            FROM new_rows WHERE worker_id IS NOT NULL AND NOT is_deleted
            UNION ALL
            SELECT date_trunc('month', start)::date, worker_id, -1,
                   -extract(epoch FROM "end" - start)::bigint
            FROM old_rows WHERE worker_id IS NOT NULL AND NOT is_deleted
        ) d
        GROUP BY 1, 2
        HAVING sum(n) <> 0 OR sum(secs) <> 0
        ORDER BY 1, 2
        ON CONFLICT (month, worker_id) DO UPDATE
        SET shifts = m.shifts + EXCLUDED.shifts, seconds = m.seconds + EXCLUDED.seconds;
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd

CREATE TRIGGER shiftcast_shift_insert AFTER INSERT ON "Shift"
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION shiftcast.shift_claims_changed();
CREATE TRIGGER shiftcast_shift_update AFTER UPDATE ON "Shift"
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION shiftcast.shift_claims_changed();
CREATE TRIGGER shiftcast_shift_delete AFTER DELETE ON "Shift"
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION shiftcast.shift_claims_changed();
CREATE TRIGGER shiftcast_shift_truncate AFTER TRUNCATE ON "Shift"
    FOR EACH STATEMENT EXECUTE FUNCTION shiftcast.shift_claims_changed();

-- Notifications count in the month they were created (UTC) once delivered.
-- +goose StatementBegin
CREATE FUNCTION shiftcast.notification_delivered() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO shiftcast.monthly_stats AS m (month, worker_id, notifications)
    VALUES (date_trunc('month', NEW.created_at AT TIME ZONE 'UTC')::date, NEW.worker_id, 1)
    ON CONFLICT (month, worker_id) DO UPDATE SET notifications = m.notifications + 1;
    RETURN NULL;
END $$;
-- +goose StatementEnd

CREATE TRIGGER shiftcast_notification_delivered AFTER UPDATE OF status ON shiftcast.notifications
    FOR EACH ROW WHEN (NEW.status = 'delivered' AND OLD.status IS DISTINCT FROM 'delivered')
    EXECUTE FUNCTION shiftcast.notification_delivered();

-- Backfill from what is already there.
INSERT INTO shiftcast.monthly_stats (month, worker_id, shifts, seconds)
SELECT date_trunc('month', start)::date, worker_id, count(*), sum(extract(epoch FROM "end" - start))::bigint
FROM "Shift" WHERE worker_id IS NOT NULL AND NOT is_deleted
GROUP BY 1, 2;
INSERT INTO shiftcast.monthly_stats AS m (month, worker_id, notifications)
SELECT date_trunc('month', created_at AT TIME ZONE 'UTC')::date, worker_id, count(*)
FROM shiftcast.notifications WHERE status = 'delivered'
GROUP BY 1, 2
ON CONFLICT (month, worker_id) DO UPDATE SET notifications = m.notifications + EXCLUDED.notifications;

-- +goose Down
DROP TRIGGER IF EXISTS shiftcast_notification_delivered ON shiftcast.notifications;
DROP TRIGGER IF EXISTS shiftcast_shift_insert ON "Shift";
DROP TRIGGER IF EXISTS shiftcast_shift_update ON "Shift";
DROP TRIGGER IF EXISTS shiftcast_shift_delete ON "Shift";
DROP TRIGGER IF EXISTS shiftcast_shift_truncate ON "Shift";
DROP FUNCTION IF EXISTS shiftcast.notification_delivered();
DROP FUNCTION IF EXISTS shiftcast.shift_claims_changed();
DROP TABLE IF EXISTS shiftcast.monthly_stats;
