package policy

import (
	"testing"

	"github.com/stray-mail/stray/detect"
)

// A release as typed lets that sender write to that one address again; it
// never opens the address, let alone the domain, to anyone else.
func TestReleasedRecipientIsAllowedForItsSenderOnly(t *testing.T) {
	t.Parallel()
	base, err := Compile(Config{Deny: []string{"denied.ml"}}, "policy")
	if err != nil {
		t.Fatal(err)
	}
	p, err := base.WithSenderAllows([]SenderAllow{
		{Sender: "Alice@Army.MIL", Recipient: "J@Army.ML"},
		{Sender: "alice@army.mil", Recipient: "k@denied.ml"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, sender, rcpt string
		want               Action
		rule               string
	}{
		{"the sender who released it", "alice@army.mil", "j@army.ml", Pass, RuleSenderAllow},
		{"the same sender in other case", "ALICE@army.mil", "J@army.ml", Pass, RuleSenderAllow},
		{"another sender", "bob@army.mil", "j@army.ml", Reject, ""},
		{"another address at the domain", "alice@army.mil", "x@army.ml", Reject, ""},
		{"the null sender", "", "j@army.ml", Reject, ""},
		{"a deny rule still wins", "alice@army.mil", "k@denied.ml", Reject, "deny"},
	}
	for _, tt := range tests {
		d := p.Decide(tt.sender, finding(tt.rcpt, detect.Block))
		if d.Action != tt.want || d.Rule != tt.rule {
			t.Errorf("%s: %s → %s: got %s (rule %q), want %s (rule %q)", tt.name, tt.sender, tt.rcpt, d.Action, d.Rule, tt.want, tt.rule)
		}
	}
	if d := base.Decide("alice@army.mil", finding("j@army.ml", detect.Block)); d.Action != Reject {
		t.Errorf("WithSenderAllows changed the policy it was called on: %s", d.Action)
	}
	if _, err := base.WithSenderAllows([]SenderAllow{{Sender: "alice@army.mil", Recipient: "army.ml"}}); err == nil {
		t.Error("a per-sender allow of a whole domain was accepted")
	}
}
