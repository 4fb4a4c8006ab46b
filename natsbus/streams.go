// Package natsbus holds everything NATS: the embedded JetStream server, the
// connection, the stream definitions, and the atomic batch publisher that
// carries the event log onto SEGMENTS_EVENTS.
package natsbus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream names and subjects of SPEC §3 and §5.
const (
	StreamIngest   = "SEGMENTS_INGEST"
	StreamRejected = "SEGMENTS_REJECTED"
	StreamEvents   = "SEGMENTS_EVENTS"
	StreamChanges  = "SEGMENTS_CHANGES"
	StreamAlerts   = "SEGMENTS_ALERTS"

	SubjectIngest       = "ingest.>"
	SubjectRejected     = "rejected.>"
	SubjectEvents       = "customers.events.>"
	SubjectChanges      = "segments.changed.>"
	SubjectAlerts       = "alerts.>"
	SubjectEventsPrefix = "customers.events."
	SubjectIngestPrefix = "ingest."
	RejectedPrefix      = "rejected."
)

// Headers of the messages we publish.
const (
	HeaderPosition   = "Segments-Position"
	HeaderCustomer   = "Segments-Customer"
	HeaderVersion    = "Segments-Version"
	HeaderEventType  = "Segments-Event-Type"
	HeaderErrorCode  = "Segments-Error-Code"
	HeaderErrorField = "Segments-Error-Field"
	HeaderErrorMsg   = "Segments-Error-Message"
	HeaderOrigSubj   = "Segments-Original-Subject"
	HeaderOrigSeq    = "Segments-Original-Sequence"
)

// IngestDuplicateWindow is SEGMENTS_INGEST's dedupe window, JetStream's minimum.
const IngestDuplicateWindow = 100 * time.Millisecond

// StreamConfigs returns the JetStream streams the service needs. All use file
// storage; SEGMENTS_EVENTS allows atomic batch publish, which is how the
// publisher gets ordered, gap-free publication with one fsync per batch.
func StreamConfigs() []jetstream.StreamConfig {
	return []jetstream.StreamConfig{
		{
			Name:        StreamIngest,
			Description: "Customer events sent by upstream systems, awaiting validation and recording.",
			Subjects:    []string{SubjectIngest},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      7 * 24 * time.Hour,
			// The shortest window JetStream allows: a message that reuses a
			// Nats-Msg-Id must reach the worker, which records a true resend
			// once (event ids derive from the Nats-Msg-Id, the log refuses a
			// second copy) and rejects one with other content
			// (event_id_reused) instead of JetStream dropping it unseen.
			Duplicates: IngestDuplicateWindow,
		},
		{
			Name:        StreamRejected,
			Description: "Ingest messages that failed validation, with the error in headers.",
			Subjects:    []string{SubjectRejected},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			// Rejected messages carry upstream plaintext (personal data
			// included): keep them long enough to correct, not forever.
			MaxAge:     30 * 24 * time.Hour,
			Duplicates: 2 * time.Minute,
		},
		{
			Name:               StreamEvents,
			Description:        "Every recorded event, in log position order.",
			Subjects:           []string{SubjectEvents},
			Storage:            jetstream.FileStorage,
			Retention:          jetstream.LimitsPolicy,
			Duplicates:         PublishedDuplicates,
			AllowAtomicPublish: true,
		},
		{
			Name:               StreamChanges,
			Description:        "Every label change (segments.changed.<label>), published from the projector's outbox.",
			Subjects:           []string{SubjectChanges},
			Storage:            jetstream.FileStorage,
			Retention:          jetstream.LimitsPolicy,
			Duplicates:         PublishedDuplicates,
			AllowAtomicPublish: true,
		},
		{
			Name:               StreamAlerts,
			Description:        "Every alert as raised (alerts.<kind>), including followup_overdue escalations.",
			Subjects:           []string{SubjectAlerts},
			Storage:            jetstream.FileStorage,
			Retention:          jetstream.LimitsPolicy,
			Duplicates:         PublishedDuplicates,
			AllowAtomicPublish: true,
		},
	}
}

// PublishedDuplicates is the Nats-Msg-Id window of the streams that only our
// own publishers write (events, label changes, alerts). Their messages still
// carry deterministic ids, for consumers, but exactly-once publication does
// not come from this window: every atomic batch must land directly after the
// sequence its publisher last saw, and a publisher that lost track re-reads
// the stream's tail (natsbus.BatchPublisher). The server keeps every id of
// the window in memory: at 5,000 events/s and as many label changes, two
// minutes were about 100 MB of small objects that the Go collector of an
// embedded server scans at every cycle (peak heap of the 5,000 events/s load
// 779 → 547 MiB).
const PublishedDuplicates = 10 * time.Second

// ErrAtomicPublishUnsupported: the NATS server is older than 2.12 and cannot
// do atomic batch publish, which ordered, exactly-once publication relies on.
var ErrAtomicPublishUnsupported = errors.New("NATS server does not support atomic batch publish (needs nats-server 2.12 or newer)")

// StreamsPresent reports whether every stream exists (for /readyz).
func StreamsPresent(ctx context.Context, js jetstream.JetStream) error {
	configs := StreamConfigs()
	for i := range configs {
		if _, err := js.Stream(ctx, configs[i].Name); err != nil {
			return fmt.Errorf("stream %s: %w", configs[i].Name, err)
		}
	}
	return nil
}
