package store

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/shiftcast/shiftcast/domain"
)

// ErrNotEmpty is returned by BulkLoad when the marketplace tables already
// hold rows and the load was not asked to reset them.
var ErrNotEmpty = errors.New("marketplace tables are not empty")

// ErrNotBare is returned by CreateBareSchema for a database that shiftcast's
// migrations already touched.
var ErrNotBare = errors.New("database already has shiftcast's schema")

// Document is a row of "Document". The eligibility rules ignore it; it is
// here for loading.
type Document struct {
	ID       int64
	Name     string
	IsActive bool
}

// FacilityRequirement is a row of "FacilityRequirement". Rows may repeat a
// (facility, document) pair.
type FacilityRequirement struct {
	ID         int64
	FacilityID int64
	DocumentID int64
}

// DocumentWorker is a row of "DocumentWorker". Rows may repeat a
// (worker, document) pair.
type DocumentWorker struct {
	ID         int64
	WorkerID   int64
	DocumentID int64
}

// Bulk is a whole marketplace dataset to load. Every row carries its id. The
// requirement and holding rows are loaded from Requirements and
// WorkerDocuments; Facility.RequiredDocumentIDs and Worker.DocumentIDs are
// ignored. Shifts is consumed once, as a stream, so a dataset of millions of
// shifts is never held in memory.
type Bulk struct {
	// Reset truncates the six marketplace tables first. Without it the load
	// refuses (ErrNotEmpty) to write into tables that hold any row.
	Reset bool

	Facilities      []domain.Facility
	Documents       []Document
	Workers         []domain.Worker
	Requirements    []FacilityRequirement
	WorkerDocuments []DocumentWorker
	Shifts          iter.Seq[domain.Shift]
}

// LoadStats reports what BulkLoad wrote and where the time went.
type LoadStats struct {
	Facilities, Documents, Workers, Requirements, WorkerDocuments, Shifts int64

	// CopyShifts is the time spent streaming shifts, BuildIndexes the time
	// spent recreating "Shift"'s secondary indexes and foreign keys, Vacuum
	// the final VACUUM (ANALYZE), Total the whole load.
	CopyShifts, BuildIndexes, Vacuum, Total time.Duration
}

// marketplaceTables are the challenge's tables in foreign-key order.
var marketplaceTables = []string{"Facility", "Document", "Worker", "FacilityRequirement", "DocumentWorker", "Shift"}

// shiftBatch is how many generated shifts travel together from the generator
// goroutine to the COPY encoder.
const shiftBatch = 4096

// BulkLoad writes d into the marketplace tables with binary COPY and explicit
// ids, then moves the id sequences past the loaded ids.
//
// The whole load is one transaction, so a failure leaves the tables as they
// were. Before the shifts are copied, "Shift"'s secondary indexes and
// foreign keys are dropped and then recreated from their own catalog
// definitions, which is several times faster than maintaining them row by
// row. The load ends with VACUUM (ANALYZE) so that the planner has
// statistics and the visibility map is set for index-only scans.
func (s *Store) BulkLoad(ctx context.Context, d Bulk) (LoadStats, error) {
	began := time.Now()
	var st LoadStats

	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return st, classify("bulk load: acquire connection", err)
	}
	// The session gets its own settings and enum registration; it is closed
	// afterwards rather than handed back to the pool in that state.
	conn := pc.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))

	if _, err := conn.Exec(ctx, "SET synchronous_commit = off; SET maintenance_work_mem = '256MB'"); err != nil {
		return st, classify("bulk load: session settings", err)
	}
	prof, err := conn.LoadType(ctx, `"Profession"`)
	if err != nil {
		return st, classify("bulk load: load \"Profession\" type (has the schema been migrated?)", err)
	}
	conn.TypeMap().RegisterType(prof)

	tx, err := conn.Begin(ctx)
	if err != nil {
		return st, classify("bulk load: begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit

	if err := prepareTables(ctx, tx, d.Reset); err != nil {
		return st, err
	}
	if st.Documents, err = copyRows(ctx, tx, "Document", []string{"id", "name", "is_active"}, d.Documents,
		func(r Document, row []any) { row[0], row[1], row[2] = r.ID, r.Name, r.IsActive }); err != nil {
		return st, err
	}
	if st.Facilities, err = copyRows(ctx, tx, "Facility", []string{"id", "name", "is_active"}, d.Facilities,
		func(r domain.Facility, row []any) { row[0], row[1], row[2] = r.ID, r.Name, r.IsActive }); err != nil {
		return st, err
	}
	if st.Workers, err = copyRows(ctx, tx, "Worker", []string{"id", "name", "is_active", "profession"}, d.Workers,
		func(r domain.Worker, row []any) {
			row[0], row[1], row[2], row[3] = r.ID, r.Name, r.IsActive, string(r.Profession)
		}); err != nil {
		return st, err
	}
	if st.Requirements, err = copyRows(ctx, tx, "FacilityRequirement", []string{"id", "facility_id", "document_id"}, d.Requirements,
		func(r FacilityRequirement, row []any) { row[0], row[1], row[2] = r.ID, r.FacilityID, r.DocumentID }); err != nil {
		return st, err
	}
	if st.WorkerDocuments, err = copyRows(ctx, tx, "DocumentWorker", []string{"id", "worker_id", "document_id"}, d.WorkerDocuments,
		func(r DocumentWorker, row []any) { row[0], row[1], row[2] = r.ID, r.WorkerID, r.DocumentID }); err != nil {
		return st, err
	}

	if d.Shifts != nil {
		restore, err := dropShiftSecondaries(ctx, tx)
		if err != nil {
			return st, err
		}
		t := time.Now()
		if st.Shifts, err = copyShifts(ctx, tx, d.Shifts); err != nil {
			return st, err
		}
		st.CopyShifts = time.Since(t)
		t = time.Now()
		for _, stmt := range restore {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return st, classify("bulk load: recreate "+stmt, err)
			}
		}
		st.BuildIndexes = time.Since(t)
	}
	if err := tx.Commit(ctx); err != nil {
		return st, classify("bulk load: commit", err)
	}

	// The load committed asynchronously. VACUUM may only mark a page
	// all-visible once its rows' commit is known durable (their hint bits
	// can be set), so the sequence update commits synchronously: setval
	// takes a transaction id, and a synchronous commit flushes the WAL of
	// every commit before it.
	var seq strings.Builder
	seq.WriteString("SET synchronous_commit = on;\n")
	for _, t := range marketplaceTables {
		q := pgx.Identifier{t}.Sanitize()
		fmt.Fprintf(&seq, "SELECT setval(pg_get_serial_sequence('%s', 'id'), COALESCE(max(id), 0) + 1, false) FROM %s;\n", q, q)
	}
	if _, err := conn.Exec(ctx, seq.String()); err != nil {
		return st, classify("bulk load: advance id sequences", err)
	}

	t := time.Now()
	if err := vacuumAnalyze(ctx, conn); err != nil {
		return st, err
	}
	st.Vacuum = time.Since(t)
	st.Total = time.Since(began)
	return st, nil
}

// prepareTables locks the marketplace tables and either truncates them or
// checks that they are empty.
func prepareTables(ctx context.Context, tx pgx.Tx, reset bool) error {
	names := make([]string, len(marketplaceTables))
	for i, t := range marketplaceTables {
		names[i] = pgx.Identifier{t}.Sanitize()
	}
	list := strings.Join(names, ", ")
	if reset {
		if _, err := tx.Exec(ctx, "TRUNCATE "+list+" RESTART IDENTITY CASCADE"); err != nil {
			return classify("bulk load: truncate", hintMigrate(err))
		}
		return nil
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE "+list+" IN SHARE ROW EXCLUSIVE MODE"); err != nil {
		return classify("bulk load: lock tables", hintMigrate(err))
	}
	checks := make([]string, len(marketplaceTables))
	for i, t := range marketplaceTables {
		checks[i] = fmt.Sprintf("CASE WHEN EXISTS (SELECT FROM %s) THEN '%s' END", names[i], t)
	}
	var nonEmpty []string
	if err := tx.QueryRow(ctx, "SELECT array_remove(ARRAY["+strings.Join(checks, ", ")+"], NULL)").Scan(&nonEmpty); err != nil {
		return classify("bulk load: check tables are empty", err)
	}
	if len(nonEmpty) > 0 {
		return fmt.Errorf("%w: %s hold rows", ErrNotEmpty, strings.Join(nonEmpty, ", "))
	}
	return nil
}

func hintMigrate(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" {
		return fmt.Errorf("%w (has the schema been migrated?)", err)
	}
	return err
}

// dropShiftSecondaries drops "Shift"'s indexes other than those backing its
// primary key or other constraints, and its foreign keys, and returns the
// statements that recreate them from their catalog definitions, so the
// loader never restates the migrations' DDL.
func dropShiftSecondaries(ctx context.Context, tx pgx.Tx) ([]string, error) {
	// Indexes first, foreign keys after: a foreign key's validation may use
	// the recreated indexes.
	rows, err := tx.Query(ctx, `
		SELECT 1 AS ord, format('DROP INDEX %s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid)
		FROM pg_index i
		WHERE i.indrelid = '"Shift"'::regclass
		  AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid)
		UNION ALL
		SELECT 2, format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass, c.conname),
		       format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname, pg_get_constraintdef(c.oid))
		FROM pg_constraint c
		WHERE c.conrelid = '"Shift"'::regclass AND c.contype = 'f'
		ORDER BY 1, 2`)
	if err != nil {
		return nil, classify("bulk load: read \"Shift\" indexes", err)
	}
	var drops, restore []string
	for rows.Next() {
		var ord int
		var drop, create string
		if err := rows.Scan(&ord, &drop, &create); err != nil {
			rows.Close()
			return nil, classify("bulk load: read \"Shift\" indexes", err)
		}
		drops = append(drops, drop)
		restore = append(restore, create)
	}
	if err := rows.Err(); err != nil {
		return nil, classify("bulk load: read \"Shift\" indexes", err)
	}
	for _, drop := range drops {
		if _, err := tx.Exec(ctx, drop); err != nil {
			return nil, classify("bulk load: "+drop, err)
		}
	}
	return restore, nil
}

// copyRows copies rows into table with one binary COPY.
func copyRows[T any](ctx context.Context, tx pgx.Tx, table string, cols []string, rows []T, fill func(T, []any)) (int64, error) {
	if len(rows) == 0 {
		return 0, nil
	}
	row := make([]any, len(cols))
	i := 0
	n, err := tx.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromFunc(func() ([]any, error) {
		if i == len(rows) {
			return nil, nil
		}
		fill(rows[i], row)
		i++
		return row, nil
	}))
	if err != nil {
		return n, classify("bulk load: copy "+table, err)
	}
	return n, nil
}

// copyShifts streams shifts into "Shift". The generator runs in its own
// goroutine and hands over batches, so generating and encoding overlap.
func copyShifts(ctx context.Context, tx pgx.Tx, shifts iter.Seq[domain.Shift]) (int64, error) {
	full := make(chan []domain.Shift, 4)
	free := make(chan []domain.Shift, 6)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(full)
		batch := make([]domain.Shift, 0, shiftBatch)
		send := func() bool {
			select {
			case full <- batch:
			case <-stop:
				return false
			}
			select {
			case batch = <-free:
				batch = batch[:0]
			default:
				batch = make([]domain.Shift, 0, shiftBatch)
			}
			return true
		}
		for sh := range shifts {
			batch = append(batch, sh)
			if len(batch) == shiftBatch && !send() {
				return
			}
		}
		if len(batch) > 0 {
			send()
		}
	}()
	defer func() { close(stop); <-done }()

	professions := map[domain.Profession]any{}
	for _, p := range domain.Professions {
		professions[p] = string(p)
	}
	row := make([]any, 7)
	var cur []domain.Shift
	i := 0
	n, err := tx.CopyFrom(ctx, pgx.Identifier{"Shift"},
		[]string{"id", "start", "end", "profession", "is_deleted", "facility_id", "worker_id"},
		pgx.CopyFromFunc(func() ([]any, error) {
			for i == len(cur) {
				if cur != nil {
					select {
					case free <- cur:
					default:
					}
				}
				var ok bool
				if cur, ok = <-full; !ok {
					cur = nil
					return nil, nil
				}
				i = 0
			}
			sh := &cur[i]
			i++
			prof, ok := professions[sh.Profession]
			if !ok {
				return nil, fmt.Errorf("shift %d: unknown profession %q", sh.ID, sh.Profession)
			}
			row[0], row[1], row[2], row[3], row[4], row[5] = sh.ID, sh.Start.UTC(), sh.End.UTC(), prof, sh.IsDeleted, sh.FacilityID
			if sh.WorkerID != nil {
				row[6] = *sh.WorkerID
			} else {
				row[6] = nil
			}
			return row, nil
		}))
	if err != nil {
		return n, classify("bulk load: copy \"Shift\"", err)
	}
	return n, nil
}

// vacuumAnalyze vacuums and analyzes the marketplace tables and the tables in
// shiftcast's schema that triggers derived from them.
func vacuumAnalyze(ctx context.Context, conn *pgx.Conn) error {
	rows, err := conn.Query(ctx, `
		SELECT format('%I.%I', n.nspname, c.relname)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'shiftcast' AND c.relkind = 'r'
		ORDER BY 1`)
	if err != nil {
		return classify("bulk load: list derived tables", err)
	}
	derived, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return classify("bulk load: list derived tables", err)
	}
	names := make([]string, 0, len(marketplaceTables)+len(derived))
	for _, t := range marketplaceTables {
		names = append(names, pgx.Identifier{t}.Sanitize())
	}
	names = append(names, derived...)
	if _, err := conn.Exec(ctx, "VACUUM (ANALYZE) "+strings.Join(names, ", ")); err != nil {
		return classify("bulk load: vacuum", err)
	}
	return nil
}

// MarketplaceDDL returns the statements that create the challenge's tables
// and enum: the Up section of the embedded migration that shiftcast's own
// schema starts from, so there is one copy of that DDL.
func MarketplaceDDL() (string, error) {
	b, err := migrationsFS.ReadFile("migrations/00001_marketplace.sql")
	if err != nil {
		return "", fmt.Errorf("read marketplace migration: %w", err)
	}
	_, up, ok := strings.Cut(string(b), "-- +goose Up")
	if !ok {
		return "", errors.New("marketplace migration has no Up section")
	}
	up, _, _ = strings.Cut(up, "-- +goose Down")
	return up, nil
}

// CreateBareSchema creates only the challenge's tables and enum, with none of
// shiftcast's indexes, triggers, tables or River's: the baseline that the
// challenge's usual SQL is measured against. It refuses a database in which
// shiftcast's migrations have run (ErrNotBare), since that one is not bare.
func (s *Store) CreateBareSchema(ctx context.Context) error {
	var migrated bool
	if err := s.pool.QueryRow(ctx,
		"SELECT to_regclass($1) IS NOT NULL OR EXISTS (SELECT FROM pg_namespace WHERE nspname = 'shiftcast')",
		migrationsTable).Scan(&migrated); err != nil {
		return classify("bare schema: inspect database", err)
	}
	if migrated {
		return ErrNotBare
	}
	ddl, err := MarketplaceDDL()
	if err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, ddl); err != nil {
		return classify("bare schema: create marketplace tables", err)
	}
	return nil
}
