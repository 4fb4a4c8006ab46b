package ingest_test

import (
	"testing"

	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/natsbus"
)

// TestRecommendationScoresComeInOverNATS: a 0–10 recommendation score (SPEC
// §11, NPS) is recorded; one out of range is rejected with the field named.
func TestRecommendationScoresComeInOverNATS(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.start(h.store)
	h.publish("ingest.survey", body(t, envelope("RecommendationRated", "KH-NPS", obj{"score": 0, "feedback": "不会推荐"})))
	bad := h.publish("ingest.survey", body(t, envelope("RecommendationRated", "KH-NPS", obj{"score": 11})))
	h.awaitEvents(1)
	testenv.Eventually(t, within, "the score 11 is rejected", func() bool { return h.rejected()[bad] != nil })
	m := h.rejected()[bad]
	if m.Header.Get(natsbus.HeaderErrorField) != "data.score" || m.Header.Get(natsbus.HeaderErrorCode) != "out_of_range" {
		t.Errorf("rejected with %s %s", m.Header.Get(natsbus.HeaderErrorField), m.Header.Get(natsbus.HeaderErrorCode))
	}
	if e := h.readStream("KH-NPS"); len(e) != 1 || e[0].Type != "RecommendationRated" {
		t.Errorf("recorded %+v", e)
	}
}
