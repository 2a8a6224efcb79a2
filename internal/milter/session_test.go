package milter

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/gate/gatetest"
)

// scripted is a Session that answers from a script, not a gate.
type scripted struct {
	replies map[string]*gate.Reply // by recipient; absent: accepted
	hold    string                 // End's hold reason
	sender  string
	ended   chan string // the sender of each ended message
}

func (s *scripted) MailAuth(sender string, _ gate.Auth) { s.sender = sender }
func (s *scripted) SetQueueID(string)                   {}
func (s *scripted) QueueID() string                     { return "" }
func (s *scripted) Sender() string                      { return s.sender }
func (s *scripted) RcptResolved(rcpt, _ string) gate.RcptResult {
	rcpt = strings.Trim(rcpt, "<>") // as the MTA sends it
	return gate.RcptResult{Recipient: rcpt, Reply: s.replies[rcpt]}
}
func (s *scripted) NeedsEnd() bool        { return s.hold != "" }
func (s *scripted) Header(string, string) {}
func (s *scripted) Reset()                {}
func (s *scripted) End(context.Context) gate.End {
	s.ended <- s.sender
	return gate.End{Hold: s.hold}
}

type scriptedSessions struct{ s *scripted }

func (f scriptedSessions) NewSession(*slog.Logger) Session { return f.s }
func (f scriptedSessions) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Issue 12: the milter took *gate.Gate and *hold.Holder. It takes a
// Session: whatever answers, the milter only translates — a refusal into
// a 'y' reply at RCPT, a clean envelope into accept at DATA, a hold into a
// quarantine at end of message — and ends every message once.
func TestMilterTranslatesWhatItsSessionAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		hold     string
		wantData byte
	}{
		{"nothing to hold: accepted at DATA", "", respAccept},
		{"a hold: quarantined at the end", "held by the script", respContinue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sess := &scripted{replies: map[string]*gate.Reply{"x@refused.example": {Code: 550, Enhanced: "5.1.2", Text: "no"}},
				hold: tt.hold, ended: make(chan string, 4)}
			addr := gatetest.Serve(t, &Server{Sessions: scriptedSessions{sess}, IdleTimeout: 5 * time.Second})
			c := dial(t, addr)
			c.negotiate()
			c.mail("a@example.org", "Q1")
			if code, text := c.rcpt("x@refused.example"); code != respReplyCode || text != "550 5.1.2 no" {
				t.Errorf("refused rcpt: %q %q", code, text)
			}
			if code, _ := c.rcpt("y@fine.example"); code != respContinue {
				t.Errorf("accepted rcpt: %q", code)
			}
			if code := c.data(); code != tt.wantData {
				t.Fatalf("DATA: %q, want %q", code, tt.wantData)
			}
			if tt.hold != "" {
				ps := c.eom()
				if ps[0].Code != respQuarantine || string(ps[0].Data) != tt.hold+"\x00" {
					t.Errorf("end of message: %+v, want a quarantine", ps)
				}
			}
			select {
			case got := <-sess.ended:
				if got != "<a@example.org>" && got != "a@example.org" {
					t.Errorf("ended the message of %q", got)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the message was never ended")
			}
		})
	}
}
