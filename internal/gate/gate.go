// Package gate is the one place where a message's recipients are decided.
// Every front end (milter, policy server, SMTP relay, HTTP check) drives a
// Session — mail from, each rcpt, data, end of message — and translates the
// answers back into its protocol. The gate asks detect for a Finding and the
// policy for an Action, remembers per-message state across recipients, logs
// one line per decision and counts it.
//
// It never speaks a protocol and never touches the network.
package gate

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/address"
	"github.com/stray-mail/stray/internal/policy"
)

// Engine is what decides: detection knowledge and policy. A Gate swaps its
// Engine atomically on reload; a message in flight keeps the one it began
// with.
type Engine struct {
	Checker *detect.Checker
	Policy  *policy.Policy
	// WarnHeader adds X-Stray-Warning to a message with a warned
	// recipient. Off by default: every recipient reads the header,
	// including the stranger who may have got the message by mistake, and
	// the sender, who could act, never sees it. Turn it on only when the
	// warned recipients are internal. The sender is told either way
	// (Warner).
	WarnHeader bool
}

// Gate holds the current Engine, the logger and the metrics.
type Gate struct {
	engine   atomic.Pointer[Engine]
	log      *slog.Logger
	metrics  *metrics
	releases Releases
	recorder Recorder
	warner   Warner
}

// Warner tells a sender, after the fact, that a recipient of a message
// they sent looked like a typo (the warn action). It is called at the end
// of the message for each warned recipient that was accepted, and must
// not block: it queues and sends in the background.
type Warner interface {
	Warned(queueID, sender string, r RcptResult)
}

// Releases recognises a message re-injected after its sender confirmed it:
// it verifies the value of its release header and returns the recipients it
// releases and who released them, as the hold's audit trail names them
// ("sender", "admin:NAME"; "" if unknown); ok is false for a forged,
// expired or replayed header.
type Releases interface {
	Released(ctx context.Context, header string) (rcpts []string, by string, ok bool)
}

// Recorder records what the gate saw, for learning and the audit trail.
// Implementations must not block: they queue and write in the background.
type Recorder interface {
	// Delivered is called with a message's accepted, not held, recipients
	// that were clean, allowed or released (not those delivered with a
	// warning), each with why it passed: only clean ones may teach stray
	// who the organisation writes to.
	Delivered(sender string, rcpts []Delivery)
	// Flagged is called for every recipient decision that is not a plain
	// ok.
	Flagged(queueID, sender string, r RcptResult)
	// Decided is called for every recipient decision, flagged or not (the
	// per-day counts of the dashboard). It must be cheap.
	Decided(verdict detect.Verdict, action policy.Action)
}

// Passed says why a delivered recipient was let through.
type Passed uint8

const (
	// PassedClean: detection found nothing and no rule applied.
	PassedClean Passed = iota
	// PassedAllowed: an allow rule (configured, run-time, scoped or
	// per-sender) let it through, as wide as the rule says and no wider.
	PassedAllowed
	// PassedReleased: its sender (or an administrator) released it as
	// typed.
	PassedReleased
)

var passedNames = [...]string{"clean", "allowed", "released"}

func (p Passed) String() string {
	if int(p) < len(passedNames) {
		return passedNames[p]
	}
	return fmt.Sprintf("passed(%d)", p)
}

// Delivery is a delivered recipient and why it passed.
type Delivery struct {
	Recipient string
	Passed    Passed
	// By is who released it, for PassedReleased (Releases' by).
	By string
}

// Option gives a Gate one of its optional dependencies.
type Option func(*Gate)

// WithRecorder records what the gate saw (learning, events, counts).
func WithRecorder(r Recorder) Option { return func(g *Gate) { g.recorder = r } }

// WithReleases recognises released messages (hold and confirm).
func WithReleases(r Releases) Option { return func(g *Gate) { g.releases = r } }

// WithWarner tells senders about warned recipients (hold's notifications).
func WithWarner(w Warner) Option { return func(g *Gate) { g.warner = w } }

// ReleaseHeader is the header field released messages carry.
const ReleaseHeader = "X-Stray-Release"

type metrics struct {
	decisions *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	messages  *prometheus.CounterVec
}

// New makes a Gate with its dependencies. reg may be nil (no metrics
// registered).
func New(e *Engine, log *slog.Logger, reg prometheus.Registerer, opts ...Option) *Gate {
	g := &Gate{log: log}
	for _, o := range opts {
		o(g)
	}
	g.engine.Store(e)
	g.metrics = &metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stray_gate_decisions_total",
			Help: "Recipient decisions, by front end, verdict and action.",
		}, []string{"frontend", "verdict", "action"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "stray_gate_decision_seconds",
			Help:    "Time to decide one recipient (detection and policy).",
			Buckets: []float64{5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2},
		}, []string{"frontend"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stray_gate_messages_total",
			Help: "Messages seen, by front end and outcome.",
		}, []string{"frontend", "outcome"}),
	}
	if reg != nil {
		reg.MustRegister(g.metrics.decisions, g.metrics.latency, g.metrics.messages)
	}
	return g
}

// Swap installs a new Engine (config reload). Messages already in progress
// finish with the Engine they started with.
func (g *Gate) Swap(e *Engine) { g.engine.Store(e) }

// Engine returns the current Engine.
func (g *Gate) Engine() *Engine { return g.engine.Load() }

// Logger returns the gate's logger.
func (g *Gate) Logger() *slog.Logger { return g.log }

// Session is one connection's view of the gate: a sequence of messages.
// It is not safe for concurrent use; a front end uses one per connection.
type Session struct {
	g        *Gate
	frontend string
	log      *slog.Logger
	engine   *Engine
	queueID  string
	sender   string
	auth     Auth
	inMsg    bool
	rcpts    []RcptResult
	release  []string // values of release headers seen
	// dry: a check of a message not being sent (Gate.Check): nothing is
	// recorded, counted or logged.
	dry bool
}

// NewSession starts a session for a front end ("milter", "policy", …),
// logging with log (which should carry conn and client attributes).
func (g *Gate) NewSession(frontend string, log *slog.Logger) *Session {
	if log == nil {
		log = g.log
	}
	return &Session{g: g, frontend: frontend, log: log}
}

// Check decides the recipients of a message that is not being sent (the
// HTTP check API, at compose time) exactly as a session's Rcpt would, with
// one engine for all of them, but records nothing: no learning, no events,
// no counts, no metrics and no decision log lines (compose-time checks are
// not mail, and their recipients are not logged). rcpts are addresses as an MTA would give them
// (address.Address.String()).
func (g *Gate) Check(ctx context.Context, sender string, rcpts []string) []RcptResult {
	// Discarded: decide logs the recipients it cannot read.
	s := &Session{g: g, frontend: "check", log: slog.New(slog.DiscardHandler), dry: true}
	s.MailAuth(sender, Auth{})
	out := make([]RcptResult, 0, len(rcpts))
	for _, r := range rcpts {
		if ctx.Err() != nil {
			break
		}
		out = append(out, s.Rcpt(r))
	}
	return out
}

// Auth is what the MTA says about how the sender authenticated.
type Auth struct {
	// Login is the SASL login ("" when the sender did not authenticate).
	Login string
	// Known: the MTA passes authentication information, so an empty Login
	// means the sender did not authenticate. Policy scopes then match the
	// login, not the envelope sender, which anyone can write.
	Known bool
}

// Mail starts a message from sender (an address, "<addr>", or "" / "<>"
// for the null sender), when the front end cannot tell whether the sender
// authenticated. Any unfinished message is dropped.
func (s *Session) Mail(sender string) { s.MailAuth(sender, Auth{}) }

// MailAuth starts a message from sender, authenticated as auth says.
func (s *Session) MailAuth(sender string, auth Auth) {
	s.Reset()
	s.engine = s.g.engine.Load()
	s.sender = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(sender), "<"), ">")
	s.auth = Auth{Login: strings.TrimSpace(auth.Login), Known: auth.Known}
	s.inMsg = true
}

// Login returns the current message's authenticated login, if any.
func (s *Session) Login() string { return s.auth.Login }

// WarnHeader reports whether a warned recipient of the current message
// gets the X-Stray-Warning header (hold.warn_header: internal recipients).
func (s *Session) WarnHeader() bool { return s.engine != nil && s.engine.WarnHeader }

// SetQueueID records the MTA's queue id for the logs, when it is known.
func (s *Session) SetQueueID(id string) {
	if id != "" {
		s.queueID = id
	}
}

// QueueID returns the queue id recorded for the current message.
func (s *Session) QueueID() string { return s.queueID }

// Sender returns the current message's sender.
func (s *Session) Sender() string { return s.sender }

// RcptResult is the gate's answer for one recipient.
type RcptResult struct {
	Recipient string
	Decision  policy.Decision
	// Reply is the SMTP reply refusing the recipient (nil: accepted).
	Reply *Reply
}

// Rcpt decides one recipient of the current message, as the client wrote
// it (RCPT TO).
func (s *Session) Rcpt(rcpt string) RcptResult { return s.RcptResolved(rcpt, "") }

// RcptResolved decides one recipient as the client wrote it (rcpt) and,
// when the MTA tells, as the MTA resolved it (resolved: Postfix's
// {rcpt_addr} milter macro; "" when unknown). Every address either of them
// routes through (address.ParseRoute; the protected domains count as
// local) is checked, and the most severe decision wins, so that what stray
// judges is where the mail goes. A recipient stray cannot read is refused
// (policy.Unreadable), and one at an address literal gets the policy's
// address_literals action.
func (s *Session) RcptResolved(rcpt, resolved string) RcptResult {
	if !s.inMsg {
		s.Mail("") // a front end that skipped MAIL: decide against the null sender
	}
	start := time.Now()
	rcpt = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(rcpt), "<"), ">")
	r := RcptResult{Recipient: rcpt}
	var via string
	r.Decision, r.Reply, via = s.decide(rcpt, strings.TrimSpace(resolved))
	s.rcpts = append(s.rcpts, r)
	if s.dry {
		return r
	}
	if s.g.recorder != nil {
		s.g.recorder.Decided(r.Decision.Finding.Verdict, r.Decision.Action)
		if r.Decision.Finding.Verdict != detect.OK || r.Decision.Rule != "" {
			s.g.recorder.Flagged(s.queueID, s.sender, r)
		}
	}
	elapsed := time.Since(start)
	s.g.metrics.latency.WithLabelValues(s.frontend).Observe(elapsed.Seconds())
	s.g.metrics.decisions.WithLabelValues(s.frontend, r.Decision.Finding.Verdict.String(), r.Decision.Action.String()).Inc()
	s.logDecision(r, via)
	return r
}

// hop is one address a recipient routes through.
type hop struct {
	addr    address.Address
	written bool // the address as the client wrote it (not a rewrite)
}

// decide is the decision and reply for a recipient, and the address it
// routes through that decided, when that is not the address as written.
func (s *Session) decide(rcpt, resolved string) (policy.Decision, *Reply, string) {
	e := s.engine
	sender := policy.Sender{Envelope: s.sender, Login: s.auth.Login, AuthKnown: s.auth.Known}
	local := func(a address.Address) bool { return a.Literal || e.Checker.Protects(a.Domain) }
	var hops []hop
	seen := map[string]bool{}
	for i, in := range []string{rcpt, resolved} {
		if i == 1 && (in == "" || len(hops) == 0) {
			// No resolution, or an address without a domain: the MTA
			// gives it its own (myorigin), nothing to check.
			break
		}
		rt, err := address.ParseRoute(in, local)
		if err != nil {
			s.log.Info("recipient not readable; refused", "queue_id", s.queueID, "rcpt", clip(in), "err", err)
			d := e.Policy.Unreadable(detect.Finding{Address: clip(rcpt), Reasons: []detect.Reason{
				{Kind: policy.RuleUnreadable, Message: "stray cannot read this address (" + strings.TrimPrefix(err.Error(), "address: ") + ")"}}})
			return d, replyFor(rcpt, hop{}, d), ""
		}
		for j, a := range rt.Hops {
			if k := a.String(); !seen[k] {
				seen[k] = true
				hops = append(hops, hop{addr: a, written: i == 0 && j == 0})
			}
		}
	}
	if len(hops) == 0 {
		d := e.Policy.DecideFor(sender, detect.Finding{Address: rcpt})
		return d, nil, ""
	}
	var best policy.Decision
	var bestHop hop
	for i, h := range hops {
		var d policy.Decision
		ok := false
		if h.addr.Literal {
			d, ok = e.Policy.Literal(detect.Finding{Address: h.addr.String(), Domain: h.addr.Domain, Reasons: []detect.Reason{
				{Kind: policy.RuleLiteral, Message: "stray cannot check mail to an address literal"}}})
		}
		if !ok {
			d = e.Policy.DecideFor(sender, e.Checker.CheckAddress(h.addr))
		}
		if i == 0 || worse(d, best) {
			best, bestHop = d, h
		}
	}
	via := ""
	if !bestHop.written {
		via = bestHop.addr.String()
	}
	return best, replyFor(rcpt, bestHop, best), via
}

// worse reports whether decision a is more severe than b: a stronger
// enforced action, then a stronger verdict, then a higher score.
func worse(a, b policy.Decision) bool {
	if a.Enforced != b.Enforced {
		return a.Enforced > b.Enforced
	}
	if a.Finding.Verdict != b.Finding.Verdict {
		return a.Finding.Verdict > b.Finding.Verdict
	}
	return a.Finding.Score > b.Finding.Score
}

func (s *Session) logDecision(r RcptResult, via string) {
	d := r.Decision
	level := slog.LevelInfo
	if d.Finding.Verdict == detect.OK && d.Rule == "" {
		level = slog.LevelDebug
	}
	if !s.log.Enabled(context.Background(), level) {
		return
	}
	attrs := []any{"queue_id", s.queueID, "sender", s.sender, "rcpt", clip(r.Recipient),
		"verdict", d.Finding.Verdict.String(), "intended", d.Finding.Intended, "action", d.Action.String()}
	if via != "" {
		attrs = append(attrs, "via", clip(via))
	}
	if s.auth.Login != "" {
		attrs = append(attrs, "login", clip(s.auth.Login))
	}
	if d.Audit {
		attrs = append(attrs, "audit", true, "enforced", d.Enforced.String())
	}
	if d.Rule != "" {
		attrs = append(attrs, "rule", d.Rule)
	}
	if len(d.Finding.Reasons) > 0 {
		kinds := make([]string, len(d.Finding.Reasons))
		for i, x := range d.Finding.Reasons {
			kinds[i] = x.Kind
		}
		attrs = append(attrs, "reasons", strings.Join(kinds, ","), "score", d.Finding.Score)
	}
	s.log.Log(context.Background(), level, "decision", attrs...)
}

// Recipients returns the decisions made so far for the current message.
func (s *Session) Recipients() []RcptResult { return s.rcpts }

// NeedsEnd reports whether the end of the message matters: some recipient
// was accepted with an action that takes effect there (hold, or warn when
// it adds a header). When it is false, a front end can accept the message
// at DATA and never see its content.
func (s *Session) NeedsEnd() bool {
	warnHeader := s.WarnHeader()
	for _, r := range s.rcpts {
		if r.Reply == nil && (r.Decision.Action == policy.Hold || r.Decision.Action == policy.Warn && warnHeader) {
			return true
		}
	}
	return false
}

// Header is a header field to add to the message.
type Header struct{ Name, Value string }

// Header tells the session about one of the message's header fields; only
// the release header matters.
func (s *Session) Header(name, value string) {
	if strings.EqualFold(name, ReleaseHeader) && len(s.release) < 4 {
		s.release = append(s.release, strings.TrimSpace(value))
	}
}

// End is what to do with the message as a whole.
type End struct {
	// Hold, when non-empty, is the reason to hold (quarantine) the message.
	Hold string
	// Headers to add (warnings).
	Headers []Header
	// HeldRecipients are the recipients whose findings caused the hold.
	HeldRecipients []RcptResult
	// AllHeld: every accepted recipient is held (nothing to deliver now).
	AllHeld bool
	// Released are recipients let through by a valid release header.
	Released []string
}

// End finishes the current message and says what to do with it. ctx
// bounds the store calls it makes (recognising a release header).
func (s *Session) End(ctx context.Context) End {
	var e End
	released := map[string]string{} // recipient → who released it
	if s.g.releases != nil {
		for _, v := range s.release {
			if rc, by, ok := s.g.releases.Released(ctx, v); ok {
				for _, r := range rc {
					released[strings.ToLower(r)] = by
				}
			}
		}
	}
	var held []string
	var delivered []Delivery
	accepted := 0
	for _, r := range s.rcpts {
		if r.Reply != nil {
			continue
		}
		accepted++
		f := r.Decision.Finding
		switch r.Decision.Action {
		case policy.Hold:
			if by, ok := released[strings.ToLower(r.Recipient)]; ok {
				e.Released = append(e.Released, r.Recipient)
				delivered = append(delivered, Delivery{Recipient: r.Recipient, Passed: PassedReleased, By: by})
				s.log.Info("released as typed", "queue_id", s.queueID, "rcpt", clip(r.Recipient), "by", by)
				continue
			}
			e.HeldRecipients = append(e.HeldRecipients, r)
			held = append(held, describe(f))
			continue
		case policy.Warn:
			if s.engine != nil && s.engine.WarnHeader {
				e.Headers = append(e.Headers, Header{"X-Stray-Warning", asciiText(describe(f))})
			}
			if s.g.warner != nil {
				s.g.warner.Warned(s.queueID, s.sender, r)
			}
		}
		// A warned typo that was delivered is not reported: it must never
		// become "known". An allowed one is reported as such, so that the
		// recorder learns nothing org-wide from it.
		switch {
		case f.Verdict != detect.OK:
		case r.Decision.Rule != "":
			delivered = append(delivered, Delivery{Recipient: r.Recipient, Passed: PassedAllowed})
		default:
			delivered = append(delivered, Delivery{Recipient: r.Recipient, Passed: PassedClean})
		}
	}
	if len(held) > 0 {
		e.Hold = asciiText("stray: " + strings.Join(held, "; "))
		e.AllHeld = len(e.HeldRecipients) == accepted
	}
	outcome := "delivered"
	switch {
	case e.Hold != "":
		outcome = "held"
	case len(s.rcpts) > 0 && s.allRefused():
		outcome = "refused"
	}
	s.g.metrics.messages.WithLabelValues(s.frontend, outcome).Inc()
	if s.g.recorder != nil && len(delivered) > 0 {
		s.g.recorder.Delivered(s.sender, delivered)
	}
	s.Reset()
	return e
}

func (s *Session) allRefused() bool {
	for _, r := range s.rcpts {
		if r.Reply == nil {
			return false
		}
	}
	return true
}

// Reset abandons the current message.
func (s *Session) Reset() {
	s.rcpts = s.rcpts[:0]
	s.release = s.release[:0]
	s.sender, s.queueID, s.inMsg, s.auth = "", "", false, Auth{}
}

// Describe is a one-line, printable-ASCII sentence about a flagged
// recipient, for a header, a hold reason or a log.
func Describe(f detect.Finding) string { return asciiText(describe(f)) }

// describe is a sentence about a flagged recipient.
func describe(f detect.Finding) string {
	switch {
	case f.Intended != "":
		return fmt.Sprintf("%s looks like a typo of %s; did you mean %s?", f.Address, f.Intended, f.Suggestion)
	case len(f.Reasons) > 0:
		return fmt.Sprintf("%s: %s", f.Address, f.Reasons[0].Message)
	}
	return f.Address + " looks suspicious"
}

// Reply is an SMTP reply.
type Reply struct {
	Code     int
	Enhanced string
	Text     string
}

func (r *Reply) String() string { return fmt.Sprintf("%d %s %s", r.Code, r.Enhanced, r.Text) }

// replyFor is the reply refusing a recipient, or nil when it is accepted.
// rcpt is the recipient as written, h the address it routes through that
// decided. The text is short, helpful to the sender and printable ASCII
// (SMTP).
func replyFor(rcpt string, h hop, d policy.Decision) *Reply {
	var code int
	var enh string
	switch d.Action {
	case policy.Reject:
		code, enh = 550, "5.1.2"
	case policy.Tempfail:
		code, enh = 450, "4.1.2"
	default:
		return nil
	}
	a, f := h.addr, d.Finding
	who := "<" + a.String() + ">"
	if !h.written {
		// Not the recipient's own text, which may hold '%' (not allowed
		// in milter replies): where it routes.
		who = fmt.Sprintf("routed to <%s>", a.String())
	}
	var text string
	switch {
	case d.Rule == policy.RuleUnreadable:
		// Syntax: 501 5.1.3 (bad destination mailbox address syntax).
		code, enh = 501, "5.1.3"
		text = fmt.Sprintf("<%s>: stray cannot read this address", clipShort(rcpt))
	case d.Rule == policy.RuleLiteral:
		enh = map[int]string{550: "5.7.1", 450: "4.7.1"}[code]
		text = fmt.Sprintf("%s: stray cannot check mail to an address literal; use a domain name", who)
	case d.Rule == policy.RuleDeny:
		text = fmt.Sprintf("%s: %s is blocked by your organisation's policy; check the address", who, a.Domain)
	case f.Intended != "":
		text = fmt.Sprintf("%s: %s looks like a typo of %s - did you mean %s?", who, a.Domain, f.Intended, f.Suggestion)
	default:
		text = fmt.Sprintf("%s: %s looks like a mistyped domain; check the address", who, a.Domain)
	}
	return &Reply{Code: code, Enhanced: enh, Text: asciiText(text)}
}

// clipShort shortens an address the sender wrote for an SMTP reply.
func clipShort(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// asciiText makes s safe for SMTP replies and header values: printable
// ASCII only, no '%' (milter reply macros), bounded length.
func asciiText(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '%':
			b.WriteString("pct")
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		default:
			b.WriteByte('?')
		}
		if b.Len() > 400 {
			b.WriteString("...")
			break
		}
	}
	return b.String()
}

func clip(s string) string {
	if len(s) > 256 {
		return s[:256] + "..."
	}
	return s
}
