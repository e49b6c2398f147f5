package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/publishers"
	"github.com/shiftcast/shiftcast/store"
)

var genNow = time.Date(2026, 3, 10, 14, 30, 0, 0, time.UTC)

// testUniverse is a small marketplace: 20 facilities, 12 documents, 600
// workers, 2,000 open shifts among 5,000.
func testUniverse() store.BenchUniverse {
	u := store.BenchUniverse{MaxShiftID: 5000, MaxWorkerID: 600}
	for d := int64(1); d <= 12; d++ {
		u.DocumentIDs = append(u.DocumentIDs, d)
	}
	for i := int64(1); i <= 20; i++ {
		u.Facilities = append(u.Facilities, store.BenchFacility{ID: i, IsActive: i%7 != 0, Requirements: []int64{1, 2 + i%5}})
	}
	for i := int64(1); i <= 600; i++ {
		docs := []int64{1, 2, 3}
		if i%3 == 0 {
			docs = append(docs, 4, 5, 6)
		}
		u.Workers = append(u.Workers, store.BenchWorker{
			ID: i, Profession: domain.Professions[i%3], IsActive: i%10 != 0, Documents: docs,
		})
	}
	for i := int64(1); i <= 2000; i++ {
		u.OpenShifts = append(u.OpenShifts, store.BenchShift{ID: i * 2, Profession: domain.Professions[i%3]})
	}
	return u
}

func newTestGenerator(t *testing.T, seed int64) *Generator {
	t.Helper()
	g, err := NewGenerator(testUniverse(), GeneratorConfig{Seed: seed, Now: genNow, Cooldown: 200})
	require.NoError(t, err)
	return g
}

func TestGeneratorEventsDecode(t *testing.T) {
	t.Parallel()
	g := newTestGenerator(t, 1)
	seen := map[string]int{}
	at := genNow
	for i := range 10_000 {
		d := g.Next()
		id := fmt.Sprintf("bench-test-%d", i)
		at = at.Add(317 * time.Microsecond)
		raw, err := EncodeEvent(d, id, EventsSource, at)
		require.NoError(t, err)
		ev, err := domain.DecodeEvent(raw)
		require.NoError(t, err, "event %d: %s", i, raw)
		require.Equal(t, d.Type, ev.Type)
		require.Equal(t, id, ev.ID)
		require.True(t, at.Equal(ev.Time), "time keeps its nanoseconds: %s", raw)
		seen[ev.Type]++
		if c, ok := ev.Data.(*domain.ShiftCreated); ok {
			require.Greater(t, c.ID, int64(5000), "new shift ids are above the existing ones")
			require.True(t, c.Start.After(genNow), "new shifts start in the future")
			require.True(t, c.Start.Before(genNow.Add(29*24*time.Hour)), "within the next 28 days or so")
			require.Contains(t, []time.Duration{4 * time.Hour, 8 * time.Hour, 12 * time.Hour}, c.End.Sub(c.Start))
			require.Zero(t, c.Start.Minute())
		}
	}
	for _, m := range EventMix {
		for _, typ := range m.Types {
			require.Positive(t, seen[typ], "the mix emits %s", typ)
		}
	}
}

func TestGeneratorMixProportions(t *testing.T) {
	t.Parallel()
	g := newTestGenerator(t, 7)
	const draws = 10_000
	counts := map[string]int{}
	for range draws {
		counts[g.Next().Type]++
	}
	for _, m := range EventMix {
		n := 0
		for _, typ := range m.Types {
			n += counts[typ]
		}
		got := float64(n) / draws
		// Within 2 points (4 standard deviations of the largest share), and
		// within a quarter (plus a third of a point) for the small shares;
		// the first draws cannot release or reuse what is still cooling
		// down, which shifts a little towards shift.created.
		tol := min(0.02, 0.25*m.Share+0.003)
		require.InDelta(t, m.Share, got, tol, "share of %v: got %.4f, want %.4f", m.Types, got, m.Share)
	}
}

// TestGeneratorConsistent replays the generated events against a model of
// the marketplace and checks that each one makes sense where it is drawn.
func TestGeneratorConsistent(t *testing.T) {
	t.Parallel()
	u := testUniverse()
	const cooldown = 200
	g, err := NewGenerator(u, GeneratorConfig{Seed: 3, Now: genNow, Cooldown: cooldown})
	require.NoError(t, err)

	type shiftState struct {
		created, claimed, deleted bool
		touched                   int // draw of the last event on it
	}
	shifts := map[int64]*shiftState{}
	for _, s := range u.OpenShifts {
		shifts[s.ID] = &shiftState{created: true, touched: -cooldown}
	}
	workers := map[int64]map[int64]bool{}
	active := map[int64]bool{}
	workerTouched := map[int64]int{}
	workerProf := map[int64]domain.Profession{}
	workerCreated := map[int64]int{}
	for _, w := range u.Workers {
		workers[w.ID] = map[int64]bool{}
		for _, d := range w.Documents {
			workers[w.ID][d] = true
		}
		active[w.ID] = w.IsActive
		workerTouched[w.ID] = -cooldown
		workerCreated[w.ID] = -cooldown
		workerProf[w.ID] = w.Profession
	}
	facReq := map[int64]map[int64]bool{}
	facActive := map[int64]bool{}
	facTouched := map[int64]int{}
	for _, f := range u.Facilities {
		facReq[f.ID] = map[int64]bool{}
		for _, d := range f.Requirements {
			facReq[f.ID][d] = true
		}
		facActive[f.ID] = f.IsActive
		facTouched[f.ID] = -cooldown
	}
	shiftProf := map[int64]domain.Profession{}
	for _, s := range u.OpenShifts {
		shiftProf[s.ID] = s.Profession
	}

	cooled := func(last, i int, what string) {
		require.GreaterOrEqual(t, i-last, cooldown, "draw %d: %s touched again %d draws after the last event on it", i, what, i-last)
	}
	for i := range 20_000 {
		d := g.Next()
		switch p := d.Data.(type) {
		case *domain.ShiftCreated:
			require.NotContains(t, shifts, p.ID, "draw %d: shift %d created twice", i, p.ID)
			shifts[p.ID] = &shiftState{created: true, touched: i}
			shiftProf[p.ID] = p.Profession
		case *domain.ShiftClaimed:
			s := shifts[p.ShiftID]
			require.NotNil(t, s, "draw %d: claim of unknown shift %d", i, p.ShiftID)
			require.False(t, s.claimed, "draw %d: shift %d claimed twice without a release", i, p.ShiftID)
			require.False(t, s.deleted, "draw %d: claim of deleted shift %d", i, p.ShiftID)
			cooled(s.touched, i, fmt.Sprintf("shift %d", p.ShiftID))
			require.Contains(t, workers, p.WorkerID, "draw %d: claim by unknown worker %d", i, p.WorkerID)
			// A claim is the shift's event, but its worker must exist by then.
			cooled(workerCreated[p.WorkerID], i, fmt.Sprintf("new worker %d", p.WorkerID))
			require.Equal(t, shiftProf[p.ShiftID], workerProf[p.WorkerID], "draw %d: claim by a worker of another profession", i)
			s.claimed, s.touched = true, i
		case *domain.ShiftRef:
			s := shifts[p.ShiftID]
			require.NotNil(t, s, "draw %d: %s of unknown shift %d", i, d.Type, p.ShiftID)
			require.False(t, s.deleted, "draw %d: %s of deleted shift %d", i, d.Type, p.ShiftID)
			cooled(s.touched, i, fmt.Sprintf("shift %d", p.ShiftID))
			if d.Type == domain.TypeShiftReleased {
				require.True(t, s.claimed, "draw %d: release of shift %d that this run did not claim", i, p.ShiftID)
				s.claimed = false
			} else {
				require.False(t, s.claimed, "draw %d: deletion of claimed shift %d", i, p.ShiftID)
				s.deleted = true
			}
			s.touched = i
		case *domain.WorkerCreated:
			require.NotContains(t, workers, p.ID, "draw %d: worker %d created twice", i, p.ID)
			workers[p.ID], active[p.ID], workerTouched[p.ID], workerProf[p.ID] = map[int64]bool{}, p.IsActive, i, p.Profession
			workerCreated[p.ID] = i
		case *domain.WorkerRef:
			require.Contains(t, workers, p.WorkerID)
			cooled(workerTouched[p.WorkerID], i, fmt.Sprintf("worker %d", p.WorkerID))
			want := d.Type == domain.TypeWorkerActivated
			require.NotEqual(t, want, active[p.WorkerID], "draw %d: %s of a worker already so", i, d.Type)
			active[p.WorkerID], workerTouched[p.WorkerID] = want, i
		case *domain.WorkerDocument:
			docs := workers[p.WorkerID]
			require.NotNil(t, docs)
			cooled(workerTouched[p.WorkerID], i, fmt.Sprintf("worker %d", p.WorkerID))
			if d.Type == domain.TypeWorkerDocumentAdded {
				require.False(t, docs[p.DocumentID], "draw %d: document %d added to worker %d who holds it", i, p.DocumentID, p.WorkerID)
				docs[p.DocumentID] = true
			} else {
				require.True(t, docs[p.DocumentID], "draw %d: document %d removed from worker %d who lacks it", i, p.DocumentID, p.WorkerID)
				delete(docs, p.DocumentID)
			}
			workerTouched[p.WorkerID] = i
		case *domain.FacilityRef:
			cooled(facTouched[p.FacilityID], i, fmt.Sprintf("facility %d", p.FacilityID))
			want := d.Type == domain.TypeFacilityActivated
			require.NotEqual(t, want, facActive[p.FacilityID], "draw %d: %s of a facility already so", i, d.Type)
			facActive[p.FacilityID], facTouched[p.FacilityID] = want, i
		case *domain.FacilityRequirement:
			reqs := facReq[p.FacilityID]
			require.NotNil(t, reqs)
			cooled(facTouched[p.FacilityID], i, fmt.Sprintf("facility %d", p.FacilityID))
			if d.Type == domain.TypeFacilityRequirementAdded {
				require.False(t, reqs[p.DocumentID], "draw %d: requirement added twice", i)
				reqs[p.DocumentID] = true
			} else {
				require.True(t, reqs[p.DocumentID], "draw %d: requirement removed that was not there", i)
				delete(reqs, p.DocumentID)
			}
			facTouched[p.FacilityID] = i
		default:
			t.Fatalf("draw %d: unexpected payload %T", i, d.Data)
		}
	}
}

func TestGeneratorDeterministic(t *testing.T) {
	t.Parallel()
	encodeAll := func(seed int64) []string {
		g := newTestGenerator(t, seed)
		out := make([]string, 3000)
		for i := range out {
			raw, err := EncodeEvent(g.Next(), fmt.Sprint(i), EventsSource, genNow)
			require.NoError(t, err)
			out[i] = string(raw)
		}
		return out
	}
	a, b, c := encodeAll(42), encodeAll(42), encodeAll(43)
	require.Equal(t, a, b, "same seed, same events")
	require.NotEqual(t, a, c, "another seed, other events")
}

func TestNewGeneratorRefusesAnEmptyMarketplace(t *testing.T) {
	t.Parallel()
	_, err := NewGenerator(store.BenchUniverse{}, GeneratorConfig{})
	require.ErrorContains(t, err, "seed it")
}

func TestEventMixSumsToOne(t *testing.T) {
	t.Parallel()
	total := 0.0
	types := map[string]bool{}
	for _, m := range EventMix {
		total += m.Share
		for _, typ := range m.Types {
			require.False(t, types[typ], "%s appears twice", typ)
			types[typ] = true
		}
	}
	require.InDelta(t, 1.0, total, 1e-9)
}

// --- the receiver ---

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func TestReceiverCountsDistinctAndRepeats(t *testing.T) {
	t.Parallel()
	rc, err := NewReceiver(testSecret)
	require.NoError(t, err)
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)

	hook, err := publishers.NewWebhook(srv.URL, testSecret, srv.Client())
	require.NoError(t, err)
	ctx := context.Background()
	created := time.Now().UTC().Truncate(time.Microsecond)
	n := func(id string, at time.Time) domain.Notification {
		return domain.Notification{ID: id, Type: domain.NotificationTypeShiftsAvailable, WorkerID: 7, Count: 1,
			Shifts:    []domain.NotificationShift{{ID: 1, FacilityID: 2, Profession: domain.CNA, Start: at.Add(time.Hour), End: at.Add(9 * time.Hour)}},
			CreatedAt: at}
	}
	require.NoError(t, hook.Deliver(ctx, n("a", created)))
	require.NoError(t, hook.Deliver(ctx, n("a", created)), "a retry is answered 2xx too")
	require.NoError(t, hook.Deliver(ctx, n("b", created)))
	require.NoError(t, hook.Deliver(ctx, n("old", created.Add(-time.Hour))))

	s := rc.Stats(created)
	require.EqualValues(t, 2, s.Distinct, "a and b, created at or after since")
	require.EqualValues(t, 1, s.Older, "old was created before since")
	require.EqualValues(t, 1, s.Repeats)
	require.EqualValues(t, 4, s.Requests)
	require.Zero(t, s.SignatureFailures)
	require.False(t, s.First.After(s.Last))
	require.EqualValues(t, 3, rc.Stats(time.Time{}).Distinct)

	ids := []string{}
	for _, r := range rc.Receipts(created) {
		ids = append(ids, r.ID)
		require.True(t, r.CreatedAt.Equal(created))
		require.False(t, r.At.Before(r.CreatedAt))
	}
	slices.Sort(ids)
	require.Equal(t, []string{"a", "b"}, ids)
}

func TestReceiverRejectsBadSignatures(t *testing.T) {
	t.Parallel()
	rc, err := NewReceiver(testSecret)
	require.NoError(t, err)
	srv := httptest.NewServer(rc)
	t.Cleanup(srv.Close)

	wrong, err := publishers.NewWebhook(srv.URL, "whsec_"+strings.Repeat("QUJD", 8), srv.Client())
	require.NoError(t, err)
	err = wrong.Deliver(context.Background(), domain.Notification{ID: "x", Type: domain.NotificationTypeShiftsAvailable, CreatedAt: time.Now()})
	var derr *publishers.DeliveryError
	require.ErrorAs(t, err, &derr)
	require.Equal(t, http.StatusBadRequest, derr.StatusCode)

	// A body altered after signing.
	key, err := publishers.DecodeSecret(testSecret)
	require.NoError(t, err)
	now := time.Now()
	req, err := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(`{"id":"y","count":2}`))
	require.NoError(t, err)
	req.Header.Set(publishers.HeaderWebhookID, "y")
	req.Header.Set(publishers.HeaderWebhookTimestamp, fmt.Sprint(now.Unix()))
	req.Header.Set(publishers.HeaderWebhookSignature, publishers.Sign(key, "y", now, []byte(`{"id":"y","count":1}`)))
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)

	// No headers at all.
	resp, err = srv.Client().Post(srv.URL, "application/json", strings.NewReader(`{}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)

	// Not a POST.
	resp, err = srv.Client().Get(srv.URL)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	s := rc.Stats(time.Time{})
	require.EqualValues(t, 3, s.SignatureFailures)
	require.EqualValues(t, 1, s.BadRequests)
	require.Zero(t, s.Distinct)
}

func TestNewReceiverRefusesABadSecret(t *testing.T) {
	t.Parallel()
	_, err := NewReceiver("")
	require.Error(t, err)
	_, err = NewReceiver("whsec_!!!")
	require.Error(t, err)
}

func TestEventsReportPrint(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	EventsReport{Run: "bench-x-", Target: "nats://x", Publishers: 2, InFlight: 8, Rate: 2000, Published: 10, Applied: 10, Complete: true,
		ByType: []TypeLatency{{Type: domain.TypeShiftCreated, Count: 10}}}.Print(&b)
	require.Contains(t, b.String(), "the moment the apply transaction")
	require.Contains(t, b.String(), "2000 events/s")
	b.Reset()
	DeliveriesReport{Listen: "127.0.0.1:1", Facilities: []int64{1, 2}, Expected: 5, Received: 5, Complete: true}.Print(&b)
	require.Contains(t, b.String(), "5 distinct notifications of 5 expected")
}
