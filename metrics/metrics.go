// Package metrics defines shiftcast's Prometheus metrics on a registry the
// composition root owns (no global registry), and hands components small
// recording methods so they never import the Prometheus client themselves.
// A nil *Metrics records nothing, which keeps tests and tools free of it.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the service's metrics.
type Metrics struct {
	reg             *prometheus.Registry
	eventsApplied   *prometheus.CounterVec
	applySeconds    *prometheus.HistogramVec
	announcedShifts prometheus.Counter
	notifications   prometheus.Counter
	deliveries      *prometheus.CounterVec
	querySeconds    *prometheus.HistogramVec
}

// New registers the metrics, plus Go runtime and process collectors, on a
// fresh registry.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		eventsApplied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shiftcast_events_applied_total",
			Help: "Marketplace events handled, by type and outcome (applied, duplicate, stale, retry, dead_lettered).",
		}, []string{"type", "outcome"}),
		applySeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shiftcast_event_apply_seconds",
			Help:    "Time to apply one event: decode, transaction with its jobs, commit, ack.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"type"}),
		announcedShifts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shiftcast_announced_shifts_total",
			Help: "Shifts announced to workers (each (worker, shift) availability counted once).",
		}),
		notifications: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "shiftcast_notifications_built_total",
			Help: "Digest notifications built.",
		}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shiftcast_deliveries_total",
			Help: "Notification delivery attempts, by channel (webhook, nats) and outcome (delivered, failed).",
		}, []string{"channel", "outcome"}),
		querySeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shiftcast_query_seconds",
			Help:    "Eligibility query latency, by transport (http, nats), endpoint and status.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1},
		}, []string{"transport", "endpoint", "status"}),
	}
	reg.MustRegister(m.eventsApplied, m.applySeconds, m.announcedShifts, m.notifications, m.deliveries, m.querySeconds,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry returns the registry, for components that add collectors of
// their own (consumer lag, job counts).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// EventHandled records one event's outcome and handling time.
func (m *Metrics) EventHandled(typ, outcome string, elapsed time.Duration) {
	if m == nil {
		return
	}
	m.eventsApplied.WithLabelValues(typ, outcome).Inc()
	m.applySeconds.WithLabelValues(typ).Observe(elapsed.Seconds())
}

// NotificationBuilt records a digest listing count new shifts.
func (m *Metrics) NotificationBuilt(count int) {
	if m == nil {
		return
	}
	m.notifications.Inc()
	m.announcedShifts.Add(float64(count))
}

// Delivery records one channel's delivery attempt.
func (m *Metrics) Delivery(channel string, ok bool) {
	if m == nil {
		return
	}
	outcome := "delivered"
	if !ok {
		outcome = "failed"
	}
	m.deliveries.WithLabelValues(channel, outcome).Inc()
}

// Query records one eligibility query.
func (m *Metrics) Query(transport, endpoint string, status int, elapsed time.Duration) {
	if m == nil {
		return
	}
	m.querySeconds.WithLabelValues(transport, endpoint, statusText(status)).Observe(elapsed.Seconds())
}

func statusText(status int) string {
	switch status {
	case 200:
		return "200"
	case 400:
		return "400"
	case 404:
		return "404"
	case 503:
		return "503"
	}
	return "500"
}

// GaugeFunc registers a gauge whose value is read at scrape time.
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	if m == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}
