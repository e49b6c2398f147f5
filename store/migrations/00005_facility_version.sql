-- A version number for "which facilities are active and what each requires",
-- bumped in the same transaction as any change to either. The query path
-- caches each worker's eligible-facility set in serve and checks, inside the
-- very statement that lists the worker's shifts, that this number and the
-- worker's documents are still the ones the set was computed from; a
-- mismatch falls back to the full statement. So the cache can never serve an
-- answer the full statement would not give in the same snapshot.
--
-- Statement-level triggers on "Facility" and on the derived
-- shiftcast.facility_requirements (rewritten whenever "FacilityRequirement"
-- changes) keep it, whoever writes those tables. Facility changes are rare
-- next to shift changes, so one row is enough; writers that bump it queue on
-- its row lock only against each other.

-- +goose Up
CREATE TABLE shiftcast.facility_version (
    singleton BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    version   BIGINT  NOT NULL
);
INSERT INTO shiftcast.facility_version (version) VALUES (1);

-- +goose StatementBegin
CREATE FUNCTION shiftcast.bump_facility_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- A statement that changed nothing the rules read (an UPDATE of "Facility"
    -- that keeps is_active, a DELETE of no rows) leaves caches valid.
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'Facility' THEN
        IF NOT EXISTS (SELECT 1 FROM new_rows n LEFT JOIN old_rows o ON o.id = n.id
                       WHERE o.id IS NULL OR o.is_active IS DISTINCT FROM n.is_active) THEN
            RETURN NULL;
        END IF;
    ELSIF TG_OP = 'INSERT' THEN
        IF NOT EXISTS (SELECT 1 FROM new_rows) THEN
            RETURN NULL;
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        IF NOT EXISTS (SELECT 1 FROM old_rows) THEN
            RETURN NULL;
        END IF;
    END IF;
    UPDATE shiftcast.facility_version SET version = version + 1;
    RETURN NULL;
END $$;
-- +goose StatementEnd

CREATE TRIGGER shiftcast_facility_version_insert AFTER INSERT ON "Facility"
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION shiftcast.bump_facility_version();
CREATE TRIGGER shiftcast_facility_version_update AFTER UPDATE ON "Facility"
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION shiftcast.bump_facility_version();
CREATE TRIGGER shiftcast_facility_version_delete AFTER DELETE ON "Facility"
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION shiftcast.bump_facility_version();
CREATE TRIGGER shiftcast_facility_version_truncate AFTER TRUNCATE ON "Facility"
    FOR EACH STATEMENT EXECUTE FUNCTION shiftcast.bump_facility_version();

CREATE TRIGGER shiftcast_facility_version_insert AFTER INSERT ON shiftcast.facility_requirements
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION shiftcast.bump_facility_version();
CREATE TRIGGER shiftcast_facility_version_update AFTER UPDATE ON shiftcast.facility_requirements
    FOR EACH STATEMENT EXECUTE FUNCTION shiftcast.bump_facility_version();
CREATE TRIGGER shiftcast_facility_version_delete AFTER DELETE ON shiftcast.facility_requirements
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION shiftcast.bump_facility_version();
CREATE TRIGGER shiftcast_facility_version_truncate AFTER TRUNCATE ON shiftcast.facility_requirements
    FOR EACH STATEMENT EXECUTE FUNCTION shiftcast.bump_facility_version();

-- +goose Down
DROP TRIGGER IF EXISTS shiftcast_facility_version_insert ON "Facility";
DROP TRIGGER IF EXISTS shiftcast_facility_version_update ON "Facility";
DROP TRIGGER IF EXISTS shiftcast_facility_version_delete ON "Facility";
DROP TRIGGER IF EXISTS shiftcast_facility_version_truncate ON "Facility";
DROP TRIGGER IF EXISTS shiftcast_facility_version_insert ON shiftcast.facility_requirements;
DROP TRIGGER IF EXISTS shiftcast_facility_version_update ON shiftcast.facility_requirements;
DROP TRIGGER IF EXISTS shiftcast_facility_version_delete ON shiftcast.facility_requirements;
DROP TRIGGER IF EXISTS shiftcast_facility_version_truncate ON shiftcast.facility_requirements;
DROP FUNCTION IF EXISTS shiftcast.bump_facility_version();
DROP TABLE IF EXISTS shiftcast.facility_version;
