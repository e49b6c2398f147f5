-- shiftcast's own eligibility support: per-facility required and per-worker
-- held document sets as sorted, distinct arrays, so that "holds every required
-- document" is one array containment (<@ / @>, GIN-indexable for fan-out)
-- instead of an anti-join over requirement rows on every query.
--
-- The arrays are derived data kept in step by statement-level triggers on the
-- marketplace tables, so they stay right whoever writes those tables
-- (shiftcast's consumers, the marketplace itself, a bulk COPY). Each refresh
-- takes a transaction-scoped advisory lock per entity and recomputes from the
-- rows, so concurrent writers to the same facility or worker cannot lose an
-- update, and duplicated rows are handled by construction.

-- +goose Up
CREATE SCHEMA IF NOT EXISTS shiftcast;

CREATE TABLE shiftcast.facility_requirements (
    facility_id  INTEGER PRIMARY KEY,
    document_ids INTEGER[] NOT NULL
);

CREATE TABLE shiftcast.worker_documents (
    worker_id    INTEGER PRIMARY KEY,
    document_ids INTEGER[] NOT NULL
);

CREATE INDEX worker_documents_document_ids_gin
    ON shiftcast.worker_documents USING gin (document_ids);

CREATE INDEX IF NOT EXISTS facility_requirement_facility_id
    ON "FacilityRequirement" (facility_id);
CREATE INDEX IF NOT EXISTS document_worker_worker_id
    ON "DocumentWorker" (worker_id);

-- The query path's workhorse: open shifts of a profession in (start, id)
-- order, carrying what the listing returns so it is an index-only scan.
CREATE INDEX IF NOT EXISTS shift_open_profession_start
    ON "Shift" (profession, start, id) INCLUDE (facility_id, "end")
    WHERE NOT is_deleted AND worker_id IS NULL;

-- Active workers of a profession in id order, for "who can take shift S".
CREATE INDEX IF NOT EXISTS worker_active_profession
    ON "Worker" (profession, id) INCLUDE (name)
    WHERE is_active;

-- +goose StatementBegin
CREATE FUNCTION shiftcast.refresh_facility_requirements(ids INTEGER[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF ids IS NULL THEN
        RETURN;
    END IF;
    -- Small sets (every event) lock per entity; a bulk statement would
    -- exhaust the shared lock table that way, so it locks the derived table
    -- instead. The two exclude each other: the per-entity path's DELETE
    -- needs ROW EXCLUSIVE, which SHARE ROW EXCLUSIVE blocks, and its
    -- INSERT ... SELECT then reads with a fresh snapshot.
    IF cardinality(ids) <= 64 THEN
        PERFORM pg_advisory_xact_lock(1701, id) FROM unnest(ids) AS id ORDER BY id;
    ELSE
        LOCK TABLE shiftcast.facility_requirements IN SHARE ROW EXCLUSIVE MODE;
    END IF;
    DELETE FROM shiftcast.facility_requirements WHERE facility_id = ANY (ids);
    INSERT INTO shiftcast.facility_requirements (facility_id, document_ids)
    SELECT facility_id, array_agg(DISTINCT document_id ORDER BY document_id)
    FROM "FacilityRequirement"
    WHERE facility_id = ANY (ids)
    GROUP BY facility_id;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION shiftcast.refresh_worker_documents(ids INTEGER[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF ids IS NULL THEN
        RETURN;
    END IF;
    -- Small sets (every event) lock per entity; a bulk statement would
    -- exhaust the shared lock table that way, so it locks the derived table
    -- instead. The two exclude each other: the per-entity path's DELETE
    -- needs ROW EXCLUSIVE, which SHARE ROW EXCLUSIVE blocks, and its
    -- INSERT ... SELECT then reads with a fresh snapshot.
    IF cardinality(ids) <= 64 THEN
        PERFORM pg_advisory_xact_lock(1702, id) FROM unnest(ids) AS id ORDER BY id;
    ELSE
        LOCK TABLE shiftcast.worker_documents IN SHARE ROW EXCLUSIVE MODE;
    END IF;
    DELETE FROM shiftcast.worker_documents WHERE worker_id = ANY (ids);
    INSERT INTO shiftcast.worker_documents (worker_id, document_ids)
    SELECT worker_id, array_agg(DISTINCT document_id ORDER BY document_id)
    FROM "DocumentWorker"
    WHERE worker_id = ANY (ids)
    GROUP BY worker_id;
END $$;
-- +goose StatementEnd

-- Transition tables are only named for the events that define them; plpgsql
-- plans each branch on first use, so the unused branches never resolve them.
-- +goose StatementBegin
CREATE FUNCTION shiftcast.facility_requirement_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM shiftcast.facility_requirements;
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM shiftcast.refresh_facility_requirements(
            (SELECT array_agg(DISTINCT facility_id) FROM new_rows));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM shiftcast.refresh_facility_requirements(
            (SELECT array_agg(DISTINCT facility_id) FROM old_rows));
    ELSE
        PERFORM shiftcast.refresh_facility_requirements(
            (SELECT array_agg(DISTINCT facility_id)
             FROM (SELECT facility_id FROM new_rows UNION SELECT facility_id FROM old_rows) AS changed));
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION shiftcast.document_worker_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM shiftcast.worker_documents;
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM shiftcast.refresh_worker_documents(
            (SELECT array_agg(DISTINCT worker_id) FROM new_rows));
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM shiftcast.refresh_worker_documents(
            (SELECT array_agg(DISTINCT worker_id) FROM old_rows));
    ELSE
        PERFORM shiftcast.refresh_worker_documents(
            (SELECT array_agg(DISTINCT worker_id)
             FROM (SELECT worker_id FROM new_rows UNION SELECT worker_id FROM old_rows) AS changed));
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd

CREATE TRIGGER shiftcast_requirement_insert AFTER INSERT ON "FacilityRequirement"
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION shiftcast.facility_requirement_changed();
CREATE TRIGGER shiftcast_requirement_update AFTER UPDATE ON "FacilityRequirement"
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION shiftcast.facility_requirement_changed();
CREATE TRIGGER shiftcast_requirement_delete AFTER DELETE ON "FacilityRequirement"
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION shiftcast.facility_requirement_changed();
CREATE TRIGGER shiftcast_requirement_truncate AFTER TRUNCATE ON "FacilityRequirement"
    FOR EACH STATEMENT EXECUTE FUNCTION shiftcast.facility_requirement_changed();

CREATE TRIGGER shiftcast_document_worker_insert AFTER INSERT ON "DocumentWorker"
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION shiftcast.document_worker_changed();
CREATE TRIGGER shiftcast_document_worker_update AFTER UPDATE ON "DocumentWorker"
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION shiftcast.document_worker_changed();
CREATE TRIGGER shiftcast_document_worker_delete AFTER DELETE ON "DocumentWorker"
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION shiftcast.document_worker_changed();
CREATE TRIGGER shiftcast_document_worker_truncate AFTER TRUNCATE ON "DocumentWorker"
    FOR EACH STATEMENT EXECUTE FUNCTION shiftcast.document_worker_changed();

-- Backfill from whatever the marketplace tables already hold.
SELECT shiftcast.refresh_facility_requirements(array_agg(DISTINCT facility_id)) FROM "FacilityRequirement";
SELECT shiftcast.refresh_worker_documents(array_agg(DISTINCT worker_id)) FROM "DocumentWorker";

-- +goose Down
DROP TRIGGER IF EXISTS shiftcast_requirement_insert ON "FacilityRequirement";
DROP TRIGGER IF EXISTS shiftcast_requirement_update ON "FacilityRequirement";
DROP TRIGGER IF EXISTS shiftcast_requirement_delete ON "FacilityRequirement";
DROP TRIGGER IF EXISTS shiftcast_requirement_truncate ON "FacilityRequirement";
DROP TRIGGER IF EXISTS shiftcast_document_worker_insert ON "DocumentWorker";
DROP TRIGGER IF EXISTS shiftcast_document_worker_update ON "DocumentWorker";
DROP TRIGGER IF EXISTS shiftcast_document_worker_delete ON "DocumentWorker";
DROP TRIGGER IF EXISTS shiftcast_document_worker_truncate ON "DocumentWorker";
DROP INDEX IF EXISTS shift_open_profession_start;
DROP INDEX IF EXISTS worker_active_profession;
DROP INDEX IF EXISTS facility_requirement_facility_id;
DROP INDEX IF EXISTS document_worker_worker_id;
DROP SCHEMA shiftcast CASCADE;
