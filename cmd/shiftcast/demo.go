package main

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/shiftcast/shiftcast/bench"
	"github.com/shiftcast/shiftcast/domain"
	"github.com/shiftcast/shiftcast/publishers"
	"github.com/shiftcast/shiftcast/store"
)

// demoSource is the CloudEvents source of the local stack's demo events.
const demoSource = "shiftcast-dev-demo"

// runDemo publishes a realistic trickle of marketplace events at rate per
// second until ctx ends, so the local stack's pipeline visibly works. It
// draws from the same generator as `bench events`.
func runDemo(ctx context.Context, st *store.Store, nc *nats.Conn, rate float64, log *zap.Logger) {
	js, err := jetstream.New(nc)
	if err != nil {
		log.Error("demo publisher: jetstream", zap.Error(err))
		return
	}
	u, err := st.BenchUniverse(ctx, time.Now(), 2000)
	if err != nil {
		log.Error("demo publisher: read the dataset", zap.Error(err))
		return
	}
	gen, err := bench.NewGenerator(u, bench.GeneratorConfig{Seed: time.Now().UnixNano(), Now: time.Now()})
	if err != nil {
		log.Error("demo publisher", zap.Error(err))
		return
	}
	pub := publishers.NewEventPublisher(js, publishers.EventPublisherOptions{Source: demoSource, Logger: log})
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		d := gen.Next()
		ev, err := domain.NewEvent(uuid.NewString(), demoSource, d.Type, time.Now(), d.Data)
		if err != nil {
			log.Warn("demo publisher: generated an invalid event", zap.String("type", d.Type), zap.Error(err))
			continue
		}
		if _, err := pub.Publish(ctx, ev); err != nil && ctx.Err() == nil {
			log.Warn("demo publisher: publish", zap.String("type", d.Type), zap.Error(err))
		}
	}
}
