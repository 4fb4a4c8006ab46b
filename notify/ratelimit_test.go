package notify

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/segments-dev/segments/internal/testenv"
)

func TestARobotOverItsRateGetsDigestMessagesAndStaysUnderTwentyAMinute(t *testing.T) {
	r := startRobot(t, dingTalk("SECabc", nil))
	routes := "channels:\n  ding: {type: dingtalk, url_env: DING_URL, secret_env: DING_SECRET, rate_per_minute: 20}\nroutes:\n  - channels: [ding]\n"
	b, _ := setupNotifier(t, routes, map[string]string{"DING_URL": r.srv.URL + "/robot/send?access_token=tok", "DING_SECRET": "SECabc"}, Options{})
	const n = 300
	var alerts []Alert
	for range n {
		a := newAlert("activity_dropped")
		alerts = append(alerts, a)
		publishAlert(t, b.js, a, nil)
	}
	start := time.Now()
	ctx := context.Background()
	delivered := func() int {
		count := 0
		for _, a := range alerts {
			ds, err := b.store.AlertDeliveries(ctx, a.ID)
			if err == nil && len(ds) == 1 && ds[0].Status == StatusDelivered {
				count++
			}
		}
		return count
	}
	testenv.Eventually(t, 50*time.Second, "every alert delivered", func() bool { return delivered() == n })
	msgs := r.received()
	if len(msgs) > 20 {
		t.Fatalf("%d robot messages within %v (limit 20 a minute)", len(msgs), time.Since(start))
	}
	digests := 0
	for _, m := range msgs {
		if strings.Contains(m["markdown"].(map[string]any)["title"].(string), "预警汇总") {
			digests++
		}
	}
	if digests == 0 {
		t.Fatalf("no digest among %d messages for %d alerts", len(msgs), n)
	}
	t.Logf("%d alerts in %d messages (%d digests) within %v", n, len(msgs), digests, time.Since(start))
}
