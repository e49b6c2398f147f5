package domain_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/shiftcast/shiftcast/domain"
)

func ptr[T any](v T) *T { return &v }

// eligibleTriple is a worker, shift and facility for which every rule holds;
// each case breaks some rules and expects exactly those reasons.
func eligibleTriple() (domain.Worker, domain.Shift, domain.Facility) {
	return domain.Worker{ID: 7, IsActive: true, Profession: domain.RN, DocumentIDs: []int64{3, 1, 2, 1}},
		domain.Shift{ID: 9, FacilityID: 4, Profession: domain.RN, Start: time.Date(2023, 2, 1, 5, 0, 0, 0, time.UTC)},
		domain.Facility{ID: 4, IsActive: true, RequiredDocumentIDs: []int64{1, 2, 2}}
}

func TestExplain(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mutate  func(*domain.Worker, *domain.Shift, *domain.Facility)
		want    []string
		missing []int64
	}{
		{name: "all rules hold", mutate: func(*domain.Worker, *domain.Shift, *domain.Facility) {}},
		{name: "facility inactive", mutate: func(_ *domain.Worker, _ *domain.Shift, f *domain.Facility) { f.IsActive = false }, want: []string{domain.ReasonFacilityInactive}},
		{name: "shift deleted", mutate: func(_ *domain.Worker, s *domain.Shift, _ *domain.Facility) { s.IsDeleted = true }, want: []string{domain.ReasonShiftDeleted}},
		{name: "worker inactive", mutate: func(w *domain.Worker, _ *domain.Shift, _ *domain.Facility) { w.IsActive = false }, want: []string{domain.ReasonWorkerInactive}},
		{name: "shift claimed", mutate: func(_ *domain.Worker, s *domain.Shift, _ *domain.Facility) { s.WorkerID = ptr(int64(1)) }, want: []string{domain.ReasonShiftClaimed}},
		{name: "shift claimed by this very worker", mutate: func(w *domain.Worker, s *domain.Shift, _ *domain.Facility) { s.WorkerID = ptr(w.ID) }, want: []string{domain.ReasonShiftClaimed}},
		{
			name: "missing documents, duplicated requirements reported once",
			mutate: func(_ *domain.Worker, _ *domain.Shift, f *domain.Facility) {
				f.RequiredDocumentIDs = []int64{9, 1, 5, 9, 5}
			},
			want:    []string{domain.ReasonMissingDocuments},
			missing: []int64{5, 9},
		},
		{name: "facility without requirements", mutate: func(w *domain.Worker, _ *domain.Shift, f *domain.Facility) {
			f.RequiredDocumentIDs, w.DocumentIDs = nil, nil
		}},
		{name: "worker without documents at a facility requiring some", mutate: func(w *domain.Worker, _ *domain.Shift, _ *domain.Facility) { w.DocumentIDs = nil }, want: []string{domain.ReasonMissingDocuments}, missing: []int64{1, 2}},
		{name: "profession mismatch", mutate: func(w *domain.Worker, _ *domain.Shift, _ *domain.Facility) { w.Profession = domain.CNA }, want: []string{domain.ReasonProfessionMismatch}},
		{
			name: "every rule fails, reported in rule order",
			mutate: func(w *domain.Worker, s *domain.Shift, f *domain.Facility) {
				f.IsActive, s.IsDeleted, w.IsActive, s.WorkerID = false, true, false, ptr(int64(2))
				f.RequiredDocumentIDs, w.Profession = []int64{4}, domain.LVN
			},
			want: []string{
				domain.ReasonFacilityInactive, domain.ReasonShiftDeleted, domain.ReasonWorkerInactive,
				domain.ReasonShiftClaimed, domain.ReasonMissingDocuments, domain.ReasonProfessionMismatch,
			},
			missing: []int64{4},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w, s, f := eligibleTriple()
			tt.mutate(&w, &s, &f)
			v := domain.Explain(w, s, f)
			codes := []string{}
			var missing []int64
			for _, r := range v.Reasons {
				codes = append(codes, r.Code)
				require.NotEmpty(t, r.Message)
				if r.Code == domain.ReasonMissingDocuments {
					missing = r.DocumentIDs
				} else {
					require.Nil(t, r.DocumentIDs, "only missing_documents carries document ids")
				}
			}
			if tt.want == nil {
				tt.want = []string{}
			}
			require.Equal(t, tt.want, codes)
			require.Equal(t, tt.missing, missing)
			require.Equal(t, len(tt.want) == 0, v.Eligible)
			require.Equal(t, v.Eligible, domain.Eligible(w, s, f), "Eligible must agree with Explain")
		})
	}
}

func TestMissingDocuments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		required, held []int64
		want           []int64
	}{
		{"nothing required", nil, []int64{1}, nil},
		{"all held", []int64{1, 2}, []int64{2, 1}, nil},
		{"duplicates on both sides", []int64{3, 3, 1}, []int64{1, 1}, []int64{3}},
		{"sorted output", []int64{9, 2, 5}, nil, []int64{2, 5, 9}},
		{"one missing among held", []int64{1, 4}, []int64{1, 2, 3}, []int64{4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, domain.MissingDocuments(tt.required, tt.held))
			require.Equal(t, len(tt.want) == 0, domain.HoldsAll(tt.held, tt.required), "HoldsAll agrees")
		})
	}
}

func TestParseProfession(t *testing.T) {
	t.Parallel()
	for _, p := range domain.Professions {
		got, err := domain.ParseProfession(string(p))
		require.NoError(t, err)
		require.Equal(t, p, got)
	}
	for _, bad := range []string{"", "rn", "Doctor", "RN "} {
		_, err := domain.ParseProfession(bad)
		require.Error(t, err)
		require.Equal(t, domain.EINVALID, domain.ErrorCode(err))
	}
}

func TestCursor_RoundTrip(t *testing.T) {
	t.Parallel()
	c := domain.Cursor{Start: time.Date(2023, 2, 28, 20, 0, 0, 123_000_000, time.UTC), ID: 1_999_999}
	s := domain.EncodeCursor(domain.CursorKindShifts, c)
	got, err := domain.DecodeCursor(domain.CursorKindShifts, s)
	require.NoError(t, err)
	require.True(t, c.Start.Equal(got.Start))
	require.Equal(t, c.ID, got.ID)
}

func TestCursor_Rejects(t *testing.T) {
	t.Parallel()
	valid := domain.EncodeCursor(domain.CursorKindShifts, domain.Cursor{Start: time.Unix(1675227600, 0).UTC(), ID: 42})
	flipped := []byte(valid)
	flipped[10] ^= 0x01 // stays base64url, changes a payload bit
	if flipped[10] == '-' || flipped[10] == '_' {
		flipped[10] = 'A'
	}
	tests := []struct {
		name, cursor string
		kind         byte
	}{
		{"empty", "", domain.CursorKindShifts},
		{"garbage", "not-a-cursor", domain.CursorKindShifts},
		{"truncated", valid[:len(valid)-2], domain.CursorKindShifts},
		{"tampered", string(flipped), domain.CursorKindShifts},
		{"other listing's cursor", valid, domain.CursorKindWorkers},
		{"padding added", valid + "==", domain.CursorKindShifts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := domain.DecodeCursor(tt.kind, tt.cursor)
			require.Error(t, err)
			require.Equal(t, domain.EINVALID, domain.ErrorCode(err))
		})
	}
}

func TestErrorCode(t *testing.T) {
	t.Parallel()
	require.Equal(t, "", domain.ErrorCode(nil))
	require.Equal(t, domain.EINTERNAL, domain.ErrorCode(errPlain{}))
	require.Equal(t, "internal error", domain.ErrorMessage(errPlain{}), "internal details never reach callers")
	wrapped := wrap{domain.Errorf(domain.ENOTFOUND, "worker %d not found", 5)}
	require.Equal(t, domain.ENOTFOUND, domain.ErrorCode(wrapped))
	require.Equal(t, "worker 5 not found", domain.ErrorMessage(wrapped))
}

type errPlain struct{}

func (errPlain) Error() string { return "secret internals" }

type wrap struct{ err error }

func (w wrap) Error() string { return "context: " + w.err.Error() }
func (w wrap) Unwrap() error { return w.err }
