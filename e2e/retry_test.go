package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/postfixtest"
)

// The daily report: no Message-ID or Date of its own, so Postfix makes
// them (with this attempt's queue id) and each day's copy is otherwise
// identical.
const dailyReport = "From: cron@example.org\nTo: ops@gmial.com\nSubject: daily report\n\nAll jobs ran.\n"

// TestTomorrowsIdenticalReportIsHeldAgainAndItsSenderAsked: a report to
// ops@gmial.com is held and cancelled; the next identical report (past
// hold.retry_window, here 1s) is a new message, not a retry of the
// cancelled one: held again, and its sender gets a notification whose
// links work. Before, it was discarded as "already held" and the second
// notification's links said "no longer waiting".
func TestTomorrowsIdenticalReportIsHeldAgainAndItsSenderAsked(t *testing.T) {
	h := startHoldWith(t, "", "  retry_window: 1s\n")
	if _, data, err := postfixtest.Send(h.pf.SMTP, "cron@example.org", []string{"ops@gmial.com"}, dailyReport); err != nil || data.Code != 250 {
		t.Fatalf("send: %v %v", data, err)
	}
	id1, links1 := h.links(t, 1)
	if code, page := post(t, links1["cancel"]); code != 200 || !strings.Contains(page, "discarded") {
		t.Fatalf("cancel: %d %s", code, page)
	}
	time.Sleep(1500 * time.Millisecond)

	if _, data, err := postfixtest.Send(h.pf.SMTP, "cron@example.org", []string{"ops@gmial.com"}, dailyReport); err != nil || data.Code != 250 {
		t.Fatalf("send tomorrow's: %v %v", data, err)
	}
	id2, links2 := h.links(t, 2)
	if id2 == id1 {
		t.Fatalf("tomorrow's report got the cancelled one's id %s", id1)
	}
	if code, page := get(t, links2["release"]); code != 200 || strings.Contains(page, "no longer waiting") {
		t.Fatalf("tomorrow's link: %d\n%s", code, page)
	}
	if code, _ := post(t, links2["release"]); code != 200 {
		t.Fatalf("release: %d", code)
	}
	if got := h.pf.Sink.WaitRecipients(1, 30*time.Second); countRcpt(got, "ops@gmial.com") != 1 {
		t.Fatalf("delivered %v, want tomorrow's report once", got)
	}
	if n := len(h.notify.Messages()); n != 2 {
		t.Errorf("%d notifications, want 2", n)
	}
}
