-- The marketplace's tables, exactly as the challenge's seed database names
-- and types them. Everything is IF NOT EXISTS so that pointing shiftcast at a
-- database the challenge's seed already filled changes nothing here.

-- +goose Up
-- +goose StatementBegin
DO $$
BEGIN
    CREATE TYPE "Profession" AS ENUM ('CNA', 'LVN', 'RN');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
-- +goose StatementEnd

CREATE TABLE IF NOT EXISTS "Facility" (
    id        SERIAL PRIMARY KEY,
    name      TEXT NOT NULL,
    is_active BOOLEAN NOT NULL DEFAULT false
);

CREATE TABLE IF NOT EXISTS "Document" (
    id        SERIAL PRIMARY KEY,
    name      TEXT NOT NULL,
    is_active BOOLEAN NOT NULL DEFAULT false
);

CREATE TABLE IF NOT EXISTS "Worker" (
    id         SERIAL PRIMARY KEY,
    name       TEXT NOT NULL,
    is_active  BOOLEAN NOT NULL DEFAULT false,
    profession "Profession" NOT NULL
);

CREATE TABLE IF NOT EXISTS "FacilityRequirement" (
    id          SERIAL PRIMARY KEY,
    facility_id INTEGER NOT NULL REFERENCES "Facility" (id),
    document_id INTEGER NOT NULL REFERENCES "Document" (id)
);

CREATE TABLE IF NOT EXISTS "DocumentWorker" (
    id          SERIAL PRIMARY KEY,
    worker_id   INTEGER NOT NULL REFERENCES "Worker" (id),
    document_id INTEGER NOT NULL REFERENCES "Document" (id)
);

CREATE TABLE IF NOT EXISTS "Shift" (
    id          SERIAL PRIMARY KEY,
    start       TIMESTAMP(3) NOT NULL,
    "end"       TIMESTAMP(3) NOT NULL,
    profession  "Profession" NOT NULL,
    is_deleted  BOOLEAN NOT NULL DEFAULT false,
    facility_id INTEGER NOT NULL REFERENCES "Facility" (id),
    worker_id   INTEGER REFERENCES "Worker" (id)
);

-- +goose Down
-- The marketplace's tables may predate shiftcast and belong to its writer:
-- rolling shiftcast back never drops them.
SELECT 1;
