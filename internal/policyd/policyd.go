// Package policyd is stray's Postfix policy delegation front end
// (check_policy_service): it reads attribute requests, asks a gate.Session
// about each RCPT, and answers REJECT (as a 550 5.1.2 reply with the
// suggestion; 501 5.1.3 for a recipient stray cannot read), HOLD, PREPEND
// of a warning header (only with hold.warn_header), or DUNNO. It passes the SASL login (sasl_username)
// to the session, for the policy's scopes.
//
// It decides nothing itself and never holds more than one request in memory
// per connection.
package policyd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/stray-mail/stray/internal/address"
	"github.com/stray-mail/stray/internal/connserver"
	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/policy"
)

// Limits on a request, as Postfix's own: attribute lines are short, a
// request has a few dozen of them.
const (
	MaxLine       = 4096
	MaxAttributes = 100
)

// Request is one policy delegation request: its attributes.
type Request map[string]string

// ErrTooLarge is returned for an oversized request.
var ErrTooLarge = errors.New("policyd: request too large")

// ReadRequest reads one request: name=value lines up to an empty line.
// io.EOF means the client closed cleanly between requests.
func ReadRequest(r *bufio.Reader) (Request, error) {
	req := Request{}
	for lines := 0; ; {
		line, err := readLine(r)
		if err != nil {
			if errors.Is(err, io.EOF) && (lines > 0 || line != "") {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if line == "" {
			if lines == 0 {
				continue // stray blank lines between requests
			}
			return req, nil
		}
		if lines++; lines > MaxAttributes {
			return nil, ErrTooLarge
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("policyd: malformed attribute line %q", clip(line))
		}
		req[name] = value
	}
}

func readLine(r *bufio.Reader) (string, error) {
	var b []byte
	for {
		chunk, isPrefix, err := r.ReadLine()
		if err != nil {
			return string(b), err
		}
		if len(b)+len(chunk) > MaxLine {
			return "", ErrTooLarge
		}
		b = append(b, chunk...)
		if !isPrefix {
			return string(b), nil
		}
	}
}

// Server serves policy delegation requests.
type Server struct {
	Gate *gate.Gate
	// IdleTimeout bounds the wait for the next request (default 5m; Postfix
	// closes idle policy connections after max_idle, 100s by default).
	IdleTimeout time.Duration
	// RequestTimeout bounds a request once its first byte has arrived,
	// and the wait for a new connection's first request (default 30s):
	// Postfix writes a whole request as soon as it connects.
	RequestTimeout time.Duration
	// MaxConns caps the open connections (0: no cap); see connserver.
	MaxConns int

	once sync.Once
	cs   connserver.Server
	// ctx is the connections' context; it ends when Shutdown has closed
	// what was left.
	ctx    context.Context
	cancel context.CancelFunc
}

func (s *Server) server() *connserver.Server {
	s.once.Do(func() {
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.cs.Handle = s.serveConn
		s.cs.MaxConns = s.MaxConns
		s.cs.Log = s.Gate.Logger().With("frontend", "policy")
	})
	return &s.cs
}

// Serve accepts connections on l until Shutdown.
func (s *Server) Serve(l net.Listener) error { return s.server().Serve(l) }

// Shutdown stops accepting, closes idle connections, lets requests in
// progress finish, and closes the rest when ctx ends (Postfix then answers
// its smtpd_policy_service_default_action, a tempfail by default).
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.server().Shutdown(ctx)
	s.cancel()
	return err
}

func (s *Server) serveConn(c *connserver.Conn) {
	log := s.Gate.Logger().With("frontend", "policy", "conn", c.ID, "client", c.RemoteAddr().String())
	defer func() {
		if p := recover(); p != nil {
			log.Error("panic in policy connection; answered tempfail", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			c.SetWriteDeadline(time.Now().Add(time.Second))
			io.WriteString(c, "action=451 4.3.0 stray: internal error, try again later\n\n")
		}
	}()
	idle := s.IdleTimeout
	if idle <= 0 {
		idle = 5 * time.Minute
	}
	rt := s.RequestTimeout
	if rt <= 0 {
		rt = 30 * time.Second
	}
	r := bufio.NewReaderSize(c, MaxLine)
	w := bufio.NewWriter(c)
	sess := s.Gate.NewSession("policy", log)
	m := &message{ctx: s.ctx}
	defer m.end(sess) // Postfix closed the connection: the last message is over
	for first := true; ; first = false {
		if first {
			c.SetReadDeadline(c.IdleDeadline(rt))
		} else {
			c.SetReadDeadline(c.IdleDeadline(idle))
		}
		// A request that has begun must end soon.
		_, err := r.Peek(1)
		if err == nil {
			c.SetReadDeadline(time.Now().Add(rt))
		}
		var req Request
		if err == nil {
			req, err = ReadRequest(r)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !(c.Closing() && errors.Is(err, os.ErrDeadlineExceeded)) {
				log.Warn("policy connection closed", "err", err)
			}
			return
		}
		c.SetBusy(true)
		action := s.answer(sess, req, m)
		c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(w, "action=%s\n\n", action)
		err = w.Flush()
		c.SetBusy(false)
		if err != nil {
			log.Warn("policy reply failed", "err", err)
			return
		}
	}
}

// message is the message a connection's requests are about.
type message struct {
	ctx      context.Context
	instance string // Postfix's instance attribute: one per message
	open     bool   // the session holds recipients not yet ended
}

// end ends the open message, so that the gate counts it and records its
// delivered recipients (learning). The answer is Postfix's already: HOLD
// and PREPEND were given at RCPT.
func (m *message) end(sess *gate.Session) {
	if m.open {
		sess.End(m.ctx)
		m.open = false
	}
}

// answer decides one request. Only RCPT-stage requests are judged; the
// rest get DUNNO. Consecutive requests of one message share its instance,
// so the session keeps per-message state across recipients. A message
// ends at its END-OF-MESSAGE request (check_policy_service in
// smtpd_end_of_data_restrictions), at the first request of the next
// message, or when the connection closes.
func (s *Server) answer(sess *gate.Session, req Request, m *message) string {
	if req["request"] != "smtpd_access_policy" {
		return "DUNNO"
	}
	inst := req["instance"]
	if inst != m.instance {
		m.end(sess)
	}
	if req["protocol_state"] == "END-OF-MESSAGE" {
		if inst == m.instance {
			sess.SetQueueID(req["queue_id"])
			m.end(sess)
		}
		return "DUNNO"
	}
	if req["protocol_state"] != "RCPT" || req["recipient"] == "" {
		return "DUNNO"
	}
	if inst == "" || inst != m.instance {
		m.end(sess) // without an instance, each request is a message of its own
		m.instance = inst
		// Postfix sends sasl_username (empty when the client did not
		// authenticate) when it supports SASL: the scopes then match the
		// login, not the envelope sender.
		login, known := req["sasl_username"]
		sess.MailAuth(req["sender"], gate.Auth{Login: login, Known: known})
	}
	sess.SetQueueID(req["queue_id"])
	// Postfix sends addresses in its internal form: unquoted, the domain
	// after the last '@'.
	res := sess.Rcpt(address.Internal(req["recipient"]))
	m.open = true
	if res.Reply != nil {
		return res.Reply.String()
	}
	switch res.Decision.Action {
	case policy.Hold:
		return "HOLD stray: " + gate.Describe(res.Decision.Finding)
	case policy.Warn:
		// The stranger who may receive it must not read stray's analysis:
		// the header only for internal recipients (hold.warn_header); the
		// sender is told after the fact when the message ends.
		if sess.WarnHeader() {
			return "PREPEND X-Stray-Warning: " + gate.Describe(res.Decision.Finding)
		}
	}
	return "DUNNO"
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
