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

// SetWarner installs the warner (the hold workflow's notifications).
func (g *Gate) SetWarner(w Warner) { g.warner = w }

// Releases recognises a message re-injected after its sender confirmed it:
// it verifies the value of its release header and returns the recipients it
// releases (ok false for a forged, expired or replayed header).
type Releases interface {
	Released(ctx context.Context, header string) (rcpts []string, ok bool)
}

// Recorder records what the gate saw, for learning and the audit trail.
// Implementations must not block: they queue and write in the background.
type Recorder interface {
	// Delivered is called with a message's accepted, not held, recipients.
	Delivered(sender string, rcpts []string)
	// Flagged is called for every recipient decision that is not a plain
	// ok.
	Flagged(queueID, sender string, r RcptResult)
	// Decided is called for every recipient decision, flagged or not (the
	// per-day counts of the dashboard). It must be cheap.
	Decided(verdict detect.Verdict, action policy.Action)
}

// SetReleases installs the release recogniser (hold and confirm).
func (g *Gate) SetReleases(r Releases) { g.releases = r }

// SetRecorder installs the recorder.
func (g *Gate) SetRecorder(r Recorder) { g.recorder = r }

// ReleaseHeader is the header field released messages carry.
const ReleaseHeader = "X-Stray-Release"

type metrics struct {
	decisions *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	messages  *prometheus.CounterVec
}

// New makes a Gate. reg may be nil (no metrics registered).
func New(e *Engine, log *slog.Logger, reg prometheus.Registerer) *Gate {
	g := &Gate{log: log}
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
	inMsg    bool
	rcpts    []RcptResult
	release  []string // values of release headers seen
}

// NewSession starts a session for a front end ("milter", "policy", …),
// logging with log (which should carry conn and client attributes).
func (g *Gate) NewSession(frontend string, log *slog.Logger) *Session {
	if log == nil {
		log = g.log
	}
	return &Session{g: g, frontend: frontend, log: log}
}

// Mail starts a message from sender (an address, "<addr>", or "" / "<>"
// for the null sender). Any unfinished message is dropped.
func (s *Session) Mail(sender string) {
	s.Reset()
	s.engine = s.g.engine.Load()
	s.sender = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(sender), "<"), ">")
	s.inMsg = true
}

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

// Rcpt decides one recipient of the current message.
func (s *Session) Rcpt(rcpt string) RcptResult {
	if !s.inMsg {
		s.Mail("") // a front end that skipped MAIL: decide against the null sender
	}
	start := time.Now()
	rcpt = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(rcpt), "<"), ">")
	r := RcptResult{Recipient: rcpt}
	a, err := address.Parse(rcpt)
	if err != nil {
		// Syntax is the MTA's business; the gate does not refuse what it
		// cannot read.
		s.log.Debug("recipient not parsed", "queue_id", s.queueID, "rcpt", clip(rcpt), "err", err)
		r.Decision = policy.Decision{Action: policy.Pass, Enforced: policy.Pass}
	} else {
		f := s.engine.Checker.CheckAddress(a)
		r.Decision = s.engine.Policy.Decide(s.sender, f)
		r.Reply = replyFor(a, r.Decision)
	}
	s.rcpts = append(s.rcpts, r)
	if s.g.recorder != nil {
		s.g.recorder.Decided(r.Decision.Finding.Verdict, r.Decision.Action)
		if r.Decision.Finding.Verdict != detect.OK || r.Decision.Rule != "" {
			s.g.recorder.Flagged(s.queueID, s.sender, r)
		}
	}
	elapsed := time.Since(start)
	s.g.metrics.latency.WithLabelValues(s.frontend).Observe(elapsed.Seconds())
	s.g.metrics.decisions.WithLabelValues(s.frontend, r.Decision.Finding.Verdict.String(), r.Decision.Action.String()).Inc()
	s.logDecision(r)
	return r
}

func (s *Session) logDecision(r RcptResult) {
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
	warnHeader := s.engine != nil && s.engine.WarnHeader
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

// End finishes the current message and says what to do with it.
func (s *Session) End() End {
	var e End
	released := map[string]bool{}
	if s.g.releases != nil {
		for _, v := range s.release {
			if rc, ok := s.g.releases.Released(context.Background(), v); ok {
				for _, r := range rc {
					released[strings.ToLower(r)] = true
				}
			}
		}
	}
	var held, delivered []string
	accepted := 0
	for _, r := range s.rcpts {
		if r.Reply != nil {
			continue
		}
		accepted++
		f := r.Decision.Finding
		switch r.Decision.Action {
		case policy.Hold:
			if released[strings.ToLower(r.Recipient)] {
				e.Released = append(e.Released, r.Recipient)
				delivered = append(delivered, r.Recipient)
				s.log.Info("released by its sender", "queue_id", s.queueID, "rcpt", clip(r.Recipient))
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
		// Only clean recipients teach stray who the organisation writes to:
		// a warned typo that was delivered must not become "known".
		if f.Verdict == detect.OK {
			delivered = append(delivered, r.Recipient)
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
	s.sender, s.queueID, s.inMsg = "", "", false
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
// The text is short, helpful to the sender and printable ASCII (SMTP).
func replyFor(a address.Address, d policy.Decision) *Reply {
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
	f := d.Finding
	var text string
	switch {
	case d.Rule == "deny":
		text = fmt.Sprintf("<%s>: %s is blocked by your organisation's policy; check the address", a.String(), a.Domain)
	case f.Intended != "":
		text = fmt.Sprintf("<%s>: %s looks like a typo of %s - did you mean %s?", a.String(), a.Domain, f.Intended, f.Suggestion)
	default:
		text = fmt.Sprintf("<%s>: %s looks like a mistyped domain; check the address", a.String(), a.Domain)
	}
	return &Reply{Code: code, Enhanced: enh, Text: asciiText(text)}
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
