package bench

// `shiftcast bench events`: publish a realistic mix of marketplace events
// into JetStream at a steady rate against a running serve, wait until every
// one is recorded in shiftcast.applied_events, and report from the database
// how fast they were applied and how long after their publication.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/shiftcast/shiftcast/consumers"
	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/seed"
	"github.com/shiftcast/shiftcast/store"
)

// --- the event mix ---

// MixShare is one share of the generated mix: Share (a fraction) of the
// events are of Types. A share with two types (activated/deactivated,
// added/removed) picks one by the state of the entity it changes.
type MixShare struct {
	Types []string
	Share float64
}

// EventMix is the mix `bench events` publishes by default: a marketplace
// where the events are overwhelmingly shifts being posted, claimed,
// cancelled and released; workers' credentials change now and then,
// facilities' requirements and status rarely. At 2,000 events/s on the
// marketplace profile (300 facilities, 30,000 workers) that is a facility
// switched on or off every two seconds and a requirement changed every
// half second, each worker's documents changing about every four minutes.
var EventMix = []MixShare{
	{[]string{domain.TypeShiftCreated}, 0.48},
	{[]string{domain.TypeShiftClaimed}, 0.30},
	{[]string{domain.TypeShiftReleased}, 0.04},
	{[]string{domain.TypeShiftDeleted}, 0.08},
	{[]string{domain.TypeWorkerDocumentAdded}, 0.05},
	{[]string{domain.TypeWorkerDocumentRemoved}, 0.02},
	{[]string{domain.TypeWorkerActivated, domain.TypeWorkerDeactivated}, 0.015},
	{[]string{domain.TypeFacilityRequirementAdded, domain.TypeFacilityRequirementRemoved}, 0.001},
	{[]string{domain.TypeFacilityActivated, domain.TypeFacilityDeactivated}, 0.0005},
	{[]string{domain.TypeWorkerCreated}, 0.0135},
}

// ChurnMix is the first mix the benchmark used, kept to stress the
// notification side: eligibility itself churns (at 2,000 events/s every
// facility is switched or changes its requirements every few seconds, and
// each worker's documents change every two minutes), so most workers have
// facilities newly open to them in every digest window.
var ChurnMix = []MixShare{
	{[]string{domain.TypeShiftCreated}, 0.55},
	{[]string{domain.TypeShiftClaimed}, 0.15},
	{[]string{domain.TypeShiftReleased}, 0.05},
	{[]string{domain.TypeShiftDeleted}, 0.05},
	{[]string{domain.TypeWorkerDocumentAdded}, 0.10},
	{[]string{domain.TypeWorkerDocumentRemoved}, 0.04},
	{[]string{domain.TypeWorkerActivated, domain.TypeWorkerDeactivated}, 0.02},
	{[]string{domain.TypeFacilityRequirementAdded, domain.TypeFacilityRequirementRemoved}, 0.02},
	{[]string{domain.TypeFacilityActivated, domain.TypeFacilityDeactivated}, 0.01},
	{[]string{domain.TypeWorkerCreated}, 0.01},
}

// Mixes names the mixes `bench events --mix` accepts.
var Mixes = map[string][]MixShare{"realistic": EventMix, "churn": ChurnMix}

// DefaultCooldown is GeneratorConfig.Cooldown's default: at 2,000 events/s
// half a second, several times the apply latency aimed at.
const DefaultCooldown = 1000

// GeneratorConfig seeds a Generator.
type GeneratorConfig struct {
	// Seed makes the sequence reproducible for a given universe and Now.
	Seed int64
	// Now is when new shifts are measured from: they start in the 28 days
	// after it.
	Now time.Time
	// Cooldown is how many draws must pass before an entity an event
	// touched (a shift, a worker, a facility) is touched again. Events are
	// not ordered across subjects and the consumer applies many at once, so
	// a claim published right after its shift's creation could be applied
	// first (and retried later), and a release right after its claim could
	// make the claim stale. Default DefaultCooldown.
	Cooldown int
	// Mix is the mix drawn from (default EventMix).
	Mix []MixShare
}

// Draft is a generated event without its id and time, which the publisher
// stamps when it sends it.
type Draft struct {
	Type string
	Data any // a pointer to one of domain's event payload types
}

// Generator draws a realistic sequence of marketplace events against a
// universe read from the database, keeping track of what it changed so that
// every event makes sense at the point it is drawn: shifts are claimed only
// when open, released only when this run claimed them, and never touched
// again after deletion; documents are added that the worker lacks and
// removed that they hold; activations alternate with deactivations. It is
// deterministic for a seed and not safe for concurrent use.
type Generator struct {
	r        *rand.Rand
	now      time.Time
	cooldown int64
	n        int64 // draws so far

	mix []MixShare
	cum []float64 // cumulative mix shares

	facilities []benchFacility
	docs       []int64
	workers    []benchWorker
	byProf     [][]int32 // worker indexes per profession, for claims

	freeFacilities pool[int32] // facility indexes not cooling down
	freeWorkers    pool[int32]
	open           pool[shiftRef] // open future shifts
	claimed        pool[shiftRef] // shifts this run claimed

	cooling []cooling
	coolAt  int

	nextShiftID  int64
	nextWorkerID int64
}

type benchFacility struct {
	id     int64
	active bool
	reqs   []int64
}

type benchWorker struct {
	id     int64
	prof   domain.Profession
	active bool
	docs   []int64
}

type shiftRef struct {
	id   int64
	prof domain.Profession
}

// cooling is an entity waiting out its cooldown before it goes back to a
// pool.
type cooling struct {
	ready int64
	kind  coolKind
	idx   int32    // facility or worker index
	shift shiftRef // for shifts
}

type coolKind uint8

const (
	coolFacility coolKind = iota
	coolWorker
	coolNewWorker // also becomes available for claims
	coolOpen
	coolClaimed
)

// pool is a set drawn from at random; removal swaps with the last element.
type pool[T any] struct{ items []T }

func (p *pool[T]) add(v T) { p.items = append(p.items, v) }

func (p *pool[T]) removeAt(i int) T {
	v := p.items[i]
	last := len(p.items) - 1
	p.items[i] = p.items[last]
	p.items = p.items[:last]
	return v
}

// take removes and returns a random element whose pred holds, trying a few
// random ones.
func (p *pool[T]) take(r *rand.Rand, pred func(T) bool) (T, bool) {
	var zero T
	for range 32 {
		if len(p.items) == 0 {
			return zero, false
		}
		i := r.IntN(len(p.items))
		if pred == nil || pred(p.items[i]) {
			return p.removeAt(i), true
		}
	}
	return zero, false
}

// professionMix is the split of new shifts and workers: CNA, LVN, RN, as in
// the marketplace profile.
var professionMix = []float64{0.50, 0.25, 0.25}

// shiftShapes are the new shifts' (duration, start hours) and weights, as
// the marketplace profile draws them.
var shiftShapes = []struct {
	hours  int
	starts []int
	weight float64
}{
	{12, []int{7, 19, 6, 18}, 0.35},
	{8, []int{7, 15, 23, 6, 14, 22}, 0.50},
	{4, []int{7, 11, 15, 17, 19}, 0.15},
}

const horizonDays = 28

// NewGenerator returns a generator over u. It keeps its own copies of what
// it changes; u is not modified.
func NewGenerator(u store.BenchUniverse, cfg GeneratorConfig) (*Generator, error) {
	if len(u.Facilities) == 0 || len(u.Workers) == 0 || len(u.DocumentIDs) == 0 {
		return nil, errors.New("bench events: the database has no facilities, workers or documents (seed it: shiftcast seed --profile marketplace)")
	}
	if cfg.Cooldown <= 0 {
		cfg.Cooldown = DefaultCooldown
	}
	if cfg.Now.IsZero() {
		cfg.Now = time.Now()
	}
	g := &Generator{
		r:            rand.New(rand.NewPCG(uint64(cfg.Seed), 0x5eed_0f_e7e4_75)),
		now:          cfg.Now.UTC(),
		cooldown:     int64(cfg.Cooldown),
		docs:         slices.Clone(u.DocumentIDs),
		byProf:       make([][]int32, len(domain.Professions)),
		nextShiftID:  u.MaxShiftID + 1,
		nextWorkerID: u.MaxWorkerID + 1,
	}
	g.mix = cfg.Mix
	if len(g.mix) == 0 {
		g.mix = EventMix
	}
	total := 0.0
	for _, m := range g.mix {
		total += m.Share
		g.cum = append(g.cum, total)
	}
	for i, f := range u.Facilities {
		g.facilities = append(g.facilities, benchFacility{id: f.ID, active: f.IsActive, reqs: slices.Clone(f.Requirements)})
		g.freeFacilities.add(int32(i))
	}
	for i, w := range u.Workers {
		g.workers = append(g.workers, benchWorker{id: w.ID, prof: w.Profession, active: w.IsActive, docs: slices.Clone(w.Documents)})
		g.freeWorkers.add(int32(i))
		if w.IsActive {
			p := profIndex(w.Profession)
			g.byProf[p] = append(g.byProf[p], int32(i))
		}
	}
	for _, s := range u.OpenShifts {
		g.open.add(shiftRef{id: s.ID, prof: s.Profession})
	}
	return g, nil
}

func profIndex(p domain.Profession) int {
	for i, q := range domain.Professions {
		if q == p {
			return i
		}
	}
	return 0
}

// Next draws the next event.
func (g *Generator) Next() Draft {
	g.n++
	g.release()
	for range 32 {
		x := g.r.Float64() * g.cum[len(g.cum)-1]
		share, _ := slices.BinarySearch(g.cum, x)
		if share >= len(g.cum) {
			share = len(g.cum) - 1
		}
		if x == g.cum[share] && share+1 < len(g.cum) {
			share++ // BinarySearch found the boundary: the bucket is [cum[i-1], cum[i])
		}
		if d, ok := g.draw(share); ok {
			return d
		}
	}
	return g.shiftCreated()
}

// release puts entities whose cooldown is over back into their pools.
func (g *Generator) release() {
	for g.coolAt < len(g.cooling) && g.cooling[g.coolAt].ready <= g.n {
		c := g.cooling[g.coolAt]
		g.coolAt++
		switch c.kind {
		case coolFacility:
			g.freeFacilities.add(c.idx)
		case coolWorker:
			g.freeWorkers.add(c.idx)
		case coolNewWorker:
			g.freeWorkers.add(c.idx)
			if w := g.workers[c.idx]; w.active {
				p := profIndex(w.prof)
				g.byProf[p] = append(g.byProf[p], c.idx)
			}
		case coolOpen:
			g.open.add(c.shift)
		case coolClaimed:
			g.claimed.add(c.shift)
		}
	}
	// Compact the queue now and then so it does not grow for ever.
	if g.coolAt > 4096 && g.coolAt*2 > len(g.cooling) {
		g.cooling = append(g.cooling[:0], g.cooling[g.coolAt:]...)
		g.coolAt = 0
	}
}

func (g *Generator) cool(c cooling) {
	c.ready = g.n + g.cooldown
	g.cooling = append(g.cooling, c)
}

// draw generates an event of the mix's share, or reports that none makes
// sense right now (nothing to release yet, say).
func (g *Generator) draw(share int) (Draft, bool) {
	switch g.mix[share].Types[0] {
	case domain.TypeShiftCreated:
		return g.shiftCreated(), true
	case domain.TypeShiftClaimed:
		return g.shiftClaimed()
	case domain.TypeShiftReleased:
		s, ok := g.claimed.take(g.r, nil)
		if !ok {
			return Draft{}, false
		}
		g.cool(cooling{kind: coolOpen, shift: s})
		return Draft{domain.TypeShiftReleased, &domain.ShiftRef{ShiftID: s.id}}, true
	case domain.TypeShiftDeleted:
		s, ok := g.open.take(g.r, nil)
		if !ok {
			return Draft{}, false
		}
		return Draft{domain.TypeShiftDeleted, &domain.ShiftRef{ShiftID: s.id}}, true
	case domain.TypeWorkerDocumentAdded:
		return g.documentAdded()
	case domain.TypeWorkerDocumentRemoved:
		return g.documentRemoved()
	case domain.TypeWorkerActivated:
		return g.workerActivation()
	case domain.TypeFacilityRequirementAdded:
		return g.requirementChange()
	case domain.TypeFacilityActivated:
		return g.facilityActivation()
	case domain.TypeWorkerCreated:
		return g.workerCreated(), true
	}
	return Draft{}, false
}

func (g *Generator) shiftCreated() Draft {
	// Shifts are posted by active facilities, mostly.
	fi := g.r.IntN(len(g.facilities))
	for range 8 {
		if g.facilities[fi].active {
			break
		}
		fi = g.r.IntN(len(g.facilities))
	}
	shape := shiftShapes[seed.PickWeighted(g.r, shapeWeights)]
	midnight := g.now.Truncate(24 * time.Hour)
	start := midnight.Add(time.Duration(g.r.IntN(horizonDays)*24+shape.starts[g.r.IntN(len(shape.starts))]) * time.Hour)
	if !start.After(g.now.Add(time.Hour)) {
		start = start.Add(horizonDays * 24 * time.Hour)
	}
	s := &domain.ShiftCreated{
		ID:         g.nextShiftID,
		FacilityID: g.facilities[fi].id,
		Profession: domain.Professions[seed.PickWeighted(g.r, professionMix)],
		Start:      start,
		End:        start.Add(time.Duration(shape.hours) * time.Hour),
	}
	g.nextShiftID++
	g.cool(cooling{kind: coolOpen, shift: shiftRef{id: s.ID, prof: s.Profession}})
	return Draft{domain.TypeShiftCreated, s}
}

var shapeWeights = func() []float64 {
	w := make([]float64, len(shiftShapes))
	for i, s := range shiftShapes {
		w[i] = s.weight
	}
	return w
}()

func (g *Generator) shiftClaimed() (Draft, bool) {
	s, ok := g.open.take(g.r, func(s shiftRef) bool { return len(g.byProf[profIndex(s.prof)]) > 0 })
	if !ok {
		return Draft{}, false
	}
	ws := g.byProf[profIndex(s.prof)]
	w := g.workers[ws[g.r.IntN(len(ws))]]
	g.cool(cooling{kind: coolClaimed, shift: s})
	return Draft{domain.TypeShiftClaimed, &domain.ShiftClaimed{ShiftID: s.id, WorkerID: w.id}}, true
}

func (g *Generator) documentAdded() (Draft, bool) {
	wi, ok := g.freeWorkers.take(g.r, func(i int32) bool { return len(g.workers[i].docs) < len(g.docs) })
	if !ok {
		return Draft{}, false
	}
	w := &g.workers[wi]
	doc := g.docs[g.r.IntN(len(g.docs))]
	for range 64 {
		if _, held := slices.BinarySearch(w.docs, doc); !held {
			break
		}
		doc = g.docs[g.r.IntN(len(g.docs))]
	}
	if i, held := slices.BinarySearch(w.docs, doc); !held {
		w.docs = slices.Insert(w.docs, i, doc)
	}
	g.cool(cooling{kind: coolWorker, idx: wi})
	return Draft{domain.TypeWorkerDocumentAdded, &domain.WorkerDocument{WorkerID: w.id, DocumentID: doc}}, true
}

func (g *Generator) documentRemoved() (Draft, bool) {
	wi, ok := g.freeWorkers.take(g.r, func(i int32) bool { return len(g.workers[i].docs) > 0 })
	if !ok {
		return Draft{}, false
	}
	w := &g.workers[wi]
	i := g.r.IntN(len(w.docs))
	doc := w.docs[i]
	w.docs = slices.Delete(w.docs, i, i+1)
	g.cool(cooling{kind: coolWorker, idx: wi})
	return Draft{domain.TypeWorkerDocumentRemoved, &domain.WorkerDocument{WorkerID: w.id, DocumentID: doc}}, true
}

// workerActivation activates an inactive worker or deactivates an active
// one, half the time each, so the active share does not drift.
func (g *Generator) workerActivation() (Draft, bool) {
	activate := g.r.IntN(2) == 0
	wi, ok := g.freeWorkers.take(g.r, func(i int32) bool { return g.workers[i].active != activate })
	if !ok {
		return Draft{}, false
	}
	w := &g.workers[wi]
	w.active = activate
	g.cool(cooling{kind: coolWorker, idx: wi})
	typ := domain.TypeWorkerDeactivated
	if activate {
		typ = domain.TypeWorkerActivated
	}
	return Draft{typ, &domain.WorkerRef{WorkerID: w.id}}, true
}

// requirementChange adds a document a facility does not require yet or
// removes one it does, half the time each.
func (g *Generator) requirementChange() (Draft, bool) {
	add := g.r.IntN(2) == 0
	fi, ok := g.freeFacilities.take(g.r, func(i int32) bool {
		n := len(g.facilities[i].reqs)
		if add {
			return n < len(g.docs)
		}
		return n > 0
	})
	if !ok {
		return Draft{}, false
	}
	f := &g.facilities[fi]
	g.cool(cooling{kind: coolFacility, idx: fi})
	if !add {
		i := g.r.IntN(len(f.reqs))
		doc := f.reqs[i]
		f.reqs = slices.Delete(f.reqs, i, i+1)
		return Draft{domain.TypeFacilityRequirementRemoved, &domain.FacilityRequirement{FacilityID: f.id, DocumentID: doc}}, true
	}
	doc := g.docs[g.r.IntN(len(g.docs))]
	for range 64 {
		if _, req := slices.BinarySearch(f.reqs, doc); !req {
			break
		}
		doc = g.docs[g.r.IntN(len(g.docs))]
	}
	if i, req := slices.BinarySearch(f.reqs, doc); !req {
		f.reqs = slices.Insert(f.reqs, i, doc)
	}
	return Draft{domain.TypeFacilityRequirementAdded, &domain.FacilityRequirement{FacilityID: f.id, DocumentID: doc}}, true
}

func (g *Generator) facilityActivation() (Draft, bool) {
	activate := g.r.IntN(2) == 0
	fi, ok := g.freeFacilities.take(g.r, func(i int32) bool { return g.facilities[i].active != activate })
	if !ok {
		return Draft{}, false
	}
	f := &g.facilities[fi]
	f.active = activate
	g.cool(cooling{kind: coolFacility, idx: fi})
	typ := domain.TypeFacilityDeactivated
	if activate {
		typ = domain.TypeFacilityActivated
	}
	return Draft{typ, &domain.FacilityRef{FacilityID: f.id}}, true
}

var (
	benchFirstNames = []string{"Maria", "James", "Aisha", "Robert", "Linda", "Michael", "Fatima", "David", "Wei", "Priya", "Kwame", "Olga"}
	benchLastNames  = []string{"Smith", "Johnson", "Garcia", "Nguyen", "Okafor", "Lee", "Martinez", "Brown", "Wilson", "Flores"}
)

func (g *Generator) workerCreated() Draft {
	w := benchWorker{
		id:     g.nextWorkerID,
		prof:   domain.Professions[seed.PickWeighted(g.r, professionMix)],
		active: g.r.Float64() < 0.9,
	}
	g.nextWorkerID++
	g.workers = append(g.workers, w)
	g.cool(cooling{kind: coolNewWorker, idx: int32(len(g.workers) - 1)})
	name := benchFirstNames[g.r.IntN(len(benchFirstNames))] + " " + benchLastNames[g.r.IntN(len(benchLastNames))]
	return Draft{domain.TypeWorkerCreated, &domain.WorkerCreated{ID: w.id, Name: name, Profession: w.prof, IsActive: w.active}}
}

// EncodeEvent returns d as the structured-mode CloudEvent the marketplace
// publishes: id, source, type, time (RFC 3339 with nanoseconds) and data.
func EncodeEvent(d Draft, id, source string, at time.Time) ([]byte, error) {
	return json.Marshal(domain.Event{
		SpecVersion: "1.0", ID: id, Source: source, Type: d.Type, Time: at.UTC(),
		DataContentType: "application/json", Data: d.Data,
	})
}

// --- the run ---

// Defaults of EventsConfig.
const (
	DefaultEventsRate       = 2000
	DefaultEventsDuration   = 30 * time.Second
	DefaultEventsPublishers = 2
	DefaultEventsInFlight   = 1024
	DefaultEventsWait       = 2 * time.Minute
	DefaultEventsOpenShifts = 50_000
	// EventsSource is the CloudEvents source of benchmark events.
	EventsSource = "shiftcast-bench"
)

// EventsConfig describes one `bench events` run.
type EventsConfig struct {
	NATSURL     string
	DatabaseURL string
	// NATSOptions are extra connection options (credentials, TLS).
	NATSOptions []nats.Option
	// Rate is the target events per second; 0 publishes as fast as the
	// publishers can.
	Rate float64
	// Duration bounds the publish phase (default 30s); MaxEvents, when
	// positive, ends it earlier after that many events.
	Duration  time.Duration
	MaxEvents int64
	// Publishers is the number of publishing goroutines, each with its own
	// NATS connection (default 2); InFlight bounds each one's unacknowledged
	// async publishes (default 1024).
	Publishers int
	InFlight   int
	// Seed seeds the generator; 0 picks one from the clock.
	Seed int64
	// Cooldown is GeneratorConfig.Cooldown.
	Cooldown int
	// Mix is GeneratorConfig.Mix.
	Mix []MixShare
	// Wait bounds the wait for every published event to be applied
	// (default 2m).
	Wait time.Duration
	// OpenShifts is how many existing open shifts the generator may claim
	// or delete (default 50,000).
	OpenShifts int
	// Receiver, when set, is a webhook receiver running alongside: the
	// report counts the notifications it got during the run.
	Receiver *Receiver
	// Progress, when set, receives a line every few seconds.
	Progress io.Writer
}

// TypeLatency is one event type's share of a run.
type TypeLatency struct {
	Type  string        `json:"type"`
	Count int64         `json:"count"`
	P50   time.Duration `json:"p50_ns"`
	P99   time.Duration `json:"p99_ns"`
	Max   time.Duration `json:"max_ns"`
}

// EventsReport is the outcome of a `bench events` run. Latency is
// applied_at − event time: the event time is stamped just before the
// publish, and applied_at is the clock_timestamp() at which the apply
// transaction recorded the event in shiftcast.applied_events; that
// transaction then inserts the event's River jobs and commits.
type EventsReport struct {
	Run        string  `json:"run"` // event id prefix
	Target     string  `json:"target"`
	Publishers int     `json:"publishers"`
	InFlight   int     `json:"in_flight"`
	Rate       float64 `json:"target_rate"` // 0: as fast as possible
	Seed       int64   `json:"seed"`
	// BacklogAtStart is the number of earlier events the consumer still
	// had to apply when publishing began (after waiting BacklogWait for it
	// to drain); they compete with this run's.
	BacklogAtStart int64         `json:"backlog_at_start"`
	BacklogWait    time.Duration `json:"backlog_wait_ns"`

	// Publish phase.
	PublishDuration time.Duration `json:"publish_duration_ns"`
	Published       int64         `json:"published"` // acknowledged by the stream, not duplicates
	PublishFailed   int64         `json:"publish_failed"`
	Duplicates      int64         `json:"duplicates"`
	PublishRate     float64       `json:"published_per_s"`

	// What the pipeline did, from shiftcast.applied_events.
	Applied      int64         `json:"applied"` // rows recorded for this run
	Outcomes     Outcomes      `json:"outcomes"`
	DeadLettered int64         `json:"dead_lettered"` // MARKETPLACE_DLQ growth during the run
	ApplyWindow  time.Duration `json:"apply_window_ns"`
	AppliedRate  float64       `json:"applied_per_s"`
	Drain        time.Duration `json:"drain_ns"` // last applied_at − end of publishing
	Complete     bool          `json:"complete"`

	P50    time.Duration `json:"p50_ns"`
	P95    time.Duration `json:"p95_ns"`
	P99    time.Duration `json:"p99_ns"`
	Max    time.Duration `json:"max_ns"`
	ByType []TypeLatency `json:"by_type"`

	// Notifications a receiver got during the run (when one ran).
	Notifications int64 `json:"notifications_received,omitempty"`
	// Jobs left queued when the report was taken: queue → state → count.
	Jobs       map[string]map[string]int64 `json:"jobs_backlog,omitempty"`
	FirstError string                      `json:"first_error,omitempty"`
}

// Outcomes counts applied_events rows by outcome.
type Outcomes struct {
	Applied int64 `json:"applied"`
	Stale   int64 `json:"stale"`
}

// Print writes r as a compact human-readable block.
func (r EventsReport) Print(w io.Writer) {
	var b strings.Builder
	fmt.Fprintf(&b, "run          %s* (%s, %d publishers × %d in flight, seed %d)\n", r.Run, r.Target, r.Publishers, r.InFlight, r.Seed)
	if r.BacklogWait > time.Second || r.BacklogAtStart > 0 {
		fmt.Fprintf(&b, "backlog      waited %s for earlier events to be applied; %d still pending at start\n",
			r.BacklogWait.Round(time.Second), r.BacklogAtStart)
	}
	if r.Rate > 0 {
		fmt.Fprintf(&b, "target       %.0f events/s\n", r.Rate)
	} else {
		fmt.Fprintf(&b, "target       as fast as possible\n")
	}
	fmt.Fprintf(&b, "published    %d events in %s: %.1f events/s (%d failed, %d duplicates)\n",
		r.Published, r.PublishDuration.Round(time.Millisecond), r.PublishRate, r.PublishFailed, r.Duplicates)
	fmt.Fprintf(&b, "applied      %d recorded (%d applied, %d stale), %d dead-lettered", r.Applied, r.Outcomes.Applied, r.Outcomes.Stale, r.DeadLettered)
	if !r.Complete {
		fmt.Fprintf(&b, " — INCOMPLETE: %d of %d", r.Applied, r.Published)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "throughput   %.1f events/s applied (first to last applied_at, %s; drained %s after the last publish)\n",
		r.AppliedRate, r.ApplyWindow.Round(time.Millisecond), r.Drain.Round(time.Millisecond))
	fmt.Fprintf(&b, "latency      p50 %s  p95 %s  p99 %s  max %s\n", fmtLatency(r.P50), fmtLatency(r.P95), fmtLatency(r.P99), fmtLatency(r.Max))
	b.WriteString("             event time (stamped at publish) → applied_at, the moment the apply transaction\n")
	b.WriteString("             recorded the event; its River jobs are inserted in that same transaction, which then commits\n")
	for _, t := range r.ByType {
		fmt.Fprintf(&b, "  %-28s %7d  p50 %s  p99 %s  max %s\n", t.Type, t.Count, fmtLatency(t.P50), fmtLatency(t.P99), fmtLatency(t.Max))
	}
	if r.Notifications > 0 {
		fmt.Fprintf(&b, "webhooks     %d notifications received during the run\n", r.Notifications)
	}
	if len(r.Jobs) > 0 {
		b.WriteString("jobs queued  ")
		for i, q := range slices.Sorted(mapKeys(r.Jobs)) {
			if i > 0 {
				b.WriteString("; ")
			}
			states := r.Jobs[q]
			parts := make([]string, 0, len(states))
			for _, s := range slices.Sorted(mapKeys(states)) {
				parts = append(parts, fmt.Sprintf("%s %d", s, states[s]))
			}
			fmt.Fprintf(&b, "%s: %s", q, strings.Join(parts, ", "))
		}
		b.WriteString("\n")
	}
	if r.FirstError != "" {
		fmt.Fprintf(&b, "first error  %s\n", r.FirstError)
	}
	_, _ = io.WriteString(w, b.String())
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func (c EventsConfig) withDefaults() (EventsConfig, error) {
	if c.Rate < 0 {
		return c, fmt.Errorf("bench events: rate must not be negative, got %g", c.Rate)
	}
	if c.Duration == 0 {
		c.Duration = DefaultEventsDuration
	}
	if c.Duration < 0 {
		return c, fmt.Errorf("bench events: duration must be positive, got %s", c.Duration)
	}
	if c.Publishers <= 0 {
		c.Publishers = DefaultEventsPublishers
	}
	if c.InFlight <= 0 {
		c.InFlight = DefaultEventsInFlight
	}
	if c.Wait <= 0 {
		c.Wait = DefaultEventsWait
	}
	if c.OpenShifts <= 0 {
		c.OpenShifts = DefaultEventsOpenShifts
	}
	if c.Seed == 0 {
		c.Seed = time.Now().UnixNano()
	}
	if c.NATSURL == "" {
		c.NATSURL = DefaultNATSURL
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = DefaultDatabaseURL
	}
	return c, nil
}

// RunEvents runs the benchmark cfg describes: it reads the marketplace from
// the database, publishes the mix for cfg.Duration, waits (up to cfg.Wait)
// for every acknowledged event to be applied, and reports. It returns an
// error alongside the report when events were not all applied in time.
func RunEvents(ctx context.Context, cfg EventsConfig) (EventsReport, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return EventsReport{}, err
	}
	st, err := store.Open(ctx, cfg.DatabaseURL, store.Config{MaxConns: 2})
	if err != nil {
		return EventsReport{}, fmt.Errorf("bench events: %w", err)
	}
	defer st.Close()

	conns, jss, err := connectPublishers(cfg)
	if err != nil {
		return EventsReport{}, err
	}
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = jss[0].Stream(sctx, consumers.StreamMarketplace)
	cancel()
	if err != nil {
		return EventsReport{}, fmt.Errorf("bench events: stream %s: %w (is serve running against %s?)", consumers.StreamMarketplace, err, cfg.NATSURL)
	}
	dlqBefore := dlqCount(ctx, jss[0])

	// An earlier run's events still waiting to be applied would be applied
	// first and count against this run: wait for the consumer to catch up.
	backlog, waited := waitConsumerIdle(ctx, jss[0], cfg.Wait, cfg.Progress)

	now := time.Now()
	u, err := st.BenchUniverse(ctx, now, cfg.OpenShifts)
	if err != nil {
		return EventsReport{}, fmt.Errorf("bench events: %w", err)
	}
	gen, err := NewGenerator(u, GeneratorConfig{Seed: cfg.Seed, Now: now, Cooldown: cfg.Cooldown, Mix: cfg.Mix})
	if err != nil {
		return EventsReport{}, err
	}
	run := fmt.Sprintf("bench-%s%04x-", now.UTC().Format("060102150405"), rand.N(0x10000))
	rep := EventsReport{
		Run: run, Target: cfg.NATSURL, Publishers: cfg.Publishers, InFlight: cfg.InFlight,
		Rate: cfg.Rate, Seed: cfg.Seed, BacklogAtStart: backlog, BacklogWait: waited,
	}
	progress(cfg.Progress, "bench events: %d facilities, %d workers, %d documents, %d open shifts loaded; publishing %s",
		len(u.Facilities), len(u.Workers), len(u.DocumentIDs), len(u.OpenShifts), run)
	var received0 int64
	if cfg.Receiver != nil {
		received0 = cfg.Receiver.Stats(time.Time{}).Distinct
	}

	pub := publish(ctx, cfg, gen, jss, run)
	rep.PublishDuration = pub.duration
	rep.Published, rep.PublishFailed, rep.Duplicates = pub.acked, pub.failed, pub.duplicates
	if pub.duration > 0 {
		rep.PublishRate = float64(pub.acked) / pub.duration.Seconds()
	}
	if pub.firstErr != nil {
		rep.FirstError = pub.firstErr.Error()
	}
	progress(cfg.Progress, "bench events: published %d in %s (%.0f/s), waiting for them to be applied",
		pub.acked, pub.duration.Round(time.Millisecond), rep.PublishRate)

	// Wait for every acknowledged event to be recorded (or dead-lettered).
	deadline := time.Now().Add(cfg.Wait)
	lastReport := time.Now()
	for {
		n, err := st.BenchAppliedCount(ctx, run)
		if err != nil {
			return rep, fmt.Errorf("bench events: %w", err)
		}
		rep.Applied = n
		rep.DeadLettered = dlqCount(ctx, jss[0]) - dlqBefore
		if n+rep.DeadLettered >= pub.acked {
			rep.Complete = n >= pub.acked
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		if time.Since(lastReport) >= 5*time.Second {
			progress(cfg.Progress, "bench events: %d of %d applied", n, pub.acked)
			lastReport = time.Now()
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
	// Use a fresh context for the read-back, so an interrupted run still
	// reports what it did.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer rcancel()
	stats, err := st.BenchAppliedStats(rctx, run)
	if err != nil {
		return rep, fmt.Errorf("bench events: %w", err)
	}
	rep.Applied = stats.Rows
	rep.Outcomes = Outcomes{Applied: stats.Applied, Stale: stats.Stale}
	rep.ApplyWindow = stats.LastApplied.Sub(stats.FirstApplied)
	if rep.ApplyWindow > 0 {
		rep.AppliedRate = float64(stats.Rows) / rep.ApplyWindow.Seconds()
	}
	if !stats.LastApplied.IsZero() {
		rep.Drain = max(stats.LastApplied.Sub(pub.end), 0)
	}
	rep.P50, rep.P95, rep.P99, rep.Max = stats.Latency.P50, stats.Latency.P95, stats.Latency.P99, stats.Latency.Max
	for _, m := range ChurnMix { // every type the mixes draw
		for _, typ := range m.Types {
			if l, ok := stats.ByType[typ]; ok {
				rep.ByType = append(rep.ByType, TypeLatency{Type: typ, Count: l.Count, P50: l.P50, P99: l.P99, Max: l.Max})
			}
		}
	}
	if cfg.Receiver != nil {
		rep.Notifications = cfg.Receiver.Stats(time.Time{}).Distinct - received0
	}
	if jobs, err := st.BenchJobCounts(rctx); err == nil {
		rep.Jobs = jobs
	}

	switch {
	case ctx.Err() != nil:
		return rep, fmt.Errorf("bench events: interrupted: %w", ctx.Err())
	case pub.acked == 0:
		return rep, errors.New("bench events: no event was published")
	case !rep.Complete:
		return rep, fmt.Errorf("bench events: only %d of %d published events were applied within %s (%d dead-lettered)",
			rep.Applied, pub.acked, cfg.Wait, rep.DeadLettered)
	}
	return rep, nil
}

func progress(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}

func connectPublishers(cfg EventsConfig) ([]*nats.Conn, []jetstream.JetStream, error) {
	var (
		conns []*nats.Conn
		jss   []jetstream.JetStream
	)
	for i := range cfg.Publishers {
		nc, err := nats.Connect(cfg.NATSURL, append(slices.Clone(cfg.NATSOptions), nats.Name("shiftcast-bench-events-"+strconv.Itoa(i)))...)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, nil, fmt.Errorf("bench events: connect %s: %w", cfg.NATSURL, err)
		}
		js, err := jetstream.New(nc,
			jetstream.WithPublishAsyncMaxPending(cfg.InFlight+16),
			jetstream.WithPublishAsyncTimeout(30*time.Second))
		if err != nil {
			nc.Close()
			for _, c := range conns {
				c.Close()
			}
			return nil, nil, fmt.Errorf("bench events: jetstream: %w", err)
		}
		conns, jss = append(conns, nc), append(jss, js)
	}
	return conns, jss, nil
}

// waitConsumerIdle waits, up to limit, until shiftcast's durable consumer
// has nothing pending or unacknowledged, and returns what was still pending
// and how long it waited. A consumer it cannot read counts as idle.
func waitConsumerIdle(ctx context.Context, js jetstream.JetStream, limit time.Duration, w io.Writer) (int64, time.Duration) {
	start := time.Now()
	lastReport := start
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var pending int64
		if c, err := js.Consumer(cctx, consumers.StreamMarketplace, consumers.DurableName); err == nil {
			if info, err := c.Info(cctx); err == nil {
				pending = int64(info.NumPending) + int64(info.NumAckPending)
			}
		}
		cancel()
		if pending == 0 || time.Since(start) >= limit || ctx.Err() != nil {
			return pending, time.Since(start)
		}
		if time.Since(lastReport) >= 5*time.Second {
			progress(w, "bench events: waiting for %d earlier events to be applied first", pending)
			lastReport = time.Now()
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// dlqCount returns the dead-letter stream's message count, 0 when unknown.
func dlqCount(ctx context.Context, js jetstream.JetStream) int64 {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, consumers.StreamDLQ)
	if err != nil {
		return 0
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0
	}
	return int64(info.State.Msgs)
}

type draftMsg struct {
	seq   int64
	draft Draft
}

type publishResult struct {
	acked, failed, duplicates int64
	duration                  time.Duration
	end                       time.Time
	firstErr                  error
}

// publish runs the publish phase: the generator, paced by cfg.Rate, hands
// drafts to cfg.Publishers goroutines, which stamp id and time, encode and
// publish them asynchronously with at most cfg.InFlight unacknowledged
// each.
func publish(ctx context.Context, cfg EventsConfig, gen *Generator, jss []jetstream.JetStream, run string) publishResult {
	var (
		res      publishResult
		acked    atomic.Int64
		failed   atomic.Int64
		dups     atomic.Int64
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		failed.Add(1)
		errOnce.Do(func() { firstErr = err })
	}
	work := make(chan draftMsg, 4096)
	for _, js := range jss {
		sem := make(chan struct{}, cfg.InFlight)
		futures := make(chan jetstream.PubAckFuture, cfg.InFlight)
		wg.Add(2)
		go func() { // acknowledgements, in publish order
			defer wg.Done()
			for f := range futures {
				select {
				case ack := <-f.Ok():
					if ack.Duplicate {
						dups.Add(1)
					} else {
						acked.Add(1)
					}
				case err := <-f.Err():
					fail(err)
				}
				<-sem
			}
		}()
		go func() {
			defer wg.Done()
			defer close(futures)
			for d := range work {
				id := run + strconv.FormatInt(d.seq, 10)
				sem <- struct{}{}
				raw, err := EncodeEvent(d.draft, id, EventsSource, time.Now())
				if err != nil {
					fail(err)
					<-sem
					continue
				}
				msg := &nats.Msg{Subject: domain.Subject(d.draft.Type), Data: raw, Header: nats.Header{jetstream.MsgIDHeader: []string{id}}}
				f, err := js.PublishMsgAsync(msg, jetstream.WithStallWait(10*time.Second))
				if err != nil {
					fail(fmt.Errorf("publish %s: %w", id, err))
					<-sem
					continue
				}
				futures <- f
			}
		}()
	}

	start := time.Now()
	end := start.Add(cfg.Duration)
	var seq int64
	emit := func(n int64) bool {
		for range n {
			if cfg.MaxEvents > 0 && seq >= cfg.MaxEvents {
				return false
			}
			seq++
			select {
			case work <- draftMsg{seq: seq, draft: gen.Next()}:
			case <-ctx.Done():
				return false
			}
		}
		return true
	}
	if cfg.Rate > 0 {
		tick := time.NewTicker(2 * time.Millisecond)
	pace:
		for {
			now := time.Now()
			if !now.Before(end) || ctx.Err() != nil {
				break
			}
			due := int64(cfg.Rate * now.Sub(start).Seconds())
			if !emit(due - seq) {
				break
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				break pace
			}
		}
		tick.Stop()
	} else {
		for time.Now().Before(end) && ctx.Err() == nil {
			if !emit(64) {
				break
			}
		}
	}
	close(work)
	wg.Wait() // every publish acknowledged (or failed)
	res.end = time.Now()
	res.duration = res.end.Sub(start)
	res.acked, res.failed, res.duplicates, res.firstErr = acked.Load(), failed.Load(), dups.Load(), firstErr
	return res
}
