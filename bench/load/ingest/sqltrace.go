package ingestload

import (
	"fmt"
	"strings"
	"time"

	"github.com/segments-dev/segments/internal/loadkit"
)

// sqlReport lists the statements the service's pool timed (wall time of
// its round trips; loadkit.StatementTimer) by total time over a window of
// secs seconds, per group-commit transaction when groups > 0.
func sqlReport(stats []loadkit.StatementStat, secs float64, groups int64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| statement (batches by first statement) | calls/s | mean | share of wall time |\n|---|---|---|---|\n")
	for _, r := range stats {
		if r.Total < time.Duration(secs*float64(time.Millisecond)) { // under 0.1% of the window
			continue
		}
		fmt.Fprintf(&b, "| `%s` | %.0f | %.2f ms | %.0f%% |\n", strings.ReplaceAll(r.Name, "|", "\\|"),
			float64(r.Calls)/secs, float64(r.Total)/float64(r.Calls)/float64(time.Millisecond), 100*r.Total.Seconds()/secs)
	}
	if groups > 0 {
		fmt.Fprintf(&b, "\n(%d group-commit transactions in the window)\n", groups)
	}
	return b.String()
}
