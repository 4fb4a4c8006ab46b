package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segments-dev/segments/internal/testenv"
	"github.com/segments-dev/segments/projections"
)

// TestTheDemoMailsItsActivityDropAlertWithoutAnySetup runs `serve --demo`
// without SEGMENTS_NOTIFY: the demo starts its SMTP catcher, routes alerts
// to it, and the activity-drop alert arrives there by email (through the
// real notifier and go-mail), in Chinese, naming the customer masked, the
// change and reason, the due time, the playbook and the workbench link; it
// is printed for the person watching, and the alert lists it as delivered.
func TestTheDemoMailsItsActivityDropAlertWithoutAnySetup(t *testing.T) {
	t.Parallel()
	db := testenv.Postgres(t)
	dir := t.TempDir()
	cfg, err := loadServeConfig(serveFlagSet(), []string{"--data-dir", dir, "--http-addr", "127.0.0.1:0", "--demo"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.DatabaseURL, cfg.EmbeddedNATSAddr, cfg.NotifyFile = db.URL, "127.0.0.1:0", ""
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := start(ctx, &cfg, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	printed := &lockedBuffer{}
	a.demoPrint, a.demoAlertAfter = printed, 8*time.Second
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()

	var drop demoMail
	testenv.Eventually(t, 90*time.Second, "the activity-drop alert in the demo mailbox", func() bool {
		box := a.mailbox.Load()
		if box == nil {
			return false
		}
		mails := box.received()
		i := slices.IndexFunc(mails, func(m demoMail) bool {
			return strings.Contains(m.Subject, "活跃度下降") && strings.Contains(m.Subject, "KH202405010005")
		})
		if i >= 0 {
			drop = mails[i]
		}
		return i >= 0
	})
	base := "http://" + a.Listening()
	if drop.Subject != "【客户预警】活跃度下降 · KH202405010005 成都天府食品有限公司" || !slices.Equal(drop.To, []string{"success-team@segments.local"}) {
		t.Fatalf("mail %q to %v", drop.Subject, drop.To)
	}
	for _, want := range []string{
		"变化：medium → low", "原因：活跃度由中活跃降为低活跃：近3个月订单 0 < 1", "截止时间：", "负责人：周经理",
		"处理建议：24小时内由负责人跟进原因并调整策略", "客户页面：" + base + "/#/customers/KH202405010005",
	} {
		if !strings.Contains(drop.Text, want) {
			t.Errorf("the mail lacks %q:\n%s", want, drop.Text)
		}
	}
	// The customer's contact person and phone are personal data: never in a message.
	for _, leak := range []string{"刘洋", "13600002222", "liu.yang"} {
		if strings.Contains(drop.Text, leak) {
			t.Errorf("the mail discloses %q", leak)
		}
	}
	if !strings.Contains(printed.String(), drop.Subject) || !strings.Contains(printed.String(), "处理建议") {
		t.Errorf("the mail was not printed for the person watching:\n%s", printed.String())
	}
	if raw, err := os.ReadFile(drop.File); err != nil || !strings.Contains(string(raw), "X-Segments-Idempotency-Key") {
		t.Errorf("the .eml file %s: %v", drop.File, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "demo-mail", "notify-demo.yaml")); err != nil {
		t.Errorf("the demo routes file is not written: %v", err)
	}
	id := assertDelivered(t, base, "KH202405010005", "activity_dropped")

	// The README's loop: acknowledge, follow up (resolves), and every step
	// is in the customer's replay, the message included.
	postJSON(t, base+"/v1/alerts/"+id+"/ack", `{}`)
	postJSON(t, base+"/v1/alerts/"+id+"/resolve", `{"note":"电话回访：客户下季度追加订单","channel":"phone"}`)
	var out strings.Builder
	testenv.Eventually(t, 10*time.Second, "the resolution in the replay", func() bool {
		out.Reset()
		if err := writeReplay(ctx, &out, a.Store, projections.NewQueries(a.Projector, a.Store), "KH202405010005", time.Time{}, "text", a.cfg.Location); err != nil {
			t.Fatal(err)
		}
		return strings.Contains(out.String(), "resolved (followed_up)")
	})
	var order []int
	for _, want := range []string{
		"alert   activity_dropped " + id + " raised (medium → low)",
		"message activity_dropped " + id + " alert delivered to channel mailbox",
		`AlertAcknowledged (occurred`, `v5 FollowUpLogged`, `"summary":"电话回访：客户下季度追加订单"`,
		"alert   activity_dropped " + id + " resolved (followed_up)",
	} {
		order = append(order, strings.Index(out.String(), want))
		if order[len(order)-1] < 0 {
			t.Errorf("the replay lacks %q:\n%s", want, out.String())
		}
	}
	if !slices.IsSorted(order) {
		t.Errorf("the replay is out of order %v:\n%s", order, out.String())
	}
}

func postJSON(t *testing.T, url, body string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s = %d %s", url, resp.StatusCode, b)
	}
}

// assertDelivered checks that the customer's alert of kind lists its
// delivery to the demo mailbox as delivered, and returns its id.
func assertDelivered(t *testing.T, base, customer, kind string) string {
	t.Helper()
	var list struct {
		Alerts []struct {
			ID       string `json:"alert_id"`
			Customer string `json:"customer"`
			Kind     string `json:"kind"`
		} `json:"alerts"`
	}
	getJSON(t, base+"/v1/alerts?customer="+customer, &list)
	i := slices.IndexFunc(list.Alerts, func(al struct {
		ID       string `json:"alert_id"`
		Customer string `json:"customer"`
		Kind     string `json:"kind"`
	}) bool {
		return al.Customer == customer && al.Kind == kind
	})
	if i < 0 {
		t.Fatalf("no %s alert of %s in %+v", kind, customer, list)
	}
	testenv.Eventually(t, 10*time.Second, "the delivery recorded under the alert", func() bool {
		var one struct {
			Deliveries []struct {
				Channel, Purpose, Status string
			} `json:"deliveries"`
		}
		getJSON(t, base+"/v1/alerts/"+list.Alerts[i].ID, &one)
		return slices.ContainsFunc(one.Deliveries, func(d struct{ Channel, Purpose, Status string }) bool {
			return d.Channel == "mailbox" && d.Purpose == "alert" && d.Status == "delivered"
		})
	})
	return list.Alerts[i].ID
}

func getJSON(t *testing.T, url string, into any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatal(err)
	}
}
