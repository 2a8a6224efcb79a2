// Package policyd is stray's Postfix policy delegation front end
// (check_policy_service): it reads attribute requests, asks a gate.Session
// about each RCPT, and answers REJECT (as a 550 5.1.2 reply with the
// suggestion), HOLD, PREPEND of a warning header, or DUNNO.
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
	"sync/atomic"
	"time"

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

	mu        sync.Mutex
	listeners map[net.Listener]bool
	conns     map[net.Conn]*atomic.Bool // → busy
	closing   atomic.Bool
	wg        sync.WaitGroup
	nextID    atomic.Uint64
}

// Serve accepts connections on l until Shutdown.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.listeners == nil {
		s.listeners, s.conns = map[net.Listener]bool{}, map[net.Conn]*atomic.Bool{}
	}
	s.listeners[l] = true
	s.mu.Unlock()
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		busy := &atomic.Bool{}
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		s.conns[nc] = busy
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(nc, busy, s.nextID.Add(1))
	}
}

// Shutdown stops accepting, closes idle connections, lets requests in
// progress finish, and closes the rest when ctx ends (Postfix then answers
// its smtpd_policy_service_default_action, a tempfail by default).
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.mu.Lock()
	for l := range s.listeners {
		l.Close()
	}
	for nc, busy := range s.conns {
		if !busy.Load() {
			nc.SetReadDeadline(time.Now())
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for nc := range s.conns {
			nc.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

func (s *Server) serveConn(nc net.Conn, busy *atomic.Bool, id uint64) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, nc)
		s.mu.Unlock()
		nc.Close()
	}()
	log := s.Gate.Logger().With("frontend", "policy", "conn", id, "client", nc.RemoteAddr().String())
	defer func() {
		if p := recover(); p != nil {
			log.Error("panic in policy connection; answered tempfail", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			nc.SetWriteDeadline(time.Now().Add(time.Second))
			io.WriteString(nc, "action=451 4.3.0 stray: internal error, try again later\n\n")
		}
	}()
	idle := s.IdleTimeout
	if idle <= 0 {
		idle = 5 * time.Minute
	}
	r := bufio.NewReaderSize(nc, MaxLine)
	w := bufio.NewWriter(nc)
	sess := s.Gate.NewSession("policy", log)
	instance := ""
	for {
		if s.closing.Load() {
			return
		}
		nc.SetReadDeadline(time.Now().Add(idle))
		req, err := ReadRequest(r)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !(s.closing.Load() && errors.Is(err, os.ErrDeadlineExceeded)) {
				log.Warn("policy connection closed", "err", err)
			}
			return
		}
		busy.Store(true)
		action := s.answer(sess, req, &instance)
		nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(w, "action=%s\n\n", action)
		err = w.Flush()
		busy.Store(false)
		if err != nil {
			log.Warn("policy reply failed", "err", err)
			return
		}
	}
}

// answer decides one request. Only RCPT-stage requests are judged; the
// rest get DUNNO. Consecutive requests of one message share its instance,
// so the session keeps per-message state across recipients.
func (s *Server) answer(sess *gate.Session, req Request, instance *string) string {
	if req["request"] != "smtpd_access_policy" {
		return "DUNNO"
	}
	if req["protocol_state"] != "RCPT" || req["recipient"] == "" {
		return "DUNNO"
	}
	if inst := req["instance"]; inst == "" || inst != *instance {
		*instance = inst
		sess.Mail(req["sender"])
	}
	sess.SetQueueID(req["queue_id"])
	res := sess.Rcpt(req["recipient"])
	if res.Reply != nil {
		return res.Reply.String()
	}
	switch res.Decision.Action {
	case policy.Hold:
		return "HOLD stray: " + gate.Describe(res.Decision.Finding)
	case policy.Warn:
		return "PREPEND X-Stray-Warning: " + gate.Describe(res.Decision.Finding)
	}
	return "DUNNO"
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
