package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/store"
)

// Scenario tests of the event pipeline's semantics, straight against the
// store: events are applied with ApplyEvent (each test numbers its own
// stream sequence), and "what would be announced" is what BuildDigest
// returns. Every test builds its world through events, so applying is
// exercised for every event type.

// pipe is one test's pipeline: its database, its clock, its stream position
// and what the code under test asked to enqueue.
type pipe struct {
	b   *testBundle
	st  *store.Store
	now time.Time
	seq uint64 // the last stream sequence handed out by next()
	ids int    // events built so far, for unique ids

	mu       sync.Mutex
	enqueued []store.Effect // effects passed to ApplyEvent's enqueue
	notified []string       // notification ids passed to BuildDigest's enqueue
}

func newPipe(t *testing.T) *pipe {
	t.Helper()
	b := setup(t)
	return &pipe{b: b, st: b.store, now: time.Now().UTC().Truncate(time.Second)}
}

var bg = context.Background()

// at is a time relative to the test's now.
func (p *pipe) at(d time.Duration) time.Time { return p.now.Add(d) }

// next hands out the next stream sequence, leaving gaps so tests can slot
// older events in between.
func (p *pipe) next() uint64 {
	p.seq += 10
	return p.seq
}

// event builds a valid event of type typ with a fresh id.
func (p *pipe) event(t *testing.T, typ string, data any) domain.Event {
	t.Helper()
	p.ids++
	ev, err := domain.NewEvent(fmt.Sprintf("%s/%d", t.Name(), p.ids), "shiftcast/test", typ, p.now, data)
	require.NoError(t, err)
	return ev
}

// applyEv applies ev at stream sequence seq, checking that enqueue was
// called, with the returned effect, exactly when there is something to do.
func (p *pipe) applyEv(t *testing.T, ev domain.Event, seq uint64) (store.Effect, error) {
	t.Helper()
	p.mu.Lock()
	before := len(p.enqueued)
	p.mu.Unlock()
	eff, err := p.st.ApplyEvent(bg, ev, seq, p.now, func(_ context.Context, tx pgx.Tx, eff store.Effect) error {
		require.NotNil(t, tx)
		p.mu.Lock()
		defer p.mu.Unlock()
		p.enqueued = append(p.enqueued, eff)
		return nil
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		return eff, err
	}
	if len(eff.NotifyWorkers) > 0 || len(eff.Fanouts) > 0 {
		require.Len(t, p.enqueued, before+1, "enqueue called once for %s", ev.Type)
		require.Equal(t, eff, p.enqueued[before], "enqueue got the effect returned")
	} else {
		require.Len(t, p.enqueued, before, "enqueue not called for %s without consequences", ev.Type)
	}
	return eff, nil
}

// applyAt applies a new event at an explicit stream sequence.
func (p *pipe) applyAt(t *testing.T, seq uint64, typ string, data any) store.Effect {
	t.Helper()
	eff, err := p.applyEv(t, p.event(t, typ, data), seq)
	require.NoError(t, err, typ)
	return eff
}

// apply applies a new event at the next stream sequence.
func (p *pipe) apply(t *testing.T, typ string, data any) store.Effect {
	t.Helper()
	return p.applyAt(t, p.next(), typ, data)
}

// applyErr applies a new event at the next stream sequence and returns
// its error, which must not be nil.
func (p *pipe) applyErr(t *testing.T, typ string, data any) error {
	t.Helper()
	_, err := p.applyEv(t, p.event(t, typ, data), p.next())
	require.Error(t, err, typ)
	return err
}

// mustApply applies and requires the outcome "applied".
func (p *pipe) mustApply(t *testing.T, typ string, data any) store.Effect {
	t.Helper()
	eff := p.apply(t, typ, data)
	require.Equal(t, store.OutcomeApplied, eff.Outcome, typ)
	return eff
}

// World-building helpers, all through events.

func (p *pipe) document(t *testing.T, id int64) {
	t.Helper()
	p.mustApply(t, domain.TypeDocumentCreated, &domain.DocumentCreated{ID: id, Name: fmt.Sprintf("doc %d", id), IsActive: true})
}

func (p *pipe) facility(t *testing.T, id int64, active bool, requires ...int64) {
	t.Helper()
	p.mustApply(t, domain.TypeFacilityCreated, &domain.FacilityCreated{ID: id, Name: fmt.Sprintf("facility %d", id), IsActive: active})
	for _, doc := range requires {
		p.mustApply(t, domain.TypeFacilityRequirementAdded, &domain.FacilityRequirement{FacilityID: id, DocumentID: doc})
	}
}

func (p *pipe) worker(t *testing.T, id int64, prof domain.Profession, active bool, docs ...int64) {
	t.Helper()
	p.mustApply(t, domain.TypeWorkerCreated, &domain.WorkerCreated{ID: id, Name: fmt.Sprintf("worker %d", id), Profession: prof, IsActive: active})
	for _, doc := range docs {
		p.mustApply(t, domain.TypeWorkerDocumentAdded, &domain.WorkerDocument{WorkerID: id, DocumentID: doc})
	}
}

func shiftData(id, facility int64, prof domain.Profession, start time.Time) *domain.ShiftCreated {
	return &domain.ShiftCreated{ID: id, FacilityID: facility, Profession: prof, Start: start, End: start.Add(5 * time.Hour)}
}

// shift creates shift id starting at now+in.
func (p *pipe) shift(t *testing.T, id, facility int64, prof domain.Profession, in time.Duration) store.Effect {
	t.Helper()
	return p.mustApply(t, domain.TypeShiftCreated, shiftData(id, facility, prof, p.at(in)))
}

func (p *pipe) claim(t *testing.T, shift, worker int64) {
	t.Helper()
	p.mustApply(t, domain.TypeShiftClaimed, &domain.ShiftClaimed{ShiftID: shift, WorkerID: worker})
}

// buildDigest builds worker's digest listing at most k shifts, checking
// the notification's shape; it returns nil when nothing is new.
func (p *pipe) buildDigest(t *testing.T, worker int64, k int) (*domain.Notification, error) {
	t.Helper()
	var ids []string
	n, err := p.st.BuildDigest(bg, worker, p.now, k, 0, func(_ context.Context, tx pgx.Tx, id string) error {
		require.NotNil(t, tx)
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if n == nil {
		require.Empty(t, ids, "no notification, no delivery job")
		return nil, nil
	}
	require.Equal(t, []string{n.ID}, ids, "one delivery job, for the notification built")
	p.mu.Lock()
	p.notified = append(p.notified, n.ID)
	p.mu.Unlock()
	require.Equal(t, domain.NotificationTypeShiftsAvailable, n.Type)
	require.Equal(t, worker, n.WorkerID)
	require.NotEmpty(t, n.Shifts)
	require.GreaterOrEqual(t, n.Count, len(n.Shifts))
	require.LessOrEqual(t, len(n.Shifts), k)
	if n.Count <= k {
		require.Equal(t, n.Count, len(n.Shifts), "all listed when k >= count")
	}
	require.True(t, slices.IsSortedFunc(n.Shifts, func(a, b domain.NotificationShift) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return int(a.ID - b.ID)
	}), "soonest first: %+v", n.Shifts)
	for _, s := range n.Shifts {
		require.True(t, s.Start.After(p.now), "only future shifts: %+v", s)
		require.Equal(t, 5*time.Hour, s.End.Sub(s.Start))
	}
	// The stored notification is the one returned.
	d, err := p.st.Notification(bg, n.ID)
	require.NoError(t, err)
	require.Equal(t, "pending", d.Status)
	require.Equal(t, n.Count, d.Notification.Count)
	require.Equal(t, worker, d.Notification.WorkerID)
	require.Len(t, d.Notification.Shifts, len(n.Shifts))
	for i := range n.Shifts {
		require.Equal(t, n.Shifts[i].ID, d.Notification.Shifts[i].ID)
		require.True(t, n.Shifts[i].Start.Equal(d.Notification.Shifts[i].Start))
	}
	return n, nil
}

// digest returns the shift ids worker's digest announces, soonest first, or
// nil when there is no notification.
func (p *pipe) digest(t *testing.T, worker int64) []int64 {
	t.Helper()
	n, err := p.buildDigest(t, worker, 100)
	require.NoError(t, err)
	return shiftIDs(n)
}

func shiftIDs(n *domain.Notification) []int64 {
	if n == nil {
		return nil
	}
	ids := make([]int64, len(n.Shifts))
	for i, s := range n.Shifts {
		ids[i] = s.ID
	}
	return ids
}

// scan reads one row.
func (p *pipe) scan(t *testing.T, sql string, args []any, dest ...any) {
	t.Helper()
	require.NoError(t, p.b.pool.QueryRow(bg, sql, args...).Scan(dest...), sql)
}

func (p *pipe) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	p.scan(t, sql, args, &n)
	return n
}

func (p *pipe) flag(t *testing.T, sql string, args ...any) bool {
	t.Helper()
	var v bool
	p.scan(t, sql, args, &v)
	return v
}

// tableQueries fingerprint every table events change, to show that
// something changed nothing.
var tableQueries = map[string]string{
	"Document":            `SELECT string_agg(format('%s:%s:%s', id, name, is_active), ',' ORDER BY id) FROM "Document"`,
	"Facility":            `SELECT string_agg(format('%s:%s:%s', id, name, is_active), ',' ORDER BY id) FROM "Facility"`,
	"Worker":              `SELECT string_agg(format('%s:%s:%s:%s', id, name, is_active, profession), ',' ORDER BY id) FROM "Worker"`,
	"FacilityRequirement": `SELECT string_agg(format('%s:%s', facility_id, document_id), ',' ORDER BY facility_id, document_id) FROM "FacilityRequirement"`,
	"DocumentWorker":      `SELECT string_agg(format('%s:%s', worker_id, document_id), ',' ORDER BY worker_id, document_id) FROM "DocumentWorker"`,
	"Shift":               `SELECT string_agg(format('%s:%s:%s:%s:%s:%s', id, start, profession, is_deleted, facility_id, worker_id), ',' ORDER BY id) FROM "Shift"`,
	"entity_positions":    `SELECT string_agg(format('%s:%s:%s:%s', kind, id1, id2, seq), ',' ORDER BY kind, id1, id2) FROM shiftcast.entity_positions`,
	"shift_openings":      `SELECT string_agg(format('%s:%s:%s', shift_id, opened_xid, start), ',' ORDER BY shift_id) FROM shiftcast.shift_openings`,
	"applied_events":      `SELECT string_agg(format('%s:%s:%s', event_id, stream_seq, outcome), ',' ORDER BY event_id) FROM shiftcast.applied_events`,
	"worker_notify_state": `SELECT string_agg(format('%s:%s:%s', worker_id, facilities, snapshot), ',' ORDER BY worker_id) FROM shiftcast.worker_notify_state`,
	"notifications":       `SELECT count(*)::text FROM shiftcast.notifications`,
}

// tables returns the fingerprint of every table but those named.
func (p *pipe) tables(t *testing.T, except ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name, q := range tableQueries {
		if slices.Contains(except, name) {
			continue
		}
		var v *string
		p.scan(t, q, nil, &v)
		out[name] = ""
		if v != nil {
			out[name] = *v
		}
	}
	return out
}

func fanouts(facility int64, profs ...domain.Profession) []store.Fanout {
	out := make([]store.Fanout, len(profs))
	for i, prof := range profs {
		out[i] = store.Fanout{FacilityID: facility, Profession: prof}
	}
	return out
}

func allFanouts(facility int64) []store.Fanout {
	return fanouts(facility, domain.CNA, domain.LVN, domain.RN)
}

func noEffect(t *testing.T, eff store.Effect) {
	t.Helper()
	require.Empty(t, eff.NotifyWorkers)
	require.Empty(t, eff.Fanouts)
}

func isSerializationFailure(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01")
}

// 1. Every event type applies, changes the tables as documented and says
// who may have new shifts.
func TestApplyEvent_EveryTypeChangesTablesAndEffect(t *testing.T) {
	t.Parallel()
	p := newPipe(t)

	eff := p.mustApply(t, domain.TypeDocumentCreated, &domain.DocumentCreated{ID: 1, Name: "license", IsActive: false})
	noEffect(t, eff)
	require.False(t, p.flag(t, `SELECT is_active FROM "Document" WHERE id = 1 AND name = 'license'`))
	p.document(t, 2)

	eff = p.mustApply(t, domain.TypeFacilityCreated, &domain.FacilityCreated{ID: 1, Name: "north", IsActive: true})
	noEffect(t, eff)
	require.True(t, p.flag(t, `SELECT is_active FROM "Facility" WHERE id = 1 AND name = 'north'`))

	eff = p.mustApply(t, domain.TypeFacilityRequirementAdded, &domain.FacilityRequirement{FacilityID: 1, DocumentID: 1})
	noEffect(t, eff)
	require.Equal(t, 1, p.count(t, `SELECT count(*) FROM "FacilityRequirement" WHERE facility_id = 1 AND document_id = 1`))
	require.True(t, p.flag(t, `SELECT document_ids = '{1}' FROM shiftcast.facility_requirements WHERE facility_id = 1`))

	eff = p.mustApply(t, domain.TypeWorkerCreated, &domain.WorkerCreated{ID: 1, Name: "ann", Profession: domain.CNA, IsActive: true})
	require.Equal(t, []int64{1}, eff.NotifyWorkers)
	require.Empty(t, eff.Fanouts)
	require.True(t, p.flag(t, `SELECT is_active AND profession = 'CNA' AND name = 'ann' FROM "Worker" WHERE id = 1`))
	require.True(t, p.flag(t, `SELECT facilities = '{}' AND snapshot IS NULL FROM shiftcast.worker_notify_state WHERE worker_id = 1`),
		"a new worker knows nothing yet")

	eff = p.mustApply(t, domain.TypeWorkerCreated, &domain.WorkerCreated{ID: 2, Name: "bob", Profession: domain.RN, IsActive: false})
	noEffect(t, eff)
	require.False(t, p.flag(t, `SELECT is_active FROM "Worker" WHERE id = 2`))
	require.Equal(t, 1, p.count(t, `SELECT count(*) FROM shiftcast.worker_notify_state WHERE worker_id = 2`))

	eff = p.mustApply(t, domain.TypeWorkerDocumentAdded, &domain.WorkerDocument{WorkerID: 1, DocumentID: 1})
	require.Equal(t, []int64{1}, eff.NotifyWorkers)
	require.Empty(t, eff.Fanouts)
	require.Equal(t, 1, p.count(t, `SELECT count(*) FROM "DocumentWorker" WHERE worker_id = 1 AND document_id = 1`))
	require.True(t, p.flag(t, `SELECT document_ids = '{1}' FROM shiftcast.worker_documents WHERE worker_id = 1`))

	start := p.at(24 * time.Hour)
	eff = p.mustApply(t, domain.TypeShiftCreated, shiftData(1, 1, domain.CNA, start))
	require.Empty(t, eff.NotifyWorkers)
	require.Equal(t, fanouts(1, domain.CNA), eff.Fanouts)
	var (
		gotStart time.Time
		prof     string
		deleted  bool
		claimer  *int64
	)
	p.scan(t, `SELECT start, profession::text, is_deleted, worker_id FROM "Shift" WHERE id = 1 AND facility_id = 1 AND "end" = start + interval '5 hours'`,
		nil, &gotStart, &prof, &deleted, &claimer)
	require.True(t, start.Equal(gotStart), "%s vs %s", start, gotStart)
	require.Equal(t, "CNA", prof)
	require.False(t, deleted)
	require.Nil(t, claimer)
	require.True(t, p.flag(t, `SELECT start = $1 FROM shiftcast.shift_openings WHERE shift_id = 1`, start))

	eff = p.mustApply(t, domain.TypeShiftCreated, shiftData(2, 1, domain.LVN, p.at(-24*time.Hour)))
	noEffect(t, eff) // a past shift is nobody's news
	require.Equal(t, 1, p.count(t, `SELECT count(*) FROM "Shift" WHERE id = 2 AND worker_id IS NULL AND NOT is_deleted`))

	eff = p.mustApply(t, domain.TypeShiftClaimed, &domain.ShiftClaimed{ShiftID: 1, WorkerID: 1})
	noEffect(t, eff)
	require.Equal(t, 1, p.count(t, `SELECT count(*) FROM "Shift" WHERE id = 1 AND worker_id = 1`))
	require.Equal(t, 0, p.count(t, `SELECT count(*) FROM shiftcast.shift_openings WHERE shift_id = 1`), "a claimed shift is not open")

	eff = p.mustApply(t, domain.TypeShiftReleased, &domain.ShiftRef{ShiftID: 1})
	require.Empty(t, eff.NotifyWorkers)
	require.Equal(t, fanouts(1, domain.CNA), eff.Fanouts)
	require.Equal(t, 1, p.count(t, `SELECT count(*) FROM "Shift" WHERE id = 1 AND worker_id IS NULL`))
	require.Equal(t, 1, p.count(t, `SELECT count(*) FROM shiftcast.shift_openings WHERE shift_id = 1`))

	// Claimed and released in the past: open again, but not news.
	p.claim(t, 2, 1)
	eff = p.mustApply(t, domain.TypeShiftReleased, &domain.ShiftRef{ShiftID: 2})
	noEffect(t, eff)

	eff = p.mustApply(t, domain.TypeShiftDeleted, &domain.ShiftRef{ShiftID: 1})
	noEffect(t, eff)
	require.True(t, p.flag(t, `SELECT is_deleted FROM "Shift" WHERE id = 1`))
	require.Equal(t, 0, p.count(t, `SELECT count(*) FROM shiftcast.shift_openings WHERE shift_id = 1`))

	eff = p.mustApply(t, domain.TypeWorkerDeactivated, &domain.WorkerRef{WorkerID: 1})
	noEffect(t, eff)
	require.False(t, p.flag(t, `SELECT is_active FROM "Worker" WHERE id = 1`))

	eff = p.mustApply(t, domain.TypeWorkerActivated, &domain.WorkerRef{WorkerID: 1})
	require.Equal(t, []int64{1}, eff.NotifyWorkers)
	require.Empty(t, eff.Fanouts)
	require.True(t, p.flag(t, `SELECT is_active FROM "Worker" WHERE id = 1`))

	eff = p.mustApply(t, domain.TypeFacilityDeactivated, &domain.FacilityRef{FacilityID: 1})
	noEffect(t, eff)
	require.False(t, p.flag(t, `SELECT is_active FROM "Facility" WHERE id = 1`))

	eff = p.mustApply(t, domain.TypeFacilityActivated, &domain.FacilityRef{FacilityID: 1})
	require.Empty(t, eff.NotifyWorkers)
	require.Equal(t, allFanouts(1), eff.Fanouts)
	require.True(t, p.flag(t, `SELECT is_active FROM "Facility" WHERE id = 1`))

	eff = p.mustApply(t, domain.TypeFacilityRequirementRemoved, &domain.FacilityRequirement{FacilityID: 1, DocumentID: 1})
	require.Empty(t, eff.NotifyWorkers)
	require.Equal(t, allFanouts(1), eff.Fanouts)
	require.Equal(t, 0, p.count(t, `SELECT count(*) FROM "FacilityRequirement" WHERE facility_id = 1`))
	require.Equal(t, 0, p.count(t, `SELECT count(*) FROM shiftcast.facility_requirements WHERE facility_id = 1`))

	eff = p.mustApply(t, domain.TypeWorkerDocumentRemoved, &domain.WorkerDocument{WorkerID: 1, DocumentID: 1})
	noEffect(t, eff)
	require.Equal(t, 0, p.count(t, `SELECT count(*) FROM "DocumentWorker" WHERE worker_id = 1`))
	require.Equal(t, 0, p.count(t, `SELECT count(*) FROM shiftcast.worker_documents WHERE worker_id = 1`))

	// Every event is recorded once and applied; every entity changed by
	// something other than its creation has a position. Creations only
	// insert what is absent, so they take no part in positions (a claim
	// retried because it came before its shift's creation must still apply).
	require.Equal(t, p.ids, p.count(t, `SELECT count(*) FROM shiftcast.applied_events WHERE outcome = 'applied'`))
	require.Equal(t, p.ids, p.count(t, `SELECT count(*) FROM shiftcast.applied_events`))
	require.Equal(t, int(p.seq), p.count(t, `SELECT max(seq) FROM shiftcast.entity_positions`))
	for _, e := range []struct {
		kind     string
		id1, id2 int64
	}{
		{"facility", 1, 0}, {"facility_requirement", 1, 1},
		{"worker", 1, 0}, {"worker_document", 1, 1}, {"shift", 1, 0}, {"shift", 2, 0},
	} {
		require.Equal(t, 1, p.count(t, `SELECT count(*) FROM shiftcast.entity_positions WHERE kind = $1 AND id1 = $2 AND id2 = $3`,
			e.kind, e.id1, e.id2), "%+v", e)
	}
	require.Equal(t, 6, p.count(t, `SELECT count(*) FROM shiftcast.entity_positions`), "documents 1, 2 and worker 2 were only created")
}

// 2. Fan-out expands a (facility, profession) into exactly the workers who
// can take its shifts.
func TestFanoutWorkers_ActiveProfessionWithAllDocs(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	for d := int64(1); d <= 3; d++ {
		p.document(t, d)
	}
	p.facility(t, 1, true, 1, 2)
	p.mustApply(t, domain.TypeFacilityRequirementAdded, &domain.FacilityRequirement{FacilityID: 1, DocumentID: 2}) // already there
	p.facility(t, 2, true)
	p.facility(t, 3, false)
	p.facility(t, 4, true, 3)
	p.mustApply(t, domain.TypeFacilityRequirementRemoved, &domain.FacilityRequirement{FacilityID: 4, DocumentID: 3})

	p.worker(t, 1, domain.CNA, true, 1, 2)    // all docs
	p.worker(t, 2, domain.CNA, true, 1, 2, 3) // a superset
	p.worker(t, 3, domain.CNA, true, 1)       // lacks 2
	p.worker(t, 4, domain.CNA, false, 1, 2)   // inactive
	p.worker(t, 5, domain.RN, true, 1, 2)     // other profession
	p.worker(t, 6, domain.CNA, true)          // no documents
	p.worker(t, 7, domain.CNA, true, 2, 1, 1) // all docs, one twice
	p.worker(t, 8, domain.LVN, false)         // inactive, no documents
	p.worker(t, 9, domain.CNA, true, 1, 2, 3) // deactivated below
	p.mustApply(t, domain.TypeWorkerDeactivated, &domain.WorkerRef{WorkerID: 9})
	p.worker(t, 10, domain.CNA, true, 1, 2) // loses doc 2 below
	p.mustApply(t, domain.TypeWorkerDocumentRemoved, &domain.WorkerDocument{WorkerID: 10, DocumentID: 2})

	for _, tc := range []struct {
		facility int64
		prof     domain.Profession
		want     []int64
	}{
		{1, domain.CNA, []int64{1, 2, 7}},
		{1, domain.RN, []int64{5}},
		{1, domain.LVN, nil},
		{2, domain.CNA, []int64{1, 2, 3, 6, 7, 10}}, // no requirements: every active CNA
		{2, domain.LVN, nil},
		{3, domain.CNA, nil},                        // inactive facility
		{4, domain.CNA, []int64{1, 2, 3, 6, 7, 10}}, // its only requirement removed
		{99, domain.CNA, nil},                       // unknown facility
	} {
		got, err := p.st.FanoutWorkers(bg, tc.facility, tc.prof)
		require.NoError(t, err)
		require.Equal(t, tc.want, nilIfEmpty(got), "facility %d %s", tc.facility, tc.prof)
	}

	// Activating the inactive facility makes its workers appear.
	p.mustApply(t, domain.TypeFacilityActivated, &domain.FacilityRef{FacilityID: 3})
	got, err := p.st.FanoutWorkers(bg, 3, domain.CNA)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2, 3, 6, 7, 10}, got)
}

func nilIfEmpty(ids []int64) []int64 {
	if len(ids) == 0 {
		return nil
	}
	return ids
}

// basicWorld: documents 1 and 2; facility 1 requires 1, facility 2
// requires nothing, facility 3 requires 1 and 2; worker 1 is an active CNA
// holding document 1.
func basicWorld(t *testing.T, p *pipe) {
	t.Helper()
	p.document(t, 1)
	p.document(t, 2)
	p.facility(t, 1, true, 1)
	p.facility(t, 2, true)
	p.facility(t, 3, true, 1, 2)
	p.worker(t, 1, domain.CNA, true, 1)
}

// 3. A new worker's first digest lists every eligible future shift, once.
func TestBuildDigest_FirstDigestListsEverythingOnce(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	basicWorld(t, p)
	p.shift(t, 10, 1, domain.CNA, 48*time.Hour)
	p.shift(t, 11, 2, domain.CNA, 24*time.Hour)
	p.shift(t, 12, 2, domain.CNA, 24*time.Hour) // same start: id order
	p.shift(t, 13, 3, domain.CNA, 30*time.Hour) // lacks document 2
	p.shift(t, 14, 1, domain.RN, 30*time.Hour)  // other profession
	p.shift(t, 15, 1, domain.CNA, -2*time.Hour) // started
	p.shift(t, 16, 2, domain.CNA, 72*time.Hour)

	require.Equal(t, []int64{11, 12, 10, 16}, p.digest(t, 1))
	require.Nil(t, p.digest(t, 1), "never twice")

	// A worker who appears later gets everything at once too.
	p.worker(t, 2, domain.CNA, true, 1, 2)
	require.Equal(t, []int64{11, 12, 13, 10, 16}, p.digest(t, 2))
	require.Nil(t, p.digest(t, 2))
	require.Nil(t, p.digest(t, 1))
}

// 3. Count is the total; Shifts the first k, soonest first.
func TestBuildDigest_CountsBeyondK(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	basicWorld(t, p)
	for i := int64(1); i <= 5; i++ {
		p.shift(t, 20+i, 2, domain.CNA, time.Duration(6-i)*time.Hour)
	}
	n, err := p.buildDigest(t, 1, 2)
	require.NoError(t, err)
	require.NotNil(t, n)
	require.Equal(t, 5, n.Count)
	require.Equal(t, []int64{25, 24}, shiftIDs(n))
	require.Nil(t, p.digest(t, 1), "the unlisted ones were counted: not news any more")
}

// 3. Workers of another profession, lacking a document or inactive get
// nothing.
func TestBuildDigest_IneligibleWorkersGetNothing(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	basicWorld(t, p)
	p.worker(t, 2, domain.LVN, true, 1, 2) // other profession
	p.worker(t, 3, domain.CNA, true, 2)    // lacks document 1
	p.worker(t, 4, domain.CNA, false, 1)   // inactive
	p.worker(t, 5, domain.CNA, true, 1)    // deactivated below
	p.mustApply(t, domain.TypeWorkerDeactivated, &domain.WorkerRef{WorkerID: 5})
	p.shift(t, 10, 1, domain.CNA, 24*time.Hour)

	require.Equal(t, []int64{10}, p.digest(t, 1))
	for _, w := range []int64{2, 3, 4, 5} {
		require.Nil(t, p.digest(t, w), "worker %d", w)
	}

	_, err := p.st.BuildDigest(bg, 99, p.now, 100, 0, func(context.Context, pgx.Tx, string) error { return nil })
	require.Error(t, err, "unknown worker")
	require.Equal(t, domain.ENOTFOUND, domain.ErrorCode(err))
}

// 3. Deleted and past shifts are never listed.
func TestBuildDigest_DeletedAndPastShiftsNeverListed(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	basicWorld(t, p)
	p.shift(t, 10, 2, domain.CNA, 24*time.Hour)
	p.shift(t, 11, 2, domain.CNA, 25*time.Hour)
	p.mustApply(t, domain.TypeShiftDeleted, &domain.ShiftRef{ShiftID: 11})
	p.shift(t, 12, 2, domain.CNA, -time.Hour)
	p.shift(t, 13, 2, domain.CNA, 0) // starts now: not in the future

	require.Equal(t, []int64{10}, p.digest(t, 1))

	// Opened after the first digest, then deleted or in the past: still nothing.
	p.shift(t, 14, 2, domain.CNA, 26*time.Hour)
	p.mustApply(t, domain.TypeShiftDeleted, &domain.ShiftRef{ShiftID: 14})
	p.shift(t, 15, 2, domain.CNA, -3*time.Hour)
	p.claim(t, 12, 1)
	p.mustApply(t, domain.TypeShiftReleased, &domain.ShiftRef{ShiftID: 12})
	require.Nil(t, p.digest(t, 1))

	// Listed once, deleted later: a later digest has nothing to say.
	p.shift(t, 16, 2, domain.CNA, 27*time.Hour)
	p.mustApply(t, domain.TypeShiftDeleted, &domain.ShiftRef{ShiftID: 10})
	require.Equal(t, []int64{16}, p.digest(t, 1))
}

// 3. A shift claimed within the window, before the digest is built, is not
// announced.
func TestBuildDigest_ClaimedWithinWindowNotListed(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	basicWorld(t, p)
	p.worker(t, 2, domain.CNA, true, 1)
	require.Nil(t, p.digest(t, 1))
	require.Nil(t, p.digest(t, 2))

	p.shift(t, 10, 1, domain.CNA, 24*time.Hour)
	p.shift(t, 11, 1, domain.CNA, 25*time.Hour)
	p.claim(t, 10, 2)
	require.Equal(t, []int64{11}, p.digest(t, 1))
	require.Equal(t, []int64{11}, p.digest(t, 2))
}

// 4. A released shift re-enters the eligible set: it is announced again.
func TestBuildDigest_ReleasedShiftAnnouncedAgain(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	basicWorld(t, p)
	p.worker(t, 2, domain.CNA, true, 1)
	p.shift(t, 10, 1, domain.CNA, 24*time.Hour)
	p.shift(t, 11, 1, domain.CNA, 30*time.Hour)
	require.Equal(t, []int64{10, 11}, p.digest(t, 1))
	require.Equal(t, []int64{10, 11}, p.digest(t, 2))

	p.claim(t, 10, 2)
	require.Nil(t, p.digest(t, 1))

	eff := p.mustApply(t, domain.TypeShiftReleased, &domain.ShiftRef{ShiftID: 10})
	require.Equal(t, fanouts(1, domain.CNA), eff.Fanouts)
	require.Equal(t, []int64{10}, p.digest(t, 1))
	require.Equal(t, []int64{10}, p.digest(t, 2), "worker 2 had no digest while it was claimed")
	require.Nil(t, p.digest(t, 1))

	// Claimed and released again between two digests.
	p.claim(t, 10, 1)
	p.mustApply(t, domain.TypeShiftReleased, &domain.ShiftRef{ShiftID: 10})
	require.Equal(t, []int64{10}, p.digest(t, 1))
}

// 5. The same event id twice is a no-op, however late.
func TestApplyEvent_DuplicateIgnored(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	basicWorld(t, p)
	p.shift(t, 10, 1, domain.CNA, 24*time.Hour)

	ev := p.event(t, domain.TypeShiftClaimed, &domain.ShiftClaimed{ShiftID: 10, WorkerID: 1})
	seq := p.next()
	eff, err := p.applyEv(t, ev, seq)
	require.NoError(t, err)
	require.Equal(t, store.OutcomeApplied, eff.Outcome)
	p.mustApply(t, domain.TypeShiftReleased, &domain.ShiftRef{ShiftID: 10})

	// Redelivered a month later, beyond any JetStream duplicate window: the
	// id record (not the broker) makes it a duplicate, at its own sequence
	// or at a new one (republished).
	p.b.exec(t, `UPDATE shiftcast.applied_events SET applied_at = now() - interval '30 days'`)
	before := p.tables(t)
	for _, s := range []uint64{seq, p.next(), p.next() + 1000} {
		eff, err := p.applyEv(t, ev, s)
		require.NoError(t, err)
		require.Equal(t, store.OutcomeDuplicate, eff.Outcome, "seq %d", s)
		noEffect(t, eff)
		require.Equal(t, before, p.tables(t), "a duplicate changes nothing")
	}
	require.Equal(t, 1, p.count(t, `SELECT count(*) FROM "Shift" WHERE id = 10 AND worker_id IS NULL`))

	// Every type's duplicate is a duplicate.
	for _, c := range []struct {
		typ  string
		data any
	}{
		{domain.TypeWorkerActivated, &domain.WorkerRef{WorkerID: 1}},
		{domain.TypeWorkerDocumentAdded, &domain.WorkerDocument{WorkerID: 1, DocumentID: 2}},
		{domain.TypeFacilityActivated, &domain.FacilityRef{FacilityID: 2}},
		{domain.TypeFacilityRequirementRemoved, &domain.FacilityRequirement{FacilityID: 3, DocumentID: 2}},
		{domain.TypeShiftCreated, shiftData(11, 2, domain.CNA, p.at(5*time.Hour))},
	} {
		ev := p.event(t, c.typ, c.data)
		eff, err := p.applyEv(t, ev, p.next())
		require.NoError(t, err)
		require.Equal(t, store.OutcomeApplied, eff.Outcome)
		before := p.tables(t)
		eff, err = p.applyEv(t, ev, p.next())
		require.NoError(t, err)
		require.Equal(t, store.Effect{Outcome: store.OutcomeDuplicate}, eff, c.typ)
		require.Equal(t, before, p.tables(t), c.typ)
	}
}

// 5. A redelivered shift.created is never a second announcement.
func TestBuildDigest_DuplicateShiftCreatedNotAnnouncedTwice(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	basicWorld(t, p)
	ev := p.event(t, domain.TypeShiftCreated, shiftData(10, 1, domain.CNA, p.at(24*time.Hour)))
	seq := p.next()
	eff, err := p.applyEv(t, ev, seq)
	require.NoError(t, err)
	require.Equal(t, fanouts(1, domain.CNA), eff.Fanouts)
	require.Equal(t, []int64{10}, p.digest(t, 1))

	for _, s := range []uint64{seq, p.next()} {
		eff, err = p.applyEv(t, ev, s)
		require.NoError(t, err)
		require.Equal(t, store.OutcomeDuplicate, eff.Outcome)
		noEffect(t, eff)
		require.Nil(t, p.digest(t, 1))
	}

	// A duplicate delivered before the first digest: announced once.
	p.worker(t, 2, domain.CNA, true, 1)
	ev2 := p.event(t, domain.TypeShiftCreated, shiftData(11, 1, domain.CNA, p.at(20*time.Hour)))
	seq2 := p.next()
	_, err = p.applyEv(t, ev2, seq2)
	require.NoError(t, err)
	eff, err = p.applyEv(t, ev2, seq2)
	require.NoError(t, err)
	require.Equal(t, store.OutcomeDuplicate, eff.Outcome)
	require.Equal(t, []int64{11}, p.digest(t, 1))
	require.Equal(t, []int64{11, 10}, p.digest(t, 2))
	_, err = p.applyEv(t, ev2, p.next())
	require.NoError(t, err)
	require.Nil(t, p.digest(t, 1))
	require.Nil(t, p.digest(t, 2))
}

// 6. An older event never undoes a newer one on the same (worker, document).
func TestApplyEvent_StaleDocumentAddIgnored(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	basicWorld(t, p) // worker 1 holds document 1
	p.seq = 100

	eff := p.applyAt(t, 120, domain.TypeWorkerDocumentRemoved, &domain.WorkerDocument{WorkerID: 1, DocumentID: 2})
	require.Equal(t, store.OutcomeApplied, eff.Outcome, "removing what is not held is applied (a no-op)")
	before := p.tables(t)
	eff = p.applyAt(t, 115, domain.TypeWorkerDocumentAdded, &domain.WorkerDocument{WorkerID: 1, DocumentID: 2})
	require.Equal(t, store.OutcomeStale, eff.Outcome)
	noEffect(t, eff)
	require.Equal(t, 0, p.count(t, `SELECT count(*) FROM "DocumentWorker" WHERE worker_id = 1 AND document_id = 2`))
	require.Equal(t, 1, p.count(t, `SELECT count(*) FROM shiftcast.applied_events WHERE stream_seq = 115 AND outcome = 'stale'`))
	require.Equal(t, 120, p.count(t, `SELECT seq FROM shiftcast.entity_positions WHERE kind = 'worker_document' AND id1 = 1 AND id2 = 2`))
	after := p.tables(t)
	require.NotEqual(t, before["applied_events"], after["applied_events"]) // only the id record...
	delete(before, "applied_events")
	delete(after, "applied_events")
	require.Equal(t, before, after, "...and nothing else")

	// The pair is its own entity: other documents of the worker are not
	// affected by its position.
	eff = p.applyAt(t, 116, domain.TypeWorkerDocumentRemoved, &domain.WorkerDocument{WorkerID: 1, DocumentID: 1})
	require.Equal(t, store.OutcomeApplied, eff.Outcome)
	require.Equal(t, 0, p.count(t, `SELECT count(*) FROM "DocumentWorker" WHERE worker_id = 1`))

	// A newer add applies.
	eff = p.applyAt(t, 130, domain.TypeWorkerDocumentAdded, &domain.WorkerDocument{WorkerID: 1, DocumentID: 2})
	require.Equal(t, store.OutcomeApplied, eff.Outcome)
	require.Equal(t, []int64{1}, eff.NotifyWorkers)
	require.Equal(t, 1, p.count(t, `SELECT count(*) FROM "DocumentWorker" WHERE worker_id = 1 AND document_id = 2`))
}

// 6. A late activation does not undo a newer deactivation.
func TestApplyEvent_StaleFacilityActivationIgnored(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	p.seq = 10
	p.applyAt(t, 10, domain.TypeFacilityCreated, &domain.FacilityCreated{ID: 1, Name: "f", IsActive: true})
	p.applyAt(t, 11, domain.TypeWorkerCreated, &domain.WorkerCreated{ID: 1, Name: "w", Profession: domain.RN, IsActive: true})
	p.applyAt(t, 12, domain.TypeShiftCreated, shiftData(1, 1, domain.RN, p.at(24*time.Hour)))
	require.Equal(t, []int64{1}, p.digest(t, 1))

	eff := p.applyAt(t, 30, domain.TypeFacilityDeactivated, &domain.FacilityRef{FacilityID: 1})
	require.Equal(t, store.OutcomeApplied, eff.Outcome)
	eff = p.applyAt(t, 25, domain.TypeFacilityActivated, &domain.FacilityRef{FacilityID: 1})
	require.Equal(t, store.OutcomeStale, eff.Outcome)
	noEffect(t, eff)
	require.False(t, p.flag(t, `SELECT is_active FROM "Facility" WHERE id = 1`))
	got, err := p.st.FanoutWorkers(bg, 1, domain.RN)
	require.NoError(t, err)
	require.Empty(t, got)
	require.Nil(t, p.digest(t, 1))

	// A late replay of the creation (active) does not resurrect it either:
	// creations only insert what is absent.
	p.applyAt(t, 10, domain.TypeFacilityCreated, &domain.FacilityCreated{ID: 1, Name: "f", IsActive: true})
	require.False(t, p.flag(t, `SELECT is_active FROM "Facility" WHERE id = 1`))

	// Stale worker and shift events too.
	p.applyAt(t, 40, domain.TypeWorkerDeactivated, &domain.WorkerRef{WorkerID: 1})
	eff = p.applyAt(t, 35, domain.TypeWorkerActivated, &domain.WorkerRef{WorkerID: 1})
	require.Equal(t, store.OutcomeStale, eff.Outcome)
	noEffect(t, eff)
	require.False(t, p.flag(t, `SELECT is_active FROM "Worker" WHERE id = 1`))

	p.applyAt(t, 50, domain.TypeShiftDeleted, &domain.ShiftRef{ShiftID: 1})
	eff = p.applyAt(t, 45, domain.TypeShiftReleased, &domain.ShiftRef{ShiftID: 1})
	require.Equal(t, store.OutcomeStale, eff.Outcome)
	noEffect(t, eff)
	require.True(t, p.flag(t, `SELECT is_deleted FROM "Shift" WHERE id = 1`))
	require.Equal(t, 0, p.count(t, `SELECT count(*) FROM shiftcast.shift_openings`))
}

// 7. A claim before its shift's creation is a missing dependency that
// changes nothing, so that a redelivery applies it.
func TestApplyEvent_ClaimBeforeCreateMissingDependency(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	basicWorld(t, p)
	p.seq = 100

	claim := p.event(t, domain.TypeShiftClaimed, &domain.ShiftClaimed{ShiftID: 10, WorkerID: 1})
	before := p.tables(t)
	_, err := p.applyEv(t, claim, 120)
	require.ErrorIs(t, err, store.ErrMissingDependency)
	require.Equal(t, before, p.tables(t), "nothing changed, the id record rolled back")
	require.Equal(t, 0, p.count(t, `SELECT count(*) FROM shiftcast.applied_events WHERE event_id = $1`, claim.ID))

	// Redelivered, still before the creation: the same.
	_, err = p.applyEv(t, claim, 120)
	require.ErrorIs(t, err, store.ErrMissingDependency)

	eff := p.applyAt(t, 110, domain.TypeShiftCreated, shiftData(10, 1, domain.CNA, p.at(24*time.Hour)))
	require.Equal(t, store.OutcomeApplied, eff.Outcome)
	eff, err = p.applyEv(t, claim, 120)
	require.NoError(t, err)
	require.Equal(t, store.OutcomeApplied, eff.Outcome)
	noEffect(t, eff)
	require.Equal(t, 1, p.count(t, `SELECT count(*) FROM "Shift" WHERE id = 10 AND worker_id = 1`))
	require.Nil(t, p.digest(t, 1), "claimed before any digest: never news")

	// Other missing dependencies, through foreign keys or lookups, at
	// sequences newer than any entity's position.
	p.seq = 1000
	for _, c := range []struct {
		typ  string
		data any
	}{
		{domain.TypeShiftCreated, shiftData(11, 99, domain.CNA, p.at(time.Hour))},  // unknown facility
		{domain.TypeShiftClaimed, &domain.ShiftClaimed{ShiftID: 10, WorkerID: 99}}, // unknown worker
		{domain.TypeShiftReleased, &domain.ShiftRef{ShiftID: 99}},                  // unknown shift
		{domain.TypeShiftDeleted, &domain.ShiftRef{ShiftID: 99}},                   // unknown shift
		{domain.TypeWorkerActivated, &domain.WorkerRef{WorkerID: 99}},              // unknown worker
		{domain.TypeWorkerDeactivated, &domain.WorkerRef{WorkerID: 99}},            // unknown worker
		{domain.TypeWorkerDocumentAdded, &domain.WorkerDocument{WorkerID: 99, DocumentID: 1}},
		{domain.TypeWorkerDocumentAdded, &domain.WorkerDocument{WorkerID: 1, DocumentID: 99}},
		{domain.TypeWorkerDocumentRemoved, &domain.WorkerDocument{WorkerID: 99, DocumentID: 1}},
		{domain.TypeFacilityActivated, &domain.FacilityRef{FacilityID: 99}},
		{domain.TypeFacilityDeactivated, &domain.FacilityRef{FacilityID: 99}},
		{domain.TypeFacilityRequirementAdded, &domain.FacilityRequirement{FacilityID: 99, DocumentID: 1}},
		{domain.TypeFacilityRequirementAdded, &domain.FacilityRequirement{FacilityID: 1, DocumentID: 99}},
		{domain.TypeFacilityRequirementRemoved, &domain.FacilityRequirement{FacilityID: 99, DocumentID: 1}},
	} {
		before := p.tables(t)
		err := p.applyErr(t, c.typ, c.data)
		require.ErrorIs(t, err, store.ErrMissingDependency, "%s %+v", c.typ, c.data)
		require.Equal(t, before, p.tables(t), c.typ)
	}
}

// 8. A document the worker already had adds nothing new.
func TestBuildDigest_DocumentAlreadyHeldNothingNew(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	basicWorld(t, p)
	p.shift(t, 10, 1, domain.CNA, 24*time.Hour)
	require.Equal(t, []int64{10}, p.digest(t, 1))

	eff := p.mustApply(t, domain.TypeWorkerDocumentAdded, &domain.WorkerDocument{WorkerID: 1, DocumentID: 1})
	require.Equal(t, []int64{1}, eff.NotifyWorkers, "the job is requested; it decides nothing is new")
	require.Equal(t, 1, p.count(t, `SELECT count(*) FROM "DocumentWorker" WHERE worker_id = 1 AND document_id = 1`))
	require.Nil(t, p.digest(t, 1))
}

// 8. A document that makes a facility newly eligible brings exactly that
// facility's open future shifts of the worker's profession.
func TestBuildDigest_DocumentMakesFacilityEligible(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	basicWorld(t, p)
	p.document(t, 3)
	p.facility(t, 4, true, 2, 3) // needs both
	p.shift(t, 10, 1, domain.CNA, 24*time.Hour)
	p.shift(t, 20, 3, domain.CNA, 30*time.Hour)
	p.shift(t, 21, 3, domain.CNA, 26*time.Hour)
	p.shift(t, 22, 3, domain.LVN, 26*time.Hour) // other profession
	p.shift(t, 23, 3, domain.CNA, -time.Hour)   // past
	p.shift(t, 24, 3, domain.CNA, 27*time.Hour)
	p.claim(t, 24, 1) // claimed
	p.shift(t, 25, 3, domain.CNA, 28*time.Hour)
	p.mustApply(t, domain.TypeShiftDeleted, &domain.ShiftRef{ShiftID: 25}) // deleted
	p.shift(t, 30, 4, domain.CNA, 24*time.Hour)
	require.Equal(t, []int64{10}, p.digest(t, 1))

	eff := p.mustApply(t, domain.TypeWorkerDocumentAdded, &domain.WorkerDocument{WorkerID: 1, DocumentID: 2})
	require.Equal(t, []int64{1}, eff.NotifyWorkers)
	require.Equal(t, []int64{21, 20}, p.digest(t, 1), "facility 3's shifts, not 4's (still lacks 3)")
	require.Nil(t, p.digest(t, 1))

	// Without a digest in between, two documents: facility 4 becomes
	// eligible at the second.
	p.mustApply(t, domain.TypeWorkerDocumentAdded, &domain.WorkerDocument{WorkerID: 1, DocumentID: 3})
	require.Equal(t, []int64{30}, p.digest(t, 1))
	require.Nil(t, p.digest(t, 1))
}

// 9. Removing a requirement brings the facility's shifts to the workers who
// lacked the document, and nothing to those who had it.
func TestBuildDigest_RequirementRemoved(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	basicWorld(t, p)                            // worker 1 holds 1
	p.worker(t, 2, domain.CNA, true, 1, 2)      // holds both
	p.worker(t, 3, domain.CNA, true)            // holds nothing
	p.worker(t, 4, domain.RN, true)             // other profession
	p.shift(t, 10, 3, domain.CNA, 24*time.Hour) // facility 3 requires 1 and 2
	p.shift(t, 11, 3, domain.CNA, 20*time.Hour)
	p.shift(t, 12, 2, domain.CNA, 48*time.Hour)
	require.Equal(t, []int64{12}, p.digest(t, 1))
	require.Equal(t, []int64{11, 10, 12}, p.digest(t, 2))
	require.Equal(t, []int64{12}, p.digest(t, 3))
	require.Nil(t, p.digest(t, 4))

	eff := p.mustApply(t, domain.TypeFacilityRequirementRemoved, &domain.FacilityRequirement{FacilityID: 3, DocumentID: 2})
	require.Equal(t, allFanouts(3), eff.Fanouts)
	fan, err := p.st.FanoutWorkers(bg, 3, domain.CNA)
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2}, fan)
	require.Equal(t, []int64{11, 10}, p.digest(t, 1), "lacked document 2")
	require.Nil(t, p.digest(t, 2), "had it")
	require.Nil(t, p.digest(t, 3), "still lacks document 1")

	p.mustApply(t, domain.TypeFacilityRequirementRemoved, &domain.FacilityRequirement{FacilityID: 3, DocumentID: 1})
	require.Equal(t, []int64{11, 10}, p.digest(t, 3))
	require.Nil(t, p.digest(t, 1))
	require.Nil(t, p.digest(t, 2))
	require.Nil(t, p.digest(t, 4))
}

// 10. A facility deactivated then activated: its shifts are announced again
// to a worker whose digest ran while it was inactive.
func TestBuildDigest_FacilityReactivatedAnnouncedAgain(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	basicWorld(t, p)
	p.worker(t, 2, domain.CNA, true, 1)
	p.shift(t, 10, 1, domain.CNA, 24*time.Hour)
	p.shift(t, 11, 2, domain.CNA, 25*time.Hour)
	require.Equal(t, []int64{10, 11}, p.digest(t, 1))
	require.Equal(t, []int64{10, 11}, p.digest(t, 2))

	p.mustApply(t, domain.TypeFacilityDeactivated, &domain.FacilityRef{FacilityID: 1})
	p.shift(t, 12, 1, domain.CNA, 26*time.Hour) // opened while inactive
	require.Nil(t, p.digest(t, 1))

	eff := p.mustApply(t, domain.TypeFacilityActivated, &domain.FacilityRef{FacilityID: 1})
	require.Equal(t, allFanouts(1), eff.Fanouts)
	require.Equal(t, []int64{10, 12}, p.digest(t, 1), "left and re-entered the eligible set")
	require.Nil(t, p.digest(t, 1))
	// Worker 2 had no digest while it was inactive: only what it never saw.
	require.Equal(t, []int64{12}, p.digest(t, 2))
	require.Nil(t, p.digest(t, 2))
}

// 11. A worker deactivated then activated gets everything eligible again.
func TestBuildDigest_WorkerReactivatedGetsEverything(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	basicWorld(t, p)
	p.shift(t, 10, 1, domain.CNA, 24*time.Hour)
	p.shift(t, 11, 2, domain.CNA, 25*time.Hour)
	p.shift(t, 12, 3, domain.CNA, 26*time.Hour) // not eligible
	require.Equal(t, []int64{10, 11}, p.digest(t, 1))

	p.mustApply(t, domain.TypeWorkerDeactivated, &domain.WorkerRef{WorkerID: 1})
	require.Nil(t, p.digest(t, 1))
	p.shift(t, 13, 2, domain.CNA, 23*time.Hour)
	eff := p.mustApply(t, domain.TypeWorkerActivated, &domain.WorkerRef{WorkerID: 1})
	require.Equal(t, []int64{1}, eff.NotifyWorkers)
	require.Equal(t, []int64{13, 10, 11}, p.digest(t, 1))
	require.Nil(t, p.digest(t, 1))

	// Without a digest while inactive: the same.
	p.mustApply(t, domain.TypeWorkerDeactivated, &domain.WorkerRef{WorkerID: 1})
	p.mustApply(t, domain.TypeWorkerActivated, &domain.WorkerRef{WorkerID: 1})
	require.Equal(t, []int64{13, 10, 11}, p.digest(t, 1))
	require.Nil(t, p.digest(t, 1))
}

// 12. After a bulk load, what exists is not news; what comes after is.
func TestReset_ExistingShiftsNotNews(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	basicWorld(t, p)
	p.worker(t, 2, domain.CNA, true, 1, 2)
	p.shift(t, 10, 1, domain.CNA, 24*time.Hour)
	p.shift(t, 11, 3, domain.CNA, 25*time.Hour)
	// Bulk-loaded rows, written straight to the tables.
	p.b.exec(t, `INSERT INTO "Worker" (id, name, is_active, profession) VALUES (3, 'bulk', true, 'CNA')`)
	p.b.exec(t, `INSERT INTO "Shift" (id, start, "end", profession, facility_id) VALUES (12, $1, $2, 'CNA', 2)`,
		p.at(30*time.Hour), p.at(35*time.Hour))

	// A notification built before the reload: history of workers whose ids
	// the reloaded data reuses.
	require.NotEmpty(t, p.digest(t, 2))
	var id uuid.UUID
	p.scan(t, `SELECT id FROM shiftcast.notifications`, nil, &id)
	require.Equal(t, uuid.Version(7), id.Version(), "notification ids are time-ordered")

	require.NoError(t, p.st.ResetPipelineState(bg))
	require.Equal(t, 0, p.count(t, `SELECT count(*) FROM shiftcast.notifications`), "the replaced data's notification history is dropped")
	require.Equal(t, 0, p.count(t, `SELECT count(*) FROM shiftcast.applied_events`))
	require.Equal(t, 0, p.count(t, `SELECT count(*) FROM shiftcast.entity_positions`))
	require.Equal(t, 0, p.count(t, `SELECT count(*) FROM shiftcast.shift_openings`))
	for _, w := range []int64{1, 2, 3} {
		require.Nil(t, p.digest(t, w), "worker %d", w)
	}

	p.shift(t, 13, 2, domain.CNA, 28*time.Hour)
	p.shift(t, 14, 3, domain.CNA, 29*time.Hour)
	require.Equal(t, []int64{13}, p.digest(t, 1))
	require.Equal(t, []int64{13, 14}, p.digest(t, 2))
	require.Equal(t, []int64{13}, p.digest(t, 3))
	// A bulk-loaded worker appearing later is not baselined: it knows nothing.
	p.worker(t, 4, domain.CNA, true)
	require.Equal(t, []int64{13, 12}, p.digest(t, 4))
}

// A shift opened by a transaction still in flight while a digest is built is
// announced by the next digest.
func TestBuildDigest_ShiftOpenedDuringDigestAnnouncedNext(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	basicWorld(t, p)
	p.shift(t, 10, 1, domain.CNA, 24*time.Hour)
	require.Equal(t, []int64{10}, p.digest(t, 1))

	var during []int64
	ev := p.event(t, domain.TypeShiftCreated, shiftData(11, 1, domain.CNA, p.at(20*time.Hour)))
	_, err := p.st.ApplyEvent(bg, ev, p.next(), p.now, func(ctx context.Context, tx pgx.Tx, eff store.Effect) error {
		during = p.digest(t, 1) // another connection, while this one is uncommitted
		return nil
	})
	require.NoError(t, err)
	require.Nil(t, during)
	require.Equal(t, []int64{11}, p.digest(t, 1))
	require.Nil(t, p.digest(t, 1))

	// The same for a release.
	p.claim(t, 11, 1)
	require.Nil(t, p.digest(t, 1))
	ev = p.event(t, domain.TypeShiftReleased, &domain.ShiftRef{ShiftID: 11})
	_, err = p.st.ApplyEvent(bg, ev, p.next(), p.now, func(ctx context.Context, tx pgx.Tx, eff store.Effect) error {
		during = p.digest(t, 1)
		return nil
	})
	require.NoError(t, err)
	require.Nil(t, during)
	require.Equal(t, []int64{11}, p.digest(t, 1))
}

// 13. Digests of one worker racing announce each shift at most once.
func TestBuildDigest_ConcurrentDigestsAnnounceOnce(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	basicWorld(t, p)
	const racers = 3
	next := int64(100)
	retried := 0
	for round := range 8 {
		var want []int64
		for i := range 3 {
			next++
			p.shift(t, next, 1+int64(i%2), domain.CNA, time.Duration(24+round*3+i)*time.Hour)
			want = append(want, next)
		}
		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			mu      sync.Mutex
			results [][]int64
			failed  int
		)
		for range racers {
			wg.Go(func() {
				<-start
				var ids []string
				n, err := p.st.BuildDigest(bg, 1, p.now, 100, 0, func(_ context.Context, _ pgx.Tx, id string) error {
					ids = append(ids, id)
					return nil
				})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if !isSerializationFailure(err) {
						t.Errorf("round %d: unexpected error: %v", round, err)
					}
					failed++
					return
				}
				if n != nil {
					results = append(results, shiftIDs(n))
				}
			})
		}
		close(start)
		wg.Wait()
		require.False(t, t.Failed())
		// River retries the failed ones.
		for range failed {
			if ids := p.digest(t, 1); ids != nil {
				results = append(results, ids)
			}
		}
		var all []int64
		for _, r := range results {
			all = append(all, r...)
		}
		slices.Sort(all)
		require.Equal(t, want, all, "round %d: each shift announced exactly once (%v, %d failed)", round, results, failed)
		require.Nil(t, p.digest(t, 1))
		retried += failed
	}
	t.Logf("%d racing digests failed to serialize and were retried", retried)
}

// 14. Prune drops the openings of started shifts and old event ids.
func TestPrune_OpeningsAndEvents(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	basicWorld(t, p)
	p.shift(t, 10, 1, domain.CNA, time.Hour)
	p.shift(t, 11, 1, domain.CNA, 48*time.Hour)
	p.shift(t, 12, 1, domain.CNA, -time.Hour)
	require.Equal(t, []int64{10, 11}, p.digest(t, 1))
	events := p.count(t, `SELECT count(*) FROM shiftcast.applied_events`)
	opened := len(p.openings(t))

	// Two hours later: shifts 10 and 12 have started.
	openings, pruned, err := p.st.Prune(bg, p.at(2*time.Hour), 7*24*time.Hour)
	require.NoError(t, err)
	require.Equal(t, int64(0), pruned, "no event is a week old")
	require.Equal(t, []int64{11}, p.openings(t))
	require.Equal(t, int64(opened-1), openings)

	// Events applied more than a week ago go.
	p.b.exec(t, `UPDATE shiftcast.applied_events SET applied_at = now() - interval '8 days'
		WHERE event_id IN (SELECT event_id FROM shiftcast.applied_events ORDER BY stream_seq LIMIT 3)`)
	_, pruned, err = p.st.Prune(bg, p.now, 7*24*time.Hour)
	require.NoError(t, err)
	require.Equal(t, int64(3), pruned)
	require.Equal(t, events-3, p.count(t, `SELECT count(*) FROM shiftcast.applied_events`))
	require.Equal(t, []int64{11}, p.openings(t))
	require.Nil(t, p.digest(t, 1), "pruning announces nothing")

	// Everything, once the last shift started and the retention passed.
	openings, _, err = p.st.Prune(bg, p.at(72*time.Hour), -time.Hour)
	require.NoError(t, err)
	require.Equal(t, int64(1), openings)
	require.Empty(t, p.openings(t))
	require.Equal(t, 0, p.count(t, `SELECT count(*) FROM shiftcast.applied_events`))
	require.Nil(t, p.digest(t, 1))
}

func (p *pipe) openings(t *testing.T) []int64 {
	t.Helper()
	rows, err := p.b.pool.Query(bg, `SELECT shift_id FROM shiftcast.shift_openings ORDER BY shift_id`)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	require.NoError(t, err)
	var out []int64
	for _, id := range ids {
		out = append(out, int64(id))
	}
	return out
}

// 14. Once an event's id record is pruned, a redelivery of it (at its own
// stream sequence) is still stopped by the entity's position.
func TestPrune_ReplayedOldEventStale(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	basicWorld(t, p)
	p.seq = 100
	create := p.event(t, domain.TypeShiftCreated, shiftData(10, 1, domain.CNA, p.at(24*time.Hour)))
	claim := p.event(t, domain.TypeShiftClaimed, &domain.ShiftClaimed{ShiftID: 10, WorkerID: 1})
	release := p.event(t, domain.TypeShiftReleased, &domain.ShiftRef{ShiftID: 10})
	deactivate := p.event(t, domain.TypeWorkerDeactivated, &domain.WorkerRef{WorkerID: 1})
	activate := p.event(t, domain.TypeWorkerActivated, &domain.WorkerRef{WorkerID: 1})
	removeDoc := p.event(t, domain.TypeWorkerDocumentRemoved, &domain.WorkerDocument{WorkerID: 1, DocumentID: 1})
	addDoc := p.event(t, domain.TypeWorkerDocumentAdded, &domain.WorkerDocument{WorkerID: 1, DocumentID: 1})
	seqs := map[string]uint64{}
	for i, ev := range []domain.Event{create, claim, release, deactivate, activate, removeDoc, addDoc} {
		seqs[ev.ID] = 110 + uint64(i)
		eff, err := p.applyEv(t, ev, seqs[ev.ID])
		require.NoError(t, err)
		require.Equal(t, store.OutcomeApplied, eff.Outcome)
	}
	require.Equal(t, []int64{10}, p.digest(t, 1))

	_, pruned, err := p.st.Prune(bg, p.now.Add(time.Hour), -time.Hour)
	require.NoError(t, err)
	require.Equal(t, int64(p.ids), pruned, "every event applied so far")
	require.Equal(t, 0, p.count(t, `SELECT count(*) FROM shiftcast.applied_events`))

	before := p.tables(t, "applied_events")
	for _, ev := range []domain.Event{create, claim, release, deactivate, activate, removeDoc, addDoc} {
		eff, err := p.applyEv(t, ev, seqs[ev.ID])
		require.NoError(t, err, ev.Type)
		if ev.Type == domain.TypeShiftCreated {
			// Creations take no part in positions; replayed, they insert
			// nothing (the shift exists) and announce nothing (checked below).
			require.Equal(t, store.OutcomeApplied, eff.Outcome, ev.Type)
			continue
		}
		require.Equal(t, store.OutcomeStale, eff.Outcome, ev.Type)
		noEffect(t, eff)
	}
	require.Equal(t, before, p.tables(t, "applied_events"), "no state undone")
	require.Equal(t, 1, p.count(t, `SELECT count(*) FROM "Shift" WHERE id = 10 AND worker_id IS NULL`))
	require.True(t, p.flag(t, `SELECT is_active FROM "Worker" WHERE id = 1`))
	require.Equal(t, 1, p.count(t, `SELECT count(*) FROM "DocumentWorker" WHERE worker_id = 1`))
	require.Nil(t, p.digest(t, 1), "nothing announced again")
}

// 5/14. An event republished after its id record was pruned (shiftcast
// replay of a recording: same id, new stream sequence) must not announce
// an already announced, still open shift a second time.
func TestPrune_RepublishedShiftCreatedNotAnnouncedAgain(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	basicWorld(t, p)
	create := p.event(t, domain.TypeShiftCreated, shiftData(10, 1, domain.CNA, p.at(24*time.Hour)))
	_, err := p.applyEv(t, create, p.next())
	require.NoError(t, err)
	require.Equal(t, []int64{10}, p.digest(t, 1))

	_, _, err = p.st.Prune(bg, p.now, -time.Hour)
	require.NoError(t, err)
	before := p.tables(t, "applied_events", "entity_positions")
	eff, err := p.applyEv(t, create, p.next())
	require.NoError(t, err)
	require.Equal(t, store.OutcomeApplied, eff.Outcome, "the id record is gone and the sequence is new")
	assert.Equal(t, before, p.tables(t, "applied_events", "entity_positions"), "the shift was already open: nothing to change")
	assert.Nil(t, p.digest(t, 1), "already announced, never left the eligible set")

	// The same for a republished release of a shift that is open.
	p.claim(t, 10, 1)
	release := p.event(t, domain.TypeShiftReleased, &domain.ShiftRef{ShiftID: 10})
	_, err = p.applyEv(t, release, p.next())
	require.NoError(t, err)
	require.Equal(t, []int64{10}, p.digest(t, 1), "claimed then released: announced again")
	_, _, err = p.st.Prune(bg, p.now, -time.Hour)
	require.NoError(t, err)
	_, err = p.applyEv(t, release, p.next())
	require.NoError(t, err)
	assert.Nil(t, p.digest(t, 1), "the republished release changes nothing")
}

// A claim delivered before its shift's creation is retried (missing
// dependency) and, once the creation has applied at a later stream
// sequence, applies: creations do not make it stale.
func TestApplyEvent_ClaimRetriedAfterLaterCreationApplies(t *testing.T) {
	t.Parallel()
	p := newPipe(t)
	p.facility(t, 1, true)
	p.worker(t, 1, domain.CNA, true)
	claim := p.event(t, domain.TypeShiftClaimed, &domain.ShiftClaimed{ShiftID: 900, WorkerID: 1})
	_, err := p.applyEv(t, claim, 5)
	require.ErrorIs(t, err, store.ErrMissingDependency)
	create := p.event(t, domain.TypeShiftCreated, shiftData(900, 1, domain.CNA, p.at(24*time.Hour)))
	eff, err := p.applyEv(t, create, 6)
	require.NoError(t, err)
	require.Equal(t, store.OutcomeApplied, eff.Outcome)
	eff, err = p.applyEv(t, claim, 5)
	require.NoError(t, err)
	require.Equal(t, store.OutcomeApplied, eff.Outcome, "the retried claim is not stale")
	require.Equal(t, 1, p.count(t, `SELECT count(*) FROM "Shift" WHERE id = 900 AND worker_id = 1`))
}
