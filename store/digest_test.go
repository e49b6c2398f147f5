package store_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/store"
)

// twinPipes are two pipelines, each with its own database, fed the very
// same events at the very same stream sequences and clock: whatever one
// announces, the other must announce too.
type twinPipes struct {
	a, b *pipe
}

func newTwinPipes(t *testing.T) *twinPipes {
	t.Helper()
	a, b := newPipe(t), newPipe(t)
	b.now = a.now
	return &twinPipes{a: a, b: b}
}

// apply applies one event to both pipes at one stream sequence. An event
// whose dependency is missing must fail so in both; it reports whether the
// event applied.
func (tp *twinPipes) apply(t *testing.T, typ string, data any) bool {
	t.Helper()
	seq := tp.a.next()
	require.Equal(t, seq, tp.b.next(), "both pipes at one stream position")
	effA, errA := tp.a.applyEv(t, tp.a.event(t, typ, data), seq)
	effB, errB := tp.b.applyEv(t, tp.b.event(t, typ, data), seq)
	if errA != nil || errB != nil {
		require.ErrorIs(t, errA, store.ErrMissingDependency, "%s %+v", typ, data)
		require.ErrorIs(t, errB, store.ErrMissingDependency, "%s %+v", typ, data)
		return false
	}
	require.Equal(t, store.OutcomeApplied, effA.Outcome, "%s %+v", typ, data)
	require.Equal(t, effA, effB, "%s %+v", typ, data)
	return true
}

// advance moves both pipes' clocks.
func (tp *twinPipes) advance(d time.Duration) {
	tp.a.now = tp.a.now.Add(d)
	tp.b.now = tp.a.now
}

// randomMarket is what the random event generator knows of the world it
// builds, to mostly refer to entities that exist.
type randomMarket struct {
	r          *rand.Rand
	now        func() time.Time
	docs       []int64
	facilities []int64
	workers    []int64
	shifts     []int64
	nextShift  int64
	// base starts the seed's id ranges, so that seeds can share databases;
	// with farFacilities every other facility id is beyond 1<<22.
	base          int64
	farFacilities bool
}

// facilityID is the id of the seed's i-th facility (from 0).
func (m *randomMarket) facilityID(i int) int64 {
	id := m.base + int64(i) + 1
	if m.farFacilities && i%2 == 1 {
		id += 5_000_000
	}
	return id
}

// Ids never created, outside every seed's range: events naming them miss
// a dependency.
const (
	unknownFacility = 2_000_000_001
	unknownWorker   = 2_000_000_002
	unknownShift    = 2_000_000_003
	unknownDocument = 2_000_000_004
)

func (m *randomMarket) pick(ids []int64, unknown int64) int64 {
	if len(ids) == 0 || m.r.IntN(25) == 0 {
		return unknown
	}
	return ids[m.r.IntN(len(ids))]
}

func (m *randomMarket) profession() domain.Profession {
	return domain.Professions[m.r.IntN(len(domain.Professions))]
}

// subset returns a random subset of ids, in random order.
func (m *randomMarket) subset(ids []int64, pct int) []int64 {
	var out []int64
	for _, id := range ids {
		if m.r.IntN(100) < pct {
			out = append(out, id)
		}
	}
	m.r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// newShift is the data of a new shift (sometimes one that exists already,
// sometimes at an unknown facility), starting on the hour between a day
// ago and five days ahead, so that starts often tie.
func (m *randomMarket) newShift() *domain.ShiftCreated {
	id := m.nextShift
	if len(m.shifts) > 0 && m.r.IntN(20) == 0 {
		id = m.shifts[m.r.IntN(len(m.shifts))] // a re-sent creation: changes nothing
	} else {
		m.nextShift++
		m.shifts = append(m.shifts, id)
	}
	start := m.now().Add(time.Duration(m.r.IntN(144)-24) * time.Hour)
	return shiftData(id, m.pick(m.facilities, unknownFacility), m.profession(), start)
}

// event is a random event of any type but document.created.
func (m *randomMarket) event() (string, any) {
	r := m.r
	switch n := r.IntN(100); {
	case n < 25:
		return domain.TypeShiftCreated, m.newShift()
	case n < 35:
		return domain.TypeShiftClaimed, &domain.ShiftClaimed{ShiftID: m.pick(m.shifts, unknownShift), WorkerID: m.pick(m.workers, unknownWorker)}
	case n < 45:
		return domain.TypeShiftReleased, &domain.ShiftRef{ShiftID: m.pick(m.shifts, unknownShift)}
	case n < 50:
		return domain.TypeShiftDeleted, &domain.ShiftRef{ShiftID: m.pick(m.shifts, unknownShift)}
	case n < 58:
		return domain.TypeWorkerDocumentAdded, &domain.WorkerDocument{WorkerID: m.pick(m.workers, unknownWorker), DocumentID: m.pick(m.docs, unknownDocument)}
	case n < 66:
		return domain.TypeWorkerDocumentRemoved, &domain.WorkerDocument{WorkerID: m.pick(m.workers, unknownWorker), DocumentID: m.pick(m.docs, unknownDocument)}
	case n < 72:
		return domain.TypeFacilityRequirementAdded, &domain.FacilityRequirement{FacilityID: m.pick(m.facilities, unknownFacility), DocumentID: m.pick(m.docs, unknownDocument)}
	case n < 78:
		return domain.TypeFacilityRequirementRemoved, &domain.FacilityRequirement{FacilityID: m.pick(m.facilities, unknownFacility), DocumentID: m.pick(m.docs, unknownDocument)}
	case n < 82:
		return domain.TypeFacilityActivated, &domain.FacilityRef{FacilityID: m.pick(m.facilities, unknownFacility)}
	case n < 86:
		return domain.TypeFacilityDeactivated, &domain.FacilityRef{FacilityID: m.pick(m.facilities, unknownFacility)}
	case n < 91:
		return domain.TypeWorkerActivated, &domain.WorkerRef{WorkerID: m.pick(m.workers, unknownWorker)}
	case n < 96:
		return domain.TypeWorkerDeactivated, &domain.WorkerRef{WorkerID: m.pick(m.workers, unknownWorker)}
	case n < 98:
		id := m.base + int64(len(m.workers)) + 1
		m.workers = append(m.workers, id)
		return domain.TypeWorkerCreated, &domain.WorkerCreated{ID: id, Name: fmt.Sprintf("worker %d", id), Profession: m.profession(), IsActive: r.IntN(5) > 0}
	default:
		id := m.facilityID(len(m.facilities))
		m.facilities = append(m.facilities, id)
		return domain.TypeFacilityCreated, &domain.FacilityCreated{ID: id, Name: fmt.Sprintf("facility %d", id), IsActive: r.IntN(2) == 0}
	}
}

// build creates the initial world in both pipes: documents, facilities
// with random requirements (some none), workers of random professions and
// activity with random documents, and shifts, past ones included.
func (m *randomMarket) build(t *testing.T, tp *twinPipes) {
	t.Helper()
	r := m.r
	for i := range 2 + r.IntN(4) {
		id := m.base + int64(i) + 1
		m.docs = append(m.docs, id)
		require.True(t, tp.apply(t, domain.TypeDocumentCreated, &domain.DocumentCreated{ID: id, Name: fmt.Sprintf("doc %d", id), IsActive: r.IntN(3) > 0}))
	}
	for i := range 2 + r.IntN(5) {
		id := m.facilityID(i)
		m.facilities = append(m.facilities, id)
		require.True(t, tp.apply(t, domain.TypeFacilityCreated, &domain.FacilityCreated{ID: id, Name: fmt.Sprintf("facility %d", id), IsActive: r.IntN(5) > 0}))
		if r.IntN(3) == 0 {
			continue // requires nothing
		}
		for _, doc := range m.subset(m.docs, 40) {
			require.True(t, tp.apply(t, domain.TypeFacilityRequirementAdded, &domain.FacilityRequirement{FacilityID: id, DocumentID: doc}))
		}
	}
	for i := range 15 {
		id := m.base + int64(i) + 1
		m.workers = append(m.workers, id)
		require.True(t, tp.apply(t, domain.TypeWorkerCreated, &domain.WorkerCreated{ID: id, Name: fmt.Sprintf("worker %d", id), Profession: m.profession(), IsActive: r.IntN(5) > 0}))
		for _, doc := range m.subset(m.docs, 60) {
			require.True(t, tp.apply(t, domain.TypeWorkerDocumentAdded, &domain.WorkerDocument{WorkerID: id, DocumentID: doc}))
		}
	}
	m.nextShift = m.base + 1
	for range 15 + r.IntN(20) {
		tp.apply(t, domain.TypeShiftCreated, m.newShift())
	}
}

// requireSameNotification requires got to announce what want announces.
func requireSameNotification(t *testing.T, want, got *domain.Notification, msg string) {
	t.Helper()
	if want == nil {
		require.Nil(t, got, "%s: batch announced %v, one by one nothing", msg, shiftIDs(got))
		return
	}
	require.NotNil(t, got, "%s: one by one announced %v, batch nothing", msg, shiftIDs(want))
	require.Equal(t, want.WorkerID, got.WorkerID, msg)
	require.Equal(t, domain.NotificationTypeShiftsAvailable, got.Type, msg)
	require.Equal(t, want.Count, got.Count, "%s: count (one by one %v, batch %v)", msg, shiftIDs(want), shiftIDs(got))
	require.Equal(t, shiftIDs(want), shiftIDs(got), msg)
	for i := range want.Shifts {
		w, g := want.Shifts[i], got.Shifts[i]
		require.Equal(t, w.FacilityID, g.FacilityID, msg)
		require.Equal(t, w.Profession, g.Profession, msg)
		require.True(t, w.Start.Equal(g.Start), "%s: shift %d start %s vs %s", msg, w.ID, w.Start, g.Start)
		require.True(t, w.End.Equal(g.End), "%s: shift %d end %s vs %s", msg, w.ID, w.End, g.End)
	}
}

// notifyState fingerprints every worker's watermark but its snapshot, whose
// transaction ids differ between databases.
func notifyState(t *testing.T, p *pipe) string {
	t.Helper()
	var s *string
	p.scan(t, `SELECT string_agg(format('%s:%s:%s', worker_id, facilities, snapshot IS NULL), ',' ORDER BY worker_id)
		FROM shiftcast.worker_notify_state`, nil, &s)
	require.NotNil(t, s)
	return *s
}

// retire deactivates every facility of the seed in both pipes, so that the
// next seed sharing the databases starts from a world of its own (its
// workers are never in a later seed's batches or events).
func (m *randomMarket) retire(t *testing.T, tp *twinPipes) {
	t.Helper()
	for _, f := range m.facilities {
		require.True(t, tp.apply(t, domain.TypeFacilityDeactivated, &domain.FacilityRef{FacilityID: f}))
	}
}

// TestBuildDigests_BatchEqualsOneByOne builds random worlds twice and, after
// rounds of random events, builds every worker's digest one at a time in
// one (BuildDigest) and all at once in the other (BuildDigests): both must
// announce exactly the same. Cloning databases is what costs, so a few
// lanes each run their seeds one after another on one pair of databases,
// each seed in ids of its own, retiring its world when done.
func TestBuildDigests_BatchEqualsOneByOne(t *testing.T) {
	t.Parallel()
	const seeds, lanes = 30, 3
	for lane := range lanes {
		t.Run(fmt.Sprintf("lane=%d", lane), func(t *testing.T) {
			t.Parallel()
			tp := newTwinPipes(t)
			for seed := uint64(lane); seed < seeds; seed += lanes {
				if !t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { digestDifferential(t, tp, seed) }) {
					return // the pipes' worlds may have parted
				}
			}
		})
	}
}

func digestDifferential(t *testing.T, tp *twinPipes, seed uint64) {
	m := &randomMarket{
		r:             rand.New(rand.NewPCG(seed, 0xd16e57)),
		now:           func() time.Time { return tp.a.now },
		base:          int64(seed+1) * 10_000,
		farFacilities: seed%2 == 1,
	}
	m.build(t, tp)
	r := m.r
	announced := 0
	for round := range 5 {
		if round > 0 {
			for range r.IntN(16) {
				typ, data := m.event()
				tp.apply(t, typ, data)
			}
			tp.advance(time.Duration(r.IntN(13)) * time.Hour)
		}
		k := []int{1, 3, 100}[r.IntN(3)]
		// Most workers, in random order (the others keep an older
		// watermark), one of them twice, and one unknown.
		batch := m.subset(m.workers, 80)
		if len(batch) > 0 {
			batch = slices.Insert(batch, r.IntN(len(batch)+1), batch[r.IntN(len(batch))])
		}
		batch = slices.Insert(batch, r.IntN(len(batch)+1), unknownWorker)
		msg := func(id int64) string {
			return fmt.Sprintf("seed %d round %d k %d worker %d batch %v", seed, round, k, id, batch)
		}

		want := map[int64]*domain.Notification{}
		for _, id := range batch {
			if _, done := want[id]; done {
				continue
			}
			n, err := tp.a.buildDigest(t, id, k)
			if id == unknownWorker {
				require.Equal(t, domain.ENOTFOUND, domain.ErrorCode(err), msg(id))
				require.Nil(t, n)
			} else {
				require.NoError(t, err, msg(id))
			}
			want[id] = n
		}

		res, err := tp.b.st.BuildDigests(bg, batch, tp.b.now, k, 0)
		require.NoError(t, err)
		require.Len(t, res, len(batch))
		got := map[int64]*domain.Notification{}
		for i, id := range batch {
			require.Equal(t, id, res[i].WorkerID, "result %d: %s", i, msg(id))
			if id == unknownWorker {
				require.Equal(t, domain.ENOTFOUND, domain.ErrorCode(res[i].Err), msg(id))
				require.Nil(t, res[i].Notification)
				continue
			}
			require.NoError(t, res[i].Err, msg(id))
			if _, seen := got[id]; seen {
				require.Nil(t, res[i].Notification, "a repeated id finds nothing new, as a second call would: %s", msg(id))
				continue
			}
			got[id] = res[i].Notification
			requireSameNotification(t, want[id], res[i].Notification, msg(id))
			if n := res[i].Notification; n != nil {
				announced++
				d, err := tp.b.st.Notification(bg, n.ID)
				require.NoError(t, err)
				require.Equal(t, n.Count, d.Notification.Count, msg(id))
				require.Equal(t, shiftIDs(n), shiftIDs(&d.Notification), msg(id))
				require.Equal(t, id, d.Notification.WorkerID)
			}
		}
		require.Equal(t, notifyState(t, tp.a), notifyState(t, tp.b), "watermarks, seed %d round %d", seed, round)
		require.Equal(t,
			tp.a.count(t, `SELECT count(*) FROM shiftcast.notifications`),
			tp.b.count(t, `SELECT count(*) FROM shiftcast.notifications`), "seed %d round %d", seed, round)
	}
	t.Logf("%d digests announced", announced)
	m.retire(t, tp)
}

// TestBuildDigests_OrderAndRepeats checks that results come back in the
// order of the ids given, that a repeated id finds nothing new, and
// that nothing is announced twice.
func TestBuildDigests_OrderAndRepeats(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	basicWorld(t, p)                       // worker 1: CNA holding 1; facility 1 requires 1, 2 nothing, 3 both
	p.worker(t, 2, domain.CNA, true, 1, 2) // eligible everywhere
	p.worker(t, 3, domain.RN, true)        // facility 2 only
	p.worker(t, 4, domain.CNA, false, 1, 2)
	p.shift(t, 10, 1, domain.CNA, 24*time.Hour)
	p.shift(t, 11, 2, domain.CNA, 25*time.Hour)
	p.shift(t, 12, 3, domain.CNA, 26*time.Hour)
	p.shift(t, 13, 2, domain.RN, 27*time.Hour)
	p.shift(t, 14, 1, domain.RN, 28*time.Hour) // RN lacks document 1

	batch := []int64{3, 1, 999, 2, 1, 4}
	res, err := p.st.BuildDigests(bg, batch, p.now, 10, 0)
	require.NoError(t, err)
	require.Len(t, res, len(batch))
	for i, id := range batch {
		require.Equal(t, id, res[i].WorkerID, "result %d", i)
	}
	require.Equal(t, []int64{13}, shiftIDs(res[0].Notification))
	require.Equal(t, []int64{10, 11}, shiftIDs(res[1].Notification))
	require.Equal(t, domain.ENOTFOUND, domain.ErrorCode(res[2].Err))
	require.Nil(t, res[2].Notification)
	require.Equal(t, []int64{10, 11, 12}, shiftIDs(res[3].Notification))
	require.Nil(t, res[4].Notification, "a repeated id finds nothing new: only one caller delivers the digest")
	require.Nil(t, res[5].Notification, "an inactive worker gets nothing")
	for i, r := range res {
		if i != 2 {
			require.NoError(t, r.Err, "result %d", i)
		}
	}
	ids := map[string]int64{}
	for _, i := range []int{0, 1, 3} {
		n := res[i].Notification
		require.Equal(t, batch[i], n.WorkerID)
		require.Equal(t, len(n.Shifts), n.Count)
		require.Equal(t, domain.NotificationTypeShiftsAvailable, n.Type)
		ids[n.ID] = n.WorkerID
		d, err := p.st.Notification(bg, n.ID)
		require.NoError(t, err)
		require.Equal(t, n.WorkerID, d.Notification.WorkerID)
		require.Equal(t, shiftIDs(n), shiftIDs(&d.Notification))
		require.True(t, p.flag(t, `SELECT lease_until IS NULL FROM shiftcast.notifications WHERE id = $1`, n.ID), "no lease asked for")
	}
	require.Len(t, ids, 3, "one notification per worker")
	require.Equal(t, 3, p.count(t, `SELECT count(*) FROM shiftcast.notifications`))

	// Nothing is announced twice, whichever way it is asked.
	res, err = p.st.BuildDigests(bg, batch, p.now, 10, 0)
	require.NoError(t, err)
	require.Len(t, res, len(batch))
	for i, id := range batch {
		require.Equal(t, id, res[i].WorkerID)
		require.Nil(t, res[i].Notification, "result %d: worker %d told again", i, id)
	}
	require.Equal(t, domain.ENOTFOUND, domain.ErrorCode(res[2].Err))
	for _, w := range []int64{1, 2, 3, 4} {
		require.Nil(t, p.digest(t, w), "worker %d", w)
	}
	require.Equal(t, 3, p.count(t, `SELECT count(*) FROM shiftcast.notifications`))

	// What opens next is announced once, in the new order, counted beyond
	// k and leased when asked.
	p.shift(t, 15, 2, domain.CNA, 23*time.Hour)
	p.shift(t, 16, 1, domain.CNA, 22*time.Hour)
	res, err = p.st.BuildDigests(bg, []int64{2, 4, 1, 2}, p.now, 1, time.Hour)
	require.NoError(t, err)
	require.Len(t, res, 4)
	require.Equal(t, []int64{2, 4, 1, 2}, []int64{res[0].WorkerID, res[1].WorkerID, res[2].WorkerID, res[3].WorkerID})
	require.Equal(t, []int64{16}, shiftIDs(res[0].Notification))
	require.Equal(t, 2, res[0].Notification.Count)
	require.Nil(t, res[1].Notification)
	require.Equal(t, []int64{16}, shiftIDs(res[2].Notification))
	require.Equal(t, 2, res[2].Notification.Count)
	require.Nil(t, res[3].Notification)
	require.NotEqual(t, res[0].Notification.ID, res[2].Notification.ID)
	for _, i := range []int{0, 2} {
		require.True(t, p.flag(t, `SELECT lease_until > now() FROM shiftcast.notifications WHERE id = $1`, res[i].Notification.ID),
			"leased to the caller")
	}
	require.Nil(t, p.digest(t, 1))
	require.Nil(t, p.digest(t, 2))

	// An empty batch builds nothing.
	res, err = p.st.BuildDigests(bg, nil, p.now, 10, 0)
	require.NoError(t, err)
	require.Empty(t, res)
	require.Equal(t, 5, p.count(t, `SELECT count(*) FROM shiftcast.notifications`))
}

// TestBuildDigests_StaleWorkerReadsOlderOpeningsByFacility checks the batch
// whose workers' watermarks differ widely: the one told long ago (older
// than nine in ten of the batch) gets every shift opened since its last
// push at its facilities, read apart from the batch's shared range, and
// the others only what is new to them.
func TestBuildDigests_StaleWorkerReadsOlderOpeningsByFacility(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	basicWorld(t, p) // worker 1: CNA holding document 1 (facilities 1 and 2)
	for w := int64(2); w <= 12; w++ {
		p.worker(t, w, domain.CNA, true, 1, 2) // facilities 1, 2 and 3
	}
	all := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	_, err := p.st.BuildDigests(bg, all, p.now, 100, 0) // everyone's watermark: now
	require.NoError(t, err)

	p.shift(t, 100, 1, domain.CNA, 24*time.Hour)              // seen by nobody yet
	p.shift(t, 101, 3, domain.CNA, 25*time.Hour)              // not for worker 1
	p.shift(t, 102, 2, domain.RN, 26*time.Hour)               // other profession
	res, err := p.st.BuildDigests(bg, all[1:], p.now, 100, 0) // all but worker 1
	require.NoError(t, err)
	for _, r := range res {
		require.Equal(t, []int64{100, 101}, shiftIDs(r.Notification), "worker %d", r.WorkerID)
	}

	p.shift(t, 103, 2, domain.CNA, 12*time.Hour)
	p.shift(t, 104, 3, domain.CNA, 13*time.Hour)
	res, err = p.st.BuildDigests(bg, all, p.now, 100, 0)
	require.NoError(t, err)
	require.Equal(t, int64(1), res[0].WorkerID)
	require.Equal(t, []int64{103, 100}, shiftIDs(res[0].Notification),
		"the stale worker: what opened since its last push, at its facilities")
	for _, r := range res[1:] {
		require.Equal(t, []int64{103, 104}, shiftIDs(r.Notification), "worker %d: only what is new to it", r.WorkerID)
	}
	res, err = p.st.BuildDigests(bg, all, p.now, 100, 0)
	require.NoError(t, err)
	for _, r := range res {
		require.Nil(t, r.Notification, "worker %d: nothing twice", r.WorkerID)
	}
}
