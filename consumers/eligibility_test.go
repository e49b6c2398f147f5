package consumers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/consumers"
	"github.com/shiftcast/shiftcast/eligibility"
	"github.com/shiftcast/shiftcast/store"
	"github.com/shiftcast/shiftcast/testenv"
	"github.com/shiftcast/shiftcast/testenv/fixture"
	"github.com/shiftcast/shiftcast/testenv/teststore"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type bundle struct {
	nc      *nats.Conn
	natsURL string
	store   *store.Store
}

func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.Timeout(5*time.Second))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

func setup(t testing.TB) *bundle {
	t.Helper()
	st := teststore.Open(t)
	fixture.Load(t, st.Pool())
	url := testenv.NATS(t)
	b := &bundle{nc: connect(t, url), natsURL: url, store: st}
	startResponder(t, connect(t, url), st)
	return b
}

func startResponder(t testing.TB, nc *nats.Conn, st *store.Store) *consumers.Responder {
	t.Helper()
	r, err := consumers.StartResponder(nc, consumers.ResponderConfig{
		Service: eligibility.NewService(st), Version: "1.0.0", Concurrency: 8, Logger: testenv.Logger(t),
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, r.Stop(ctx))
	})
	return r
}

// request sends body to subject and returns the reply and the micro error
// code ("" for success).
func (b *bundle) request(t testing.TB, subject, body string) (*nats.Msg, string) {
	t.Helper()
	msg, err := b.nc.Request(subject, []byte(body), 5*time.Second)
	require.NoError(t, err, "%s %s", subject, body)
	return msg, msg.Header.Get(micro.ErrorCodeHeader)
}

func TestResponder_Shifts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for worker, want := range fixture.EligibleShifts {
		msg, code := b.request(t, consumers.SubjectShifts, fmt.Sprintf(`{"worker_id":%d}`, worker))
		require.Empty(t, code, string(msg.Data))
		var resp eligibility.ShiftsResponse
		require.NoError(t, json.Unmarshal(msg.Data, &resp))
		ids := []int64{}
		for _, s := range resp.Shifts {
			ids = append(ids, s.ID)
		}
		require.Equal(t, want, ids, "worker %d", worker)
	}

	// Paging by cursor, one shift a page, with a time window.
	var got []int64
	req := map[string]any{"worker_id": 1, "limit": 1, "from": "2023-02-01T00:00:00Z", "to": "2023-03-01T00:00:00Z"}
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10)
		body, err := json.Marshal(req)
		require.NoError(t, err)
		msg, code := b.request(t, consumers.SubjectShifts, string(body))
		require.Empty(t, code, string(msg.Data))
		var resp eligibility.ShiftsResponse
		require.NoError(t, json.Unmarshal(msg.Data, &resp))
		for _, s := range resp.Shifts {
			got = append(got, s.ID)
		}
		if resp.NextCursor == nil {
			break
		}
		req["cursor"] = *resp.NextCursor
	}
	require.Equal(t, fixture.EligibleShifts[1], got)
}

func TestResponder_WorkersAndExplain(t *testing.T) {
	t.Parallel()
	b := setup(t)
	msg, code := b.request(t, consumers.SubjectWorkers, `{"shift_id":2}`)
	require.Empty(t, code)
	var workers eligibility.WorkersResponse
	require.NoError(t, json.Unmarshal(msg.Data, &workers))
	require.Equal(t, []eligibility.WorkerJSON{{ID: 1, Name: "Ada", Profession: "CNA"}, {ID: 2, Name: "Bo", Profession: "CNA"}, {ID: 4, Name: "Di", Profession: "CNA"}}, workers.Workers)

	msg, code = b.request(t, consumers.SubjectExplain, `{"worker_id":2,"shift_id":1}`)
	require.Empty(t, code)
	require.JSONEq(t, `{"eligible":false,"reasons":[{"code":"missing_documents","message":"worker 2 lacks 1 document(s) facility 1 requires","document_ids":[2]}]}`, string(msg.Data))

	msg, code = b.request(t, consumers.SubjectExplain, `{"worker_id":"1","shift_id":"1"}`)
	require.Empty(t, code, "ids may be sent as strings: %s", msg.Data)
	require.JSONEq(t, `{"eligible":true,"reasons":[]}`, string(msg.Data))
}

func TestResponder_Errors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tests := []struct {
		subject, body, code, errCode string
	}{
		{consumers.SubjectShifts, `not json`, "400", "invalid_argument"},
		{consumers.SubjectShifts, ``, "400", "invalid_argument"},
		{consumers.SubjectShifts, `[1,2]`, "400", "invalid_argument"},
		{consumers.SubjectShifts, `{}`, "400", "invalid_argument"},
		{consumers.SubjectShifts, `{"worker_id":"abc"}`, "400", "invalid_argument"},
		{consumers.SubjectShifts, `{"worker_id":1.5}`, "400", "invalid_argument"},
		{consumers.SubjectShifts, `{"worker_id":1,"limit":0}`, "400", "invalid_argument"},
		{consumers.SubjectShifts, `{"worker_id":1,"limit":501}`, "400", "invalid_argument"},
		{consumers.SubjectShifts, `{"worker_id":1,"from":"tomorrow"}`, "400", "invalid_argument"},
		{consumers.SubjectShifts, `{"worker_id":1,"from":42}`, "400", "invalid_argument"},
		{consumers.SubjectShifts, `{"worker_id":1,"cursor":"bogus"}`, "400", "invalid_argument"},
		{consumers.SubjectShifts, `{"worker_id":999}`, "404", "not_found"},
		{consumers.SubjectWorkers, `{"shift_id":999}`, "404", "not_found"},
		{consumers.SubjectWorkers, `{"shift_id":-1}`, "400", "invalid_argument"},
		{consumers.SubjectExplain, `{"worker_id":1}`, "400", "invalid_argument"},
		{consumers.SubjectExplain, `{"worker_id":1,"shift_id":999}`, "404", "not_found"},
	}
	for _, tt := range tests {
		msg, code := b.request(t, tt.subject, tt.body)
		require.Equal(t, tt.code, code, "%s %s", tt.subject, tt.body)
		require.NotEmpty(t, msg.Header.Get(micro.ErrorHeader))
		var body struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		require.NoError(t, json.Unmarshal(msg.Data, &body), string(msg.Data))
		require.Equal(t, tt.errCode, body.Error.Code, "%s %s", tt.subject, tt.body)
		require.NotEmpty(t, body.Error.Message)
	}

	// The service's own stats count them, as `nats micro stats` shows.
	msg, err := b.nc.Request("$SRV.STATS.shiftcast", nil, 5*time.Second)
	require.NoError(t, err)
	var stats micro.Stats
	require.NoError(t, json.Unmarshal(msg.Data, &stats))
	var errs int64
	for _, ep := range stats.Endpoints {
		var d consumers.EndpointStatsData
		require.NoError(t, json.Unmarshal(ep.Data, &d))
		errs += d.Errors
	}
	require.Equal(t, int64(len(tests)), errs)
}

// The service is discoverable the way `nats micro ls/info` discovers it.
func TestResponder_Discovery(t *testing.T) {
	t.Parallel()
	b := setup(t)
	msg, err := b.nc.Request("$SRV.INFO.shiftcast", nil, 5*time.Second)
	require.NoError(t, err)
	var info micro.Info
	require.NoError(t, json.Unmarshal(msg.Data, &info))
	require.Equal(t, "shiftcast", info.Name)
	subjects := map[string]string{}
	for _, ep := range info.Endpoints {
		subjects[ep.Subject] = ep.QueueGroup
	}
	require.Equal(t, map[string]string{
		"eligibility.v1.shifts": "q", "eligibility.v1.workers": "q", "eligibility.v1.explain": "q",
	}, subjects)

	msg, err = b.nc.Request("$SRV.PING", nil, 5*time.Second)
	require.NoError(t, err)
	var ping micro.Ping
	require.NoError(t, json.Unmarshal(msg.Data, &ping))
	require.Equal(t, "shiftcast", ping.Name)
}

// Instances share a queue group: each request is answered by exactly one.
func TestResponder_QueueGroupSharedByInstances(t *testing.T) {
	t.Parallel()
	b := setup(t)
	second := startResponder(t, connect(t, b.natsURL), b.store)
	const n = 40
	for range n {
		_, code := b.request(t, consumers.SubjectShifts, `{"worker_id":1}`)
		require.Empty(t, code)
	}
	// Every instance answers $SRV.STATS; gather them all.
	inbox := nats.NewInbox()
	sub, err := b.nc.SubscribeSync(inbox)
	require.NoError(t, err)
	require.NoError(t, b.nc.PublishRequest("$SRV.STATS.shiftcast", inbox, nil))
	total := int64(0)
	ids := map[string]bool{}
	for len(ids) < 2 {
		msg, err := sub.NextMsg(5 * time.Second)
		require.NoError(t, err, "both instances must answer stats")
		var stats micro.Stats
		require.NoError(t, json.Unmarshal(msg.Data, &stats))
		ids[stats.ID] = true
		for _, ep := range stats.Endpoints {
			var d consumers.EndpointStatsData
			require.NoError(t, json.Unmarshal(ep.Data, &d))
			total += d.Requests
		}
	}
	require.Contains(t, ids, second.Info().ID)
	require.Equal(t, int64(n), total, "each request handled exactly once across instances")
}

func TestResponder_DatabaseDown(t *testing.T) {
	t.Parallel()
	st, err := store.Open(context.Background(), "postgres://postgres@127.0.0.1:1/postgres?connect_timeout=2", store.Config{})
	require.NoError(t, err)
	t.Cleanup(st.Close)
	url := testenv.NATS(t)
	startResponder(t, connect(t, url), st)
	b := &bundle{nc: connect(t, url)}
	msg, code := b.request(t, consumers.SubjectShifts, `{"worker_id":1}`)
	require.Equal(t, "503", code)
	require.Contains(t, string(msg.Data), `"code":"unavailable"`)
}
