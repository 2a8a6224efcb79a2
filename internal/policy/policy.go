// Package policy turns a detection Finding into an Action, under the
// organisation's rules: an action per verdict, allow rules (a real partner
// under a lookalike-looking domain), deny rules (all of .ml, as the DoD did in
// May 2024), per-sender-domain scopes, and an audit-only mode for a safe
// rollout.
//
// It decides what to do, never how: front ends translate Actions into their
// protocol (a milter reply, a policy-delegation answer, an SMTP status).
package policy

import (
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/stray-mail/stray/detect"
)

// Action is what a gate does with one recipient.
type Action uint8

const (
	Pass     Action = iota // deliver, say nothing
	Log                    // deliver, log the finding
	Warn                   // deliver, add a warning header
	Hold                   // keep the message until the sender confirms
	Tempfail               // refuse the recipient for now (4xx)
	Reject                 // refuse the recipient (5xx)
)

var actionNames = [...]string{"pass", "log", "warn", "hold", "tempfail", "reject"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", a)
}

// ParseAction parses an action name.
func ParseAction(s string) (Action, error) {
	for i, n := range actionNames {
		if n == s {
			return Action(i), nil
		}
	}
	return Pass, fmt.Errorf("unknown action %q (want one of %s)", s, strings.Join(actionNames[:], ", "))
}

// MarshalText implements encoding.TextMarshaler.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *Action) UnmarshalText(b []byte) error {
	v, err := ParseAction(string(b))
	*a = v
	return err
}

// Mode is the policy's mode as the config names it (policy.mode).
type Mode string

const (
	// ModeEnforce enforces every decision (the default, also "").
	ModeEnforce Mode = "enforce"
	// ModeAudit makes and logs every decision and enforces none.
	ModeAudit Mode = "audit"
)

// Check reports whether m is a mode; "" is the default, enforce.
func (m Mode) Check() error {
	switch m {
	case "", ModeEnforce, ModeAudit:
		return nil
	}
	return fmt.Errorf("%q: want enforce or audit", string(m))
}

// UnmarshalText accepts enforce or audit.
func (m *Mode) UnmarshalText(b []byte) error {
	v := Mode(b)
	if err := v.Check(); err != nil {
		return err
	}
	*m = v
	return nil
}

// VerdictName is a verdict that calls for an action as the config names
// it: warn, hold or block (the keys of policy.actions).
type VerdictName string

// Verdict is the verdict v names.
func (v VerdictName) Verdict() (detect.Verdict, error) {
	d, err := detect.ParseVerdict(string(v))
	if err != nil || d == detect.OK {
		return detect.OK, fmt.Errorf("%q: want a verdict warn, hold or block", string(v))
	}
	return d, nil
}

// UnmarshalText accepts warn, hold or block.
func (v *VerdictName) UnmarshalText(b []byte) error {
	n := VerdictName(b)
	if _, err := n.Verdict(); err != nil {
		return err
	}
	*v = n
	return nil
}

// ActionName is an action as the config names it: reject, tempfail, hold,
// warn, log or pass ("" where the key has a default).
type ActionName string

// Action is the action a names.
func (a ActionName) Action() (Action, error) { return ParseAction(string(a)) }

// UnmarshalText accepts an action name, or "" (the key's default).
func (a *ActionName) UnmarshalText(b []byte) error {
	n := ActionName(b)
	if n != "" {
		if _, err := n.Action(); err != nil {
			return err
		}
	}
	*a = n
	return nil
}

// Config is the policy section of stray's configuration.
type Config struct {
	// Mode is "enforce" (default) or "audit": in audit mode every decision
	// is made and logged, and nothing is enforced.
	Mode Mode `yaml:"mode"`
	// Actions maps a verdict (warn, hold, block) to an action.
	Actions map[VerdictName]ActionName `yaml:"actions"`
	// Allow lists recipients never flagged: addresses (j@partner.ml),
	// domains (partner.ml, exactly) or suffixes (.partner.ml: it and
	// everything under it).
	Allow []string `yaml:"allow"`
	// Deny lists recipients always blocked, in the same forms (.ml: all of
	// Mali). Allow wins over deny.
	Deny []string `yaml:"deny"`
	// Scopes refine the policy for mail from some senders; the first scope
	// that matches the sender applies, on top of the above. When the MTA
	// passes an authenticated login (SASL), the login is matched, not the
	// envelope sender, which anyone can write.
	Scopes []Scope `yaml:"scopes"`
	// TrustEnvelope lets scopes match the envelope sender (MAIL FROM) of a
	// sender who did not authenticate, when the MTA says so. Off by
	// default: such a sender gets the policy without scopes. Turn it on
	// only when every client that can submit is trusted by other means.
	TrustEnvelope bool `yaml:"trust_envelope"`
	// AddressLiterals is the action for a recipient at an address literal
	// (j@[192.0.2.1]), whose destination stray cannot judge: reject
	// (default), hold, tempfail, warn, log, or pass (check nothing).
	AddressLiterals ActionName `yaml:"address_literals"`
}

// Scope is a policy refinement for some senders.
type Scope struct {
	// Senders are sender domains or suffixes (.example.com), or
	// addresses. They match an authenticated login that is an address, or
	// the envelope sender when the MTA gives no login and the envelope is
	// trusted.
	Senders []string `yaml:"senders"`
	// Logins are authenticated (SASL) logins, matched exactly (case
	// does not matter): for logins that are not addresses (jsmith).
	Logins  []string                   `yaml:"logins"`
	Actions map[VerdictName]ActionName `yaml:"actions"`
	Allow   []string                   `yaml:"allow"`
	Deny    []string                   `yaml:"deny"`
}

// Sender is who sends a message, as far as the front end knows.
type Sender struct {
	// Envelope is the envelope sender (MAIL FROM); "" for the null sender.
	Envelope string
	// Login is the authenticated (SASL) login; "" when there is none.
	Login string
	// AuthKnown: the MTA passes authentication information, so an empty
	// Login means the sender did not authenticate. When false (the front
	// end cannot tell), scopes match the envelope sender.
	AuthKnown bool
}

// Rule names.
const (
	RuleAllow      = "allow"
	RuleDeny       = "deny"
	RuleUnreadable = "unreadable"      // a recipient stray cannot parse
	RuleLiteral    = "address-literal" // a recipient at an address literal
)

// Defaults: block → reject, hold → hold, warn → warn.
var defaultActions = map[detect.Verdict]Action{detect.OK: Pass, detect.Warn: Warn, detect.Hold: Hold, detect.Block: Reject}

// Policy is a compiled Config. It is immutable and safe for concurrent use.
type Policy struct {
	audit   bool
	actions map[detect.Verdict]Action
	allow   matcher
	deny    matcher
	scopes  []scope
	// senderAllow maps a sender (lower case) to the recipient addresses
	// it may write to whatever the finding (a release as typed).
	senderAllow map[string]map[string]bool
	// trustEnvelope: scopes match the envelope of unauthenticated senders.
	trustEnvelope bool
	literal       Action
}

// RuleSenderAllow is the Decision.Rule of a per-sender allow.
const RuleSenderAllow = "sender-allow"

// SenderAllow lets one sender's mail through to one recipient address.
type SenderAllow struct {
	Sender    string // an address
	Recipient string // an address, never a domain or suffix
}

// WithSenderAllows returns a copy of p that also lets each sender's mail
// through to its recipient address: what a release as typed teaches. It is
// as narrow as the release: one sender, one address. An entry that is not
// two addresses is an error; p is not changed.
func (p *Policy) WithSenderAllows(allows []SenderAllow) (*Policy, error) {
	q := *p
	q.senderAllow = make(map[string]map[string]bool, len(p.senderAllow)+len(allows))
	for s, rs := range p.senderAllow {
		q.senderAllow[s] = maps.Clone(rs)
	}
	var probs []string
	for i, a := range allows {
		if err := a.Check(); err != nil {
			probs = append(probs, fmt.Sprintf("sender allow %d: %v", i, err))
			continue
		}
		sender := strings.ToLower(strings.TrimSpace(a.Sender))
		rcpt, _ := NormalizePattern(a.Recipient)
		if q.senderAllow[sender] == nil {
			q.senderAllow[sender] = map[string]bool{}
		}
		q.senderAllow[sender][rcpt] = true
	}
	if len(probs) > 0 {
		return nil, Problems(probs)
	}
	return &q, nil
}

// Check reports whether a is two addresses.
func (a SenderAllow) Check() error {
	if addrDomain(strings.TrimSpace(a.Sender)) == "" {
		return fmt.Errorf("%q → %q: the sender is not an address", a.Sender, a.Recipient)
	}
	if rcpt, err := NormalizePattern(a.Recipient); err != nil || !strings.Contains(rcpt, "@") {
		return fmt.Errorf("%q → %q: the recipient is not an address", a.Sender, a.Recipient)
	}
	return nil
}

// senderAllowed reports whether sender may write to addr (local@domain,
// domain normalised) whatever the finding.
func (p *Policy) senderAllowed(sender, addr, domain string) bool {
	if len(p.senderAllow) == 0 || sender == "" {
		return false
	}
	rs := p.senderAllow[strings.ToLower(sender)]
	i := strings.LastIndexByte(addr, '@')
	return rs != nil && i >= 0 && rs[strings.ToLower(addr[:i])+"@"+domain]
}

type scope struct {
	senders matcher
	logins  map[string]bool
	actions map[detect.Verdict]Action
	allow   matcher
	deny    matcher
}

// Effective is c with its defaults written out, as Compile applies them:
// the mode, an action for every verdict (warn, hold, block) and the
// address-literal action. What an administrator reads is what runs, never
// an empty `actions: {}`. Scopes are left as written.
func (c Config) Effective() Config {
	e := c
	if e.Mode == "" {
		e.Mode = ModeEnforce
	}
	e.Actions = map[VerdictName]ActionName{}
	for v, a := range defaultActions {
		if v != detect.OK {
			e.Actions[VerdictName(v.String())] = ActionName(a.String())
		}
	}
	for v, a := range c.Actions {
		e.Actions[v] = a
	}
	if e.AddressLiterals == "" {
		e.AddressLiterals = ActionName(Reject.String())
	}
	return e
}

// Compile checks a Config and compiles it. Problems are reported all at
// once, each with its field path below prefix (e.g. "policy").
func Compile(c Config, prefix string) (*Policy, error) {
	var probs []string
	p := &Policy{actions: map[detect.Verdict]Action{}, trustEnvelope: c.TrustEnvelope, literal: Reject}
	if err := c.Mode.Check(); err != nil {
		probs = append(probs, fmt.Sprintf("%s.mode: %v", prefix, err))
	}
	p.audit = c.Mode == ModeAudit
	for v, a := range defaultActions {
		p.actions[v] = a
	}
	if c.AddressLiterals != "" {
		a, err := c.AddressLiterals.Action()
		if err != nil {
			probs = append(probs, fmt.Sprintf("%s.address_literals: %v", prefix, err))
		}
		p.literal = a
	}
	probs = append(probs, compileActions(c.Actions, p.actions, prefix+".actions")...)
	var e []string
	p.allow, e = compileMatcher(c.Allow, prefix+".allow")
	probs = append(probs, e...)
	p.deny, e = compileMatcher(c.Deny, prefix+".deny")
	probs = append(probs, e...)
	for i, sc := range c.Scopes {
		path := fmt.Sprintf("%s.scopes[%d]", prefix, i)
		s := scope{actions: map[detect.Verdict]Action{}, logins: map[string]bool{}}
		for v, a := range p.actions {
			s.actions[v] = a
		}
		if len(sc.Senders) == 0 && len(sc.Logins) == 0 {
			probs = append(probs, path+".senders: empty (a scope applies to some sender domains or logins)")
		}
		for j, l := range sc.Logins {
			l = strings.TrimSpace(l)
			if l == "" {
				probs = append(probs, fmt.Sprintf("%s.logins[%d]: empty", path, j))
				continue
			}
			s.logins[strings.ToLower(l)] = true
		}
		s.senders, e = compileMatcher(sc.Senders, path+".senders")
		probs = append(probs, e...)
		probs = append(probs, compileActions(sc.Actions, s.actions, path+".actions")...)
		s.allow, e = compileMatcher(sc.Allow, path+".allow")
		probs = append(probs, e...)
		s.deny, e = compileMatcher(sc.Deny, path+".deny")
		probs = append(probs, e...)
		p.scopes = append(p.scopes, s)
	}
	if len(probs) > 0 {
		return nil, Problems(probs)
	}
	return p, nil
}

// Problems lists every problem found in a policy config.
type Problems []string

func (p Problems) Error() string { return strings.Join(p, "; ") }

func compileActions(in map[VerdictName]ActionName, into map[detect.Verdict]Action, path string) []string {
	var probs []string
	for vs, as := range in {
		v, err := vs.Verdict()
		if err != nil {
			probs = append(probs, fmt.Sprintf("%s: %v", path, err))
			continue
		}
		a, err := as.Action()
		if err != nil {
			probs = append(probs, fmt.Sprintf("%s.%s: %v", path, vs, err))
			continue
		}
		into[v] = a
	}
	return probs
}

// Decision is the policy's answer for one recipient.
type Decision struct {
	Finding detect.Finding
	// Action is what to do; in audit mode it is Log (or Pass) and
	// Intended holds what enforcement would have done.
	Action Action
	// Enforced is the action that enforcement would take.
	Enforced Action
	// Rule names the rule that decided, if any: "allow", "deny",
	// "sender-allow" (RuleSenderAllow).
	Rule  string
	Audit bool
}

// Decide applies the policy to a finding for mail from sender (an address
// or "" for the null sender), when the front end cannot tell whether the
// sender authenticated: scopes match the envelope sender.
func (p *Policy) Decide(sender string, f detect.Finding) Decision {
	return p.DecideFor(Sender{Envelope: sender}, f)
}

// DecideFor applies the policy to a finding for mail from s. Scopes match
// s.Login when there is one (an address login as an address, any login by
// a scope's logins); without a login they match the envelope sender only
// when the front end cannot tell (AuthKnown false) or the envelope is
// trusted (trust_envelope).
func (p *Policy) DecideFor(s Sender, f detect.Finding) Decision {
	actions, allow, deny := p.actions, p.allow, p.deny
	sc := p.scopeFor(s)
	if sc != nil {
		actions = sc.actions
	}
	d := Decision{Finding: f, Audit: p.audit}
	addr, dom := f.Address, f.Domain
	switch {
	case allow.match(addr, dom) || (sc != nil && sc.allow.match(addr, dom)):
		d.Rule = RuleAllow
		d.Finding.Verdict, d.Finding.Intended, d.Finding.Suggestion, d.Finding.Reasons = detect.OK, "", "", nil
	case deny.match(addr, dom) || (sc != nil && sc.deny.match(addr, dom)):
		d.Rule = RuleDeny
		d.Finding.Verdict = detect.Block
		d.Finding.Reasons = append([]detect.Reason{{Kind: "deny", Message: dom + " is on your deny list"}}, f.Reasons...)
	case p.senderAllowed(s.Envelope, addr, dom):
		d.Rule = RuleSenderAllow
		d.Finding.Verdict, d.Finding.Intended, d.Finding.Suggestion, d.Finding.Reasons = detect.OK, "", "", nil
	}
	d.Enforced = actions[d.Finding.Verdict]
	d.Action = d.Enforced
	if p.audit && d.Action > Log {
		d.Action = Log
	}
	return d
}

// scopeFor is the scope that applies to s, or nil.
func (p *Policy) scopeFor(s Sender) *scope {
	id := s.Envelope
	if s.Login != "" {
		id = s.Login
	} else if s.AuthKnown && !p.trustEnvelope {
		return nil
	}
	login := strings.ToLower(strings.TrimSpace(s.Login))
	d := addrDomain(id)
	for i := range p.scopes {
		sc := &p.scopes[i]
		if (login != "" && sc.logins[login]) || (d != "" && sc.senders.match(id, d)) {
			return sc
		}
	}
	return nil
}

// Unreadable is the decision for a recipient stray cannot parse (f says
// which, with a reason): reject, whatever the rules, since an address
// stray cannot read is one it cannot check. Audit mode only logs it.
func (p *Policy) Unreadable(f detect.Finding) Decision {
	f.Verdict = detect.Block
	return p.fixed(f, RuleUnreadable, Reject)
}

// Literal is the decision for a recipient at an address literal (f says
// which, with a reason): the address_literals action. ok is false when
// that is pass: the literal is then treated like any recipient.
func (p *Policy) Literal(f detect.Finding) (d Decision, ok bool) {
	if p.literal == Pass {
		return Decision{}, false
	}
	switch p.literal {
	case Reject, Tempfail:
		f.Verdict = detect.Block
	case Hold:
		f.Verdict = detect.Hold
	default:
		f.Verdict = detect.Warn
	}
	return p.fixed(f, RuleLiteral, p.literal), true
}

// fixed is a decision by a rule with a fixed action.
func (p *Policy) fixed(f detect.Finding, rule string, a Action) Decision {
	d := Decision{Finding: f, Rule: rule, Enforced: a, Action: a, Audit: p.audit}
	if p.audit && d.Action > Log {
		d.Action = Log
	}
	return d
}

// Audit reports whether the policy is in audit-only mode.
func (p *Policy) Audit() bool { return p.audit }

func addrDomain(a string) string {
	i := strings.LastIndexByte(a, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(strings.TrimSuffix(a[i+1:], "."))
}

// matcher matches addresses, exact domains and suffixes.
type matcher struct {
	addrs    map[string]bool
	domains  map[string]bool
	suffixes []string // without the leading dot
}

// NormalizePattern checks an allow or deny entry (an address, a domain or
// a .suffix) and returns it as the policy reads it: lower case, IDNA
// domains in ASCII, "*.x" as ".x".
func NormalizePattern(p string) (string, error) {
	m, probs := compileMatcher([]string{p}, "pattern")
	if len(probs) > 0 {
		return "", errors.New(strings.TrimPrefix(probs[0], "pattern[0]: "))
	}
	for a := range m.addrs {
		return a, nil
	}
	for d := range m.domains {
		return d, nil
	}
	return "." + m.suffixes[0], nil
}

func compileMatcher(entries []string, path string) (matcher, []string) {
	m := matcher{addrs: map[string]bool{}, domains: map[string]bool{}}
	var probs []string
	for i, e := range entries {
		e = strings.TrimSpace(e)
		switch {
		case strings.Contains(e, "@"):
			local, dom := e[:strings.LastIndexByte(e, '@')], e[strings.LastIndexByte(e, '@')+1:]
			d, err := detect.NormalizeDomain(dom)
			if err != nil || local == "" {
				probs = append(probs, fmt.Sprintf("%s[%d]: %q: not an address", path, i, e))
				continue
			}
			m.addrs[strings.ToLower(local)+"@"+d] = true
		case strings.HasPrefix(e, ".") || strings.HasPrefix(e, "*."):
			d, err := detect.NormalizeDomain(strings.TrimPrefix(strings.TrimPrefix(e, "*"), "."))
			if err != nil {
				probs = append(probs, fmt.Sprintf("%s[%d]: %q: %v (want .suffix)", path, i, e, err))
				continue
			}
			m.suffixes = append(m.suffixes, d)
		default:
			d, err := detect.NormalizeDomain(e)
			if err != nil {
				probs = append(probs, fmt.Sprintf("%s[%d]: %q: %v (want an address, a domain or a .suffix)", path, i, e, err))
				continue
			}
			m.domains[d] = true
		}
	}
	return m, probs
}

// match reports whether addr (local@domain) or its domain matches.
func (m matcher) match(addr, domain string) bool {
	if domain == "" {
		return false
	}
	if m.domains[domain] {
		return true
	}
	if len(m.addrs) > 0 {
		if i := strings.LastIndexByte(addr, '@'); i >= 0 && m.addrs[strings.ToLower(addr[:i])+"@"+domain] {
			return true
		}
	}
	for _, s := range m.suffixes {
		if domain == s || strings.HasSuffix(domain, "."+s) {
			return true
		}
	}
	return false
}
