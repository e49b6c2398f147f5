package domain

import (
	"fmt"
	"slices"
	"time"
)

// Profession is a worker's qualification and a shift's required one.
type Profession string

// The professions of the marketplace, as the "Profession" enum spells them.
const (
	CNA Profession = "CNA"
	LVN Profession = "LVN"
	RN  Profession = "RN"
)

// Professions lists every valid profession in enum order.
var Professions = []Profession{CNA, LVN, RN}

// ParseProfession validates s as a profession.
func ParseProfession(s string) (Profession, error) {
	switch p := Profession(s); p {
	case CNA, LVN, RN:
		return p, nil
	}
	return "", Errorf(EINVALID, "unknown profession %q (want CNA, LVN or RN)", s)
}

// Worker is a person who may claim shifts. DocumentIDs are the documents the
// worker holds; they may repeat, as "DocumentWorker" rows may.
type Worker struct {
	ID          int64
	Name        string
	IsActive    bool
	Profession  Profession
	DocumentIDs []int64
}

// Facility posts shifts. RequiredDocumentIDs may repeat, as
// "FacilityRequirement" rows may; an empty list requires nothing.
type Facility struct {
	ID                  int64
	Name                string
	IsActive            bool
	RequiredDocumentIDs []int64
}

// Shift is a slot at a facility. WorkerID is nil while the shift is open.
// Start and End are UTC.
type Shift struct {
	ID         int64
	FacilityID int64
	Profession Profession
	Start      time.Time
	End        time.Time
	IsDeleted  bool
	WorkerID   *int64
}

// Reason codes, one per eligibility rule, in the order DESIGN.md lists them.
const (
	ReasonFacilityInactive   = "facility_inactive"
	ReasonShiftDeleted       = "shift_deleted"
	ReasonWorkerInactive     = "worker_inactive"
	ReasonShiftClaimed       = "shift_claimed"
	ReasonMissingDocuments   = "missing_documents"
	ReasonProfessionMismatch = "profession_mismatch"
)

// Reason is one failed eligibility rule. DocumentIDs is set, sorted and
// without repeats, for ReasonMissingDocuments only.
type Reason struct {
	Code        string  `json:"code"`
	Message     string  `json:"message"`
	DocumentIDs []int64 `json:"document_ids,omitempty"`
}

// Verdict is the answer to "may worker W take shift S, and if not, why not?".
type Verdict struct {
	Eligible bool     `json:"eligible"`
	Reasons  []Reason `json:"reasons"`
}

// Explain applies every eligibility rule to (w, s, f) and reports each one
// that fails. f must be s's facility. It never stops at the first failure:
// callers asking "why not?" want the whole list.
func Explain(w Worker, s Shift, f Facility) Verdict {
	reasons := []Reason{}
	if !f.IsActive {
		reasons = append(reasons, Reason{Code: ReasonFacilityInactive, Message: fmt.Sprintf("facility %d is not active", f.ID)})
	}
	if s.IsDeleted {
		reasons = append(reasons, Reason{Code: ReasonShiftDeleted, Message: fmt.Sprintf("shift %d is deleted", s.ID)})
	}
	if !w.IsActive {
		reasons = append(reasons, Reason{Code: ReasonWorkerInactive, Message: fmt.Sprintf("worker %d is not active", w.ID)})
	}
	if s.WorkerID != nil {
		reasons = append(reasons, Reason{Code: ReasonShiftClaimed, Message: fmt.Sprintf("shift %d is already claimed", s.ID)})
	}
	if missing := MissingDocuments(f.RequiredDocumentIDs, w.DocumentIDs); len(missing) > 0 {
		reasons = append(reasons, Reason{
			Code:        ReasonMissingDocuments,
			Message:     fmt.Sprintf("worker %d lacks %d document(s) facility %d requires", w.ID, len(missing), f.ID),
			DocumentIDs: missing,
		})
	}
	if s.Profession != w.Profession {
		reasons = append(reasons, Reason{
			Code:    ReasonProfessionMismatch,
			Message: fmt.Sprintf("shift %d needs a %s, worker %d is a %s", s.ID, s.Profession, w.ID, w.Profession),
		})
	}
	return Verdict{Eligible: len(reasons) == 0, Reasons: reasons}
}

// Eligible reports whether w may take s at f. It is Explain without the
// explanation, for hot loops such as the differential test's oracle.
func Eligible(w Worker, s Shift, f Facility) bool {
	return f.IsActive && !s.IsDeleted && w.IsActive && s.WorkerID == nil &&
		s.Profession == w.Profession && len(MissingDocuments(f.RequiredDocumentIDs, w.DocumentIDs)) == 0
}

// HoldsAll reports whether held contains every id in required: rule 5 for
// one facility. Either may contain repeats.
func HoldsAll(held, required []int64) bool {
	for _, id := range required {
		if !slices.Contains(held, id) {
			return false
		}
	}
	return true
}

// MissingDocuments returns the ids in required that are not in held, sorted
// and without repeats. Both inputs may contain repeats.
func MissingDocuments(required, held []int64) []int64 {
	var missing []int64
	for _, id := range required {
		if !slices.Contains(held, id) && !slices.Contains(missing, id) {
			missing = append(missing, id)
		}
	}
	slices.Sort(missing)
	return missing
}
