package seed_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/seed"
	"github.com/shiftcast/shiftcast/store"
	"github.com/shiftcast/shiftcast/testenv"
	"github.com/shiftcast/shiftcast/testenv/teststore"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// Sizes the tests shrink the profiles to.
const (
	testShifts = 20_000
	testScale  = 0.05 // 1,500 workers: enough to take the triggers' bulk (table-lock) path
)

var tables = []string{"Facility", "Document", "Worker", "FacilityRequirement", "DocumentWorker", "Shift"}

type db struct {
	st   *store.Store
	pool *pgxpool.Pool
}

func open(t *testing.T, url string) db {
	t.Helper()
	st := teststore.OpenURL(t, url)
	return db{st: st, pool: st.Pool()}
}

// migratedDB is a fresh database with shiftcast's migrations applied.
func migratedDB(t *testing.T) db {
	t.Helper()
	return open(t, testenv.DatabaseFrom(t, "shiftcast", store.MigrateDatabase))
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func (d db) scalar(t *testing.T, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, d.pool.QueryRow(context.Background(), sql, args...).Scan(&n), sql)
	return n
}

func (d db) float(t *testing.T, sql string, args ...any) float64 {
	t.Helper()
	var f float64
	require.NoError(t, d.pool.QueryRow(context.Background(), sql, args...).Scan(&f), sql)
	return f
}

func (d db) counts(t *testing.T) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, tb := range tables {
		out[tb] = d.scalar(t, "SELECT count(*) FROM "+pgx.Identifier{tb}.Sanitize())
	}
	return out
}

// fingerprint hashes every marketplace table's full contents in id order.
func (d db) fingerprint(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, tb := range tables {
		var h string
		q := fmt.Sprintf("SELECT md5(coalesce(string_agg(t::text, ';' ORDER BY t.id), '')) FROM %s t", pgx.Identifier{tb}.Sanitize())
		require.NoError(t, d.pool.QueryRow(context.Background(), q).Scan(&h))
		out[tb] = h
	}
	return out
}

// requireDerivedMatch checks that shiftcast's trigger-maintained arrays equal
// what the rows say, i.e. the triggers fired for COPY.
func (d db) requireDerivedMatch(t *testing.T) {
	t.Helper()
	mismatches := d.scalar(t, `
		SELECT count(*) FROM shiftcast.worker_documents w
		FULL JOIN (SELECT worker_id, array_agg(DISTINCT document_id ORDER BY document_id) AS ids
		           FROM "DocumentWorker" GROUP BY worker_id) r USING (worker_id)
		WHERE w.document_ids IS DISTINCT FROM r.ids`)
	require.Zero(t, mismatches, "shiftcast.worker_documents disagrees with \"DocumentWorker\"")
	mismatches = d.scalar(t, `
		SELECT count(*) FROM shiftcast.facility_requirements f
		FULL JOIN (SELECT facility_id, array_agg(DISTINCT document_id ORDER BY document_id) AS ids
		           FROM "FacilityRequirement" GROUP BY facility_id) r USING (facility_id)
		WHERE f.document_ids IS DISTINCT FROM r.ids`)
	require.Zero(t, mismatches, "shiftcast.facility_requirements disagrees with \"FacilityRequirement\"")
}

// shiftIndexes lists "Shift"'s index and constraint definitions.
func (d db) shiftIndexes(t *testing.T) []string {
	t.Helper()
	rows, err := d.pool.Query(context.Background(), `
		SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = '"Shift"'::regclass
		UNION ALL
		SELECT conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = '"Shift"'::regclass
		ORDER BY 1`)
	require.NoError(t, err)
	defs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return defs
}

func within(t *testing.T, got, want, tol float64, what string) {
	t.Helper()
	require.InDelta(t, want, got, tol, "%s: got %.4f, want %.4f ± %.4f", what, got, want, tol)
}

func TestRun_ChallengeProfile(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	d := migratedDB(t)
	indexesBefore := d.shiftIndexes(t)

	var out bytes.Buffer
	require.NoError(t, seed.RunSized(ctx, d.st, seed.Options{Profile: seed.ProfileChallenge, Seed: 7}, &out, testShifts, 0))

	require.Equal(t, map[string]int64{
		"Facility": 10, "Document": 10, "Worker": 103,
		"FacilityRequirement": 2000, "DocumentWorker": 530, "Shift": testShifts,
	}, d.counts(t))

	// Output: the three deterministic workers, one line each.
	require.Contains(t, out.String(), "deterministic worker 101 CNA\n")
	require.Contains(t, out.String(), "deterministic worker 102 LVN\n")
	require.Contains(t, out.String(), "deterministic worker 103 RN\n")

	// Deterministic workers: active, right profession, holding 1..10.
	for i, p := range domain.Professions {
		id := int64(101 + i)
		var active bool
		var prof string
		require.NoError(t, d.pool.QueryRow(ctx, `SELECT is_active, profession::text FROM "Worker" WHERE id = $1`, id).Scan(&active, &prof))
		require.True(t, active)
		require.Equal(t, string(p), prof)
		var docs []int64
		require.NoError(t, d.pool.QueryRow(ctx,
			`SELECT array_agg(DISTINCT document_id ORDER BY document_id) FROM "DocumentWorker" WHERE worker_id = $1`, id).Scan(&docs))
		require.Equal(t, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, docs)
	}
	require.Zero(t, d.scalar(t, `SELECT count(*) FROM "Shift" WHERE worker_id > 100`), "random shifts are claimed by workers 1..100 only")

	// Odds: fair coins and uniform choices, within generous tolerances.
	n := float64(testShifts)
	within(t, d.float(t, `SELECT avg(is_deleted::int) FROM "Shift"`), 0.5, 0.02, "deleted share")
	within(t, d.float(t, `SELECT avg((worker_id IS NOT NULL)::int) FROM "Shift"`), 0.5, 0.02, "claimed share")
	for _, p := range domain.Professions {
		within(t, float64(d.scalar(t, `SELECT count(*) FROM "Shift" WHERE profession = $1::text::"Profession"`, string(p)))/n, 1.0/3, 0.02, "profession "+string(p))
	}
	require.Equal(t, int64(10), d.scalar(t, `SELECT count(DISTINCT facility_id) FROM "Shift"`))
	require.Equal(t, int64(0), d.scalar(t, `SELECT count(*) FROM "Shift" WHERE facility_id NOT BETWEEN 1 AND 10 OR worker_id NOT BETWEEN 1 AND 100`))
	within(t, float64(d.scalar(t, `SELECT max(c) FROM (SELECT count(*) AS c FROM "Shift" GROUP BY facility_id) x`))/n, 0.1, 0.02, "busiest facility share")
	within(t, d.float(t, `SELECT avg(is_active::int) FROM (
		SELECT is_active FROM "Facility" UNION ALL SELECT is_active FROM "Document"
		UNION ALL SELECT is_active FROM "Worker" WHERE id <= 100) x`), 0.5, 0.2, "is_active share")
	within(t, float64(d.scalar(t, `SELECT count(DISTINCT (facility_id, document_id)) FROM "FacilityRequirement"`)), 100, 5,
		"distinct requirement pairs (2,000 uniform draws over 100 pairs cover them all)")

	// Start times: February 1..31, 2023 rolled over into March, at 05:00, 13:00 or 20:00 UTC.
	rows, err := d.pool.Query(ctx, `SELECT DISTINCT start FROM "Shift" ORDER BY 1`)
	require.NoError(t, err)
	starts, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	require.NoError(t, err)
	var want []time.Time
	for day := 1; day <= 31; day++ {
		for _, h := range []int{5, 13, 20} {
			want = append(want, time.Date(2023, time.February, day, h, 0, 0, 0, time.UTC))
		}
	}
	require.Len(t, starts, len(want))
	for i := range want {
		require.True(t, want[i].Equal(starts[i]), "start %d: got %s, want %s", i, starts[i], want[i])
	}
	require.Equal(t, time.Date(2023, time.March, 3, 20, 0, 0, 0, time.UTC), want[len(want)-1])
	require.Zero(t, d.scalar(t, `SELECT count(*) FROM "Shift" WHERE "end" <> start + interval '5 hours'`))

	// Loading left the schema as the migrations made it, analyzed and with
	// the visibility map set, and the id sequences past the loaded ids.
	require.Equal(t, indexesBefore, d.shiftIndexes(t))
	require.Equal(t, d.scalar(t, `SELECT relpages FROM pg_class WHERE oid = '"Shift"'::regclass`),
		d.scalar(t, `SELECT relallvisible FROM pg_class WHERE oid = '"Shift"'::regclass`), "all \"Shift\" pages all-visible")
	require.Equal(t, int64(testShifts), d.scalar(t, `SELECT reltuples::bigint FROM pg_class WHERE oid = '"Shift"'::regclass`))
	require.Equal(t, int64(104), d.scalar(t, `INSERT INTO "Worker" (name, profession) VALUES ('next', 'RN') RETURNING id`))
	require.Equal(t, int64(testShifts+1), d.scalar(t,
		`INSERT INTO "Shift" (start, "end", profession, facility_id) VALUES (now(), now(), 'RN', 1) RETURNING id`))
	require.Equal(t, int64(2001), d.scalar(t, `INSERT INTO "FacilityRequirement" (facility_id, document_id) VALUES (1, 1) RETURNING id`))
	require.Equal(t, int64(531), d.scalar(t, `INSERT INTO "DocumentWorker" (worker_id, document_id) VALUES (1, 1) RETURNING id`))
	d.requireDerivedMatch(t)
}

func TestRun_SameSeedSameData(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	for _, profile := range seed.Profiles {
		t.Run(profile, func(t *testing.T) {
			t.Parallel()
			now := time.Date(2025, time.June, 3, 14, 22, 0, 0, time.UTC)
			load := func(s int64) map[string]string {
				d := migratedDB(t)
				opts := seed.Options{Profile: profile, Seed: s, Now: now}
				require.NoError(t, seed.RunSized(ctx, d.st, opts, &bytes.Buffer{}, 2_000, 0.01))
				return d.fingerprint(t)
			}
			a, b, c := load(42), load(42), load(43)
			require.Equal(t, a, b, "same seed, same rows")
			require.NotEqual(t, a["Shift"], c["Shift"], "another seed, other shifts")
			require.NotEqual(t, a["Worker"], c["Worker"], "another seed, other workers")
		})
	}
}

func TestRun_ResetRequiredForNonEmptyTables(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	d := migratedDB(t)
	opts := seed.Options{Profile: seed.ProfileChallenge, Seed: 1}
	require.NoError(t, seed.RunSized(ctx, d.st, opts, &bytes.Buffer{}, 2_000, 0))
	first := d.fingerprint(t)

	opts.Seed = 2
	err := seed.RunSized(ctx, d.st, opts, &bytes.Buffer{}, 3_000, 0)
	require.Error(t, err)
	require.Equal(t, domain.EINVALID, domain.ErrorCode(err))
	require.ErrorIs(t, err, store.ErrNotEmpty)
	require.Contains(t, err.Error(), "--reset")
	require.Equal(t, first, d.fingerprint(t), "a refused seed changes nothing")

	opts.Reset = true
	require.NoError(t, seed.RunSized(ctx, d.st, opts, &bytes.Buffer{}, 3_000, 0))
	require.EqualValues(t, 3_000, d.counts(t)["Shift"])
	require.NotEqual(t, first["Shift"], d.fingerprint(t)["Shift"])
	require.Equal(t, int64(3_001), d.scalar(t,
		`INSERT INTO "Shift" (start, "end", profession, facility_id) VALUES (now(), now(), 'RN', 1) RETURNING id`))
	d.requireDerivedMatch(t)

	// Reset matches a fresh load of the same seed.
	fresh := migratedDB(t)
	opts.Reset = false
	require.NoError(t, seed.RunSized(ctx, fresh.st, opts, &bytes.Buffer{}, 3_000, 0))
	_, err = d.pool.Exec(ctx, `DELETE FROM "Shift" WHERE id > 3000`)
	require.NoError(t, err)
	require.Equal(t, fresh.fingerprint(t), d.fingerprint(t))
}

func TestRun_MarketplaceProfile(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	d := migratedDB(t)
	now := time.Date(2025, time.June, 3, 14, 22, 0, 0, time.UTC)
	hour := time.Date(2025, time.June, 3, 14, 0, 0, 0, time.UTC)

	var out bytes.Buffer
	require.NoError(t, seed.RunSized(ctx, d.st, seed.Options{Profile: seed.ProfileMarketplace, Seed: 3, Now: now}, &out, 0, testScale))
	require.NotContains(t, out.String(), "deterministic worker")

	c := d.counts(t)
	require.EqualValues(t, 15, c["Facility"])
	require.EqualValues(t, 40, c["Document"])
	require.EqualValues(t, 1_500, c["Worker"])
	require.EqualValues(t, 15_000, c["Shift"])
	within(t, float64(c["DocumentWorker"])/float64(c["Worker"]), 16.8, 1.5, "documents held per worker")

	// Requirements: 2..8 distinct documents per facility, 2..6 of them core (1..12).
	require.Zero(t, d.scalar(t, `SELECT count(*) FROM (SELECT facility_id FROM "FacilityRequirement"
		GROUP BY facility_id HAVING count(*) NOT BETWEEN 2 AND 8 OR count(*) <> count(DISTINCT document_id)) x`))
	require.EqualValues(t, 15, d.scalar(t, `SELECT count(DISTINCT facility_id) FROM "FacilityRequirement"`))
	require.Zero(t, d.scalar(t, `SELECT count(*) FROM (SELECT facility_id FROM "FacilityRequirement"
		GROUP BY facility_id HAVING count(*) FILTER (WHERE document_id <= 12) NOT BETWEEN 2 AND 6) x`))
	require.Zero(t, d.scalar(t, `SELECT count(*) FROM (SELECT 1 FROM "DocumentWorker" GROUP BY worker_id, document_id HAVING count(*) > 1) x`))

	within(t, d.float(t, `SELECT avg(is_active::int) FROM "Worker"`), 0.90, 0.03, "active workers")
	within(t, d.float(t, `SELECT avg((profession = 'CNA')::int) FROM "Worker"`), 0.50, 0.04, "CNA workers")
	within(t, d.float(t, `SELECT avg((profession = 'CNA')::int) FROM "Shift"`), 0.50, 0.03, "CNA shifts")
	within(t, d.float(t, `SELECT avg(is_deleted::int) FROM "Shift"`), 0.10, 0.02, "deleted shifts")
	within(t, d.float(t, `SELECT avg((worker_id IS NOT NULL)::int) FROM "Shift"`), 0.30, 0.02, "claimed shifts")

	// Shifts: in the four weeks after now (rounded to the hour), 4, 8 or 12 h long.
	require.Zero(t, d.scalar(t, `SELECT count(*) FROM "Shift" WHERE start <= $1 OR start > $1 + interval '28 days'`, hour))
	require.Zero(t, d.scalar(t, `SELECT count(*) FROM "Shift" WHERE "end" - start NOT IN (interval '4 hours', interval '8 hours', interval '12 hours')`))
	require.Zero(t, d.scalar(t, `SELECT count(*) FROM "Shift" WHERE date_trunc('hour', start) <> start`))
	within(t, float64(d.scalar(t, `SELECT count(DISTINCT start::date) FROM "Shift"`)), 29, 1, "days with shifts")

	// Claims: by an active worker of the shift's profession.
	require.Zero(t, d.scalar(t, `SELECT count(*) FROM "Shift" s JOIN "Worker" w ON w.id = s.worker_id
		WHERE w.profession <> s.profession OR NOT w.is_active`))

	// The document rule holds for about half of the (worker, facility)
	// pairs: many workers qualify at many facilities, not all everywhere.
	eligiblePairs := d.float(t, `
		SELECT avg((f.document_ids <@ coalesce(w.document_ids, '{}'))::int)
		FROM shiftcast.facility_requirements f CROSS JOIN "Worker" wk
		LEFT JOIN shiftcast.worker_documents w ON w.worker_id = wk.id`)
	require.Greater(t, eligiblePairs, 0.25)
	require.Less(t, eligiblePairs, 0.75)

	d.requireDerivedMatch(t)
}

func TestRun_Bare(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	d := open(t, testenv.Database(t))
	opts := seed.Options{Profile: seed.ProfileChallenge, Seed: 5, Bare: true}
	require.NoError(t, seed.RunSized(ctx, d.st, opts, &bytes.Buffer{}, 2_000, 0))

	c := d.counts(t)
	require.EqualValues(t, 103, c["Worker"])
	require.EqualValues(t, 2_000, c["Shift"])
	require.Zero(t, d.scalar(t, `SELECT count(*) FROM pg_namespace WHERE nspname = 'shiftcast'`))
	require.Zero(t, d.scalar(t, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename NOT IN
		('Facility', 'Document', 'Worker', 'FacilityRequirement', 'DocumentWorker', 'Shift')`))
	require.Zero(t, d.scalar(t, `SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND indexname NOT LIKE '%_pkey'`),
		"bare means primary keys only")
	require.EqualValues(t, 2, d.scalar(t, `SELECT count(*) FROM pg_constraint WHERE conrelid = '"Shift"'::regclass AND contype = 'f'`))

	// Bare again into the now non-empty database: reset works, the schema is kept.
	opts.Reset = true
	require.NoError(t, seed.RunSized(ctx, d.st, opts, &bytes.Buffer{}, 1_000, 0))
	require.EqualValues(t, 1_000, d.counts(t)["Shift"])

	// A migrated database is not bare.
	m := migratedDB(t)
	err := seed.RunSized(ctx, m.st, opts, &bytes.Buffer{}, 1_000, 0)
	require.ErrorIs(t, err, store.ErrNotBare)
	require.Equal(t, domain.EINVALID, domain.ErrorCode(err))
}

func TestRun_UnknownProfile(t *testing.T) {
	t.Parallel()
	err := seed.Run(context.Background(), nil, seed.Options{Profile: "nope"}, &bytes.Buffer{})
	require.Equal(t, domain.EINVALID, domain.ErrorCode(err))
}

func TestGenerate_Deterministic(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC)
	for _, profile := range seed.Profiles {
		t.Run(profile, func(t *testing.T) {
			t.Parallel()
			opts := seed.Options{Profile: profile, Seed: 9, Now: now}
			a, err := seed.GenerateSized(opts, 1_000, 0.01)
			require.NoError(t, err)
			b, err := seed.GenerateSized(opts, 1_000, 0.01)
			require.NoError(t, err)
			collect := func(ds seed.Dataset) []domain.Shift {
				var out []domain.Shift
				for s := range ds.Bulk.Shifts {
					out = append(out, s)
				}
				return out
			}
			sa := collect(a)
			require.Len(t, sa, a.ShiftCount)
			require.Equal(t, sa, collect(b))
			require.Equal(t, sa, collect(a), "a shift stream replays identically")
			require.Equal(t, a.Bulk.Workers, b.Bulk.Workers)
			require.Equal(t, a.Bulk.Requirements, b.Bulk.Requirements)
			require.Equal(t, a.Bulk.WorkerDocuments, b.Bulk.WorkerDocuments)
		})
	}
}

func TestGenerate_ChallengeFullSize(t *testing.T) {
	t.Parallel()
	ds, err := seed.Generate(seed.Options{Profile: seed.ProfileChallenge})
	require.NoError(t, err)
	require.Equal(t, 2_000_000, ds.ShiftCount)
	require.Len(t, ds.Bulk.Facilities, 10)
	require.Len(t, ds.Bulk.Documents, 10)
	require.Len(t, ds.Bulk.Workers, 103)
	require.Len(t, ds.Bulk.Requirements, 2_000)
	require.Len(t, ds.Bulk.WorkerDocuments, 530)
	require.Len(t, ds.Deterministic, 3)
	for _, w := range ds.Bulk.Workers[:100] {
		require.Len(t, w.Name, 40, "the challenge's names are 20 random bytes in hex")
	}
}
