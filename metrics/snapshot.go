package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Snapshot is the running totals of the pipeline's counters, for the
// operator page, which derives throughput from two snapshots.
type Snapshot struct {
	// EventsHandled counts marketplace events by outcome (applied,
	// duplicate, stale, retry, dead_lettered), all types together.
	EventsHandled map[string]uint64 `json:"events_handled"`
	// Deliveries counts delivery attempts by outcome (delivered, failed),
	// all channels together.
	Deliveries         map[string]uint64 `json:"deliveries"`
	NotificationsBuilt uint64            `json:"notifications_built"`
	AnnouncedShifts    uint64            `json:"announced_shifts"`
}

// Snapshot reads the counters' current totals. A nil *Metrics reads zeros.
func (m *Metrics) Snapshot() Snapshot {
	s := Snapshot{
		EventsHandled: map[string]uint64{"applied": 0, "duplicate": 0, "stale": 0, "retry": 0, "dead_lettered": 0},
		Deliveries:    map[string]uint64{"delivered": 0, "failed": 0},
	}
	if m == nil {
		return s
	}
	sumBy(m.eventsApplied, "outcome", s.EventsHandled)
	sumBy(m.deliveries, "outcome", s.Deliveries)
	s.NotificationsBuilt = total(m.notifications)
	s.AnnouncedShifts = total(m.announcedShifts)
	return s
}

// sumBy adds c's counters into out, keyed by the value of label.
func sumBy(c prometheus.Collector, label string, out map[string]uint64) {
	each(c, func(pb *dto.Metric) {
		for _, lp := range pb.GetLabel() {
			if lp.GetName() == label {
				out[lp.GetValue()] += uint64(pb.GetCounter().GetValue())
			}
		}
	})
}

func total(c prometheus.Collector) uint64 {
	var n uint64
	each(c, func(pb *dto.Metric) { n += uint64(pb.GetCounter().GetValue()) })
	return n
}

func each(c prometheus.Collector, f func(*dto.Metric)) {
	ch := make(chan prometheus.Metric, 16)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	for m := range ch {
		var pb dto.Metric
		if m.Write(&pb) == nil {
			f(&pb)
		}
	}
}
