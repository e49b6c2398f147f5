package domain_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/domain"
)

func TestParseSnapshot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    domain.Snapshot
		wantErr bool
	}{
		{name: "with transactions in progress", in: "10:20:12,15", want: domain.Snapshot{Xmin: 10, Xmax: 20, Xip: []uint64{12, 15}}},
		{name: "nothing in progress", in: "10:10:", want: domain.Snapshot{Xmin: 10, Xmax: 10}},
		{name: "in progress list sorted", in: "10:20:15,12,11", want: domain.Snapshot{Xmin: 10, Xmax: 20, Xip: []uint64{11, 12, 15}}},
		{name: "one in progress", in: "3:9:3", want: domain.Snapshot{Xmin: 3, Xmax: 9, Xip: []uint64{3}}},
		{name: "large xids", in: "4294967300:4294967310:4294967305", want: domain.Snapshot{Xmin: 4294967300, Xmax: 4294967310, Xip: []uint64{4294967305}}},
		{name: "empty", in: "", wantErr: true},
		{name: "two parts", in: "10:20", wantErr: true},
		{name: "four parts", in: "10:20:12:15", wantErr: true},
		{name: "xmin not a number", in: "a:20:", wantErr: true},
		{name: "xmin empty", in: ":20:", wantErr: true},
		{name: "xmin negative", in: "-1:20:", wantErr: true},
		{name: "xmax not a number", in: "10:b:", wantErr: true},
		{name: "xmax empty", in: "10::", wantErr: true},
		{name: "xip not a number", in: "10:20:x", wantErr: true},
		{name: "xip trailing comma", in: "10:20:12,", wantErr: true},
		{name: "xip leading comma", in: "10:20:,12", wantErr: true},
		{name: "xip with spaces", in: "10:20:12, 15", wantErr: true},
		{name: "whitespace", in: " 10:20:", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := domain.ParseSnapshot(tt.in)
			if tt.wantErr {
				require.Error(t, err)
				require.Contains(t, err.Error(), tt.in)
				require.Equal(t, domain.Snapshot{}, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestSnapshot_Visible(t *testing.T) {
	t.Parallel()
	busy := domain.Snapshot{Xmin: 10, Xmax: 20, Xip: []uint64{12, 15}}
	idle := domain.Snapshot{Xmin: 10, Xmax: 10}
	tests := []struct {
		name string
		snap domain.Snapshot
		xid  uint64
		want bool
	}{
		{name: "xmin-1", snap: busy, xid: 9, want: true},
		{name: "zero", snap: busy, xid: 0, want: true},
		{name: "xmin not in xip", snap: busy, xid: 10, want: true},
		{name: "in xip (first)", snap: busy, xid: 12, want: false},
		{name: "between xip entries", snap: busy, xid: 13, want: true},
		{name: "in xip (last)", snap: busy, xid: 15, want: false},
		{name: "xmax-1", snap: busy, xid: 19, want: true},
		{name: "xmax", snap: busy, xid: 20, want: false},
		{name: "beyond xmax", snap: busy, xid: 1000, want: false},
		{name: "xmin in xip", snap: domain.Snapshot{Xmin: 10, Xmax: 20, Xip: []uint64{10}}, xid: 10, want: false},
		{name: "idle xmin-1", snap: idle, xid: 9, want: true},
		{name: "idle xmin = xmax", snap: idle, xid: 10, want: false},
		{name: "idle xmax+1", snap: idle, xid: 11, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, tt.snap.Visible(tt.xid))
		})
	}

	// Parsed snapshots behave the same (the xip list is sorted on parse).
	snap, err := domain.ParseSnapshot("10:20:15,12")
	require.NoError(t, err)
	for xid, want := range map[uint64]bool{9: true, 10: true, 12: false, 13: true, 15: false, 19: true, 20: false} {
		require.Equal(t, want, snap.Visible(xid), "xid %d", xid)
	}
}

func TestEligibleFacilities(t *testing.T) {
	t.Parallel()
	facilities := []domain.FacilityRequirements{
		{ID: 1},                                 // no requirements
		{ID: 2, Required: []int64{}},            // empty requirements
		{ID: 3, Required: []int64{1, 3, 5}},     // exactly what is held
		{ID: 4, Required: []int64{1, 2}},        // 2 missing
		{ID: 5, Required: []int64{1, 3, 5, 7}},  // more than held
		{ID: 6, Required: []int64{3}},           // a subset
		{ID: 7, Required: []int64{5, 6}},        // the last one missing
		{ID: 8, Required: []int64{0}},           // smaller than anything held
		{ID: 9, Required: []int64{9}},           // larger than anything held
		{ID: 10, Required: []int64{2, 3, 4, 5}}, // several missing, same length as more
	}
	tests := []struct {
		name       string
		held       []int64
		facilities []domain.FacilityRequirements
		want       []int64
	}{
		{name: "mixed", held: []int64{1, 3, 5}, facilities: facilities, want: []int64{1, 2, 3, 6}},
		{name: "nothing held", held: nil, facilities: facilities, want: []int64{1, 2}},
		{name: "everything held", held: []int64{0, 1, 2, 3, 4, 5, 6, 7, 9}, facilities: facilities, want: []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{name: "no facilities", held: []int64{1}, facilities: nil, want: nil},
		{name: "order given kept", held: []int64{1},
			facilities: []domain.FacilityRequirements{{ID: 9}, {ID: 3, Required: []int64{1}}, {ID: 5, Required: []int64{2}}, {ID: 1}},
			want:       []int64{9, 3, 1}},
		{name: "single required, single held, different", held: []int64{2},
			facilities: []domain.FacilityRequirements{{ID: 1, Required: []int64{1}}, {ID: 2, Required: []int64{3}}},
			want:       nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, domain.EligibleFacilities(tt.held, tt.facilities))
		})
	}
}

func TestPlanDigest(t *testing.T) {
	t.Parallel()
	active := []domain.FacilityRequirements{
		{ID: 1},
		{ID: 2, Required: []int64{1}},
		{ID: 3, Required: []int64{1, 2}},
		{ID: 4, Required: []int64{3}},
	}
	snap := &domain.Snapshot{Xmin: 5, Xmax: 5}
	tests := []struct {
		name   string
		worker domain.DigestWorker
		want   domain.DigestPlan
	}{
		{name: "inactive worker: nothing",
			worker: domain.DigestWorker{ID: 1, Profession: domain.CNA, Active: false, Documents: []int64{1, 2, 3}, Facilities: []int64{1}, Snapshot: snap},
			want:   domain.DigestPlan{}},
		{name: "new worker: every eligible facility fresh",
			worker: domain.DigestWorker{ID: 1, Profession: domain.CNA, Active: true, Documents: []int64{1}},
			want:   domain.DigestPlan{Eligible: []int64{1, 2}, Fresh: []int64{1, 2}}},
		{name: "nothing changed: nothing fresh",
			worker: domain.DigestWorker{ID: 1, Profession: domain.CNA, Active: true, Documents: []int64{1}, Facilities: []int64{1, 2}, Snapshot: snap},
			want:   domain.DigestPlan{Eligible: []int64{1, 2}}},
		{name: "fresh = eligible minus last facilities",
			worker: domain.DigestWorker{ID: 1, Profession: domain.CNA, Active: true, Documents: []int64{1, 2, 3}, Facilities: []int64{2, 4}, Snapshot: snap},
			want:   domain.DigestPlan{Eligible: []int64{1, 2, 3, 4}, Fresh: []int64{1, 3}}},
		{name: "last facilities no longer eligible are ignored",
			worker: domain.DigestWorker{ID: 1, Profession: domain.CNA, Active: true, Documents: nil, Facilities: []int64{1, 2, 3, 99}, Snapshot: snap},
			want:   domain.DigestPlan{Eligible: []int64{1}}},
		{name: "only requirement-free facilities",
			worker: domain.DigestWorker{ID: 1, Profession: domain.RN, Active: true, Documents: []int64{7}, Facilities: []int64{3}, Snapshot: snap},
			want:   domain.DigestPlan{Eligible: []int64{1}, Fresh: []int64{1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := tt.worker
			require.Equal(t, tt.want, domain.PlanDigest(&w, active))
		})
	}

	t.Run("no active facilities", func(t *testing.T) {
		t.Parallel()
		w := domain.DigestWorker{ID: 1, Profession: domain.CNA, Active: true, Documents: []int64{1}, Facilities: []int64{1}}
		require.Equal(t, domain.DigestPlan{}, domain.PlanDigest(&w, nil))
	})
}

// digestBase is the time the Build cases' shifts start from.
var digestBase = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// dshift is a shift of prof at facility fac, starting h hours after
// digestBase.
func dshift(id, fac int64, prof domain.Profession, h int) domain.NotificationShift {
	start := digestBase.Add(time.Duration(h) * time.Hour)
	return domain.NotificationShift{ID: id, FacilityID: fac, Profession: prof, Start: start, End: start.Add(5 * time.Hour)}
}

func opening(xid uint64, s domain.NotificationShift) domain.Opening {
	return domain.Opening{XID: xid, Shift: s}
}

func digestIDs(d domain.Digest) []int64 {
	var ids []int64
	for _, s := range d.Shifts {
		ids = append(ids, s.ID)
	}
	return ids
}

func TestDigestBuilder_Build(t *testing.T) {
	t.Parallel()
	cna := domain.CNA
	snap := &domain.Snapshot{Xmin: 10, Xmax: 20, Xip: []uint64{12, 15}}
	// worker is an active CNA whose last push saw facilities 1 and 2 in snap.
	worker := func() domain.DigestWorker {
		return domain.DigestWorker{ID: 7, Profession: cna, Active: true, Facilities: []int64{1, 2}, Snapshot: snap}
	}
	const big = int64(1<<22 + 5) // beyond the bitset

	tests := []struct {
		name      string
		k         int
		worker    func() domain.DigestWorker
		plan      domain.DigestPlan
		openings  map[domain.Profession][]domain.Opening
		open      map[domain.FacilityProfession]domain.OpenShifts
		wantCount int
		wantIDs   []int64
	}{
		{
			name:   "fresh facility counted whole from Open",
			k:      2,
			worker: worker,
			plan:   domain.DigestPlan{Eligible: []int64{3}, Fresh: []int64{3}},
			open: map[domain.FacilityProfession]domain.OpenShifts{
				{FacilityID: 3, Profession: cna}:        {Count: 5, First: []domain.NotificationShift{dshift(30, 3, cna, 1), dshift(31, 3, cna, 2)}},
				{FacilityID: 3, Profession: domain.RN}:  {Count: 4, First: []domain.NotificationShift{dshift(32, 3, domain.RN, 0)}},
				{FacilityID: 4, Profession: cna}:        {Count: 9, First: []domain.NotificationShift{dshift(33, 4, cna, 0)}},
				{FacilityID: 3, Profession: domain.LVN}: {Count: 1, First: []domain.NotificationShift{dshift(34, 3, domain.LVN, 0)}},
			},
			wantCount: 5,
			wantIDs:   []int64{30, 31},
		},
		{
			name:   "fresh facility without open shifts",
			k:      5,
			worker: worker,
			plan:   domain.DigestPlan{Eligible: []int64{3}, Fresh: []int64{3}},
			open:   map[domain.FacilityProfession]domain.OpenShifts{},
		},
		{
			name:   "recent openings counted only when not visible, at non-fresh eligible facilities, of the profession",
			k:      10,
			worker: worker,
			plan:   domain.DigestPlan{Eligible: []int64{1, 2}},
			openings: map[domain.Profession][]domain.Opening{
				cna: {
					opening(5, dshift(100, 1, cna, 1)),  // before xmin: seen
					opening(9, dshift(101, 2, cna, 2)),  // xmin-1: seen
					opening(10, dshift(102, 1, cna, 3)), // xmin, not in progress: seen
					opening(12, dshift(103, 1, cna, 4)), // in progress: new
					opening(13, dshift(104, 2, cna, 5)), // seen
					opening(15, dshift(105, 2, cna, 6)), // in progress: new
					opening(19, dshift(106, 1, cna, 7)), // xmax-1, seen
					opening(20, dshift(107, 2, cna, 8)), // xmax: new
					opening(25, dshift(108, 3, cna, 9)), // new, but facility 3 is not eligible
					opening(30, dshift(109, 1, cna, 10)),
				},
				domain.RN: {opening(30, dshift(110, 1, domain.RN, 0))}, // other profession
			},
			wantCount: 4,
			wantIDs:   []int64{103, 105, 107, 109},
		},
		{
			name:   "openings at fresh facilities not double counted",
			k:      10,
			worker: worker,
			plan:   domain.DigestPlan{Eligible: []int64{1, 2, 3}, Fresh: []int64{3}},
			openings: map[domain.Profession][]domain.Opening{
				cna: {
					opening(30, dshift(200, 3, cna, 1)), // fresh: counted in Open
					opening(31, dshift(201, 1, cna, 2)),
					opening(32, dshift(202, 3, cna, 3)), // fresh: counted in Open
				},
			},
			open: map[domain.FacilityProfession]domain.OpenShifts{
				{FacilityID: 3, Profession: cna}: {Count: 3, First: []domain.NotificationShift{dshift(200, 3, cna, 1), dshift(202, 3, cna, 3), dshift(203, 3, cna, 4)}},
			},
			wantCount: 4,
			wantIDs:   []int64{200, 201, 202, 203},
		},
		{
			name:   "openings at ineligible facilities ignored",
			k:      10,
			worker: worker,
			plan:   domain.DigestPlan{Eligible: []int64{2}},
			openings: map[domain.Profession][]domain.Opening{
				cna: {
					opening(30, dshift(300, 1, cna, 1)),
					opening(30, dshift(301, 3, cna, 2)),
					opening(30, dshift(302, 64, cna, 3)),
					opening(30, dshift(303, 1000, cna, 4)),
					opening(30, dshift(304, 2, cna, 5)),
				},
			},
			wantCount: 1,
			wantIDs:   []int64{304},
		},
		{
			name:   "K truncates the list, the count is the total",
			k:      2,
			worker: worker,
			plan:   domain.DigestPlan{Eligible: []int64{1, 2, 3}, Fresh: []int64{3}},
			openings: map[domain.Profession][]domain.Opening{
				cna: {
					opening(30, dshift(400, 1, cna, 1)),
					opening(31, dshift(401, 2, cna, 3)),
					opening(32, dshift(402, 1, cna, 5)),
					opening(33, dshift(403, 2, cna, 7)),
				},
			},
			open: map[domain.FacilityProfession]domain.OpenShifts{
				{FacilityID: 3, Profession: cna}: {Count: 6, First: []domain.NotificationShift{dshift(410, 3, cna, 2), dshift(411, 3, cna, 4)}},
			},
			wantCount: 10,
			wantIDs:   []int64{400, 410},
		},
		{
			name:   "K truncates openings alone",
			k:      3,
			worker: worker,
			plan:   domain.DigestPlan{Eligible: []int64{1}},
			openings: map[domain.Profession][]domain.Opening{
				cna: {
					opening(30, dshift(420, 1, cna, 1)),
					opening(31, dshift(421, 1, cna, 2)),
					opening(32, dshift(422, 1, cna, 3)),
					opening(33, dshift(423, 1, cna, 4)),
					opening(34, dshift(424, 1, cna, 5)),
				},
			},
			wantCount: 5,
			wantIDs:   []int64{420, 421, 422},
		},
		{
			name:   "soonest first, then by id, across fresh facilities and openings",
			k:      10,
			worker: worker,
			plan:   domain.DigestPlan{Eligible: []int64{1, 3, 4}, Fresh: []int64{3, 4}},
			openings: map[domain.Profession][]domain.Opening{
				cna: {
					opening(30, dshift(505, 1, cna, 1)),
					opening(31, dshift(502, 1, cna, 2)),
					opening(32, dshift(509, 1, cna, 2)),
				},
			},
			open: map[domain.FacilityProfession]domain.OpenShifts{
				{FacilityID: 3, Profession: cna}: {Count: 2, First: []domain.NotificationShift{dshift(506, 3, cna, 1), dshift(501, 3, cna, 2)}},
				{FacilityID: 4, Profession: cna}: {Count: 2, First: []domain.NotificationShift{dshift(503, 4, cna, 0), dshift(504, 4, cna, 1)}},
			},
			wantCount: 7,
			wantIDs:   []int64{503, 504, 505, 506, 501, 502, 509},
		},
		{
			name: "nil snapshot skips openings",
			k:    10,
			worker: func() domain.DigestWorker {
				w := worker()
				w.Snapshot = nil
				return w
			},
			plan:     domain.DigestPlan{Eligible: []int64{1, 2}},
			openings: map[domain.Profession][]domain.Opening{cna: {opening(30, dshift(600, 1, cna, 1))}},
		},
		{
			name: "nil snapshot, fresh facilities still counted",
			k:    10,
			worker: func() domain.DigestWorker {
				w := worker()
				w.Snapshot = nil
				return w
			},
			plan:     domain.DigestPlan{Eligible: []int64{1, 2}, Fresh: []int64{2}},
			openings: map[domain.Profession][]domain.Opening{cna: {opening(30, dshift(610, 1, cna, 1))}},
			open: map[domain.FacilityProfession]domain.OpenShifts{
				{FacilityID: 2, Profession: cna}: {Count: 1, First: []domain.NotificationShift{dshift(611, 2, cna, 2)}},
			},
			wantCount: 1,
			wantIDs:   []int64{611},
		},
		{
			name:     "no openings for the profession",
			k:        10,
			worker:   worker,
			plan:     domain.DigestPlan{Eligible: []int64{1, 2}},
			openings: map[domain.Profession][]domain.Opening{domain.LVN: {opening(30, dshift(700, 1, domain.LVN, 1))}},
		},
		{
			name:   "large facility id uses the map and still works",
			k:      10,
			worker: worker,
			plan:   domain.DigestPlan{Eligible: []int64{2, 64, big}, Fresh: []int64{64}},
			openings: map[domain.Profession][]domain.Opening{
				cna: {
					opening(30, dshift(800, big, cna, 1)),
					opening(5, dshift(801, big, cna, 2)), // seen
					opening(30, dshift(802, big+1, cna, 3)),
					opening(30, dshift(803, 2, cna, 4)),
					opening(30, dshift(804, 64, cna, 5)), // fresh: counted in Open
					opening(30, dshift(805, 3, cna, 6)),
				},
			},
			open: map[domain.FacilityProfession]domain.OpenShifts{
				{FacilityID: 64, Profession: cna}: {Count: 1, First: []domain.NotificationShift{dshift(804, 64, cna, 5)}},
			},
			wantCount: 3,
			wantIDs:   []int64{800, 803, 804},
		},
		{
			name:   "facility ids at the bitset's bounds",
			k:      10,
			worker: worker,
			plan:   domain.DigestPlan{Eligible: []int64{0, 63, 64, 1<<22 - 1}},
			openings: map[domain.Profession][]domain.Opening{
				cna: {
					opening(30, dshift(900, 0, cna, 1)),
					opening(30, dshift(901, 63, cna, 2)),
					opening(30, dshift(902, 64, cna, 3)),
					opening(30, dshift(903, 65, cna, 4)),
					opening(30, dshift(904, 1<<22-1, cna, 5)),
					opening(30, dshift(905, 1<<22, cna, 6)),
					opening(30, dshift(906, 1<<22-2, cna, 7)),
					opening(30, dshift(907, 62, cna, 8)),
				},
			},
			wantCount: 4,
			wantIDs:   []int64{900, 901, 902, 904},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := &domain.DigestBuilder{K: tt.k, Openings: tt.openings, Open: tt.open}
			w := tt.worker()
			d := b.Build(&w, tt.plan)
			require.Equal(t, tt.wantCount, d.Count)
			require.Equal(t, tt.wantIDs, digestIDs(d))
			require.LessOrEqual(t, len(d.Shifts), tt.k)
			for _, s := range d.Shifts {
				require.Equal(t, w.Profession, s.Profession)
			}
		})
	}
}

// One builder serves a whole batch: what one worker's digest set up (the
// bitset, the map) must not leak into the next worker's.
func TestDigestBuilder_Build_ReusedAcrossWorkers(t *testing.T) {
	t.Parallel()
	cna := domain.CNA
	snap := &domain.Snapshot{Xmin: 10, Xmax: 10}
	const big = int64(1<<22 + 1)
	var openings []domain.Opening
	for i, f := range []int64{1, 2, 100, 129, 130, big, big + 7} {
		openings = append(openings, opening(20, dshift(int64(1000+i), f, cna, i)))
	}
	b := &domain.DigestBuilder{K: 100, Openings: map[domain.Profession][]domain.Opening{cna: openings}}
	steps := []struct {
		plan domain.DigestPlan
		want []int64
	}{
		{domain.DigestPlan{Eligible: []int64{1, 2, 100, 129, 130}}, []int64{1000, 1001, 1002, 1003, 1004}},
		{domain.DigestPlan{Eligible: []int64{2}}, []int64{1001}},                // a smaller bitset
		{domain.DigestPlan{Eligible: []int64{1, 130}}, []int64{1000, 1004}},     // grown again
		{domain.DigestPlan{Eligible: []int64{2, big}}, []int64{1001, 1005}},     // the map
		{domain.DigestPlan{Eligible: []int64{1, big + 7}}, []int64{1000, 1006}}, // the map, reused
		{domain.DigestPlan{Eligible: []int64{129}}, []int64{1003}},              // back to the bitset
		{domain.DigestPlan{Eligible: []int64{1, 2, 130}, Fresh: []int64{1, 2}}, []int64{1004}},
		{domain.DigestPlan{Eligible: []int64{1, 2}}, []int64{1000, 1001}}, // fresh bits do not stick
		{domain.DigestPlan{Eligible: []int64{2, big, big + 7}, Fresh: []int64{big}}, []int64{1001, 1006}},
		{domain.DigestPlan{Eligible: []int64{big, big + 7}}, []int64{1005, 1006}}, // fresh map entries do not stick
	}
	for i, s := range steps {
		w := domain.DigestWorker{ID: int64(i + 1), Profession: cna, Active: true, Snapshot: snap}
		d := b.Build(&w, s.plan)
		require.Equal(t, s.want, digestIDs(d), "step %d: %+v", i, s.plan)
		require.Equal(t, len(s.want), d.Count, "step %d", i)
	}
}

func TestCompareShifts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		a, b domain.NotificationShift
		want int
	}{
		{name: "sooner first", a: dshift(9, 1, domain.CNA, 1), b: dshift(1, 1, domain.CNA, 2), want: -1},
		{name: "later last", a: dshift(1, 1, domain.CNA, 3), b: dshift(9, 1, domain.CNA, 2), want: 1},
		{name: "same start: by id", a: dshift(1, 1, domain.CNA, 1), b: dshift(2, 1, domain.CNA, 1), want: -1},
		{name: "same start, same id", a: dshift(2, 5, domain.CNA, 1), b: dshift(2, 1, domain.RN, 1), want: 0},
		{name: "same instant, other zone", a: dshift(3, 1, domain.CNA, 1),
			b: func() domain.NotificationShift {
				s := dshift(3, 1, domain.CNA, 1)
				s.Start = s.Start.In(time.FixedZone("x", 3600))
				return s
			}(), want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, domain.CompareShifts(tt.a, tt.b))
			require.Equal(t, -tt.want, domain.CompareShifts(tt.b, tt.a))
		})
	}
}
