-- A notification is written three times: inserted when its digest is
-- built, then updated when its first channel has it and when its delivery
-- attempt ends. Its row is large (the listed shifts), so a full page had no
-- room for the new version: every update went to another page, with new
-- entries in every index, and its WAL record carried the whole row again.
-- That was about half the WAL the pipeline wrote under load (pg_waldump,
-- PERFORMANCE.md), and every event's commit waits for the WAL before it.
-- Pages left half free keep the new version on the same page: the first
-- update changes no indexed column and is HOT, and PostgreSQL logs only the
-- changed bytes of a same-page update. Each worker's notification state,
-- rewritten by every digest, gets the same room.

-- +goose Up
ALTER TABLE shiftcast.notifications SET (fillfactor = 50);
ALTER TABLE shiftcast.worker_notify_state SET (fillfactor = 50);

-- +goose Down
ALTER TABLE shiftcast.notifications RESET (fillfactor);
ALTER TABLE shiftcast.worker_notify_state RESET (fillfactor);
