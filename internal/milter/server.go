package milter

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stray-mail/stray/internal/gate"
)

// Server serves the milter protocol on listeners.
type Server struct {
	Gate *gate.Gate
	// IdleTimeout bounds the wait for the MTA's next command (default 10m:
	// an MTA keeps its milter connection for a whole SMTP session).
	IdleTimeout time.Duration
	// WriteTimeout bounds one reply (default 30s).
	WriteTimeout time.Duration

	mu        sync.Mutex
	listeners map[net.Listener]bool
	conns     map[*conn]bool
	closing   atomic.Bool
	wg        sync.WaitGroup
	nextID    atomic.Uint64
}

// Serve accepts connections on l until Shutdown. It returns nil after
// Shutdown.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.listeners == nil {
		s.listeners, s.conns = map[net.Listener]bool{}, map[*conn]bool{}
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
		c := &conn{srv: s, nc: nc, id: s.nextID.Add(1)}
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		s.conns[c] = true
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

// Shutdown stops accepting, lets connections finish the message in
// progress (closing them between messages), and when ctx ends closes what
// is left: the MTA then applies its default action (tempfail) to those
// messages.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.mu.Lock()
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.closeIfIdle()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

type conn struct {
	srv   *Server
	nc    net.Conn
	id    uint64
	inMsg atomic.Bool // a message is between MAIL and its end
	log   *slog.Logger
}

func (c *conn) closeIfIdle() {
	if !c.inMsg.Load() {
		// Wake the reader; it sees the server closing and stops.
		c.nc.SetReadDeadline(time.Now())
	}
}

func (c *conn) serve() {
	defer c.srv.wg.Done()
	defer func() {
		c.srv.mu.Lock()
		delete(c.srv.conns, c)
		c.srv.mu.Unlock()
		c.nc.Close()
	}()
	c.log = c.srv.Gate.Logger().With("frontend", "milter", "conn", c.id, "client", c.nc.RemoteAddr().String())
	defer func() {
		if p := recover(); p != nil {
			// A bug must not lose mail: answer tempfail, so the MTA
			// retries, and log it.
			c.log.Error("panic in milter connection; answered tempfail", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			c.nc.SetWriteDeadline(time.Now().Add(time.Second))
			WritePacket(c.nc, respTempfail, nil)
		}
	}()
	err := c.loop()
	switch {
	case err == nil, errors.Is(err, io.EOF), c.srv.closing.Load() && errors.Is(err, os.ErrDeadlineExceeded):
	case errors.Is(err, net.ErrClosed):
	default:
		c.log.Warn("milter connection closed", "err", err)
	}
}

func (c *conn) loop() error {
	idle := c.srv.IdleTimeout
	if idle <= 0 {
		idle = 10 * time.Minute
	}
	wt := c.srv.WriteTimeout
	if wt <= 0 {
		wt = 30 * time.Second
	}
	r := bufio.NewReaderSize(c.nc, 16*1024)
	w := bufio.NewWriterSize(c.nc, 4*1024)
	sess := c.srv.Gate.NewSession("milter", c.log)
	var macros map[string]string
	reply := func(code byte, data []byte) error {
		c.nc.SetWriteDeadline(time.Now().Add(wt))
		if err := WritePacket(w, code, data); err != nil {
			return err
		}
		return w.Flush()
	}
	for {
		if c.srv.closing.Load() && !c.inMsg.Load() {
			return nil
		}
		c.nc.SetReadDeadline(time.Now().Add(idle))
		p, err := ReadPacket(r)
		if err != nil {
			return err
		}
		switch p.Code {
		case cmdOptneg:
			o, err := parseOptneg(p.Data)
			if err != nil {
				return err
			}
			if o.version < 2 {
				return fmt.Errorf("milter: MTA protocol version %d is too old", o.version)
			}
			want := optneg{
				version:  min(o.version, Version),
				actions:  o.actions & (actAddHeader | actQuarantine),
				protocol: o.protocol & (protNoConnect | protNoHelo | protNoBody | protNoHeaders | protNoEOH | protNoUnknown),
			}
			if err := reply(respOptneg, want.bytes()); err != nil {
				return err
			}
		case cmdMacro:
			_, m, err := parseMacros(p.Data)
			if err != nil {
				return err
			}
			// Postfix sends each stage's macros before its command;
			// keep them all for the message (the queue id arrives with
			// MAIL or RCPT).
			if macros == nil {
				macros = map[string]string{}
			}
			for k, v := range m {
				macros[k] = v
			}
			if id := macros["i"]; id != "" {
				sess.SetQueueID(id)
			}
		case cmdConnect, cmdHelo:
			if err := reply(respContinue, nil); err != nil {
				return err
			}
		case cmdMail:
			args := splitNUL(p.Data)
			from := ""
			if len(args) > 0 {
				from = args[0]
			}
			sess.Mail(from)
			sess.SetQueueID(macros["i"])
			c.inMsg.Store(true)
			if err := reply(respContinue, nil); err != nil {
				return err
			}
		case cmdRcpt:
			args := splitNUL(p.Data)
			if len(args) == 0 {
				return errors.New("milter: RCPT without an address")
			}
			sess.SetQueueID(macros["i"])
			res := sess.Rcpt(args[0])
			if res.Reply != nil {
				if err := reply(respReplyCode, nul(res.Reply.String())); err != nil {
					return err
				}
				continue
			}
			if err := reply(respContinue, nil); err != nil {
				return err
			}
		case cmdData:
			// All recipients are known. A clean message is accepted
			// here: the MTA sends no headers, body or end of message.
			if !sess.NeedsEnd() {
				sess.End()
				c.endMessage(&macros)
				if err := reply(respAccept, nil); err != nil {
					return err
				}
				continue
			}
			if err := reply(respContinue, nil); err != nil {
				return err
			}
		case cmdHeader, cmdEOH, cmdBody, cmdUnknown:
			if err := reply(respContinue, nil); err != nil {
				return err
			}
		case cmdEOM:
			end := sess.End()
			c.endMessage(&macros)
			for _, h := range end.Headers {
				if err := reply(respAddHeader, nul(h.Name, h.Value)); err != nil {
					return err
				}
			}
			if end.Hold != "" {
				if err := reply(respQuarantine, nul(end.Hold)); err != nil {
					return err
				}
			}
			if err := reply(respContinue, nil); err != nil {
				return err
			}
		case cmdAbort:
			sess.Reset()
			c.endMessage(&macros)
		case cmdQuitNC:
			sess.Reset()
			c.endMessage(&macros)
		case cmdQuit:
			return nil
		default:
			return fmt.Errorf("milter: unknown command %q", p.Code)
		}
	}
}

// endMessage forgets the message's state; macros of the connection stage
// would be re-sent by the MTA for the next message.
func (c *conn) endMessage(macros *map[string]string) {
	c.inMsg.Store(false)
	*macros = nil
}

// ParseListen parses a milter listen address: inet:HOST:PORT, unix:PATH,
// or HOST:PORT.
func ParseListen(s string) (network, address string, err error) {
	switch {
	case strings.HasPrefix(s, "inet:"):
		return "tcp", s[len("inet:"):], nil
	case strings.HasPrefix(s, "inet6:"):
		return "tcp6", s[len("inet6:"):], nil
	case strings.HasPrefix(s, "unix:"):
		return "unix", s[len("unix:"):], nil
	case strings.HasPrefix(s, "local:"):
		return "unix", s[len("local:"):], nil
	case strings.Contains(s, ":"):
		return "tcp", s, nil
	}
	return "", "", fmt.Errorf("milter: listen address %q: want inet:HOST:PORT or unix:PATH", s)
}
