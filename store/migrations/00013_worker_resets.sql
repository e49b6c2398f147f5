-- A deactivated worker leaves every shift's eligible set: when they come
-- back, everything they can take is news to them. The deactivation used to
-- say so by clearing the worker's notification state, which the digests
-- (REPEATABLE READ) also update: a digest batch holding that worker then
-- failed to serialize, and with hundreds of workers per batch most batches
-- did under a steady trickle of deactivations. The deactivation now records
-- its transaction here instead, a row the digests only read: a worker whose
-- last push did not see their latest reset knows nothing.

-- +goose Up
CREATE TABLE shiftcast.worker_resets (
    worker_id INTEGER PRIMARY KEY,
    reset_xid xid8 NOT NULL
);

-- +goose Down
DROP TABLE IF EXISTS shiftcast.worker_resets;
