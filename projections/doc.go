// Package projections will own the read models built from the event log:
// customer state and labels (SPEC §4), alerts (§5), their workers and the
// boundary scheduler. It consumes SEGMENTS_EVENTS and reads each customer's
// stream from the event store, so redelivery and reordering cannot corrupt
// state. Nothing lives here yet: the event store and its publication came
// first.
package projections
