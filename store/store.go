// Package store is shiftcast's only owner of SQL: the pgx pool, embedded
// migrations (shiftcast's and River's), the eligibility queries and bulk
// loading. Callers get domain types back and never see a pgx type.
package store

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/shiftcast/shiftcast/batch"
	"github.com/shiftcast/shiftcast/domain"
)

// Store reads and writes shiftcast's PostgreSQL database.
type Store struct {
	pool       *pgxpool.Pool
	facilities *facilityCache
	// listings pipelines the cached listings asked for at once (see
	// EligibleShifts).
	listings *batch.Batcher[cachedListing, listingResult]
}

// Config tunes the pool. Zero values keep pgxpool's defaults.
type Config struct {
	MaxConns int32
	MinConns int32
	// FacilityCacheWorkers bounds how many workers' eligible-facility sets
	// the query path keeps (see facilityCache); 0 means 65,536.
	FacilityCacheWorkers int
}

// Open connects a pool to databaseURL. It does not wait for the database to
// answer: a service whose database is down must still start and serve 503s.
func Open(ctx context.Context, databaseURL string, cfg Config) (*Store, error) {
	pcfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, domain.Errorf(domain.EINVALID, "parse database url: %v", err)
	}
	if cfg.MaxConns > 0 {
		pcfg.MaxConns = cfg.MaxConns
	}
	if cfg.MinConns > 0 {
		pcfg.MinConns = cfg.MinConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	st := &Store{pool: pool, facilities: newFacilityCache(cfg.FacilityCacheWorkers)}
	// A lane per four connections (one per core with the default pool):
	// listings arriving while the lanes are busy wait and go together. At
	// 32 clients on this project's 2-core machine, 2 lanes of 8 answered
	// 15% more than 8 lanes, which left nearly every listing alone in its
	// round trip (PERFORMANCE.md).
	st.listings = batch.New(maxListingBatch, max(1, int(pcfg.MaxConns)/4), st.runListings)
	st.listings.Timeout = listingTimeout
	return st, nil
}

// Pool returns the underlying pool, for River's driver.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes the pool.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers, for readiness.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return classify("ping", err)
	}
	return nil
}

// classify wraps err with op and, when the database could not be reached at
// all, marks it EUNAVAILABLE so the edges answer 503 rather than 500.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	if isUnavailable(err) {
		return domain.Unavailable("database", fmt.Errorf("%s: %w", op, err))
	}
	return fmt.Errorf("%s: %w", op, err)
}

func isUnavailable(err error) bool {
	var connErr *pgconn.ConnectError
	var netErr net.Error
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &connErr), errors.As(err, &netErr):
		return true
	case errors.Is(err, context.DeadlineExceeded):
		return true
	case errors.As(err, &pgErr):
		// Class 08: connection exception; 57P0x: admin/crash shutdown,
		// cannot connect now; 53300: too many connections.
		return pgErr.Code[:2] == "08" || pgErr.Code == "57P01" || pgErr.Code == "57P02" ||
			pgErr.Code == "57P03" || pgErr.Code == "53300"
	case pgconn.SafeToRetry(err):
		return true
	}
	return false
}
