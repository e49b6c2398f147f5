package store_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/store"
)

// TestStore_EligibleShiftsFacilityCache checks that the query path's cached
// facility sets are used once warm and that every change the rules read
// (documents, requirements, facility and worker activity, profession) is
// seen by the very next request.
func TestStore_EligibleShiftsFacilityCache(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.exec(t, `INSERT INTO "Facility" (id, name, is_active) VALUES (1, 'F1', true), (2, 'F2', true)`)
	b.exec(t, `INSERT INTO "Document" (id, name, is_active) VALUES (1, 'D1', true), (2, 'D2', true)`)
	b.exec(t, `INSERT INTO "Worker" (id, name, is_active, profession) VALUES (1, 'W1', true, 'CNA')`)
	b.exec(t, `INSERT INTO "FacilityRequirement" (facility_id, document_id) VALUES (2, 1)`)
	b.exec(t, `INSERT INTO "DocumentWorker" (worker_id, document_id) VALUES (1, 1)`)
	b.exec(t, `INSERT INTO "Shift" (id, start, "end", profession, is_deleted, facility_id)
		VALUES (1, '2030-01-01 05:00', '2030-01-01 10:00', 'CNA', false, 1),
		       (2, '2030-01-02 05:00', '2030-01-02 10:00', 'CNA', false, 2),
		       (3, '2030-01-03 05:00', '2030-01-03 10:00', 'RN', false, 1)`)

	list := func() []int64 {
		t.Helper()
		page, err := b.store.EligibleShifts(ctx, domain.ShiftsQuery{WorkerID: 1, Limit: 10})
		require.NoError(t, err)
		ids := []int64{}
		for _, s := range page.Shifts {
			ids = append(ids, s.ID)
		}
		return ids
	}
	stats := func() store.FacilityCacheStats { return b.store.FacilityCacheStats() }

	require.Equal(t, []int64{1, 2}, list())
	require.Equal(t, int64(1), stats().Misses, "a cold worker runs the full statement")
	require.Equal(t, []int64{1, 2}, list())
	require.Equal(t, []int64{1, 2}, list())
	require.Equal(t, int64(2), stats().Hits, "a warm worker is answered by the hot statement")
	require.Equal(t, 1, stats().Workers)

	steps := []struct {
		name   string
		sql    string
		expect []int64
	}{
		{"document removed", `DELETE FROM "DocumentWorker" WHERE worker_id = 1`, []int64{1}},
		{"document added back", `INSERT INTO "DocumentWorker" (worker_id, document_id) VALUES (1, 1)`, []int64{1, 2}},
		{"requirement added", `INSERT INTO "FacilityRequirement" (facility_id, document_id) VALUES (2, 2)`, []int64{1}},
		{"requirement removed", `DELETE FROM "FacilityRequirement" WHERE document_id = 2`, []int64{1, 2}},
		{"facility deactivated", `UPDATE "Facility" SET is_active = false WHERE id = 1`, []int64{2}},
		{"facility activated", `UPDATE "Facility" SET is_active = true WHERE id = 1`, []int64{1, 2}},
		{"new facility", `INSERT INTO "Facility" (id, name, is_active) VALUES (3, 'F3', true);
			INSERT INTO "Shift" (id, start, "end", profession, is_deleted, facility_id)
			VALUES (4, '2030-01-04 05:00', '2030-01-04 10:00', 'CNA', false, 3)`, []int64{1, 2, 4}},
		{"profession changed", `UPDATE "Worker" SET profession = 'RN' WHERE id = 1`, []int64{3}},
		{"profession back", `UPDATE "Worker" SET profession = 'CNA' WHERE id = 1`, []int64{1, 2, 4}},
		{"worker deactivated", `UPDATE "Worker" SET is_active = false WHERE id = 1`, []int64{}},
		{"worker activated", `UPDATE "Worker" SET is_active = true WHERE id = 1`, []int64{1, 2, 4}},
		{"shift claimed", `UPDATE "Shift" SET worker_id = 1 WHERE id = 1`, []int64{2, 4}},
	}
	for _, step := range steps {
		b.exec(t, step.sql)
		require.Equal(t, step.expect, list(), step.name)
		require.Equal(t, step.expect, list(), step.name+", asked again")
	}
	require.Greater(t, stats().Hits, int64(len(steps)), "answers after a refresh come from the hot statement")

	b.exec(t, `DELETE FROM "Shift" WHERE worker_id = 1; DELETE FROM "DocumentWorker" WHERE worker_id = 1; DELETE FROM "Worker" WHERE id = 1`)
	_, err := b.store.EligibleShifts(ctx, domain.ShiftsQuery{WorkerID: 1, Limit: 10})
	require.Equal(t, domain.ENOTFOUND, domain.ErrorCode(err), "a deleted worker is not served from the cache")
}

// TestStore_FacilityVersionIgnoresNoOps checks that statements which change
// nothing the rules read keep cached facility sets valid.
func TestStore_FacilityVersionIgnoresNoOps(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	version := func() int64 {
		var v int64
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT version FROM shiftcast.facility_version`).Scan(&v))
		return v
	}
	b.exec(t, `INSERT INTO "Facility" (id, name, is_active) VALUES (1, 'F1', true)`)
	v := version()
	b.exec(t, `UPDATE "Facility" SET is_active = true WHERE id = 1`)
	b.exec(t, `UPDATE "Facility" SET name = 'renamed' WHERE id = 1`)
	b.exec(t, `DELETE FROM "Facility" WHERE id = 99`)
	require.Equal(t, v, version())
	b.exec(t, `UPDATE "Facility" SET is_active = false WHERE id = 1`)
	require.Greater(t, version(), v)
}
