package notify

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/segments-dev/segments/internal/testenv"
)

// fixedStatuses answers alert statuses from a map (the read model's part).
type fixedStatuses struct {
	mu sync.Mutex
	m  map[uuid.UUID]string
}

func (f *fixedStatuses) AlertStatus(_ context.Context, id uuid.UUID) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m[id], nil
}

func TestRemindersComeBeforeTheDueTimeOnlyForAlertsStillOpenAndEscalationsGoToTheManager(t *testing.T) {
	r := startReceiver(t, http.StatusOK)
	routes := fmt.Sprintf("reminder_before: 1h\nescalation: {张三: 王经理, 王经理: 李总}\nchannels:\n  hook: {type: webhook, url: %q, secret_env: HOOK}\nroutes:\n  - channels: [hook]\n", r.srv.URL)
	statuses := &fixedStatuses{m: map[uuid.UUID]string{}}
	b, _ := setupNotifier(t, routes, map[string]string{"HOOK": "k"}, Options{Statuses: statuses})
	due := time.Now().Add(time.Hour + time.Second) // reminder one second from now
	open, resolved := newAlert("activity_dropped"), newAlert("activity_dropped")
	open.DueAt, resolved.DueAt = &due, &due
	statuses.m[open.ID], statuses.m[resolved.ID] = "open", "resolved"
	esc := newAlert("followup_overdue")
	esc.Escalates = &open.ID
	for _, a := range []Alert{open, resolved, esc} {
		publishAlert(t, b.js, a, nil)
	}
	ctx := context.Background()
	status := func(id uuid.UUID, purpose string) string {
		ds, _ := b.store.AlertDeliveries(ctx, id)
		for _, d := range ds {
			if d.Purpose == purpose {
				return d.Status
			}
		}
		return ""
	}
	testenv.Eventually(t, 20*time.Second, "reminders settled", func() bool {
		return status(open.ID, PurposeReminder) == StatusDelivered && status(resolved.ID, PurposeReminder) == StatusSkipped
	})
	seen := r.keys()
	if seen[open.ID.String()+":hook:reminder"] != 1 || seen[resolved.ID.String()+":hook:reminder"] != 0 {
		t.Fatalf("reminders received %v", seen)
	}
	if status(esc.ID, PurposeEscalation) != StatusDelivered || seen[esc.ID.String()+":hook:escalation"] != 1 {
		t.Fatalf("escalation to the manager: %q, received %v", status(esc.ID, PurposeEscalation), seen)
	}
	// The second level waits 24 h after the escalation.
	if s := status(esc.ID, PurposeEscalation2); s != StatusPending {
		t.Fatalf("second escalation %q, want pending", s)
	}
}
