package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stray-mail/stray/internal/hold"
	"github.com/stray-mail/stray/internal/store"
)

// holdTo stores a held message to rcpt, flagged as a typo of suggestion.
func (e *env) holdTo(rcpt, verdict, suggestion string) string {
	e.t.Helper()
	raw := "From: alice@army.mil\r\nTo: " + rcpt + "\r\nSubject: Travel plans\r\n\r\nhello\r\n"
	id, err := e.holder.Hold(context.Background(), hold.Request{QueueID: "Q2", Sender: "alice@army.mil", Raw: []byte(raw),
		Held: []store.Recipient{{Address: rcpt, Verdict: verdict, Intended: suggestion[strings.IndexByte(suggestion, '@')+1:], Suggestion: suggestion}}})
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

func TestOneClickAllowOfAProtectedLookalikeIsRefusedAndChangesNothing(t *testing.T) {
	t.Parallel()
	e, c := loggedIn(t, store.RoleAdmin)
	id := e.hold("x")
	_, page := c.get("/quarantine/" + id)
	if strings.Contains(page, `data-confirm="Never flag mail to army.ml again?"`) {
		t.Error("the message page offers a one-click allow for army.ml, a lookalike of mil")
	}
	if !strings.Contains(page, `name="confirm"`) {
		t.Error("the message page offers no way to confirm army.ml explicitly")
	}
	tests := []struct {
		name string
		form url.Values
	}{
		{"the old one-click button", url.Values{"kind": {"allow"}, "pattern": {"army.ml"}, "back": {"/quarantine/" + id}}},
		{"upper case", url.Values{"kind": {"allow"}, "pattern": {"ARMY.ML"}}},
		{"one address at the lookalike", url.Values{"kind": {"allow"}, "pattern": {"b@army.ml"}}},
		{"the whole lookalike TLD", url.Values{"kind": {"allow"}, "pattern": {".ml"}}},
		{"the lookalike as a suffix", url.Values{"kind": {"allow"}, "pattern": {"*.army.ml"}}},
		{"confirmed with the real domain", url.Values{"kind": {"allow"}, "pattern": {"army.ml"}, "confirm": {"army.mil"}}},
		{"confirmed with a different lookalike", url.Values{"kind": {"allow"}, "pattern": {".ml"}, "confirm": {"army.ml"}}},
	}
	for _, tt := range tests {
		resp, body := c.post("/policy/rules", tt.form)
		if resp.StatusCode != http.StatusConflict {
			t.Errorf("%s: status %d, want %d", tt.name, resp.StatusCode, http.StatusConflict)
		}
		if !strings.Contains(body, `id="form-confirm-allow"`) || !strings.Contains(body, "looks like") {
			t.Errorf("%s: the answer is not the confirmation page", tt.name)
		}
	}
	rules, err := e.st.ListRules(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 0 || e.reloads.Load() != 0 || len(events(t, e.st, "rule-added")) != 0 {
		t.Fatalf("a refused allow changed something: rules %+v, reloads %d", rules, e.reloads.Load())
	}
}

func TestConfirmedAllowOfAProtectedLookalikeRecordsTheAdmin(t *testing.T) {
	t.Parallel()
	e, c := loggedIn(t, store.RoleAdmin)
	id := e.hold("x")
	resp, _ := c.post("/policy/rules", url.Values{"kind": {"allow"}, "pattern": {"army.ml"}, "confirm": {" Army.ML "},
		"note": {"a real partner"}, "back": {"/quarantine/" + id}})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/quarantine/"+id) {
		t.Fatalf("confirmed allow: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	rules, err := e.st.ListRules(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 1 || rules[0].Kind != "allow" || rules[0].Pattern != "army.ml" || rules[0].CreatedBy != "alice" || e.reloads.Load() != 1 {
		t.Fatalf("rules %+v, reloads %d", rules, e.reloads.Load())
	}
	evs := events(t, e.st, "rule-added")
	if len(evs) != 1 || evs[0].Actor != "admin:alice" || !strings.Contains(evs[0].Detail, "allow army.ml") ||
		!strings.Contains(evs[0].Detail, "confirmed") || !strings.Contains(evs[0].Detail, "army.mil") {
		t.Fatalf("event log: %+v", evs)
	}
}

func TestOneClickAllowStaysForFindingsOutsideTheProtectedSpace(t *testing.T) {
	t.Parallel()
	e, c := loggedIn(t, store.RoleAdmin)
	id := e.holdTo("bob@gmial.com", "hold", "bob@gmail.com")
	_, page := c.get("/quarantine/" + id)
	if !strings.Contains(page, `data-confirm="Never flag mail to gmial.com again?"`) {
		t.Error("the message page lost the one-click allow for a provider typo")
	}
	resp, _ := c.post("/policy/rules", url.Values{"kind": {"allow"}, "pattern": {"gmial.com"}, "back": {"/quarantine/" + id}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("one-click allow of gmial.com: status %d", resp.StatusCode)
	}
	if rules, _ := e.st.ListRules(context.Background()); len(rules) != 1 || rules[0].Pattern != "gmial.com" {
		t.Fatalf("rules %+v", rules)
	}
}
