package domain

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Snapshot is a PostgreSQL snapshot (pg_snapshot): which transactions' work
// it sees. A digest's watermark is the snapshot it was built in, so that
// "opened since the last push" means "opened by a transaction that push
// could not see", whatever order transactions committed in.
type Snapshot struct {
	Xmin, Xmax uint64
	Xip        []uint64 // in progress when it was taken, sorted
}

// ParseSnapshot parses pg_snapshot's text form, "xmin:xmax:xip,xip,...".
func ParseSnapshot(s string) (Snapshot, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return Snapshot{}, fmt.Errorf("snapshot %q: want xmin:xmax:xip_list", s)
	}
	var (
		snap Snapshot
		err  error
	)
	if snap.Xmin, err = strconv.ParseUint(parts[0], 10, 64); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %q: xmin: %w", s, err)
	}
	if snap.Xmax, err = strconv.ParseUint(parts[1], 10, 64); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %q: xmax: %w", s, err)
	}
	if parts[2] != "" {
		for x := range strings.SplitSeq(parts[2], ",") {
			xid, err := strconv.ParseUint(x, 10, 64)
			if err != nil {
				return Snapshot{}, fmt.Errorf("snapshot %q: xip: %w", s, err)
			}
			snap.Xip = append(snap.Xip, xid)
		}
		slices.Sort(snap.Xip)
	}
	return snap, nil
}

// Visible reports whether the work of committed transaction xid is visible
// in s, as PostgreSQL's pg_visible_in_snapshot decides it.
func (s *Snapshot) Visible(xid uint64) bool {
	if xid < s.Xmin {
		return true
	}
	if xid >= s.Xmax {
		return false
	}
	_, running := slices.BinarySearch(s.Xip, xid)
	return !running
}

// FacilityRequirements is an active facility and the documents it requires
// (sorted, without repeats).
type FacilityRequirements struct {
	ID       int64
	Required []int64
}

// EligibleFacilities returns, in the order given, the ids of the facilities
// whose every required document is in held. Both document lists must be
// sorted and without repeats, as the store keeps them, which makes each
// check one merge pass.
func EligibleFacilities(held []int64, facilities []FacilityRequirements) []int64 {
	var out []int64
	for _, f := range facilities {
		if sortedSubset(f.Required, held) {
			out = append(out, f.ID)
		}
	}
	return out
}

// sortedSubset reports whether every element of sub is in set; both sorted.
func sortedSubset(sub, set []int64) bool {
	if len(sub) > len(set) {
		return false
	}
	j := 0
	for _, x := range sub {
		for j < len(set) && set[j] < x {
			j++
		}
		if j == len(set) || set[j] != x {
			return false
		}
		j++
	}
	return true
}

// Opening is a shift open for claims and the transaction that opened it
// (created or released it).
type Opening struct {
	XID   uint64
	Shift NotificationShift
}

// FacilityProfession names the open shifts of one profession at one
// facility.
type FacilityProfession struct {
	FacilityID int64
	Profession Profession
}

// OpenShifts is how many open future shifts a facility has for a profession
// and the first of them, soonest first.
type OpenShifts struct {
	Count int
	First []NotificationShift
}

// DigestWorker is what a worker's digest is built from: who the worker is
// now, and what their last push took into account.
type DigestWorker struct {
	ID         int64
	Profession Profession
	Active     bool
	Documents  []int64 // held now: sorted, without repeats
	// Facilities the worker was eligible for at the last push (sorted), and
	// the snapshot that push was built in; nil when there was none (a new
	// or reactivated worker knows nothing).
	Facilities []int64
	Snapshot   *Snapshot
}

// DigestPlan is a worker's eligible facilities now and, among them, the
// fresh ones: not eligible at the last push, so every open shift there is
// new to the worker, however long it has been open.
type DigestPlan struct {
	Eligible, Fresh []int64
}

// PlanDigest works out w's eligible facilities among the active ones given,
// which must be sorted by id.
func PlanDigest(w *DigestWorker, active []FacilityRequirements) DigestPlan {
	if !w.Active {
		return DigestPlan{}
	}
	ef := EligibleFacilities(w.Documents, active)
	var fresh []int64
	for _, f := range ef {
		if _, ok := slices.BinarySearch(w.Facilities, f); !ok {
			fresh = append(fresh, f)
		}
	}
	return DigestPlan{Eligible: ef, Fresh: fresh}
}

// Digest is what a worker is told: how many shifts became available to
// them since their last push and the first of them, soonest first. Count 0
// means nothing is new: no push.
type Digest struct {
	Count  int
	Shifts []NotificationShift
}

// DigestBuilder builds many workers' digests from one reading of the
// database, so that the cost of a digest does not grow with how many
// workers share the same new shifts. It is not safe for concurrent use.
type DigestBuilder struct {
	// K is how many shifts a digest lists (all are counted).
	K int
	// Openings are, per profession, the open future shifts opened by
	// transactions some of the workers' snapshots may not have seen,
	// sorted by (start, id).
	Openings map[Profession][]Opening
	// Open are the open future shifts of the (facility, profession) pairs
	// that are fresh to some worker.
	Open map[FacilityProfession]OpenShifts

	keep []int64  // the facilities a digest reads openings at
	bits []uint64 // the same, by id, when ids are small enough
	seen map[int64]struct{}
}

// maxBitsetFacility bounds the facility ids kept in a bitset (512 KiB);
// larger ones use a map.
const maxBitsetFacility = 1 << 22

// Build builds w's digest. A shift is new to w when it is open, in the
// future, of w's profession, at a facility eligible for w now, and either
// that facility is fresh (plan.Fresh) or the transaction that opened the
// shift was not visible in w's last snapshot.
func (b *DigestBuilder) Build(w *DigestWorker, plan DigestPlan) Digest {
	var (
		d     Digest
		lists [][]NotificationShift
	)
	for _, f := range plan.Fresh {
		o := b.Open[FacilityProfession{f, w.Profession}]
		d.Count += o.Count
		if len(o.First) > 0 {
			lists = append(lists, o.First)
		}
	}
	if w.Snapshot != nil && len(plan.Eligible) > len(plan.Fresh) {
		first, count := b.recent(w, plan)
		d.Count += count
		if len(first) > 0 {
			lists = append(lists, first)
		}
	}
	if d.Count == 0 {
		return d
	}
	for _, l := range lists {
		d.Shifts = append(d.Shifts, l...)
	}
	slices.SortFunc(d.Shifts, CompareShifts)
	d.Shifts = d.Shifts[:min(len(d.Shifts), b.K)]
	return d
}

// recent counts the openings new to w at its eligible facilities that are
// not fresh (those are counted whole) and returns the first K of them.
func (b *DigestBuilder) recent(w *DigestWorker, plan DigestPlan) (first []NotificationShift, count int) {
	in := b.facilitySet(plan)
	openings := b.Openings[w.Profession]
	for i := range openings {
		o := &openings[i]
		if !in(o.Shift.FacilityID) || w.Snapshot.Visible(o.XID) {
			continue
		}
		if count < b.K {
			first = append(first, o.Shift)
		}
		count++
	}
	return first, count
}

// facilitySet returns a membership test for plan's eligible facilities
// that are not fresh.
func (b *DigestBuilder) facilitySet(plan DigestPlan) func(int64) bool {
	b.keep = b.keep[:0]
	top := int64(0)
	for _, f := range plan.Eligible {
		if _, fresh := slices.BinarySearch(plan.Fresh, f); !fresh {
			b.keep = append(b.keep, f)
			top = max(top, f)
		}
	}
	if top < maxBitsetFacility {
		words := int(top/64) + 1
		if cap(b.bits) < words {
			b.bits = make([]uint64, words)
		}
		b.bits = b.bits[:words]
		clear(b.bits)
		for _, f := range b.keep {
			b.bits[f/64] |= 1 << (f % 64)
		}
		bits := b.bits
		return func(f int64) bool { return f >= 0 && f <= top && bits[f/64]&(1<<(f%64)) != 0 }
	}
	if b.seen == nil {
		b.seen = map[int64]struct{}{}
	}
	clear(b.seen)
	for _, f := range b.keep {
		b.seen[f] = struct{}{}
	}
	seen := b.seen
	return func(f int64) bool { _, ok := seen[f]; return ok }
}

// CompareShifts orders shifts soonest first, then by id: the order digests
// and eligible-shift listings use.
func CompareShifts(a, b NotificationShift) int {
	if c := a.Start.Compare(b.Start); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}
