package seed

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/store"
)

// The marketplace profile's full sizes and odds.
const (
	marketFacilities     = 300
	marketWorkers        = 30_000
	marketShifts         = 300_000
	marketDays           = 28
	marketFacilityActive = 0.85
	marketWorkerActive   = 0.90
	marketDocumentActive = 0.95
	marketCoreDocuments  = 12 // the first documents are the compliance core
	marketMinCore        = 2
	marketMaxCore        = 6
	marketShiftDeleted   = 0.10
	marketShiftClaimed   = 0.30
)

// Random streams of the marketplace profile.
const (
	streamMarketEntities = iota + 101
	streamMarketShifts
)

// marketDocuments are the credentials a staffing marketplace asks for, most
// commonly required first. The first marketCoreDocuments are the compliance
// core that nearly every facility asks for some of and nearly every worker
// holds; the rest are specialties a facility adds now and then and a
// minority of workers hold. Within each group popularity falls with position.
var marketDocuments = []string{
	"Government-issued photo ID", "Background check", "TB test", "BLS certification",
	"COVID-19 vaccination", "Influenza vaccination", "Drug screen", "Professional license",
	"Hepatitis B vaccination", "MMR immunity", "Varicella immunity", "Tdap vaccination",
	"Physical exam", "HIPAA training", "Abuse and neglect training", "Infection control training",
	"CPR certification", "Fire safety training", "Resume", "Skills checklist",
	"Professional references", "OIG exclusion check", "Sex offender registry check", "Dementia care training",
	"Fit test (N95)", "ACLS certification", "Work authorization (I-9)", "Tax form (W-4)",
	"Driver's license", "Auto insurance", "Wound care certification", "IV therapy certification",
	"PALS certification", "Medication aide certification", "Hospice training", "Bloodborne pathogens training",
	"Restraint training", "Behavioral health training", "Pediatric care training", "Ventilator care training",
}

var (
	firstNames = []string{
		"Maria", "James", "Aisha", "Robert", "Linda", "Michael", "Fatima", "David", "Patricia", "Carlos",
		"Jennifer", "Wei", "Elizabeth", "Kwame", "Susan", "Daniel", "Jessica", "Thomas", "Sarah", "Luis",
		"Karen", "Anthony", "Nancy", "Priya", "Lisa", "Mark", "Betty", "Jamal", "Sandra", "Kevin",
		"Ashley", "Brian", "Kimberly", "Hiroshi", "Emily", "Jose", "Donna", "Andre", "Michelle", "Olga",
	}
	lastNames = []string{
		"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
		"Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
		"Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
		"Walker", "Young", "Allen", "King", "Wright", "Scott", "Nguyen", "Hill", "Flores", "Okafor",
	}
	placeNames = []string{
		"Maple", "Cedar", "Willow", "Oak", "Pine", "Riverside", "Lakeview", "Sunrise", "Harbor", "Meadow",
		"Summit", "Valley", "Brookside", "Hillcrest", "Fairview", "Greenwood", "Stonebridge", "Bayside", "Westgate", "Northfield",
	}
	facilityKinds = []string{
		"Care Center", "Nursing and Rehabilitation", "Senior Living", "Health Center", "Medical Center",
		"Assisted Living", "Memory Care", "Post-Acute Care", "Community Hospital", "Skilled Nursing",
	}
)

// marketShiftShapes are (duration, start hours) pairs with their weights:
// 12-hour day and night shifts, 8-hour shifts on the three usual rotations,
// and 4-hour fill-ins.
var marketShiftShapes = []struct {
	hours  int
	starts []int
	weight float64
}{
	{12, []int{7, 19, 6, 18}, 0.35},
	{8, []int{7, 15, 23, 6, 14, 22}, 0.50},
	{4, []int{7, 11, 15, 17, 19}, 0.15},
}

// professionMix is the workforce's and the shifts' profession split.
var professionMix = []float64{0.50, 0.25, 0.25} // CNA, LVN, RN

// marketplace builds a realistic marketplace of roughly scale × (300
// facilities, 30,000 workers, 300,000 shifts) and 40 documents. Facilities
// require 2–6 distinct core documents and 0–2 specialty ones, drawn by
// popularity; workers hold each document with a probability that falls with
// its rank (0.98 down to 0.85 for the core, 0.5 down to 0.05 for
// specialties), so that about half of the (worker, facility) pairs pass the
// document rule, varying widely between facilities. Shifts start in the 28
// days after now (rounded to the hour) at shift-change hours, and are
// sometimes deleted (10%) or claimed (30%) by an active worker of their
// profession.
func marketplace(seed int64, now time.Time, scale float64) Dataset {
	if scale <= 0 {
		scale = 1
	}
	sized := func(n int, floor int) int { return max(floor, int(math.Round(float64(n)*scale))) }
	nFacilities, nWorkers, nShifts := sized(marketFacilities, 3), sized(marketWorkers, 10), sized(marketShifts, 10)

	r := newRand(seed, streamMarketEntities)
	chance := func(p float64) bool { return r.Float64() < p }
	var b store.Bulk

	corePopularity := make([]float64, marketCoreDocuments)
	specialtyPopularity := make([]float64, len(marketDocuments)-marketCoreDocuments)
	holdChance := make([]float64, len(marketDocuments))
	for i, name := range marketDocuments {
		b.Documents = append(b.Documents, store.Document{ID: int64(i + 1), Name: name, IsActive: chance(marketDocumentActive)})
		if i < marketCoreDocuments {
			corePopularity[i] = 1 / math.Pow(float64(i+1), 0.8)
			holdChance[i] = 0.98 - 0.012*float64(i)
		} else {
			j := i - marketCoreDocuments
			specialtyPopularity[j] = 1 / float64(j+1)
			holdChance[i] = 0.05 + 0.45*math.Exp(-float64(j)/10)
		}
	}
	specialtyCounts := []float64{0.55, 0.30, 0.15} // 0, 1 or 2 specialty documents

	facilityWeight := make([]float64, nFacilities)
	for i := range nFacilities {
		id := int64(i + 1)
		b.Facilities = append(b.Facilities, domain.Facility{
			ID:       id,
			Name:     fmt.Sprintf("%s %s %d", placeNames[r.IntN(len(placeNames))], facilityKinds[r.IntN(len(facilityKinds))], id),
			IsActive: chance(marketFacilityActive),
		})
		// Facility sizes are log-normal: a few large ones post most shifts.
		facilityWeight[i] = math.Exp(r.NormFloat64() * 0.8)
		docs := sampleDistinct(r, corePopularity, marketMinCore+r.IntN(marketMaxCore-marketMinCore+1))
		for _, j := range sampleDistinct(r, specialtyPopularity, PickWeighted(r, specialtyCounts)) {
			docs = append(docs, marketCoreDocuments+j)
		}
		for _, doc := range docs {
			b.Requirements = append(b.Requirements, store.FacilityRequirement{
				ID: int64(len(b.Requirements) + 1), FacilityID: id, DocumentID: int64(doc + 1),
			})
		}
	}

	active := make([][]int64, len(domain.Professions)) // active worker ids per profession
	for i := range nWorkers {
		id := int64(i + 1)
		p := PickWeighted(r, professionMix)
		w := domain.Worker{
			ID:         id,
			Name:       firstNames[r.IntN(len(firstNames))] + " " + lastNames[r.IntN(len(lastNames))],
			IsActive:   chance(marketWorkerActive),
			Profession: domain.Professions[p],
		}
		if w.IsActive {
			active[p] = append(active[p], id)
		}
		b.Workers = append(b.Workers, w)
		for doc, p := range holdChance {
			if chance(p) {
				b.WorkerDocuments = append(b.WorkerDocuments, store.DocumentWorker{
					ID: int64(len(b.WorkerDocuments) + 1), WorkerID: id, DocumentID: int64(doc + 1),
				})
			}
		}
	}

	b.Shifts = marketShiftsSeq(seed, now, nShifts, cumulative(facilityWeight), active)
	return Dataset{Bulk: b, ShiftCount: nShifts}
}

// marketShiftsSeq yields the marketplace's shifts, the same ones on every run.
func marketShiftsSeq(seed int64, now time.Time, n int, facilityCum []float64, active [][]int64) func(yield func(domain.Shift) bool) {
	now = now.UTC().Round(time.Hour)
	midnight := now.Truncate(24 * time.Hour)
	shapeWeights := make([]float64, len(marketShiftShapes))
	for i, s := range marketShiftShapes {
		shapeWeights[i] = s.weight
	}
	return func(yield func(domain.Shift) bool) {
		r := newRand(seed, streamMarketShifts)
		for i := range n {
			shape := marketShiftShapes[PickWeighted(r, shapeWeights)]
			start := midnight.Add(time.Duration(r.IntN(marketDays)*24+shape.starts[r.IntN(len(shape.starts))]) * time.Hour)
			if !start.After(now) {
				// Keep the window (now, now + 28 days]: today's past
				// slots move to four weeks ahead.
				start = start.Add(marketDays * 24 * time.Hour)
			}
			p := PickWeighted(r, professionMix)
			s := domain.Shift{
				ID:         int64(i + 1),
				FacilityID: int64(searchCum(facilityCum, r.Float64())) + 1,
				Profession: domain.Professions[p],
				Start:      start,
				End:        start.Add(time.Duration(shape.hours) * time.Hour),
				IsDeleted:  r.Float64() < marketShiftDeleted,
			}
			if r.Float64() < marketShiftClaimed && len(active[p]) > 0 {
				s.WorkerID = &active[p][r.IntN(len(active[p]))]
			}
			if !yield(s) {
				return
			}
		}
	}
}

// PickWeighted returns an index drawn with the given weights (any
// non-negative scale); the generators of seed and bench share it.
func PickWeighted(r *rand.Rand, weights []float64) int {
	total := 0.0
	for _, w := range weights {
		total += w
	}
	x := r.Float64() * total
	for i, w := range weights {
		if x < w {
			return i
		}
		x -= w
	}
	// Rounding left x past the end: take the last drawable index.
	for i := len(weights) - 1; i > 0; i-- {
		if weights[i] > 0 {
			return i
		}
	}
	return 0
}

// sampleDistinct draws k distinct indexes, each draw weighted among those
// not yet drawn, and returns them sorted.
func sampleDistinct(r *rand.Rand, weights []float64, k int) []int {
	w := slices.Clone(weights)
	k = min(k, len(w))
	out := make([]int, 0, k)
	for range k {
		i := PickWeighted(r, w)
		out = append(out, i)
		w[i] = 0
	}
	slices.Sort(out)
	return out
}

// cumulative returns the normalised running sums of weights.
func cumulative(weights []float64) []float64 {
	cum := make([]float64, len(weights))
	total := 0.0
	for i, w := range weights {
		total += w
		cum[i] = total
	}
	for i := range cum {
		cum[i] /= total
	}
	return cum
}

// searchCum returns the index whose cumulative bucket holds x in [0, 1).
func searchCum(cum []float64, x float64) int {
	i, _ := slices.BinarySearch(cum, x)
	return min(i, len(cum)-1)
}
