package consumers_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/consumers"
	"github.com/shiftcast/shiftcast/eligibility"
	"github.com/shiftcast/shiftcast/reports"
	"github.com/shiftcast/shiftcast/testenv"
	"github.com/shiftcast/shiftcast/testenv/fixture"
	"github.com/shiftcast/shiftcast/testenv/teststore"
)

func TestResponder_MonthlyReport(t *testing.T) {
	t.Parallel()
	st := teststore.Open(t)
	fixture.Load(t, st.Pool())
	url := testenv.NATS(t)
	r, err := consumers.StartResponder(connect(t, url), consumers.ResponderConfig{
		Service: eligibility.NewService(st), Reports: reports.NewService(st), Version: "1.0.0", Logger: testenv.Logger(t),
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, r.Stop(ctx))
	})
	b := &bundle{nc: connect(t, url)}

	msg, code := b.request(t, consumers.SubjectMonthly, `{"from":"2023-02","to":"2023-02","worker_ids":[2,3]}`)
	require.Empty(t, code, string(msg.Data))
	var resp reports.MonthlyResponse
	require.NoError(t, json.Unmarshal(msg.Data, &resp))
	require.Equal(t, []reports.MonthlyRow{{Month: "2023-02", WorkerID: 2, ShiftsClaimed: 1, HoursClaimed: 5}}, resp.Rows)

	_, code = b.request(t, consumers.SubjectMonthly, `{"from":"February"}`)
	require.Equal(t, "400", code)
	_, code = b.request(t, consumers.SubjectMonthly, `{"worker_ids":["x"]}`)
	require.Equal(t, "400", code)
}
