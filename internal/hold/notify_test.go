package hold

import (
	"context"
	"strings"
	"testing"

	"github.com/stray-mail/stray/internal/store"
)

// The notification names the message's other visible recipients, and says
// nothing about others when every recipient was held (issue 14: it said
// "Any other recipients … have received it already" regardless).
func TestNotificationMentionsOtherRecipientsOnlyWhenThereAreSome(t *testing.T) {
	t.Parallel()
	h := linkHolder(t)
	held := []store.Recipient{{Address: "joe@gmial.com", Intended: "gmail.com", Suggestion: "joe@gmail.com"}}
	tests := []struct {
		name, headers, want string
	}{
		{"all held", "To: Joe <joe@gmial.com>\r\n", ""},
		{"all held, other case", "To: JOE@GMIAL.COM\r\n", ""},
		{"others", "To: joe@gmial.com, ann@example.org\r\nCc: Bob <bob@example.org>\r\n", "Its other recipients (ann@example.org, bob@example.org) were not held"},
	}
	for _, tt := range tests {
		m := &store.Message{ID: "0123", Sender: "alice@example.org", Recipients: held,
			Raw: []byte("From: alice@example.org\r\n" + tt.headers + "Subject: figures\r\n\r\nbody\r\n")}
		got := string(h.notification(m))
		if strings.Contains(got, "received it") {
			t.Errorf("%s: claims a delivery:\n%s", tt.name, got)
		}
		if tt.want == "" && strings.Contains(got, "other recipients") || tt.want != "" && !strings.Contains(got, tt.want) {
			t.Errorf("%s: want %q in:\n%s", tt.name, tt.want, got)
		}
	}
}

// A held message keeps its decoded Subject for the quarantine's lists.
func TestHeldMessageKeepsItsDecodedSubject(t *testing.T) {
	t.Parallel()
	h := linkHolder(t)
	raw := "From: alice@example.org\r\nTo: joe@gmial.com\r\nSubject: =?UTF-8?Q?Reisepl=C3=A4ne?= Q3\r\n\r\nbody\r\n"
	id, err := h.Hold(context.Background(), Request{QueueID: "Q", Sender: "alice@example.org", Raw: []byte(raw),
		Held: []store.Recipient{{Address: "joe@gmial.com", Verdict: "hold", Intended: "gmail.com", Suggestion: "joe@gmail.com"}}})
	if err != nil {
		t.Fatal(err)
	}
	ms, err := h.Store().List(context.Background(), store.Filter{})
	if err != nil || len(ms) != 1 || ms[0].ID != id || ms[0].Subject != "Reisepläne Q3" {
		t.Fatalf("listed %+v, %v; want the subject Reisepläne Q3", ms, err)
	}
}
