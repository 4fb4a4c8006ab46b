package projectorload

import (
	"fmt"
	"time"

	"github.com/segments-dev/segments/internal/loadkit"
)

// stmtLines stops timer and returns its top statements by total time, as
// lines, with their share of wall.
func stmtLines(timer *loadkit.StatementTimer, wall time.Duration, top int) []string {
	timer.Stop()
	var out []string
	for i, st := range timer.Stats() {
		if i == top {
			break
		}
		out = append(out, fmt.Sprintf("%5.1f%% %8.1f s %7d× %s", 100*st.Total.Seconds()/wall.Seconds(), st.Total.Seconds(), st.Calls, st.Name))
	}
	return out
}
