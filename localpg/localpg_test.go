package localpg_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/localpg"
)

func TestRestartReusesData(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Not t.TempDir(): its parent is 0700, which the postgres OS user cannot
	// traverse when the tests run as root.
	base, err := os.MkdirTemp("", "localpg-test-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(base, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	dir := filepath.Join(base, "data")

	c, err := localpg.Start(ctx, localpg.Options{Dir: dir})
	require.NoError(t, err)
	exec(ctx, t, c.URL(), `CREATE TABLE kept (v text); INSERT INTO kept VALUES ('survives')`)
	require.NoError(t, c.Stop(ctx))
	require.FileExists(t, filepath.Join(dir, "PG_VERSION"), "a caller-owned data directory must survive Stop")

	// Simulate a server killed without cleanup whose pid was since reused by
	// an unrelated live process (here: the test binary itself).
	stale := fmt.Sprintf("%d\n%s\n", os.Getpid(), dir)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte(stale), 0o600))

	c, err = localpg.Start(ctx, localpg.Options{Dir: dir})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	require.Equal(t, "survives", queryString(ctx, t, c.URL(), `SELECT v FROM kept`))
}

func TestTempDirRemovedOnStop(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	c, err := localpg.Start(ctx, localpg.Options{Settings: map[string]string{"application_name": "localpg_test"}})
	require.NoError(t, err)
	require.Equal(t, "off", queryString(ctx, t, c.URL(), `SHOW fsync`), "non-durable clusters run with fsync=off")
	require.Equal(t, "200", queryString(ctx, t, c.URL(), `SHOW max_connections`))
	require.DirExists(t, c.DataDir())

	require.NoError(t, c.Stop(ctx))
	require.NoDirExists(t, c.DataDir())
	require.NoDirExists(t, c.SocketDir())
	require.NoError(t, c.Stop(ctx), "Stop is idempotent")
}

func exec(ctx context.Context, t *testing.T, url, sql string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	require.NoError(t, err)
}

func queryString(ctx context.Context, t *testing.T, url, sql string) string {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var s string
	require.NoError(t, conn.QueryRow(ctx, sql).Scan(&s))
	return s
}
