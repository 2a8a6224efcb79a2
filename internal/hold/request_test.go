package hold

import (
	"reflect"
	"testing"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/policy"
	"github.com/stray-mail/stray/internal/store"
)

// Issue 12: the milter built store rows itself; hold owns the translation
// from the gate's held recipients to what the store keeps.
func TestNewRequestStoresEachHeldRecipientWithItsReasons(t *testing.T) {
	t.Parallel()
	held := []gate.RcptResult{
		{Recipient: "j@gmial.com", Decision: policy.Decision{Action: policy.Hold, Finding: detect.Finding{Verdict: detect.Hold,
			Intended: "gmail.com", Suggestion: "j@gmail.com", Score: 0.8,
			Reasons: []detect.Reason{{Kind: "keyboard-slip", Message: "i and a swapped"}, {Kind: "provider", Message: "a popular provider"}}}}},
		{Recipient: "k@army.ml", Decision: policy.Decision{Action: policy.Hold, Finding: detect.Finding{Verdict: detect.Block}}},
	}
	got := NewRequest("Q1", "a@army.mil", []byte("Subject: x\r\n\r\nhi\r\n"), held)
	want := Request{QueueID: "Q1", Sender: "a@army.mil", Raw: []byte("Subject: x\r\n\r\nhi\r\n"), Held: []store.Recipient{
		{Address: "j@gmial.com", Verdict: "hold", Intended: "gmail.com", Suggestion: "j@gmail.com", Score: 0.8,
			Reasons: []string{"keyboard-slip: i and a swapped", "provider: a popular provider"}},
		{Address: "k@army.ml", Verdict: "block"},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}
