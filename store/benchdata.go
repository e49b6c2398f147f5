package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/shiftcast/shiftcast/domain"
)

// This file holds the read-only queries behind `shiftcast bench events` and
// `shiftcast bench deliveries`: what the load generator needs to know about
// the marketplace to publish realistic events, and how it reads back what
// the pipeline did with them. None of it is used to serve requests.

// BenchFacility is a facility as the event benchmark sees it.
type BenchFacility struct {
	ID       int64
	IsActive bool
	// Requirements are the required document ids, sorted and distinct.
	Requirements []int64
}

// BenchWorker is a worker as the event benchmark sees it.
type BenchWorker struct {
	ID         int64
	Profession domain.Profession
	IsActive   bool
	// Documents are the held document ids, sorted and distinct.
	Documents []int64
}

// BenchShift is an open future shift the benchmark may claim or delete.
type BenchShift struct {
	ID         int64
	Profession domain.Profession
}

// BenchUniverse is the marketplace the event benchmark publishes against.
type BenchUniverse struct {
	Facilities  []BenchFacility
	DocumentIDs []int64
	Workers     []BenchWorker
	MaxShiftID  int64
	MaxWorkerID int64
	OpenShifts  []BenchShift
}

// BenchUniverse reads facilities (with their requirements), documents,
// workers (with their documents), the highest shift and worker ids, and up
// to openShifts randomly chosen open shifts starting after now.
func (s *Store) BenchUniverse(ctx context.Context, now time.Time, openShifts int) (BenchUniverse, error) {
	var u BenchUniverse
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			SELECT fa.id, fa.is_active, COALESCE(fr.document_ids, '{}')
			FROM "Facility" fa
			LEFT JOIN shiftcast.facility_requirements fr ON fr.facility_id = fa.id
			ORDER BY fa.id`)
		if err != nil {
			return err
		}
		var f BenchFacility
		if _, err := pgx.ForEachRow(rows, []any{&f.ID, &f.IsActive, &f.Requirements}, func() error {
			u.Facilities = append(u.Facilities, f)
			f = BenchFacility{}
			return nil
		}); err != nil {
			return err
		}

		rows, err = tx.Query(ctx, `SELECT id FROM "Document" ORDER BY id`)
		if err != nil {
			return err
		}
		if u.DocumentIDs, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
			return err
		}

		rows, err = tx.Query(ctx, `
			SELECT w.id, w.profession::text, w.is_active, COALESCE(wd.document_ids, '{}')
			FROM "Worker" w
			LEFT JOIN shiftcast.worker_documents wd ON wd.worker_id = w.id
			ORDER BY w.id`)
		if err != nil {
			return err
		}
		var (
			w    BenchWorker
			prof string
		)
		if _, err := pgx.ForEachRow(rows, []any{&w.ID, &prof, &w.IsActive, &w.Documents}, func() error {
			w.Profession = internProfession(prof)
			u.Workers = append(u.Workers, w)
			u.MaxWorkerID = max(u.MaxWorkerID, w.ID)
			w = BenchWorker{}
			return nil
		}); err != nil {
			return err
		}

		if err := tx.QueryRow(ctx, `SELECT COALESCE(max(id), 0) FROM "Shift"`).Scan(&u.MaxShiftID); err != nil {
			return err
		}

		if openShifts > 0 {
			rows, err = tx.Query(ctx, `
				SELECT id, profession::text FROM "Shift"
				WHERE NOT is_deleted AND worker_id IS NULL AND start > $1
				ORDER BY random() LIMIT $2`, now.UTC(), openShifts)
			if err != nil {
				return err
			}
			var sh BenchShift
			if _, err := pgx.ForEachRow(rows, []any{&sh.ID, &prof}, func() error {
				sh.Profession = internProfession(prof)
				u.OpenShifts = append(u.OpenShifts, sh)
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return BenchUniverse{}, classify("bench: read the marketplace", err)
	}
	return u, nil
}

// BenchAppliedCount counts the events recorded in shiftcast.applied_events
// whose id starts with prefix (which must not contain LIKE wildcards).
func (s *Store) BenchAppliedCount(ctx context.Context, prefix string) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM shiftcast.applied_events WHERE event_id LIKE $1`, prefix+"%").Scan(&n)
	if err != nil {
		return 0, classify("bench: count applied events", err)
	}
	return n, nil
}

// BenchLatency is the distribution of applied_at − event_time over a set of
// applied events.
type BenchLatency struct {
	Count              int64
	P50, P95, P99, Max time.Duration
}

// BenchAppliedStats describes the events whose id starts with prefix as
// shiftcast.applied_events recorded them.
type BenchAppliedStats struct {
	Rows    int64
	Applied int64 // outcome "applied"
	Stale   int64 // outcome "stale": an older event than the entity's last
	// FirstApplied and LastApplied bound applied_at over the rows.
	FirstApplied, LastApplied time.Time
	// Latency is applied_at − event_time over every row; ByType per event
	// type.
	Latency BenchLatency
	ByType  map[string]BenchLatency
}

// BenchAppliedStats computes, in SQL, the counts, the applied_at range and
// the applied_at − event_time percentiles (percentile_cont) of the events
// whose id starts with prefix (which must not contain LIKE wildcards).
func (s *Store) BenchAppliedStats(ctx context.Context, prefix string) (BenchAppliedStats, error) {
	st := BenchAppliedStats{ByType: map[string]BenchLatency{}}
	rows, err := s.pool.Query(ctx, `
		SELECT event_type,
			count(*),
			count(*) FILTER (WHERE outcome = 'applied'),
			count(*) FILTER (WHERE outcome = 'stale'),
			min(applied_at), max(applied_at),
			percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY extract(epoch FROM applied_at - event_time)),
			extract(epoch FROM max(applied_at - event_time))::float8
		FROM shiftcast.applied_events
		WHERE event_id LIKE $1
		GROUP BY GROUPING SETS ((event_type), ())
		ORDER BY event_type NULLS FIRST`, prefix+"%")
	if err != nil {
		return st, classify("bench: applied event stats", err)
	}
	var (
		typ               *string
		n, applied, stale int64
		first, last       *time.Time
		pcts              []float64
		maxSecs           *float64
	)
	// The grand total (typ NULL) comes first and exists even without rows,
	// with NULL times and percentiles.
	_, err = pgx.ForEachRow(rows, []any{&typ, &n, &applied, &stale, &first, &last, &pcts, &maxSecs}, func() error {
		lat := BenchLatency{Count: n}
		if maxSecs != nil {
			lat.Max = secs(*maxSecs)
		}
		if len(pcts) == 3 {
			lat.P50, lat.P95, lat.P99 = secs(pcts[0]), secs(pcts[1]), secs(pcts[2])
		}
		if typ != nil {
			st.ByType[*typ] = lat
			return nil
		}
		st.Rows, st.Applied, st.Stale, st.Latency = n, applied, stale, lat
		if first != nil && last != nil {
			st.FirstApplied, st.LastApplied = first.UTC(), last.UTC()
		}
		return nil
	})
	if err != nil {
		return st, classify("bench: applied event stats", err)
	}
	return st, nil
}

func secs(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

// BenchDeliveryFacilities returns up to n active facilities with the fewest
// required documents (ties by id): the ones whose open shifts reach the most
// workers.
func (s *Store) BenchDeliveryFacilities(ctx context.Context, n int) ([]int64, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT fa.id
		FROM "Facility" fa
		LEFT JOIN shiftcast.facility_requirements fr ON fr.facility_id = fa.id
		WHERE fa.is_active
		ORDER BY cardinality(COALESCE(fr.document_ids, '{}')), fa.id
		LIMIT $1`, n)
	if err != nil {
		return nil, classify("bench: delivery facilities", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, classify("bench: delivery facilities", err)
	}
	return ids, nil
}

// BenchFanoutReach counts the distinct workers that the fan-out of a new
// shift of every profession at each of facilityIDs reaches: active workers
// holding every document an active facility among them requires, as
// FanoutWorkers selects them.
func (s *Store) BenchFanoutReach(ctx context.Context, facilityIDs []int64) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, `
		SELECT count(DISTINCT w.id)
		FROM "Facility" fa
		LEFT JOIN shiftcast.facility_requirements fr ON fr.facility_id = fa.id
		JOIN "Worker" w ON w.is_active
		LEFT JOIN shiftcast.worker_documents wd ON wd.worker_id = w.id
		WHERE fa.id = ANY ($1) AND fa.is_active
		  AND (COALESCE(fr.document_ids, '{}') = '{}' OR wd.document_ids @> fr.document_ids)`,
		facilityIDs).Scan(&n)
	if err != nil {
		return 0, classify("bench: fan-out reach", err)
	}
	return n, nil
}

// BenchMaxShiftID returns the highest shift id.
func (s *Store) BenchMaxShiftID(ctx context.Context) (int64, error) {
	var id int64
	if err := s.pool.QueryRow(ctx, `SELECT COALESCE(max(id), 0) FROM "Shift"`).Scan(&id); err != nil {
		return 0, classify("bench: max shift id", err)
	}
	return id, nil
}

// BenchNotificationsSince counts the notifications built at or after since,
// and how many of them are delivered.
func (s *Store) BenchNotificationsSince(ctx context.Context, since time.Time) (created, delivered int64, err error) {
	err = s.pool.QueryRow(ctx, `
		SELECT count(*), count(*) FILTER (WHERE status = 'delivered')
		FROM shiftcast.notifications WHERE created_at >= $1`, since.UTC()).Scan(&created, &delivered)
	if err != nil {
		return 0, 0, classify("bench: notifications since", err)
	}
	return created, delivered, nil
}

// BenchJobCounts returns River's jobs by queue and state, for a benchmark to
// show the backlog its load left behind.
func (s *Store) BenchJobCounts(ctx context.Context) (map[string]map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT queue, state::text, count(*) FROM river_job GROUP BY 1, 2`)
	if err != nil {
		return nil, classify("bench: job counts", err)
	}
	out := map[string]map[string]int64{}
	var (
		queue, state string
		n            int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&queue, &state, &n}, func() error {
		if out[queue] == nil {
			out[queue] = map[string]int64{}
		}
		out[queue][state] = n
		return nil
	}); err != nil {
		return nil, classify("bench: job counts", err)
	}
	return out, nil
}
