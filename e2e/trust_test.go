package e2e

import (
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/postfixtest"
)

// policyAnswer asks the daemon's policy listener about one recipient of one
// sender: it decides without delivering anything.
func policyAnswer(t *testing.T, h *holdSetup, sender, rcpt string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", h.s.Policy, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "request=smtpd_access_policy\nprotocol_state=RCPT\ninstance=%d\nsender=%s\nrecipient=%s\n\n", time.Now().UnixNano(), sender, rcpt)
	b := make([]byte, 512)
	n, _ := c.Read(b)
	return string(b[:n])
}

// reloadKnowledge rebuilds the daemon's knowledge (SIGHUP) and waits for it.
func reloadKnowledge(t *testing.T, h *holdSetup) {
	t.Helper()
	time.Sleep(500 * time.Millisecond) // the recorder writes in the background
	before := strings.Count(h.s.log.String(), "reloaded configuration and knowledge")
	h.s.signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(h.s.log.String(), "reloaded configuration and knowledge") == before && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
}

// Issue 17, point 2: a recipient that passed only because of an allow rule
// or a release teaches nothing organisation-wide. Learning thresholds are
// lowered to one sender on one day, so that only why a recipient passed
// stands between one message and org-wide trust.
func TestAllowedAndReleasedRecipientsTeachNothingOrgWide(t *testing.T) {
	h := startHoldWith(t, "", "detect:\n  protect: [mil]\n  learn:\n    min_senders: 1\n    min_days: 1\npolicy:\n  allow: [j@army.ml, j@gmial.com]\n")
	send := func(from, to string) {
		t.Helper()
		if _, data, err := postfixtest.Send(h.pf.SMTP, from, []string{to}, heldMsg); err != nil || data.Code != 250 {
			t.Fatalf("send %s → %s: %v %v", from, to, data, err)
		}
	}
	// The allow rules name one address each.
	send("alice@example.org", "j@army.ml")
	send("alice@example.org", "j@gmial.com")
	if got := h.pf.Sink.WaitRecipients(2, 20*time.Second); len(got) != 2 {
		t.Fatalf("delivered %v", got)
	}
	// A release as typed.
	send("alice@example.org", "x@gmial.com")
	_, links := h.links(t, 1)
	if code, page := post(t, links["release"]); code != 200 || !strings.Contains(page, "has been sent") {
		t.Fatalf("POST release: %d\n%s", code, page)
	}
	if got := h.pf.Sink.WaitRecipients(3, 30*time.Second); countRcpt(got, "x@gmial.com") != 1 {
		t.Fatalf("delivered %v", got)
	}
	// The release's per-sender allow applies at once on this node.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.HasPrefix(policyAnswer(t, h, "alice@example.org", "x@gmial.com"), "action=DUNNO") {
		if time.Now().After(deadline) {
			t.Fatal("the release as typed did not allow x@gmial.com for its sender")
		}
		time.Sleep(100 * time.Millisecond)
	}
	reloadKnowledge(t, h)

	tests := []struct {
		sender, rcpt, want string
	}{
		{"bob@example.org", "anyone@army.ml", "action=550 "},
		{"bob@example.org", "anyone@gmial.com", "action=HOLD"},
		{"alice@example.org", "y@gmial.com", "action=HOLD"},
		{"bob@example.org", "x@gmial.com", "action=HOLD"},
		{"alice@example.org", "x@gmial.com", "action=DUNNO"}, // the release allowed it for its sender
		{"bob@example.org", "j@army.ml", "action=DUNNO"},     // the allow rules, as wide as they say
	}
	for _, tt := range tests {
		if got := policyAnswer(t, h, tt.sender, tt.rcpt); !strings.HasPrefix(got, tt.want) {
			t.Errorf("%s → %s: %q, want %s", tt.sender, tt.rcpt, got, tt.want)
		}
	}
}
