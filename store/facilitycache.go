package store

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"

	"github.com/shiftcast/shiftcast/domain"
)

// defaultFacilityCacheWorkers bounds the per-worker entries kept when
// Config.FacilityCacheWorkers is zero: about 100 bytes each plus the
// arrays, so a few MB for the marketplace profile's whole workforce.
const defaultFacilityCacheWorkers = 1 << 16

// facilityCache remembers, per worker, the facilities whose requirements the
// worker's documents satisfy, so the hot listing statement can take them as
// a parameter instead of recomputing them on every request (measured with
// scripts/bench-statements.sh: about a sixth of the statement's cost).
//
// It is never trusted on its own: eligibleShiftsCachedSQL re-reads, in its
// own snapshot, the worker's documents and profession and
// shiftcast.facility_version, and returns no row unless they are what the
// entry was computed from. Any mismatch, or an empty page, falls back to the
// full statement, which refreshes the entry. A cached answer is therefore
// exactly what the full statement would have returned.
type facilityCache struct {
	maxWorkers int
	hits       atomic.Int64 // listings answered by the hot statement
	misses     atomic.Int64 // listings that ran the full statement
	pipelined  atomic.Int64 // hot statements sent several to a round trip
	coalesced  atomic.Int64 // listings answered by an equal one's statement

	mu         sync.RWMutex
	version    int64 // facility_version the facilities below were read at; 0: none read yet
	facilities []cachedFacility
	workers    map[int64]workerFacilities
}

// cachedFacility is an active facility and its required documents.
type cachedFacility struct {
	id       int64
	required []int64
}

// workerFacilities is what the hot statement checks (profession, documents,
// facility version) and what it uses (facilities).
type workerFacilities struct {
	active     bool
	profession string
	documents  []int64
	version    int64
	facilities []int64
}

func newFacilityCache(maxWorkers int) *facilityCache {
	if maxWorkers <= 0 {
		maxWorkers = defaultFacilityCacheWorkers
	}
	return &facilityCache{maxWorkers: maxWorkers, workers: make(map[int64]workerFacilities)}
}

// get returns worker id's entry, if any.
func (c *facilityCache) get(id int64) (workerFacilities, bool) {
	c.mu.RLock()
	e, ok := c.workers[id]
	c.mu.RUnlock()
	return e, ok
}

// remember stores worker id's state as read at facility version v, computing
// its facilities from the cached facility map. It returns false, storing
// nothing, when the map is not at version v; the caller then loads it.
func (c *facilityCache) remember(id int64, active bool, profession string, documents []int64, v int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.version != v {
		return false
	}
	// nil would be sent as NULL, which never compares equal.
	if documents == nil {
		documents = []int64{}
	}
	e := workerFacilities{active: active, profession: profession, documents: documents, version: v, facilities: []int64{}}
	for _, f := range c.facilities {
		if domain.HoldsAll(documents, f.required) {
			e.facilities = append(e.facilities, f.id)
		}
	}
	if _, ok := c.workers[id]; !ok && len(c.workers) >= c.maxWorkers {
		// Random eviction: Go's map iteration starts anywhere, and a
		// wrongly evicted worker costs one full statement.
		for k := range c.workers {
			delete(c.workers, k)
			break
		}
	}
	c.workers[id] = e
	return true
}

// setFacilities replaces the facility map with one read at version v, unless
// a newer one is already in place.
func (c *facilityCache) setFacilities(v int64, fs []cachedFacility) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v > c.version {
		c.version, c.facilities = v, fs
	}
}

// facilityMapSQL reads every active facility's requirements together with
// the version they belong to, in one snapshot.
const facilityMapSQL = `
SELECT (SELECT version FROM shiftcast.facility_version), fa.id, COALESCE(fr.document_ids, '{}')
FROM "Facility" fa
LEFT JOIN shiftcast.facility_requirements fr ON fr.facility_id = fa.id
WHERE fa.is_active
UNION ALL
SELECT version, NULL, NULL FROM shiftcast.facility_version`

// loadFacilities reads the facility map into the cache.
func (s *Store) loadFacilities(ctx context.Context) error {
	rows, err := s.pool.Query(ctx, facilityMapSQL)
	if err != nil {
		return classify("load facility requirements", err)
	}
	var (
		version  int64
		id       *int64
		required []int64
		fs       []cachedFacility
	)
	_, err = pgx.ForEachRow(rows, []any{&version, &id, &required}, func() error {
		if id != nil {
			fs = append(fs, cachedFacility{id: *id, required: slices.Clone(required)})
		}
		return nil
	})
	if err != nil {
		return classify("load facility requirements", err)
	}
	if version == 0 {
		return fmt.Errorf("load facility requirements: shiftcast.facility_version is empty")
	}
	s.facilities.setFacilities(version, fs)
	return nil
}

// FacilityCacheStats counts how the query path answered worker listings.
type FacilityCacheStats struct {
	// Hits were answered by the hot statement with a cached facility set.
	Hits int64
	// Misses ran the full statement: no entry, a stale one, or an empty page.
	Misses int64
	// Workers is the number of entries held.
	Workers int
	// Pipelined counts the hot statements sent together with others in
	// one round trip.
	Pipelined int64
	// Coalesced counts the listings that shared an equal listing's
	// statement, sent in the same round trip.
	Coalesced int64
}

// FacilityCacheStats reports the query path's facility cache counters.
func (s *Store) FacilityCacheStats() FacilityCacheStats {
	c := s.facilities
	c.mu.RLock()
	n := len(c.workers)
	c.mu.RUnlock()
	return FacilityCacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Workers: n, Pipelined: c.pipelined.Load(), Coalesced: c.coalesced.Load()}
}
