package milter

import (
	"strings"
	"testing"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/gate/gatetest"
	"github.com/stray-mail/stray/internal/policy"
)

// The milter against an independent implementation of the protocol's
// MTA side: github.com/d--j/go-milter's client (protocol 6, tested by its
// authors against Postfix and Sendmail), not our own test client. It
// negotiates with its defaults, sends every stage stray did not turn off,
// and reads our answers with its own parser.
func TestMilterAnswersAnIndependentMilterClient(t *testing.T) {
	t.Parallel()
	g := gatetest.New(t, detect.Knowledge{Protected: []string{"mil"}}, policy.Config{})
	addr := gatetest.Serve(t, &Server{Sessions: GateSessions(g), IdleTimeout: 5 * time.Second})
	client := gomilter.NewClient("tcp", addr, gomilter.WithReadTimeout(5*time.Second), gomilter.WithWriteTimeout(5*time.Second))

	type rcpt struct {
		addr   string
		reject bool // refused at RCPT with 550 naming the suggestion
	}
	tests := []struct {
		name       string
		rcpts      []rcpt
		acceptData bool   // accepted at DATA: the body is never streamed
		quarantine string // the end of message quarantines, with this in its reason
	}{
		{"clean mail is accepted at DATA", []rcpt{{"c@army.mil", false}, {"d@gmail.com", false}}, true, ""},
		{"a typo is refused at RCPT, the rest accepted at DATA", []rcpt{{"b@army.ml", true}, {"c@army.mil", false}}, true, ""},
		{"a likely typo is quarantined at the end", []rcpt{{"j@gmial.com", false}}, false, "j@gmial.com looks like a typo of gmail.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			macros := gomilter.NewMacroBag()
			macros.Set(gomilter.MacroQueueId, "Q1")
			s, err := client.Session(macros)
			if err != nil {
				t.Fatalf("negotiation: %v", err)
			}
			defer s.Close()
			must := func(stage string) func(*gomilter.Action, error) *gomilter.Action {
				return func(act *gomilter.Action, err error) *gomilter.Action {
					t.Helper()
					if err != nil {
						t.Fatalf("%s: %v", stage, err)
					}
					return act
				}
			}
			must("connect")(s.Conn("client.example.org", gomilter.FamilyInet, 25, "192.0.2.7"))
			must("helo")(s.Helo("client.example.org"))
			if act := must("mail")(s.Mail("<a@army.mil>", "")); act.Type != gomilter.ActionContinue {
				t.Fatalf("MAIL: %v, want continue", act)
			}
			for _, r := range tt.rcpts {
				act := must("rcpt")(s.Rcpt("<"+r.addr+">", ""))
				if r.reject {
					if act.Type != gomilter.ActionRejectWithCode || act.SMTPCode != 550 || !strings.Contains(act.SMTPReply, "did you mean") {
						t.Errorf("RCPT %s: %v %d %q, want 550 with a suggestion", r.addr, act.Type, act.SMTPCode, act.SMTPReply)
					}
				} else if act.Type != gomilter.ActionContinue {
					t.Errorf("RCPT %s: %v, want continue", r.addr, act)
				}
			}
			act := must("data")(s.DataStart())
			if tt.acceptData {
				if act.Type != gomilter.ActionAccept {
					t.Fatalf("DATA: %v, want accept", act)
				}
				return
			}
			if act.Type != gomilter.ActionContinue {
				t.Fatalf("DATA: %v, want continue", act)
			}
			must("headers")(s.HeaderField("To", "j@gmial.com", nil))
			must("end of headers")(s.HeaderEnd())
			must("body")(s.BodyChunk([]byte("hi\r\n")))
			mods, act, err := s.End()
			if err != nil {
				t.Fatalf("end: %v", err)
			}
			if act.Type != gomilter.ActionContinue {
				t.Errorf("end: %v, want continue (deliver, quarantined)", act)
			}
			found := false
			for _, m := range mods {
				found = found || m.Type == gomilter.ActionQuarantine && strings.Contains(m.Reason, tt.quarantine)
			}
			if !found {
				t.Errorf("end: modifications %+v, want a quarantine naming %q", mods, tt.quarantine)
			}
		})
	}
}
