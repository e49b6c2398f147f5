// Package publishers is shiftcast's outbound edge.
//
// EventPublisher is the typed publisher the marketplace's services import to
// emit domain events into the MARKETPLACE stream: it validates every event
// the way the consumer decodes it, so a producer using it can never emit an
// event the consumer would dead-letter, and it sets Nats-Msg-Id so retries
// are deduplicated by JetStream. Its raw methods exist for replaying recorded
// messages byte for byte, malformed ones included.
//
// Webhook (Standard Webhooks) and NATSNotifier deliver notifications to
// workers; Sign and Verify are the receiving side's half of the webhook
// signature scheme.
package publishers
