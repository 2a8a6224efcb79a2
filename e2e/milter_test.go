package e2e

import (
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/postfixtest"
)

// Over TCP and over a unix socket (accepted with connserver.ListenUnix's
// raw accept), as Postfix connects to each.
func TestPostfixMilterRejectsMaliAtRcptWithSuggestionAndDeliversTheRest(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			sockDir := ""
			if network == "unix" {
				sockDir = sockTempDir(t)
			}
			s := startStrayOn(t, sockDir, milConfig)
			if got := strings.HasPrefix(s.MilterSpec(), "unix:"); got != (network == "unix") {
				t.Fatalf("milter at %s", s.MilterSpec())
			}
			rejectsMaliAndDeliversTheRest(t, s)
		})
	}
}

func rejectsMaliAndDeliversTheRest(t *testing.T, s *stray) {
	pf := postfixtest.Start(t, postfixtest.Options{Milter: s.MilterSpec()})
	rcpt, data, err := postfixtest.Send(pf.SMTP, "a@army.mil", []string{"b@army.ml", "c@army.mil", "sales@partner.ml", "d@army.il"}, msg)
	if err != nil {
		t.Fatal(err)
	}
	if got := codes(rcpt); got[0] != 550 || got[1] != 250 || got[2] != 250 || got[3] != 550 {
		t.Fatalf("RCPT codes %v", got)
	}
	for _, i := range []int{0, 3} {
		if !strings.Contains(rcpt[i].Text, "5.1.2") || !strings.Contains(rcpt[i].Text, "did you mean") || !strings.Contains(rcpt[i].Text, "army.mil") {
			t.Errorf("reject text %q lacks the suggestion", rcpt[i].Text)
		}
	}
	if data.Code != 250 {
		t.Fatalf("end of data: %v", data)
	}
	got := pf.Sink.WaitRecipients(2, 20*time.Second)
	if len(got) != 2 || !contains(got, "c@army.mil") || !contains(got, "sales@partner.ml") {
		t.Fatalf("delivered %v, want c@army.mil and sales@partner.ml", got)
	}
	// All recipients refused: no DATA, nothing queued.
	rcpt, data, _ = postfixtest.Send(pf.SMTP, "a@army.mil", []string{"e@navy.ml"}, msg)
	if len(rcpt) != 1 || rcpt[0].Code != 550 || data.Code != 0 {
		t.Fatalf("only recipient: %v %v", rcpt, data)
	}
}

func TestPostfixDenyRuleBlocksAllOfMLExceptThePartner(t *testing.T) {
	s := startStray(t, "detect:\n  protect: [mil]\npolicy:\n  allow: [partner.ml]\n  deny: [.ml]\n")
	pf := postfixtest.Start(t, postfixtest.Options{Milter: s.MilterSpec()})
	rcpt, _, err := postfixtest.Send(pf.SMTP, "a@army.mil", []string{"shop@boutique.ml", "sales@partner.ml", "c@army.mil"}, msg)
	if err != nil {
		t.Fatal(err)
	}
	if got := codes(rcpt); got[0] != 550 || got[1] != 250 || got[2] != 250 {
		t.Fatalf("RCPT codes %v", got)
	}
	if !strings.Contains(rcpt[0].Text, "policy") {
		t.Errorf("deny text %q", rcpt[0].Text)
	}
	if got := pf.Sink.WaitRecipients(2, 20*time.Second); len(got) != 2 {
		t.Fatalf("delivered %v", got)
	}
}

func TestPostfixHoldsLikelyTyposAndWarnsWeakOnes(t *testing.T) {
	known := t.TempDir() + "/known.txt"
	writeFile(t, known, "westlandhigh.school.nz 1000\n")
	s := startStray(t, "detect:\n  known: ["+known+"]\n")
	pf := postfixtest.Start(t, postfixtest.Options{Milter: s.MilterSpec()})
	// Hold: the message stays in Postfix's hold queue, undelivered.
	rcpt, data, err := postfixtest.Send(pf.SMTP, "a@example.org", []string{"x@gmial.com"}, msg)
	if err != nil || rcpt[0].Code != 250 || data.Code != 250 {
		t.Fatalf("hold: %v %v %v", rcpt, data, err)
	}
	if !pf.WaitLog("milter triggers HOLD action", 10*time.Second) {
		t.Fatalf("no hold in the log:\n%s", pf.Log())
	}
	if _, held := pf.Queue(); held != 1 {
		t.Errorf("hold queue has %d messages, want 1", held)
	}
	if n := pf.Queued(); n != 1 { // what the performance tests poll
		t.Errorf("Queued() = %d, want the held message", n)
	}
	// Warn: delivered, without an X-Stray-Warning header (stray's
	// analysis is the sender's business, not the recipient's).
	if _, data, err := postfixtest.Send(pf.SMTP, "a@example.org", []string{"y@wastlandhigh.school.nz"}, msg); err != nil || data.Code != 250 {
		t.Fatalf("warn: %v %v", data, err)
	}
	if got := pf.Sink.WaitRecipients(1, 20*time.Second); len(got) != 1 {
		t.Fatalf("warned message not delivered: %v", got)
	}
	m := pf.Sink.Messages()[0]
	if strings.Contains(string(m.Data), "X-Stray-Warning") {
		t.Errorf("the warning went to the recipient:\n%s", m.Data)
	}
	if len(pf.Sink.Recipients()) != 1 {
		t.Errorf("the held message was delivered: %v", pf.Sink.Recipients())
	}
}

func TestPostfixSMTPUTF8AndIDNRecipients(t *testing.T) {
	s := startStray(t, milConfig)
	pf := postfixtest.Start(t, postfixtest.Options{Milter: s.MilterSpec()})
	to := []string{"k@gmаil.com", "a@xn--gmil-63d.com", "josé@españa.com", "иван@яндекс.рф", "b@army.ml"}
	rcpt, data, err := postfixtest.Send(pf.SMTP, "a@army.mil", to, msg)
	if err != nil {
		t.Fatal(err)
	}
	if got := codes(rcpt); got[0] != 550 || got[1] != 550 || got[2] != 250 || got[3] != 250 || got[4] != 550 {
		t.Fatalf("RCPT codes %v: %v", got, rcpt)
	}
	if !strings.Contains(rcpt[0].Text, "gmail.com") {
		t.Errorf("homoglyph reject %q lacks gmail.com", rcpt[0].Text)
	}
	if data.Code != 250 {
		t.Fatalf("data %v", data)
	}
	got := pf.Sink.WaitRecipients(2, 20*time.Second)
	if !contains(got, "josé@españa.com") || !contains(got, "иван@яндекс.рф") {
		t.Fatalf("delivered %q", got)
	}
}

func TestPostfixHundredRecipientsPipelined(t *testing.T) {
	s := startStray(t, milConfig)
	pf := postfixtest.Start(t, postfixtest.Options{Milter: s.MilterSpec()})
	c, err := postfixtest.Dial(pf.SMTP)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r, _ := c.Cmd("EHLO client"); !strings.Contains(r.Text, "PIPELINING") {
		t.Fatalf("no PIPELINING: %s", r.Text)
	}
	cmds := []string{"MAIL FROM:<a@army.mil>"}
	for i := 0; i < 100; i++ {
		tld := "mil"
		if i%2 == 1 {
			tld = "ml"
		}
		cmds = append(cmds, fmt.Sprintf("RCPT TO:<u%d@unit%d.army.%s>", i, i, tld))
	}
	replies, err := c.Pipeline(cmds...)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range replies[1:] {
		want := 250
		if i%2 == 1 {
			want = 550
		}
		if r.Code != want {
			t.Fatalf("RCPT %d: %v, want %d", i, r, want)
		}
	}
	if r, err := c.Data(msg); err != nil || r.Code != 250 {
		t.Fatalf("data %v %v", r, err)
	}
	got := pf.Sink.WaitRecipients(50, 30*time.Second)
	if len(got) != 50 {
		t.Fatalf("delivered %d recipients, want 50", len(got))
	}
	for _, r := range got {
		if strings.HasSuffix(r, ".ml") {
			t.Fatalf("a .ml recipient was delivered: %s", r)
		}
	}
}

// TestPostfixTempfailsWhileStrayIsKilledOrHungAndDeliversAfterRestart sends
// a steady load, kills stray -9 in the middle, then hangs it (SIGSTOP): every
// message is either accepted after being checked, or refused with 4xx and
// retried by the client once stray is back. No .ml recipient is ever
// delivered, no good recipient is lost.
func TestPostfixTempfailsWhileStrayIsKilledOrHungAndDeliversAfterRestart(t *testing.T) {
	s := startStray(t, milConfig)
	pf := postfixtest.Start(t, postfixtest.Options{Milter: s.MilterSpec(), MilterTimeout: 2 * time.Second})

	type result struct {
		i     int
		ok    bool // accepted (250 at end of data)
		temp  bool // 4xx somewhere: the client must retry
		other string
	}
	send := func(i int) result {
		rcpt, data, err := postfixtest.Send(pf.SMTP, "a@army.mil", []string{fmt.Sprintf("good%d@army.mil", i), fmt.Sprintf("bad%d@army.ml", i)}, msg)
		switch {
		case err != nil && (len(rcpt) == 0 || rcpt[0].Code/100 == 4):
			return result{i: i, temp: true}
		case err != nil:
			return result{i: i, other: err.Error()}
		case data.Code == 250 && rcpt[0].Code == 250 && rcpt[1].Code == 550:
			return result{i: i, ok: true}
		case rcpt[0].Code/100 == 4 || data.Code/100 == 4:
			return result{i: i, temp: true}
		}
		return result{i: i, other: fmt.Sprintf("rcpt %v data %v", rcpt, data)}
	}
	const n = 60
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		if i == n/3 {
			s.kill9() // crash in the middle of the load
		}
		wg.Add(1)
		go func(i int) { defer wg.Done(); results[i] = send(i) }(i)
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	// Hung: stray stopped, connections accepted by the kernel but never
	// answered. Postfix must time out into a tempfail, not deliver.
	s.start()
	s.signal(syscall.SIGSTOP)
	hung := send(n)
	s.signal(syscall.SIGCONT)
	if !hung.temp {
		t.Errorf("while stray hung: %+v, want a tempfail", hung)
	}
	var retry []int
	accepted := 0
	for _, r := range results {
		switch {
		case r.ok:
			accepted++
		case r.temp:
			retry = append(retry, r.i)
		default:
			t.Errorf("message %d: unexpected %s", r.i, r.other)
		}
	}
	if len(retry) == 0 {
		t.Fatal("no message was tempfailed while stray was down: the test did not test anything")
	}
	retry = append(retry, n)
	// The client retries; stray is back.
	for _, i := range retry {
		if r := send(i); !r.ok {
			t.Errorf("retry of %d: %+v", i, r)
		}
	}
	want := accepted + len(retry)
	got := pf.Sink.WaitRecipients(want, 60*time.Second)
	if len(got) != want {
		t.Errorf("delivered %d recipients, want %d", len(got), want)
	}
	seen := map[string]int{}
	for _, r := range got {
		if strings.HasSuffix(r, ".ml") {
			t.Errorf("delivered unchecked: %s", r)
		}
		seen[r]++
	}
	for i := 0; i <= n; i++ {
		if seen[fmt.Sprintf("good%d@army.mil", i)] != 1 {
			t.Errorf("good%d@army.mil delivered %d times", i, seen[fmt.Sprintf("good%d@army.mil", i)])
		}
	}
	t.Logf("%d accepted while up, %d tempfailed and retried", accepted, len(retry))
}
