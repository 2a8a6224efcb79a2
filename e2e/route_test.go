package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/postfixtest"
)

// typoRoutes are recipient forms that a real Postfix delivers to army.ml
// (or, for the literal, to a host stray cannot judge) when example.com is
// one of its own domains (mydestination): a source route, the percent
// hack, a bang path, a quoted '@', a local part longer than stray's address
// parser took, and an address literal. want is the reply code and enhanced
// code stray must give.
var typoRoutes = []struct{ rcpt, delivered, want string }{
	{"@relay.example.com:j@army.ml", "j@army.ml", "550 5.1.2"},
	{"j%army.ml@example.com", "j@army.ml", "550 5.1.2"},
	{"army.ml!j@example.com", "j@army.ml", "550 5.1.2"},
	{`"j@army.ml"@example.com`, "j@army.ml", "550 5.1.2"},
	{strings.Repeat("x", 300) + "@army.ml", strings.Repeat("x", 300) + "@army.ml", "550 5.1.2"},
	{"j@[192.0.2.1]", "j@[192.0.2.1]", "550 5.7.1"},
}

// routePostfix starts a Postfix for which example.com is local, so that
// allow_percent_hack, swap_bangpath and resolve_dequoted_address (all at
// their default, yes) apply to it; everything remote goes to the sink.
func routePostfix(t *testing.T, o postfixtest.Options) *postfixtest.Postfix {
	t.Helper()
	o.Extra = map[string]string{"mydestination": "example.com"}
	return postfixtest.Start(t, o)
}

// TestPostfixDeliversTheTypoRoutesToArmyML is the control: without stray,
// the real Postfix delivers every one of these forms to army.ml (or the
// literal). What the tests below refuse is where the mail would go.
func TestPostfixDeliversTheTypoRoutesToArmyML(t *testing.T) {
	pf := routePostfix(t, postfixtest.Options{})
	for _, r := range typoRoutes {
		rcpt, data, err := postfixtest.Send(pf.SMTP, "a@example.com", []string{r.rcpt}, msg)
		if err != nil || rcpt[0].Code != 250 || data.Code != 250 {
			t.Fatalf("%s: %v %v %v", r.rcpt, rcpt, data, err)
		}
	}
	got := pf.Sink.WaitRecipients(len(typoRoutes), 30*time.Second)
	for _, r := range typoRoutes {
		if !contains(got, r.delivered) {
			t.Errorf("%s: Postfix did not deliver it as %s; delivered %q", r.rcpt, r.delivered, got)
		}
	}
}

func TestMilterRefusesEveryTypoRouteAndNothingReachesArmyML(t *testing.T) {
	s := startStray(t, "detect:\n  protect: [mil, example.com]\n")
	pf := routePostfix(t, postfixtest.Options{Milter: s.MilterSpec()})
	refuseTypoRoutes(t, pf)
}

func TestPolicyServiceRefusesEveryTypoRouteAndNothingReachesArmyML(t *testing.T) {
	s := startStray(t, "detect:\n  protect: [mil, example.com]\n")
	pf := routePostfix(t, postfixtest.Options{Policy: s.Policy})
	refuseTypoRoutes(t, pf)
}

func refuseTypoRoutes(t *testing.T, pf *postfixtest.Postfix) {
	t.Helper()
	for _, r := range typoRoutes {
		rcpt, data, err := postfixtest.Send(pf.SMTP, "a@example.com", []string{r.rcpt, "c@army.mil"}, msg)
		if err != nil {
			t.Fatalf("%s: %v", r.rcpt, err)
		}
		if !strings.HasPrefix(rcpt[0].Text, r.want+" ") {
			t.Errorf("%s: got %q, want %s", r.rcpt, rcpt[0].Text, r.want)
		}
		if rcpt[1].Code != 250 || data.Code != 250 {
			t.Errorf("%s: the clean recipient: %v, data %v", r.rcpt, rcpt[1], data)
		}
	}
	// Every clean copy arrives; no typo route does.
	pf.Sink.WaitRecipients(len(typoRoutes), 30*time.Second)
	time.Sleep(time.Second) // a typo route queued with them would be out by now
	got := pf.Sink.Recipients()
	if len(got) != len(typoRoutes) {
		t.Errorf("delivered %q, want %d copies to c@army.mil", got, len(typoRoutes))
	}
	for _, g := range got {
		if g != "c@army.mil" {
			t.Errorf("delivered to %q", g)
		}
	}
	if ids, held := pf.Queue(); len(ids) != 0 || held != 0 {
		t.Errorf("queue %v (%d held): a typo route is waiting for delivery", ids, held)
	}
}
