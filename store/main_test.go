package store_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/store"
	"github.com/shiftcast/shiftcast/testenv"
	"github.com/shiftcast/shiftcast/testenv/teststore"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// testBundle is one test's isolated, migrated database.
type testBundle struct {
	store *store.Store
	pool  *pgxpool.Pool
	url   string
}

func setup(t testing.TB) *testBundle {
	t.Helper()
	url := testenv.DatabaseFrom(t, "shiftcast", store.MigrateDatabase)
	st := teststore.OpenURL(t, url)
	return &testBundle{store: st, pool: st.Pool(), url: url}
}

// exec runs statements that set up a test's data. Tests may write SQL; the
// code under test may not.
func (b *testBundle) exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	_, err := b.pool.Exec(context.Background(), sql, args...)
	require.NoError(t, err, sql)
}
