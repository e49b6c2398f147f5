-- Digests are built in batches (store.BuildDigests): one read of the
-- openings newer than the batch's oldest watermark, per profession, instead
-- of one index probe per eligible facility per worker. Facilities are
-- filtered afterwards, in memory, so the index leads with the profession and
-- the opening transaction, and carries what the read needs.

-- +goose Up
CREATE INDEX shift_openings_profession_xid
    ON shiftcast.shift_openings (profession, opened_xid) INCLUDE (start, shift_id);
DROP INDEX shiftcast.shift_openings_profession_facility_xid;

-- +goose Down
CREATE INDEX shift_openings_profession_facility_xid
    ON shiftcast.shift_openings (profession, facility_id, opened_xid) INCLUDE (start);
DROP INDEX shiftcast.shift_openings_profession_xid;
