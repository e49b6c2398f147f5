package store

import (
	"context"
	"time"
)

// baselineEligibleShiftsSQL is "eligible shifts for a worker" written the way
// the challenge's solutions usually write it: one statement over the
// marketplace tables alone, the document check as
// NOT EXISTS (required EXCEPT held), relying on no index beyond the primary
// keys. It is the comparison point for `shiftcast bench --transport baseline`
// and is never used to serve requests.
//
// It returns the same columns the service returns, ordered the same way, so
// that the comparison is like for like.
const baselineEligibleShiftsSQL = `
SELECT s.id, s.facility_id, s.profession::text, s.start, s."end"
FROM "Worker" w
JOIN "Shift" s
  ON s.profession = w.profession
JOIN "Facility" f
  ON f.id = s.facility_id
WHERE w.id = $1
  AND w.is_active
  AND f.is_active
  AND NOT s.is_deleted
  AND s.worker_id IS NULL
  AND NOT EXISTS (
        SELECT fr.document_id FROM "FacilityRequirement" fr
        WHERE fr.facility_id = s.facility_id
        EXCEPT
        SELECT dw.document_id FROM "DocumentWorker" dw
        WHERE dw.worker_id = w.id
  )
ORDER BY s.start, s.id
LIMIT $2`

// BaselineEligibleShifts runs the baseline query (see
// baselineEligibleShiftsSQL) for workerID and returns how many shifts it
// found, at most limit. Rows are fully read and decoded, as a real caller
// would, but not kept. It exists for benchmarking only.
func (s *Store) BaselineEligibleShifts(ctx context.Context, workerID int64, limit int) (int, error) {
	rows, err := s.pool.Query(ctx, baselineEligibleShiftsSQL, workerID, limit)
	if err != nil {
		return 0, classify("baseline eligible shifts", err)
	}
	defer rows.Close()

	var (
		n              int
		id, facilityID int64
		profession     string
		start, end     time.Time
	)
	for rows.Next() {
		if err := rows.Scan(&id, &facilityID, &profession, &start, &end); err != nil {
			return n, classify("baseline eligible shifts: scan", err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, classify("baseline eligible shifts", err)
	}
	return n, nil
}
