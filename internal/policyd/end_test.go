package policyd

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/gate/gatetest"
	"github.com/stray-mail/stray/internal/policy"
)

// deliveries is a gate.Recorder that keeps what the gate reported as
// delivered, one "sender: rcpt,rcpt" line per message.
type deliveries struct {
	mu       sync.Mutex
	messages []string
}

func (d *deliveries) Delivered(sender string, rcpts []gate.Delivery) {
	var rs []string
	for _, r := range rcpts {
		rs = append(rs, r.Recipient)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.messages = append(d.messages, sender+": "+strings.Join(rs, ","))
}

func (d *deliveries) Flagged(string, string, gate.RcptResult) {}
func (d *deliveries) Decided(detect.Verdict, policy.Action)   {}

func (d *deliveries) wait(n int) []string {
	deadline := time.Now().Add(5 * time.Second)
	for {
		d.mu.Lock()
		got := slices.Clone(d.messages)
		d.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func messageRcpt(instance, sender, rcpt string) string {
	return fmt.Sprintf("request=smtpd_access_policy\nprotocol_state=RCPT\ninstance=%s\nsender=%s\nrecipient=%s\n\n", instance, sender, rcpt)
}

func endRequest(instance, sender string) string {
	return fmt.Sprintf("request=smtpd_access_policy\nprotocol_state=END-OF-MESSAGE\ninstance=%s\nsender=%s\nrecipient=\nqueue_id=Q1\n\n", instance, sender)
}

// Issue 12: the policy server never ended a message, so mail through
// check_policy_service taught stray nothing and was never counted. A
// message ends at its END-OF-MESSAGE request (smtpd_end_of_data_restrictions),
// when the next message's first request arrives, or when Postfix closes
// the connection; each is ended once.
func TestPolicyServerEndsEachMessageOnceSoItsCleanRecipientsTeach(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		requests []string
		close    bool
		want     []string
	}{
		{"end of message", []string{messageRcpt("a1", "alice@army.mil", "b@gmail.com"), messageRcpt("a1", "alice@army.mil", "c@army.ml"),
			messageRcpt("a1", "alice@army.mil", "d@yahoo.com"), endRequest("a1", "alice@army.mil")}, false,
			[]string{"alice@army.mil: b@gmail.com,d@yahoo.com"}},
		{"end of message then the next one", []string{messageRcpt("a1", "alice@army.mil", "b@gmail.com"), endRequest("a1", "alice@army.mil"),
			messageRcpt("a2", "bob@army.mil", "e@outlook.com"), endRequest("a2", "bob@army.mil")}, false,
			[]string{"alice@army.mil: b@gmail.com", "bob@army.mil: e@outlook.com"}},
		{"the next message ends the last", []string{messageRcpt("a1", "alice@army.mil", "b@gmail.com"),
			messageRcpt("a2", "bob@army.mil", "e@outlook.com")}, true,
			[]string{"alice@army.mil: b@gmail.com", "bob@army.mil: e@outlook.com"}},
		{"closing ends it", []string{messageRcpt("a1", "alice@army.mil", "b@gmail.com")}, true,
			[]string{"alice@army.mil: b@gmail.com"}},
		{"without an instance each request is a message", []string{messageRcpt("", "alice@army.mil", "b@gmail.com"),
			messageRcpt("", "alice@army.mil", "d@yahoo.com")}, true,
			[]string{"alice@army.mil: b@gmail.com", "alice@army.mil: d@yahoo.com"}},
		{"a message of refused recipients teaches nothing", []string{messageRcpt("a1", "alice@army.mil", "b@army.ml"), endRequest("a1", "alice@army.mil")}, true,
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := &deliveries{}
			g := gatetest.New(t, detect.Knowledge{Protected: []string{"mil"}}, policy.Config{}, gate.WithRecorder(rec))
			_, addr := start(t, g)
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			r := bufio.NewReader(nc)
			for i, req := range tt.requests {
				nc.SetDeadline(time.Now().Add(5 * time.Second))
				io.WriteString(nc, req)
				if _, err := r.ReadString('\n'); err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				r.ReadString('\n')
			}
			if tt.close {
				nc.Close()
			}
			got := rec.wait(len(tt.want))
			time.Sleep(50 * time.Millisecond) // nothing more arrives
			got = rec.wait(len(tt.want))
			if !slices.Equal(got, tt.want) {
				t.Errorf("delivered %q, want %q", got, tt.want)
			}
		})
	}
}
