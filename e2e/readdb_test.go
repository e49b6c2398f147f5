package e2e_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/store"
	"github.com/shiftcast/shiftcast/testenv"
)

// With --read-database-url the queries read from that database (a
// streaming replica in a deployment) while events are applied to
// DATABASE_URL. Here the read database is a second database with a world
// of its own, so every answer shows which database it came from.
func TestServe_ReadDatabase(t *testing.T) {
	t.Parallel()
	e := setup(t)
	readURL := testenv.DatabaseFrom(t, "shiftcast", store.MigrateDatabase)
	read, err := pgxpool.New(context.Background(), readURL)
	require.NoError(t, err)
	t.Cleanup(read.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now().UTC().Add(48 * time.Hour).Truncate(time.Hour)
	_, err = read.Exec(ctx, `
		INSERT INTO "Facility" (id, name, is_active) VALUES (1, 'replica', true);
		INSERT INTO "Worker" (id, name, is_active, profession) VALUES (1, 'ann', true, 'CNA');`)
	require.NoError(t, err)
	_, err = read.Exec(ctx, `INSERT INTO "Shift" (id, start, "end", profession, is_deleted, facility_id) VALUES (7, $1, $2, 'CNA', false, 1)`,
		start, start.Add(5*time.Hour))
	require.NoError(t, err)

	p := e.serve("--read-database-url", readURL)

	status, body := get(t, p.url+"/readyz?check=postgres_read")
	require.Equal(t, http.StatusOK, status, body)

	// Worker 1 exists only in the read database.
	require.Zero(t, e.queryInt(`SELECT count(*) FROM "Worker" WHERE id = 1`))
	status, body = get(t, p.url+"/v1/workers/1/eligible-shifts")
	require.Equal(t, http.StatusOK, status, body)
	var page struct {
		Shifts []struct {
			ID int64 `json:"id"`
		} `json:"shifts"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &page))
	require.Len(t, page.Shifts, 1, body)
	require.Equal(t, int64(7), page.Shifts[0].ID)

	// Events are applied to the primary, which the queries do not read.
	e.publish([][]byte{line(domain.TypeWorkerCreated, "w-2", domain.WorkerCreated{ID: 2, Name: "bob", Profession: domain.RN, IsActive: true})})
	require.Eventually(t, func() bool { return e.queryInt(`SELECT count(*) FROM "Worker" WHERE id = 2`) == 1 },
		20*time.Second, 100*time.Millisecond, "the event is applied to DATABASE_URL")
	status, body = get(t, p.url+"/v1/workers/2/eligible-shifts")
	require.Equal(t, http.StatusNotFound, status, "worker 2 is not in the read database: %s", body)
}

// get returns a GET's status and body, bounded.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}
