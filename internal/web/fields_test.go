package web

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/store"
)

func TestDetailFieldsReadsAJSONObjectAsFields(t *testing.T) {
	t.Parallel()
	got := detailFields(`{"verdict":"hold","rcpt":"x@gmial.com","score":0.85,"reasons":["transposition","provider"],"n":3}`)
	want := []field{{"n", "3"}, {"rcpt", "x@gmial.com"}, {"reasons", "transposition, provider"}, {"score", "0.85"}, {"verdict", "hold"}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for _, plain := range []string{"to alice@example.org", "", "{not json", `["a"]`, "{}"} {
		if f := detailFields(plain); f != nil {
			t.Errorf("%q: %v, want nil (shown as it is)", plain, f)
		}
	}
}

func TestEventLogShowsDecisionDetailsAsFields(t *testing.T) {
	e, c := loggedIn(t, store.RoleAdmin)
	ev := store.Event{Time: time.Now(), Kind: "decision", Actor: "node:n1", Detail: `{"verdict":"hold","rcpt":"x@gmial.com","intended":"gmail.com"}`}
	if err := e.st.AddEvent(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	resp, body := c.get("/events")
	if resp.StatusCode != 200 {
		t.Fatalf("events: %d", resp.StatusCode)
	}
	if strings.Contains(body, `{&#34;verdict`) || strings.Contains(body, `{"verdict`) {
		t.Error("the event log shows raw JSON")
	}
	if !strings.Contains(body, "<dt>intended</dt><dd>gmail.com</dd>") || !strings.Contains(body, "<dt>verdict</dt><dd>hold</dd>") {
		t.Errorf("no fields in the event log:\n%s", body)
	}
}

// The quarantine list shows each message's Subject (issue 14: it had
// none), taken from the header when the message was held.
func TestQuarantineListShowsTheSubject(t *testing.T) {
	e, c := loggedIn(t, store.RoleAdmin)
	e.hold("<p>hi</p>")
	resp, body := c.get("/quarantine")
	if resp.StatusCode != 200 {
		t.Fatalf("quarantine: %d", resp.StatusCode)
	}
	if !strings.Contains(body, "<th>Subject</th>") || !strings.Contains(body, `<td class="subject">Travel plans</td>`) {
		t.Errorf("no subject in the quarantine list:\n%s", body)
	}
}
