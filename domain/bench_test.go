package domain_test

import (
	"testing"
	"time"

	"github.com/shiftcast/shiftcast/domain"
)

func BenchmarkExplain(b *testing.B) {
	w := domain.Worker{ID: 1, IsActive: true, Profession: domain.RN, DocumentIDs: []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}
	s := domain.Shift{ID: 2, FacilityID: 3, Profession: domain.RN, Start: time.Now()}
	f := domain.Facility{ID: 3, IsActive: true, RequiredDocumentIDs: []int64{2, 4, 6, 8, 10, 12}}
	b.ReportAllocs()
	for b.Loop() {
		domain.Explain(w, s, f)
	}
}

func BenchmarkDecodeCursor(b *testing.B) {
	c := domain.EncodeCursor(domain.CursorKindShifts, domain.Cursor{Start: time.Now(), ID: 123456})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := domain.DecodeCursor(domain.CursorKindShifts, c); err != nil {
			b.Fatal(err)
		}
	}
}
