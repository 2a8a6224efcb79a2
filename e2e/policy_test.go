package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/postfixtest"
)

func TestPostfixPolicyServiceRejectsHoldsAndPrepends(t *testing.T) {
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
	// PREPEND: delivered with the warning header.
	if _, data, err := postfixtest.Send(pf.SMTP, "a@army.mil", []string{"y@wastlandhigh.school.nz"}, msg); err != nil || data.Code != 250 {
		t.Fatalf("warn: %v %v", data, err)
	}
	if got := pf.Sink.WaitRecipients(3, 20*time.Second); len(got) != 3 {
		t.Fatalf("delivered %v", got)
	}
	last := pf.Sink.Messages()[1]
	if !strings.Contains(string(last.Data), "X-Stray-Warning: y@wastlandhigh.school.nz looks like a typo") {
		t.Errorf("no warning header:\n%s", last.Data)
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
