-- The newest digest window each worker has a notify job for. Fan-outs of one
-- window overlap heavily (every facility's fan-out of a profession names
-- most of that profession's workers), and River's unique insert is what
-- dropped the repeats: measured, ten rows attempted per job kept, at about
-- 0.1 ms of PostgreSQL time each. A fan-out now marks the workers it
-- schedules and inserts jobs only for those not already marked for its
-- window, in the same transaction. River's uniqueness still backs it.
--
-- A table of its own, not a column of worker_notify_state: digests update
-- that row under REPEATABLE READ, and a fan-out touching it concurrently
-- would make them fail to serialize.

-- +goose Up
CREATE TABLE shiftcast.notify_scheduled (
    worker_id     INTEGER PRIMARY KEY,
    notify_window BIGINT NOT NULL
);

-- +goose Down
DROP TABLE IF EXISTS shiftcast.notify_scheduled;
