-- A digest batch reads the openings newer than most of its workers'
-- watermarks in one range (shift_openings_profession_xid). A worker told
-- long ago (or never since a bulk load) needs older ones too, but only at
-- the facilities it may hear about: those are read by facility, so that
-- one such worker does not make its whole batch read every opening since
-- its last push.

-- +goose Up
CREATE INDEX shift_openings_profession_facility_xid
    ON shiftcast.shift_openings (profession, facility_id, opened_xid) INCLUDE (start, shift_id, "end");

-- +goose Down
DROP INDEX IF EXISTS shiftcast.shift_openings_profession_facility_xid;
