package gate_test

import (
	"testing"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/gate/gatetest"
	"github.com/stray-mail/stray/internal/policy"
)

func TestAnAddressWithoutADomainIsTheMTAsOwnAndNotChecked(t *testing.T) {
	t.Parallel()
	g := gatetest.New(t, detect.Knowledge{Protected: []string{"mil"}}, policy.Config{})
	s := g.NewSession("test", nil)
	s.MailAuth("a@army.mil", gate.Auth{Known: true})
	// Postfix resolves "root" to root@$myorigin; a host name under a TLD
	// that does not exist must not make it a typo.
	if r := s.RcptResolved("root", "root@mailhost.localdomain"); r.Reply != nil || r.Decision.Action != policy.Pass {
		t.Errorf("root: %+v", r)
	}
	// Unless its local part routes elsewhere.
	if r := s.RcptResolved("army.ml!j", "j@army.ml"); r.Reply == nil || r.Reply.Code != 550 {
		t.Errorf("army.ml!j: %+v", r)
	}
}

func TestTheMostSevereHopDecides(t *testing.T) {
	t.Parallel()
	g := gatetest.New(t, detect.Knowledge{Protected: []string{"mil", "example.com"}}, policy.Config{Allow: []string{"partner.ml"}})
	s := g.NewSession("test", nil)
	s.Mail("a@example.com")
	for rcpt, want := range map[string]policy.Action{
		"j%army.ml@example.com":    policy.Reject, // example.com ok, army.ml block
		"j%partner.ml@example.com": policy.Pass,   // the route leads to an allowed partner
		"j%army.ml@partner.ml":     policy.Pass,   // not local: delivered to partner.ml as is
		"j%[192.0.2.1]@army.mil":   policy.Reject, // a literal behind a route
	} {
		if r := s.Rcpt(rcpt); r.Decision.Action != want {
			t.Errorf("%s: %s (%+v), want %s", rcpt, r.Decision.Action, r.Decision, want)
		}
	}
}

func benchRcpt(b *testing.B, rcpt, resolved string) {
	g := gatetest.New(b, detect.Knowledge{Protected: []string{"mil", "example.com"}}, policy.Config{})
	s := g.NewSession("bench", nil)
	b.ReportAllocs()
	for b.Loop() {
		s.Mail("a@example.com")
		s.RcptResolved(rcpt, resolved)
	}
}

func BenchmarkRcptPlain(b *testing.B) { benchRcpt(b, "<c@army.mil>", "") }
func BenchmarkRcptPlainResolved(b *testing.B) {
	benchRcpt(b, "<c@army.mil>", "c@army.mil")
}
func BenchmarkRcptRouted(b *testing.B) { benchRcpt(b, "<j%army.ml@example.com>", "j@army.ml") }
