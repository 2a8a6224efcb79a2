package policy

import (
	"maps"
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
	p, err := Compile(Config{Scopes: []Scope{{Senders: []string{".hr.example.com"}, Actions: map[VerdictName]ActionName{"warn": "hold", "hold": "reject"}, Deny: []string{"gmail.com"}}}}, "policy")
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
	_, err := Compile(Config{Mode: "loud", Actions: map[VerdictName]ActionName{"block": "explode", "ok": "reject"}, Allow: []string{"bad domain"},
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

func TestScopesMatchTheAuthenticatedLoginNotTheEnvelope(t *testing.T) {
	t.Parallel()
	liaison := Scope{Senders: []string{".liaison.army.mil"}, Logins: []string{"JSmith"}, Allow: []string{".ml"}}
	cases := []struct {
		name  string
		trust bool
		s     Sender
		want  Action
	}{
		{"login that is an address in the scope", false, Sender{Envelope: "x@other.army.mil", Login: "j@liaison.army.mil", AuthKnown: true}, Pass},
		{"login listed by name, any case", false, Sender{Envelope: "x@other.army.mil", Login: "jsmith", AuthKnown: true}, Pass},
		{"login outside the scope with a scoped envelope", false, Sender{Envelope: "x@liaison.army.mil", Login: "mallory@army.mil", AuthKnown: true}, Reject},
		{"unauthenticated sender forging a scoped envelope", false, Sender{Envelope: "x@liaison.army.mil", AuthKnown: true}, Reject},
		{"unauthenticated sender when the envelope is trusted", true, Sender{Envelope: "x@liaison.army.mil", AuthKnown: true}, Pass},
		{"login still wins when the envelope is trusted", true, Sender{Envelope: "x@liaison.army.mil", Login: "mallory@army.mil", AuthKnown: true}, Reject},
		{"front end that cannot tell: the envelope", false, Sender{Envelope: "x@liaison.army.mil"}, Pass},
		{"null sender", false, Sender{AuthKnown: true}, Reject},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p, err := Compile(Config{Scopes: []Scope{liaison}, TrustEnvelope: c.trust}, "policy")
			if err != nil {
				t.Fatal(err)
			}
			if got := p.DecideFor(c.s, finding("b@army.ml", detect.Block)).Action; got != c.want {
				t.Errorf("%+v: got %s, want %s", c.s, got, c.want)
			}
		})
	}
}

func TestAScopeOfLoginsOnlyIsValidAndAnEmptyLoginIsNot(t *testing.T) {
	t.Parallel()
	if _, err := Compile(Config{Scopes: []Scope{{Logins: []string{"jsmith"}}}}, "policy"); err != nil {
		t.Errorf("logins-only scope: %v", err)
	}
	_, err := Compile(Config{Scopes: []Scope{{Logins: []string{" "}}}, AddressLiterals: "bounce"}, "policy")
	for _, want := range []string{"policy.scopes[0].logins[0]", "policy.address_literals"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %s", err, want)
		}
	}
}

func TestUnreadableIsRejectedAndLiteralsFollowTheirSwitch(t *testing.T) {
	t.Parallel()
	f := detect.Finding{Address: "j@[192.0.2.1]", Domain: "[192.0.2.1]"}
	for _, c := range []struct {
		cfg     Config
		want    Action
		verdict detect.Verdict
		ok      bool
	}{
		{Config{}, Reject, detect.Block, true},
		{Config{AddressLiterals: "hold"}, Hold, detect.Hold, true},
		{Config{AddressLiterals: "pass"}, Pass, detect.OK, false},
		{Config{Mode: "audit"}, Log, detect.Block, true},
	} {
		p, err := Compile(c.cfg, "policy")
		if err != nil {
			t.Fatal(err)
		}
		d, ok := p.Literal(f)
		if ok != c.ok || d.Action != c.want || d.Finding.Verdict != c.verdict || (ok && d.Rule != RuleLiteral) {
			t.Errorf("%+v: literal got %+v %v", c.cfg, d, ok)
		}
		u := p.Unreadable(detect.Finding{Address: "j@army_ml"})
		if want := map[bool]Action{false: Reject, true: Log}[c.cfg.Mode == "audit"]; u.Action != want || u.Enforced != Reject || u.Rule != RuleUnreadable {
			t.Errorf("%+v: unreadable got %+v", c.cfg, u)
		}
	}
}

func TestEffectiveWritesOutTheDefaultsCompileApplies(t *testing.T) {
	t.Parallel()
	e := Config{Actions: map[VerdictName]ActionName{"warn": "log"}}.Effective()
	want := map[VerdictName]ActionName{"warn": "log", "hold": "hold", "block": "reject"}
	if e.Mode != "enforce" || e.AddressLiterals != "reject" || !maps.Equal(e.Actions, want) {
		t.Fatalf("effective %+v, want enforce, reject and %v", e, want)
	}
	// It is what Compile runs: every verdict's action matches.
	p, err := Compile(e, "policy")
	if err != nil {
		t.Fatal(err)
	}
	for v, a := range want {
		verdict, _ := v.Verdict()
		if got := p.Decide("a@example.org", detect.Finding{Address: "x@y.example", Domain: "y.example", Verdict: verdict}).Action.String(); got != string(a) {
			t.Errorf("%s: compiled action %s, effective says %s", v, got, a)
		}
	}
}
