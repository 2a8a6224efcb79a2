package hold

import (
	"strings"
	"testing"
	"time"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/policy"
)

func warnedRcpt(addr, intended, suggestion string) gate.RcptResult {
	return gate.RcptResult{Recipient: addr, Decision: policy.Decision{Action: policy.Warn,
		Finding: detect.Finding{Address: addr, Verdict: detect.Warn, Intended: intended, Suggestion: suggestion}}}
}

// The sender of a message delivered to a warned recipient gets one short
// notice with the suggestion per recipient domain a day, however many
// messages they send there; the next day, one more.
func TestWarnedSenderIsToldOncePerDomainADay(t *testing.T) {
	t.Parallel()
	st := openTestStore(t)
	clock := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	m := &mta{t: t}
	h := testHolder(t, st, m, &clock, "")
	notes := func(want int) []delivery {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			m.mu.Lock()
			n := len(m.notes)
			m.mu.Unlock()
			if n >= want && len(h.warns) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		return append([]delivery(nil), m.notes...)
	}
	y := warnedRcpt("y@wastlandhigh.school.nz", "westlandhigh.school.nz", "y@westlandhigh.school.nz")
	h.Warned("Q1", "alice@example.org", y)
	got := notes(1)
	if len(got) != 1 || got[0].to[0] != "alice@example.org" {
		t.Fatalf("notices %v, want one to alice", got)
	}
	body := string(got[0].raw)
	for _, want := range []string{"Subject: Check the address: y@wastlandhigh.school.nz - did you mean y@westlandhigh.school.nz?",
		"delivered to y@wastlandhigh.school.nz", "wastlandhigh.school.nz looks like a typo of westlandhigh.school.nz", "Auto-Submitted: auto-generated"} {
		if !strings.Contains(body, want) {
			t.Errorf("notice lacks %q:\n%s", want, body)
		}
	}
	// More messages there the same day, from any node: no more notices.
	other := testHolder(t, st, m, &clock, "")
	for i := 0; i < 5; i++ {
		h.Warned("Q2", "alice@example.org", y)
		other.Warned("Q3", "Alice@Example.org", warnedRcpt("z@WASTLANDHIGH.school.nz", "westlandhigh.school.nz", "z@westlandhigh.school.nz"))
	}
	// A bounce has nobody to tell.
	h.Warned("Q4", "", y)
	for deadline := time.Now().Add(5 * time.Second); (len(other.warns) > 0 || len(h.warns) > 0) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if got := notes(1); len(got) != 1 {
		t.Fatalf("%d notices the same day, want 1", len(got))
	}
	// Another domain, and the next day: told again.
	h.Warned("Q5", "alice@example.org", warnedRcpt("x@hotmial.com", "hotmail.com", "x@hotmail.com"))
	if got := notes(2); len(got) != 2 || !strings.Contains(string(got[1].raw), "x@hotmail.com") {
		t.Fatalf("another domain: %d notices", len(got))
	}
	clock = clock.Add(24 * time.Hour)
	h.Warned("Q6", "alice@example.org", y)
	if got := notes(3); len(got) != 3 {
		t.Fatalf("the next day: %d notices, want 3", len(got))
	}
}
