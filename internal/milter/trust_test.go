package milter

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/policy"
)

// negotiateRaw offers what Postfix 3.7 offers and returns the whole reply.
func (c *testClient) negotiateRaw(actions uint32) []byte {
	c.t.Helper()
	c.send(cmdOptneg, optneg{version: 6, actions: actions, protocol: 0x1fffff}.bytes())
	p := c.recv()
	if p.Code != respOptneg {
		c.t.Fatalf("optneg reply %q", p.Code)
	}
	return p.Data
}

// mailAs sends the MAIL macros as Postfix does for a client that
// authenticated as login ("" for none: Postfix then sends no value).
func (c *testClient) mailAs(from, login string) {
	c.t.Helper()
	m := []byte{cmdMail}
	if login != "" {
		m = append(m, nul("{auth_authen}", login)...)
	}
	c.send(cmdMacro, m)
	c.send(cmdMail, nul("<"+from+">"))
}

// rcptResolved sends RCPT with Postfix's {rcpt_addr} macro.
func (c *testClient) rcptResolved(to, resolved string) (byte, string) {
	c.t.Helper()
	c.send(cmdMacro, append([]byte{cmdRcpt}, nul("{rcpt_addr}", resolved)...))
	return c.rcpt(to)
}

func TestNegotiationAsksForTheLoginAtMailAndTheResolvedRecipientAtRcpt(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, newGate(t, detect.Knowledge{}, policy.Config{}))
	data := dial(t, addr).negotiateRaw(0x1ff)
	if len(data) < 12 {
		t.Fatalf("reply of %d bytes", len(data))
	}
	if a := binary.BigEndian.Uint32(data[4:8]); a&actSetSymList == 0 {
		t.Errorf("actions %#x lack SETSYMLIST (Sendmail needs it to honour the lists)", a)
	}
	lists := map[uint32]string{}
	for rest := data[12:]; len(rest) > 0; {
		if len(rest) < 5 {
			t.Fatalf("truncated macro list %q", rest)
		}
		stage := binary.BigEndian.Uint32(rest)
		end := bytes.IndexByte(rest[4:], 0)
		if end < 0 {
			t.Fatalf("unterminated macro list %q", rest)
		}
		lists[stage] = string(rest[4 : 4+end])
		rest = rest[4+end+1:]
	}
	if got := strings.Fields(lists[stageMail]); len(got) != 2 || got[0] != "i" || got[1] != "{auth_authen}" {
		t.Errorf("MAIL macros %q, want i {auth_authen}", lists[stageMail])
	}
	if got := strings.Fields(lists[stageRcpt]); len(got) != 2 || got[0] != "i" || got[1] != "{rcpt_addr}" {
		t.Errorf("RCPT macros %q, want i {rcpt_addr}", lists[stageRcpt])
	}
	// An MTA that cannot take macro lists gets none.
	if data := dial(t, addr).negotiateRaw(0x1ff &^ actSetSymList); len(data) != 12 {
		t.Errorf("without SETSYMLIST the reply has %d bytes, want 12", len(data))
	}
}

func TestScopeFollowsTheAuthAuthenMacroNotMailFrom(t *testing.T) {
	t.Parallel()
	g := newGate(t, detect.Knowledge{Protected: []string{"mil"}}, policy.Config{
		Scopes: []policy.Scope{{Senders: []string{".liaison.army.mil"}, Allow: []string{".ml"}}}})
	_, addr := startServer(t, g)
	cases := []struct {
		name, from, login string
		want              byte
	}{
		{"forged envelope without a login", "x@liaison.army.mil", "", respReplyCode},
		{"login in the scope", "x@other.army.mil", "j@liaison.army.mil", respContinue},
		{"login outside the scope", "x@liaison.army.mil", "mallory@army.mil", respReplyCode},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cl := dial(t, addr)
			cl.negotiate()
			cl.mailAs(c.from, c.login)
			if code, text := cl.rcpt("b@army.ml"); code != c.want {
				t.Errorf("from %s login %q: got %q %q, want %q", c.from, c.login, code, text, c.want)
			}
		})
	}
}

func TestTheRecipientPostfixResolvedIsCheckedToo(t *testing.T) {
	t.Parallel()
	// corp.example is Postfix's own (mydestination) but not protected:
	// only Postfix's {rcpt_addr} tells where the percent hack leads.
	_, addr := startServer(t, newGate(t, detect.Knowledge{Protected: []string{"mil"}}, policy.Config{}))
	c := dial(t, addr)
	c.negotiate()
	c.mailAs("a@army.mil", "")
	code, text := c.rcptResolved("j%army.ml@corp.example", "j@army.ml")
	if code != respReplyCode || !strings.HasPrefix(text, "550 5.1.2 routed to <j@army.ml>: army.ml looks like a typo of army.mil") {
		t.Fatalf("got %q %q", code, text)
	}
	if code, text := c.rcptResolved("k@corp.example", "k@corp.example"); code != respContinue {
		t.Fatalf("plain local recipient: got %q %q", code, text)
	}
	// A recipient stray cannot read is refused, not passed.
	if code, text := c.rcptResolved("j@army_ml.com", "j@army_ml.com"); code != respReplyCode || !strings.HasPrefix(text, "501 5.1.3 ") {
		t.Fatalf("unreadable: got %q %q", code, text)
	}
}

func TestAuditModeOnlyLogsUnreadableRecipientsAndLiterals(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, newGate(t, detect.Knowledge{Protected: []string{"mil"}}, policy.Config{Mode: "audit"}))
	c := dial(t, addr)
	c.negotiate()
	c.mailAs("a@army.mil", "")
	for _, rcpt := range []string{"j@army_ml.com", "j@[192.0.2.1]", "j%army.ml@army.mil"} {
		if code, text := c.rcpt(rcpt); code != respContinue {
			t.Errorf("%s: audit mode refused: %q %q", rcpt, code, text)
		}
	}
}

func TestAddressLiteralsCanBeHeldInsteadOfRejected(t *testing.T) {
	t.Parallel()
	_, addr := startServer(t, newGate(t, detect.Knowledge{}, policy.Config{AddressLiterals: "hold"}))
	c := dial(t, addr)
	c.negotiate()
	c.mailAs("a@example.org", "")
	if code, text := c.rcpt("j@[192.0.2.1]"); code != respContinue {
		t.Fatalf("literal refused at RCPT: %q %q", code, text)
	}
	if code := c.data(); code != respContinue {
		t.Fatalf("DATA: got %q, want continue (the hold is at the end)", code)
	}
	var quarantine string
	for _, p := range c.eom() {
		if p.Code == respQuarantine {
			quarantine = string(p.Data)
		}
	}
	if !strings.Contains(quarantine, "j@[192.0.2.1]: stray cannot check mail to an address literal") {
		t.Errorf("quarantine reason %q", quarantine)
	}
}
