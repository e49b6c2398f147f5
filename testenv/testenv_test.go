package testenv_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestDatabaseFromClonesAreIsolated(t *testing.T) {
	t.Parallel()
	var prepared atomic.Int32
	prepare := func(ctx context.Context, databaseURL string) error {
		prepared.Add(1)
		conn, err := pgx.Connect(ctx, databaseURL)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, `CREATE TABLE base (v text); INSERT INTO base VALUES ('from template')`)
		return err
	}
	key := "isolation-" + t.Name()

	// Parallel clones exercise the once-per-key build and the serialized
	// CREATE DATABASE ... TEMPLATE. Each creates its own table while the
	// others run; seeing exactly one proves the clones do not share data.
	t.Run("parallel", func(t *testing.T) {
		for i := range 4 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				u := testenv.DatabaseFrom(t, key, prepare)
				require.Equal(t, "from template", queryString(t, u, `SELECT v FROM base`))
				exec(t, u, fmt.Sprintf(`CREATE TABLE mine_%d (id int)`, i))
				require.Equal(t, "1", queryString(t, u,
					`SELECT count(*)::text FROM pg_tables WHERE tablename LIKE 'mine\_%'`))
			})
		}
	})

	a := testenv.DatabaseFrom(t, key, prepare)
	b := testenv.DatabaseFrom(t, key, prepare)
	require.NotEqual(t, a, b)
	exec(t, a, `CREATE TABLE only_in_a (id int)`)
	require.Equal(t, "true", queryString(t, a, `SELECT (to_regclass('only_in_a') IS NOT NULL)::text`))
	require.Equal(t, "false", queryString(t, b, `SELECT (to_regclass('only_in_a') IS NOT NULL)::text`))
	require.Equal(t, "false", queryString(t, b, `SELECT (to_regclass('mine_0') IS NOT NULL)::text`),
		"clones start from the template, not from each other")
	require.EqualValues(t, 1, prepared.Load(), "prepare must run once per key")
}

func TestDatabaseDroppedAfterCleanup(t *testing.T) {
	t.Parallel()
	var name string
	t.Run("use", func(t *testing.T) {
		u := testenv.Database(t)
		name = dbName(t, u)
		// Deliberately left open: the drop must not depend on tests closing
		// their connections first.
		conn, err := pgx.Connect(context.Background(), u)
		require.NoError(t, err)
		_ = conn // closed by the server when the database is dropped
		exec(t, u, `CREATE TABLE t (id int)`)
	})

	// Any database on the same server will do to look at pg_database.
	observer := testenv.Database(t)
	var n int
	conn, err := pgx.Connect(context.Background(), observer)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	require.NoError(t, conn.QueryRow(context.Background(),
		`SELECT count(*) FROM pg_database WHERE datname = $1`, name).Scan(&n))
	require.Zero(t, n, "database %s must be dropped after its test", name)
}

func TestNATSJetStream(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	nc, err := nats.Connect(testenv.NATS(t))
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)

	stream := "TESTENV_" + strings.ToUpper(fmt.Sprintf("%x", time.Now().UnixNano()))
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{stream + ".>"}})
	require.NoError(t, err)
	_, err = js.Publish(ctx, stream+".hello", []byte("world"))
	require.NoError(t, err)

	cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	var got []string
	for msg := range batch.Messages() {
		got = append(got, string(msg.Data()))
		require.NoError(t, msg.Ack())
	}
	require.NoError(t, batch.Error())
	require.Equal(t, []string{"world"}, got)
}

func TestLogger(t *testing.T) {
	t.Parallel()
	testenv.Logger(t).Info("logger works")
}

func dbName(t *testing.T, databaseURL string) string {
	t.Helper()
	u, err := url.Parse(databaseURL)
	require.NoError(t, err)
	return strings.TrimPrefix(u.Path, "/")
}

func exec(t *testing.T, databaseURL, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, databaseURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	require.NoError(t, err)
}

func queryString(t *testing.T, databaseURL, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, databaseURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var s string
	require.NoError(t, conn.QueryRow(ctx, sql).Scan(&s))
	return s
}
