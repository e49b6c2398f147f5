-- The event pipeline's bookkeeping.
--
-- applied_events    idempotency by event id, kept beyond JetStream's
--                   duplicate window (pruned after a retention period).
-- entity_positions  per entity, the stream sequence of the last event
--                   applied, so a stale event never undoes a newer one.
-- shift_openings    for shifts opened (created, released) through events:
--                   the transaction that opened them, as xid8.
-- worker_notify_state
--                   per worker, what its last push took into account: the
--                   facilities it was eligible for and the snapshot it was
--                   built in. A shift is new to the worker when it is
--                   eligible now and either its facility was not in that
--                   set or its opening transaction was not visible in that
--                   snapshot. Storage is one row per worker plus one per
--                   event-opened future shift, instead of one per
--                   (worker, shift) pair.
-- notifications     every digest built, with its delivery state.

-- +goose Up
CREATE TABLE shiftcast.applied_events (
    event_id   TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    stream_seq BIGINT NOT NULL,
    event_time TIMESTAMPTZ NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    outcome    TEXT NOT NULL
);
CREATE INDEX applied_events_applied_at ON shiftcast.applied_events (applied_at);

CREATE TABLE shiftcast.entity_positions (
    kind TEXT   NOT NULL,
    id1  BIGINT NOT NULL,
    id2  BIGINT NOT NULL DEFAULT 0,
    seq  BIGINT NOT NULL,
    PRIMARY KEY (kind, id1, id2)
);

CREATE TABLE shiftcast.shift_openings (
    shift_id   INTEGER PRIMARY KEY,
    opened_xid xid8 NOT NULL,
    start      TIMESTAMP NOT NULL
);
CREATE INDEX shift_openings_opened_xid ON shiftcast.shift_openings (opened_xid);
CREATE INDEX shift_openings_start ON shiftcast.shift_openings (start);

CREATE TABLE shiftcast.worker_notify_state (
    worker_id   INTEGER PRIMARY KEY,
    facilities  INTEGER[] NOT NULL DEFAULT '{}',
    snapshot    pg_snapshot,
    notified_at TIMESTAMPTZ
);

CREATE TABLE shiftcast.notifications (
    id                   UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    worker_id            INTEGER NOT NULL,
    count                INTEGER NOT NULL,
    shifts               JSONB NOT NULL,
    status               TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts             INTEGER NOT NULL DEFAULT 0,
    last_error           TEXT,
    webhook_delivered_at TIMESTAMPTZ,
    nats_delivered_at    TIMESTAMPTZ,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at         TIMESTAMPTZ
);
CREATE INDEX notifications_worker ON shiftcast.notifications (worker_id, created_at DESC, id DESC);
CREATE INDEX notifications_undelivered ON shiftcast.notifications (created_at) WHERE status <> 'delivered';

-- Open shifts of a facility, for fan-out and "newly eligible facility" digests.
CREATE INDEX IF NOT EXISTS shift_open_facility_start
    ON "Shift" (facility_id, profession, start) INCLUDE (id, "end")
    WHERE NOT is_deleted AND worker_id IS NULL;


-- A worker who appears knows nothing yet: the first digest lists every
-- eligible shift. Bulk loads re-baseline afterwards (store.ResetNotifyBaseline).
-- +goose StatementBegin
CREATE FUNCTION shiftcast.worker_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO shiftcast.worker_notify_state (worker_id)
    SELECT id FROM new_rows
    ON CONFLICT (worker_id) DO NOTHING;
    RETURN NULL;
END $$;
-- +goose StatementEnd

CREATE TRIGGER shiftcast_worker_insert AFTER INSERT ON "Worker"
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION shiftcast.worker_inserted();

-- Workers already present are baselined: what they are eligible for now is
-- not news.
-- (The same statement as store.baselineSQL: one pass over the workers.)
INSERT INTO shiftcast.worker_notify_state (worker_id, facilities, snapshot, notified_at)
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
GROUP BY w.id;

-- +goose Down
DROP TRIGGER IF EXISTS shiftcast_worker_insert ON "Worker";
DROP FUNCTION IF EXISTS shiftcast.worker_inserted();
DROP INDEX IF EXISTS shift_open_facility_start;
DROP TABLE shiftcast.notifications, shiftcast.worker_notify_state, shiftcast.shift_openings,
    shiftcast.entity_positions, shiftcast.applied_events;
