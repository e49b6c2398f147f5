-- A worker's digest covers everything new since their last push, whichever
-- window's job builds it. So while a worker's notify job has not started
-- to build (a backlog: the digests fall behind the events), a later window
-- need not schedule another: the waiting job will include that window's
-- news too. built_window records the newest window whose job has started
-- to build (store.ClaimNotify, committed before the digest reads anything);
-- scheduling a worker whose newest job has not started yet adds no job.
-- Under a sustained overload the backlog is then at most one job per
-- worker, rather than one per worker and window, growing without bound.

-- +goose Up
ALTER TABLE shiftcast.notify_scheduled ADD COLUMN built_window BIGINT;
-- Jobs scheduled before this migration count as started: one that has not
-- run yet gets a companion from the next window, as before, rather than
-- being relied upon for news it may already have missed.
UPDATE shiftcast.notify_scheduled SET built_window = notify_window;

-- +goose Down
ALTER TABLE shiftcast.notify_scheduled DROP COLUMN built_window;
