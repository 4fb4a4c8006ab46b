// Package notify delivers alerts to people (SPEC §8 "Delivery"): the
// notifier role reads SEGMENTS_ALERTS with a durable JetStream consumer,
// selects channels by the routes of a YAML file (SEGMENTS_NOTIFY) and sends
// each alert to each selected channel: a signed generic webhook, DingTalk,
// WeCom and Feishu group robots, Slack incoming webhooks and email.
//
// Delivery is at least once per (alert, channel, purpose): the consumer
// records one row per delivery in alert_deliveries and acknowledges the
// message only after that commit, so a crash loses nothing; the dispatcher
// then claims due rows with a lease, sends, and records every attempt. A
// crash between a send and its record repeats the send once the lease has
// expired, with the same Idempotency-Key, so a receiver that dedupes by the
// key sees each alert once per channel. Failures are retried with
// exponential backoff and jitter (capped, so a receiver back from an outage
// gets everything within a minute) for 24 hours, then dead-lettered; every
// channel has its own queue, so a dead one never blocks the others.
package notify
