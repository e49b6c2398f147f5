// Package teststore opens shiftcast's store for a test, on a database of
// the test's own, so that integration tests of every package start the same
// way and run in parallel.
package teststore

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/store"
	"github.com/shiftcast/shiftcast/testenv"
)

// Open returns a store on a fresh database with shiftcast's migrations
// applied (a clone of a template, testenv.DatabaseFrom), closed when t ends.
func Open(t testing.TB) *store.Store {
	t.Helper()
	return OpenURL(t, testenv.DatabaseFrom(t, "shiftcast", store.MigrateDatabase))
}

// OpenURL returns a store on databaseURL with a pool of four connections,
// closed when t ends.
func OpenURL(t testing.TB, databaseURL string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), databaseURL, store.Config{MaxConns: 4})
	require.NoError(t, err)
	t.Cleanup(st.Close)
	return st
}
