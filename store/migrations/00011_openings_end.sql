-- Batched digests read the openings newer than their workers' watermarks
-- from this table alone, without looking every shift up: an opening carries
-- everything a notification lists, and the index covers the read. Openings
-- are kept exactly as open as their shifts by the same transactions (an
-- event that claims or deletes a shift removes its opening, one that
-- creates or releases it adds one), so the shift's row has nothing to add.

-- +goose Up
ALTER TABLE shiftcast.shift_openings ADD COLUMN "end" TIMESTAMP;
UPDATE shiftcast.shift_openings o SET "end" = s."end" FROM "Shift" s WHERE s.id = o.shift_id;
DELETE FROM shiftcast.shift_openings WHERE "end" IS NULL; -- shift gone: nothing to announce
ALTER TABLE shiftcast.shift_openings ALTER COLUMN "end" SET NOT NULL;
DROP INDEX shiftcast.shift_openings_profession_xid;
CREATE INDEX shift_openings_profession_xid
    ON shiftcast.shift_openings (profession, opened_xid) INCLUDE (start, shift_id, facility_id, "end");

-- +goose Down
DROP INDEX shiftcast.shift_openings_profession_xid;
CREATE INDEX shift_openings_profession_xid
    ON shiftcast.shift_openings (profession, opened_xid) INCLUDE (start, shift_id);
ALTER TABLE shiftcast.shift_openings DROP COLUMN "end";
