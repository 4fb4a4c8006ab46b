package notify

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segments-dev/segments/internal/testenv"
)

// fixedWorklist answers the actionable alerts from a list.
type fixedWorklist struct{ alerts []Alert }

func (w fixedWorklist) ActionableAlerts(context.Context) ([]Alert, error) {
	return append([]Alert(nil), w.alerts...), nil
}

type digestBundle struct {
	clock     *testenv.Clock
	mine, all *dedupingReceiver
	newOne    func() *Notifier
	day       time.Time
}

// setupDigests: 张三's alerts go to channels mine and all, 李四's to all;
// the rules' zone is Asia/Shanghai and the clock stands at 08:59 there.
func setupDigests(t *testing.T) *digestBundle {
	t.Helper()
	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	b := &digestBundle{clock: testenv.NewClock(time.Time{}), mine: startReceiver(t, http.StatusOK), all: startReceiver(t, http.StatusOK)}
	b.day = time.Date(2026, 12, 3, 0, 0, 0, 0, shanghai)
	b.clock.Set(b.day.Add(8*time.Hour + 59*time.Minute))
	routes := fmt.Sprintf(`time_zone: Asia/Shanghai
channels:
  mine: {type: webhook, url: %q, secret_env: HOOK}
  all: {type: webhook, url: %q, secret_env: HOOK}
routes:
  - match: {owner: [张三]}
    channels: [mine]
  - channels: [all]
`, b.mine.srv.URL, b.all.srv.URL)
	cfg, err := ParseConfig("notify.yaml", []byte(routes), testVocabulary, mapEnv(map[string]string{"HOOK": "k"}))
	if err != nil {
		t.Fatal(err)
	}
	overdue, today, later, open := newAlert("activity_dropped"), newAlert("activity_dropped"), newAlert("churn_risk"), newAlert("churn_risk")
	past, thisEvening, nextWeek := b.day.Add(-time.Hour), b.day.Add(20*time.Hour), b.day.AddDate(0, 0, 7)
	overdue.DueAt, today.DueAt, later.DueAt = &past, &thisEvening, &nextWeek
	open.Owner, open.Customer = "李四", "C002"
	store := NewStore(testenv.Postgres(t).Pool)
	worklist := fixedWorklist{alerts: []Alert{later, open, today, overdue}}
	b.newOne = func() *Notifier {
		return New(Options{Config: cfg, Store: store, Worklist: worklist, Logger: testenv.Logger(t), Now: b.clock.Now})
	}
	return b
}

func dailyKey(owner, channel string, day time.Time) string {
	return "daily:" + owner + ":" + channel + ":" + day.Format(time.DateOnly)
}

func TestTheDailyDigestGoesOutOncePerOwnerAndChannelAtNineInTheRulesTimeZoneWhateverTheNumberOfNotifiers(t *testing.T) {
	b := setupDigests(t)
	ctx := context.Background()
	first, second := b.newOne(), b.newOne()
	if err := first.SendDigests(ctx); err != nil {
		t.Fatal(err)
	}
	if len(b.mine.keys())+len(b.all.keys()) != 0 {
		t.Fatalf("digests before 09:00: %v %v", b.mine.keys(), b.all.keys())
	}
	b.clock.Set(b.day.Add(9 * time.Hour))
	var wg sync.WaitGroup
	for _, n := range []*Notifier{first, second, first, second} {
		wg.Go(func() {
			if err := n.SendDigests(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// A notifier started later the same day finds them sent.
	b.clock.Set(b.day.Add(15 * time.Hour))
	if err := b.newOne().SendDigests(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{dailyKey("张三", "all", b.day): 1, dailyKey("李四", "all", b.day): 1}
	if got := b.all.keys(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("channel all received %v, want %v", got, want)
	}
	if got := b.mine.keys(); len(got) != 1 || got[dailyKey("张三", "mine", b.day)] != 1 {
		t.Fatalf("channel mine received %v, want only 张三's digest once", got)
	}
	body := b.mine.body(dailyKey("张三", "mine", b.day))
	overdueAt, todayAt, openAt := strings.Index(body, `\n已逾期\n`), strings.Index(body, `\n今日到期\n`), strings.Index(body, `\n待处理\n`)
	if !strings.Contains(body, "逾期 1 条，今日到期 1 条，待处理 1 条") || overdueAt < 0 || overdueAt > todayAt || todayAt > openAt {
		t.Fatalf("张三's digest does not list overdue, due today, then open:\n%s", body)
	}
	if strings.Contains(body, "C002") {
		t.Fatalf("张三's digest lists 李四's customer:\n%s", body)
	}
	// The next day has its own digest.
	next := b.day.AddDate(0, 0, 1)
	b.clock.Set(next.Add(9*time.Hour + time.Minute))
	if err := second.SendDigests(ctx); err != nil {
		t.Fatal(err)
	}
	if got := b.mine.keys()[dailyKey("张三", "mine", next)]; got != 1 {
		t.Fatalf("next day's digest received %d times, want 1", got)
	}
}

func TestADailyDigestThatFailsIsSentAgainByTheNextRound(t *testing.T) {
	b := setupDigests(t)
	ctx := context.Background()
	b.clock.Set(b.day.Add(9 * time.Hour))
	b.all.setStatus(http.StatusServiceUnavailable)
	n := b.newOne()
	if err := n.SendDigests(ctx); err == nil {
		t.Fatal("a digest refused by its receiver reported no error")
	}
	b.all.setStatus(http.StatusOK)
	if err := n.SendDigests(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.SendDigests(ctx); err != nil {
		t.Fatal(err)
	}
	if got := b.all.keys()[dailyKey("李四", "all", b.day)]; got != 2 { // refused once, then accepted
		t.Fatalf("李四's digest reached the receiver %d times, want 2 (refused, then sent)", got)
	}
	if got := b.mine.keys()[dailyKey("张三", "mine", b.day)]; got != 1 {
		t.Fatalf("a channel that accepted at once received %d digests, want 1", got)
	}
}
