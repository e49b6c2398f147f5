-- The (facility, profession) pairs of a digest window whose open shifts may
-- have become available to workers, written by the event transactions that
-- enqueue their fan-out jobs. The first fan-out job of a (profession,
-- window) to run takes every pair marked for it and expands them in one
-- pass over that profession's workers; the others find their pair taken and
-- have nothing to do. Expanding each pair on its own read the whole
-- profession's eligible workers once per facility: at 2,000 events/s every
-- facility has new shifts in every window, so hundreds of passes of
-- thousands of workers per window (measured: 227 ms each).

-- +goose Up
CREATE TABLE shiftcast.fanout_marks (
    profession    "Profession" NOT NULL,
    notify_window BIGINT NOT NULL,
    facility_id   INTEGER NOT NULL,
    PRIMARY KEY (profession, notify_window, facility_id)
);

-- +goose Down
DROP TABLE IF EXISTS shiftcast.fanout_marks;
