package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/postfixtest"
)

// TestWarnDeliversAndTellsTheSenderOnceADayNotTheRecipient: a message to
// y@wastlandhigh.school.nz (one slip from a frequent correspondent: warn)
// is delivered through Postfix without X-Stray-Warning; its sender gets
// one notice with the suggestion, and a second message there the same day
// brings no second notice. With hold.warn_header on, the header is added.
func TestWarnDeliversAndTellsTheSenderOnceADayNotTheRecipient(t *testing.T) {
	for _, header := range []bool{false, true} {
		t.Run(map[bool]string{false: "default", true: "warn_header"}[header], func(t *testing.T) {
			t.Parallel()
			known := t.TempDir() + "/known.txt"
			writeFile(t, known, "westlandhigh.school.nz 1000\n")
			extra := "detect:\n  known: [" + known + "]\n"
			if header {
				extra = "  warn_header: true\n" + extra
			}
			h := startHoldWith(t, "", extra)
			for i := 1; i <= 2; i++ {
				if _, data, err := postfixtest.Send(h.pf.SMTP, "alice@example.org", []string{"y@wastlandhigh.school.nz"}, msg); err != nil || data.Code != 250 {
					t.Fatalf("send %d: %v %v", i, data, err)
				}
				if got := h.pf.Sink.WaitRecipients(i, 20*time.Second); len(got) != i {
					t.Fatalf("warned message %d not delivered: %v", i, got)
				}
			}
			for _, m := range h.pf.Sink.Messages() {
				if got := strings.Contains(string(m.Data), "X-Stray-Warning: y@wastlandhigh.school.nz looks like a typo"); got != header {
					t.Errorf("X-Stray-Warning present %v, want %v:\n%s", got, header, m.Data)
				}
			}
			deadline := time.Now().Add(20 * time.Second)
			for len(h.notify.Messages()) < 1 && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			time.Sleep(time.Second) // a second notice would have arrived by now
			notes := h.notify.Messages()
			if len(notes) != 1 || notes[0].To[0] != "alice@example.org" {
				t.Fatalf("%d notices (%v), want one to the sender", len(notes), notes)
			}
			if !strings.Contains(string(notes[0].Data), "did you mean y@westlandhigh.school.nz?") {
				t.Errorf("notice lacks the suggestion:\n%s", notes[0].Data)
			}
		})
	}
}
