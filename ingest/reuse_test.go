package ingest_test

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/natsbus"
)

func TestReusedMessageIDWithOtherContentIsRejectedNotDropped(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start(h.store)
	first := body(t, inquiry("KH-REUSE", "交期"))
	h.publish("ingest.crm", first, jetstream.WithMsgID("crm-reused"))
	h.awaitEvents(1)

	// The same Nats-Msg-Id with the same content is a true resend: recorded
	// once, nothing rejected. With other content it is a client bug: it
	// reaches rejected.<subject> with event_id_reused.
	publishAgain := func(b []byte) uint64 {
		var seq uint64
		testenv.Eventually(t, within, "JetStream takes Nats-Msg-Id crm-reused again", func() bool {
			ack, err := h.js.Publish(ctxT(t), "ingest.crm", b, jetstream.WithMsgID("crm-reused"))
			if err != nil {
				t.Fatal(err)
			}
			seq = ack.Sequence
			return !ack.Duplicate
		})
		return seq
	}
	publishAgain(first)
	h.awaitIdle()
	if n := h.rejectedCount(); n != 0 {
		t.Fatalf("a true resend was rejected (%d rejections)", n)
	}
	other := body(t, inquiry("KH-REUSE", "价格"))
	seq := publishAgain(other)
	// Awaited by its rejection: right after a publish the consumer may not
	// count the message as pending yet.
	var m *jetstream.RawStreamMsg
	testenv.Eventually(t, within, "the message reusing crm-reused with other content is rejected", func() bool {
		m = h.rejected()[seq]
		return m != nil
	})
	if code := m.Header.Get(natsbus.HeaderErrorCode); code != "event_id_reused" {
		t.Errorf("%s = %q, want event_id_reused (%s)", natsbus.HeaderErrorCode, code, m.Header.Get(natsbus.HeaderErrorMsg))
	}
	if m.Subject != natsbus.RejectedPrefix+"ingest.crm" {
		t.Errorf("rejected on %s", m.Subject)
	}
	// The true resend came before it on the same customer's shard: it was
	// handled first, and not rejected.
	if all := h.rejected(); len(all) != 1 {
		t.Errorf("%d rejections, want only the reused id's", len(all))
	}
	if e := h.readStream("KH-REUSE"); len(e) != 1 || e[0].EventID != derivedByMsgID("crm-reused", 0) {
		t.Errorf("KH-REUSE: %d events, want the first only", len(e))
	}
}
