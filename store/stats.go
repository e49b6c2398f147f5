package store

import "context"

// HasMarketplaceData reports whether any worker exists, so the local stack
// seeds demo data only into an empty database.
func (s *Store) HasMarketplaceData(ctx context.Context) (bool, error) {
	var ok bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM "Worker")`).Scan(&ok); err != nil {
		return false, classify("check for marketplace data", err)
	}
	return ok, nil
}
