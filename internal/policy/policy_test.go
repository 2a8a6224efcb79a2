package policy

import (
	"strings"
	"testing"

	"github.com/stray-mail/stray/detect"
)

func finding(addr string, v detect.Verdict) detect.Finding {
	return detect.Finding{Address: addr, Domain: addr[strings.LastIndexByte(addr, '@')+1:], Verdict: v}
}

func TestDefaultActionsRejectBlockHoldHoldWarnWarn(t *testing.T) {
	t.Parallel()
	p, err := Compile(Config{}, "policy")
	if err != nil {
		t.Fatal(err)
	}
	for v, want := range map[detect.Verdict]Action{detect.OK: Pass, detect.Warn: Warn, detect.Hold: Hold, detect.Block: Reject} {
		if got := p.Decide("a@army.mil", finding("b@x.ml", v)).Action; got != want {
			t.Errorf("%s: got %s, want %s", v, got, want)
		}
	}
}

func TestAllowLetsAMalianPartnerThroughAndDenyBlocksTheRestOfML(t *testing.T) {
	t.Parallel()
	p, err := Compile(Config{Allow: []string{"partner.ml", "ceo@other.ml"}, Deny: []string{".ml"}}, "policy")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		rcpt    string
		verdict detect.Verdict
		want    Action
		rule    string
	}{
		{"a@partner.ml", detect.Block, Pass, "allow"},
		{"a@sub.partner.ml", detect.OK, Reject, "deny"}, // the domain entry is exact
		{"CEO@other.ml", detect.OK, Pass, "allow"},
		{"cfo@other.ml", detect.OK, Reject, "deny"},
		{"a@shop.ml", detect.OK, Reject, "deny"},
		{"a@ml.example.com", detect.OK, Pass, ""},
	}
	for _, c := range cases {
		d := p.Decide("a@army.mil", finding(c.rcpt, c.verdict))
		if d.Action != c.want || d.Rule != c.rule {
			t.Errorf("%s: got %s by %q, want %s by %q", c.rcpt, d.Action, d.Rule, c.want, c.rule)
		}
		if d.Rule == "allow" && (d.Finding.Verdict != detect.OK || d.Finding.Suggestion != "") {
			t.Errorf("%s: allowed but finding still flagged: %+v", c.rcpt, d.Finding)
		}
	}
}

func TestScopesApplyOnlyToTheirSenders(t *testing.T) {
	t.Parallel()
	p, err := Compile(Config{Scopes: []Scope{{Senders: []string{".hr.example.com"}, Actions: map[string]string{"warn": "hold", "hold": "reject"}, Deny: []string{"gmail.com"}}}}, "policy")
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Decide("a@pay.hr.example.com", finding("x@gmial.com", detect.Hold)).Action; got != Reject {
		t.Errorf("scoped hold: got %s", got)
	}
	if got := p.Decide("a@pay.hr.example.com", finding("x@gmail.com", detect.OK)).Action; got != Reject {
		t.Errorf("scoped deny: got %s", got)
	}
	if got := p.Decide("a@sales.example.com", finding("x@gmial.com", detect.Hold)).Action; got != Hold {
		t.Errorf("unscoped hold: got %s", got)
	}
	if got := p.Decide("", finding("x@gmial.com", detect.Warn)).Action; got != Warn {
		t.Errorf("null sender: got %s", got)
	}
}

func TestAuditModeDecidesButEnforcesNothing(t *testing.T) {
	t.Parallel()
	p, err := Compile(Config{Mode: "audit", Deny: []string{".ml"}}, "policy")
	if err != nil {
		t.Fatal(err)
	}
	d := p.Decide("a@army.mil", finding("b@army.ml", detect.OK))
	if d.Action != Log || d.Enforced != Reject || !d.Audit {
		t.Errorf("got %+v", d)
	}
}

func TestCompileReportsEveryProblemWithItsPath(t *testing.T) {
	t.Parallel()
	_, err := Compile(Config{Mode: "loud", Actions: map[string]string{"block": "explode", "ok": "reject"}, Allow: []string{"bad domain"},
		Scopes: []Scope{{Deny: []string{"@x"}}}}, "policy")
	for _, want := range []string{"policy.mode", "policy.actions.block", `policy.actions: "ok"`, "policy.allow[0]", "policy.scopes[0].senders", "policy.scopes[0].deny[0]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %s", err, want)
		}
	}
}

func TestNormalizePatternIsWhatThePolicyReads(t *testing.T) {
	for in, want := range map[string]string{
		"Army.ML": "army.ml", "*.Partner.ml": ".partner.ml", ".ml": ".ml", "J.Smith@Partner.ML": "j.smith@partner.ml",
		"x.ml.": "x.ml", " partner.ml ": "partner.ml", "bücher.de": "xn--bcher-kva.de",
	} {
		if got, err := NormalizePattern(in); err != nil || got != want {
			t.Errorf("NormalizePattern(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "a b", "@x.ml", "x..ml", "-.ml", "."} {
		if got, err := NormalizePattern(bad); err == nil {
			t.Errorf("NormalizePattern(%q) = %q, want an error", bad, got)
		}
	}
}
