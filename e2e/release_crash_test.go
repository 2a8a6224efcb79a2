package e2e

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/postfixtest"
)

const joeMsg = "From: alice@example.org\nTo: Joe <joe@gmial.com>\nCc: ann@example.org\nSubject: contract draft\n\nHere is the draft.\n"

// TestAReleaseKilledAtEachStepIsDeliveredOnceWhereTheSenderChose holds a
// message to joe@gmial.com, has its sender POST "send it to joe@gmail.com
// instead" (fix) or "send it anyway" (release), and kills `stray serve`
// with SIGKILL at each step of the release: after the choice is stored,
// before and after the re-injection, after the state change, with the
// re-injected copy inside the MTA before the milter accepted it (as if the
// MTA hung after DATA and the node was killed), and after the MTA accepted
// it but before the milter recorded that. Restarted, the sweep finishes
// the release once it is stale. The message reaches the address the sender
// chose exactly once (the last step twice: nothing can tell a copy the MTA
// queued from one it dropped, and twice beats never), never the other
// one, without the release header, and a fixed copy names joe@gmail.com in
// To.
func TestAReleaseKilledAtEachStepIsDeliveredOnceWhereTheSenderChose(t *testing.T) {
	for _, tc := range []struct {
		step  string
		times int
	}{
		{"after-claim", 1},
		{"before-reinject", 1},
		{"release-before-accept", 1},
		{"before-mark-released", 2},
		{"after-reinject", 1},
		{"after-state-change", 1},
	} {
		for _, action := range []string{"fix", "release"} {
			t.Run(tc.step+"/"+action, func(t *testing.T) {
				t.Parallel()
				releaseCrash(t, tc.step, action, tc.times)
			})
		}
	}
}

func releaseCrash(t *testing.T, step, action string, times int) {
	start := time.Now()
	h := startHoldWith(t, "", "  release_stale: 1s\n", "STRAY_TEST_CRASH_AT="+step)
	if _, data, err := postfixtest.Send(h.pf.SMTP, "alice@example.org", []string{"joe@gmial.com"}, joeMsg); err != nil || data.Code != 250 {
		t.Fatalf("send: %v %v", data, err)
	}
	id, links := h.links(t, 1)
	want, other := "joe@gmail.com", "joe@gmial.com"
	if action == "release" {
		want, other = other, want
	}
	// The node dies while answering: the POST may get no answer.
	postQuietly(links[action])
	exited := make(chan struct{})
	go func() { h.s.cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("stray was not killed at %s:\n%s", step, h.s.log.String())
	}
	h.s.cmd, h.s.env = nil, nil
	h.s.start()

	deadline := time.Now().Add(40 * time.Second)
	for !regexp.MustCompile(`state:\s+released`).MatchString(quarantine(t, h.s.cfg, "show", id)) {
		if time.Now().After(deadline) {
			t.Fatalf("not released after the restart:\n%s", quarantine(t, h.s.cfg, "show", id))
		}
		time.Sleep(200 * time.Millisecond)
	}
	got := h.pf.Sink.WaitRecipients(times, 20*time.Second)
	time.Sleep(2 * time.Second) // a further copy would have arrived by now
	got = h.pf.Sink.Recipients()
	if countRcpt(got, want) != times || countRcpt(got, other) != 0 || len(got) != times {
		t.Fatalf("delivered to %v, want %d× %s and never %s", got, times, want, other)
	}
	for _, m := range h.pf.Sink.Messages() {
		data := string(m.Data)
		if strings.Contains(strings.ToLower(data), "x-stray-release") {
			t.Errorf("the release header left stray:\n%s", data)
		}
		if !strings.Contains(data, "Here is the draft.") {
			t.Errorf("content lost:\n%s", data)
		}
		if action == "fix" && !strings.Contains(data, "To: Joe <joe@gmail.com>") {
			t.Errorf("the fixed copy still names the typo in To:\n%s", data)
		}
	}
	t.Logf("%s/%s: %v", step, action, time.Since(start).Round(100*time.Millisecond))
}

// postQuietly submits a link's confirmation form, ignoring a connection the
// server dropped by dying.
func postQuietly(link string) {
	u, err := url.Parse(link)
	if err != nil {
		return
	}
	q := u.Query()
	u.RawQuery = ""
	c := http.Client{Timeout: 20 * time.Second}
	if resp, err := c.PostForm(u.String(), url.Values{"e": {q.Get("e")}, "s": {q.Get("s")}}); err == nil {
		resp.Body.Close()
	}
}
