package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/inspector"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Message is one thing the page or the browser wrote to the tab's console.
type Message struct {
	// Source is "console" for a call of the console API, "exception" for
	// an uncaught exception or unhandled rejection, "crash" when the page's
	// renderer died, or the browser log's source: "security" (among them
	// every Content-Security-Policy violation), "network", "javascript",
	// "violation" (slow handlers and the like), "deprecation", ….
	Source string
	// Level is the console call's type ("log", "info", "warning", "error",
	// "assert", …) or the log entry's level ("verbose", "info", "warning",
	// "error"); "error" for exceptions and crashes.
	Level string
	Text  string
	URL   string // where it happened, when known
	Line  int64  // 1-based; 0 when unknown
	// Document is set on the browser's network messages about a page's own
	// document, such as "the server responded with a status of 403": the
	// test checks that status through what Navigate, ClickNavigate or
	// Submit return, so it is not a problem.
	Document bool
}

// IsProblem reports whether the message fails NoProblems: an exception, a
// crash, anything from the "security" source (every CSP violation among
// them), and every message at level error (console.error, a failed
// console.assert, a resource that did not load). Warnings and the
// "violation" source's timing complaints are not problems: they depend on
// how busy the machine is. Nor is a page's own document's error status (see
// Document), or a missing /favicon.ico: the browser asks for it on its own,
// not the page.
func (m Message) IsProblem() bool {
	switch {
	case m.Source == "exception", m.Source == "crash", m.Source == "security":
		return true
	case m.Source == "network" && (m.Document || isFavicon(m.URL)):
		return false
	case m.Level == "error", m.Level == "assert":
		return true
	}
	return false
}

func isFavicon(rawURL string) bool {
	u, err := url.Parse(rawURL)
	return err == nil && u.Path == "/favicon.ico"
}

// IsCSPViolation reports whether the message is a Content-Security-Policy
// violation.
func (m Message) IsCSPViolation() bool {
	return m.Source == "security" && strings.Contains(m.Text, "Content Security Policy")
}

func (m Message) String() string {
	s := m.Source + " " + m.Level + ": " + m.Text
	if m.URL != "" {
		s += " (" + m.URL
		if m.Line > 0 {
			s += fmt.Sprintf(":%d", m.Line)
		}
		s += ")"
	}
	return s
}

// record runs in chromedp's read loop for every event of the tab, in order.
func (b *Browser) record(ev any) {
	var m Message
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		m = Message{Source: "console", Level: string(ev.Type), Text: argsText(ev.Args)}
		if st := ev.StackTrace; st != nil && len(st.CallFrames) > 0 {
			m.URL, m.Line = st.CallFrames[0].URL, st.CallFrames[0].LineNumber+1
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		m = Message{Source: "exception", Level: "error", Text: d.Text, URL: d.URL, Line: d.LineNumber + 1}
		if d.Exception != nil {
			desc, _, _ := strings.Cut(valueText(d.Exception), "\n")
			m.Text = strings.TrimSpace(d.Text + " " + desc)
		}
	case *network.EventRequestWillBeSent:
		if ev.Type == network.ResourceTypeDocument {
			b.mu.Lock()
			b.documents[ev.RequestID] = true
			b.mu.Unlock()
		}
		return
	case *log.EventEntryAdded:
		e := ev.Entry
		m = Message{Source: string(e.Source), Level: string(e.Level), Text: e.Text, URL: e.URL}
		if e.LineNumber > 0 {
			m.Line = e.LineNumber + 1
		}
		if e.NetworkRequestID != "" {
			b.mu.Lock()
			m.Document = b.documents[e.NetworkRequestID]
			b.mu.Unlock()
		}
	case *inspector.EventTargetCrashed:
		m = Message{Source: "crash", Level: "error", Text: "the page's renderer crashed"}
	default:
		return
	}
	b.mu.Lock()
	b.messages = append(b.messages, m)
	b.mu.Unlock()
}

// Messages returns every message since the browser started or since
// ClearMessages.
func (b *Browser) Messages() []Message {
	b.settle()
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Message(nil), b.messages...)
}

// Problems returns the messages that fail NoProblems (see
// Message.IsProblem).
func (b *Browser) Problems() []Message {
	var ps []Message
	for _, m := range b.Messages() {
		if m.IsProblem() {
			ps = append(ps, m)
		}
	}
	return ps
}

// ClearMessages forgets the messages so far, for a test that caused some
// on purpose.
func (b *Browser) ClearMessages() {
	b.settle()
	b.mu.Lock()
	b.messages = nil
	b.mu.Unlock()
}

// NoProblems fails the test (without stopping it) for every problem since
// the browser started or since ClearMessages: a CSP violation, an uncaught
// exception, an error on the console.
func (b *Browser) NoProblems(t testing.TB) {
	t.Helper()
	ps := b.Problems()
	if len(ps) == 0 {
		return
	}
	var sb strings.Builder
	for _, p := range ps {
		sb.WriteString("\n\t")
		sb.WriteString(p.String())
	}
	t.Errorf("browsertest: the page has %d problem(s):%s", len(ps), sb.String())
}

// settle makes a round trip to the page, so that the messages the page sent
// before it answered have been recorded (the tab's events arrive in order).
func (b *Browser) settle() {
	if b.ctx.Err() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`0`))
}

// argsText renders a console call's arguments roughly as DevTools does.
func argsText(args []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		parts = append(parts, valueText(a))
	}
	return strings.Join(parts, " ")
}

func valueText(o *runtime.RemoteObject) string {
	if o == nil {
		return "null"
	}
	if o.Type == runtime.RemoteObjectTypeString {
		var s string
		if json.Unmarshal(o.Value, &s) == nil {
			return s
		}
	}
	switch {
	case o.UnserializableValue != "":
		return string(o.UnserializableValue)
	case o.Description != "":
		return o.Description
	case len(o.Value) > 0:
		return string(o.Value)
	}
	return string(o.Type)
}
