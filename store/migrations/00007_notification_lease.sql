-- Notifications are delivered by the job that builds them, right after the
-- digest commits, instead of by a second River job per notification (River's
-- insert, fetch and completion of that job were over half of PostgreSQL's
-- time per delivery). lease_until is the transactional-outbox guard that
-- keeps this as safe as the job was: the notification is committed leased to
-- its builder; a failed attempt hands it to a retrying deliver job (clearing
-- the lease in the job's insert transaction); and if the builder dies
-- mid-delivery, a periodic sweep enqueues a deliver job for every pending
-- notification whose lease has expired. NULL: a deliver job owns it, or it is
-- finished.

-- +goose Up
ALTER TABLE shiftcast.notifications ADD COLUMN lease_until TIMESTAMPTZ;
CREATE INDEX notifications_lease ON shiftcast.notifications (lease_until) WHERE lease_until IS NOT NULL;

-- +goose Down
DROP INDEX IF EXISTS shiftcast.notifications_lease;
ALTER TABLE shiftcast.notifications DROP COLUMN IF EXISTS lease_until;
