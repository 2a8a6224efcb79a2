package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/postfixtest"
)

func TestPostfixPolicyServiceRejectsHoldsAndWarns(t *testing.T) {
	known := t.TempDir() + "/known.txt"
	writeFile(t, known, "westlandhigh.school.nz 1000\n")
	s := startStray(t, "detect:\n  protect: [mil]\n  known: ["+known+"]\npolicy:\n  allow: [partner.ml]\n")
	pf := postfixtest.Start(t, postfixtest.Options{Policy: s.Policy})

	rcpt, data, err := postfixtest.Send(pf.SMTP, "a@army.mil", []string{"b@army.ml", "c@army.mil", "sales@partner.ml"}, msg)
	if err != nil {
		t.Fatal(err)
	}
	if got := codes(rcpt); got[0] != 550 || got[1] != 250 || got[2] != 250 || data.Code != 250 {
		t.Fatalf("RCPT codes %v, data %v", got, data)
	}
	if !strings.Contains(rcpt[0].Text, "5.1.2") || !strings.Contains(rcpt[0].Text, "did you mean b@army.mil?") {
		t.Errorf("reject text %q", rcpt[0].Text)
	}
	if got := pf.Sink.WaitRecipients(2, 20*time.Second); len(got) != 2 {
		t.Fatalf("delivered %v", got)
	}

	// HOLD: the whole message waits in the hold queue.
	if _, data, err := postfixtest.Send(pf.SMTP, "a@army.mil", []string{"x@gmial.com"}, msg); err != nil || data.Code != 250 {
		t.Fatalf("hold: %v %v", data, err)
	}
	if !pf.WaitLog("hold: RCPT from", 10*time.Second) {
		t.Errorf("no HOLD in the log")
	}
	// Warn: delivered, without stray's analysis in a header the stranger
	// reads (hold.warn_header is off).
	if _, data, err := postfixtest.Send(pf.SMTP, "a@army.mil", []string{"y@wastlandhigh.school.nz"}, msg); err != nil || data.Code != 250 {
		t.Fatalf("warn: %v %v", data, err)
	}
	if got := pf.Sink.WaitRecipients(3, 20*time.Second); len(got) != 3 {
		t.Fatalf("delivered %v", got)
	}
	last := pf.Sink.Messages()[1]
	if strings.Contains(string(last.Data), "X-Stray-Warning") {
		t.Errorf("a warning header went out with the message:\n%s", last.Data)
	}
	if _, held := pf.Queue(); held != 1 {
		t.Errorf("%d held, want 1", held)
	}

	// stray down: Postfix answers a temporary failure, nothing is accepted.
	s.kill9()
	rcpt, _, _ = postfixtest.Send(pf.SMTP, "a@army.mil", []string{"z@army.mil"}, msg)
	if len(rcpt) != 1 || rcpt[0].Code/100 != 4 {
		t.Fatalf("with stray down: %v, want 4xx", rcpt)
	}
	s.start()
	rcpt, data, _ = postfixtest.Send(pf.SMTP, "a@army.mil", []string{"z@army.mil"}, msg)
	if len(rcpt) != 1 || rcpt[0].Code != 250 || data.Code != 250 {
		t.Fatalf("after restart: %v %v", rcpt, data)
	}
}

// Issue 12: mail through check_policy_service never taught stray its
// correspondents and was never counted, and without hold and confirm
// there was no store to learn into. With hold off and the policy server
// asked at RCPT and at end of data, three senders' mail to a new domain
// makes it a correspondent, and a slip of it is then held.
func TestPolicyServiceTeachesCorrespondentsAndCountsWithHoldOff(t *testing.T) {
	dir := t.TempDir()
	s := startStray(t, "store: sqlite:"+dir+"/stray.db\nhold:\n  enabled: false\ndetect:\n  learn:\n    min_days: 1\n")
	pf := postfixtest.Start(t, postfixtest.Options{Policy: s.Policy,
		Extra: map[string]string{"smtpd_end_of_data_restrictions": "check_policy_service inet:" + s.Policy}})

	if got := policyAnswer(t, &holdSetup{s: s}, "alice@example.org", "a@ewstlandhigh.school.nz"); !strings.HasPrefix(got, "action=DUNNO") {
		t.Fatalf("before learning: %q, want DUNNO", got)
	}
	for i, to := range []string{"b@westlandhigh.school.nz", "c@westlandhigh.school.nz", "d@westlandhigh.school.nz"} {
		from := []string{"alice@example.org", "bob@example.org", "carol@example.org"}[i]
		if _, data, err := postfixtest.Send(pf.SMTP, from, []string{to}, msg); err != nil || data.Code != 250 {
			t.Fatalf("send to %s: %v %v", to, data, err)
		}
	}
	if got := pf.Sink.WaitRecipients(3, 20*time.Second); len(got) != 3 {
		t.Fatalf("delivered %v", got)
	}
	// The probe above is a message of its own, ended when its connection
	// closed: 1 + 3.
	const counted = `stray_gate_messages_total{frontend="policy",outcome="delivered"} 4`
	var metrics string
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(metrics, counted) && time.Now().Before(deadline); {
		_, metrics = fetch(t, "http://"+s.HTTP+"/metrics")
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(metrics, counted) {
		t.Errorf("policy messages not counted; want %q in:\n%s", counted, grepLines(metrics, "stray_gate_messages_total"))
	}
	time.Sleep(500 * time.Millisecond) // the recorder writes in the background
	s.signal(syscall.SIGHUP)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(s.log.String(), "reloaded configuration and knowledge") && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if got := policyAnswer(t, &holdSetup{s: s}, "alice@example.org", "a@ewstlandhigh.school.nz"); !strings.HasPrefix(got, "action=HOLD") || !strings.Contains(got, "westlandhigh.school.nz") {
		t.Fatalf("after learning: %q, want HOLD naming westlandhigh.school.nz", got)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
