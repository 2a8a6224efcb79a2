package milter

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/stray-mail/stray/internal/config"
	"github.com/stray-mail/stray/internal/connserver"
	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/hold"
	"github.com/stray-mail/stray/internal/listenaddr"
)

// Session is what the milter asks about one connection's messages, in
// protocol order; *gate.Session is one. The milter decides nothing: it
// translates packets into these calls and their answers into packets.
type Session interface {
	MailAuth(sender string, auth gate.Auth)
	SetQueueID(id string)
	QueueID() string
	Sender() string
	RcptResolved(rcpt, resolved string) gate.RcptResult
	// NeedsEnd: whether the content matters (false: accept at DATA).
	NeedsEnd() bool
	Header(name, value string)
	End(ctx context.Context) gate.End
	Reset()
}

// Sessions starts one Session per connection.
type Sessions interface {
	NewSession(log *slog.Logger) Session
	Logger() *slog.Logger
}

// GateSessions is g's sessions for the milter front end.
func GateSessions(g *gate.Gate) Sessions { return gateSessions{g} }

type gateSessions struct{ g *gate.Gate }

func (s gateSessions) NewSession(log *slog.Logger) Session { return s.g.NewSession("milter", log) }
func (s gateSessions) Logger() *slog.Logger                { return s.g.Logger() }

// Holder keeps held messages (hold and confirm); *hold.Holder is one.
type Holder interface {
	HoldMessage(ctx context.Context, r hold.Request) (hold.Held, error)
	Notify(ctx context.Context, id string) error
	CheckReinjection(ctx context.Context, header string) (string, hold.Reinjection)
	Reinjected(ctx context.Context, id string)
}

// Server serves the milter protocol on listeners.
type Server struct {
	Sessions Sessions
	// Holder, when set, holds messages in the store (hold and confirm):
	// the content of a message with held recipients is collected, stored,
	// and those recipients removed from this delivery. Without it a hold
	// quarantines the whole message in the MTA's hold queue.
	Holder Holder
	// MaxHoldSize bounds a message collected for holding (default 64 MiB);
	// a larger one is quarantined in the MTA instead.
	MaxHoldSize int
	// OnStoreError is what to answer when a message cannot be stored:
	// "tempfail" (default: the MTA retries, nothing is lost) or
	// "quarantine" (the MTA's hold queue).
	OnStoreError config.OnStoreError
	// IdleTimeout bounds the wait for the MTA's next command (default 10m:
	// an MTA keeps its milter connection for a whole SMTP session).
	IdleTimeout time.Duration
	// WriteTimeout bounds one reply (default 30s).
	WriteTimeout time.Duration
	// PacketTimeout bounds the rest of a packet once its first byte has
	// arrived, and the wait for the MTA's first packet (default 30s): an
	// MTA writes whole packets, right after it connects.
	PacketTimeout time.Duration
	// MaxConns caps the open connections (0: no cap); see connserver.
	MaxConns int

	once sync.Once
	cs   connserver.Server
	// ctx is the connections' context: the store calls of a message in
	// progress end with it, when Shutdown has closed what was left.
	ctx    context.Context
	cancel context.CancelFunc
	// bg tracks work a message leaves behind (the sender's
	// notification), so that Shutdown waits for it.
	bg sync.WaitGroup
}

// background runs f beside the connections; Shutdown waits for it, and
// its context ends when Shutdown's does.
func (s *Server) background(f func(context.Context)) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		f(s.ctx)
	}()
}

func (s *Server) server() *connserver.Server {
	s.once.Do(func() {
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.cs.Handle = func(c *connserver.Conn) { (&conn{srv: s, c: c}).serve() }
		s.cs.MaxConns = s.MaxConns
		s.cs.Log = s.Sessions.Logger().With("frontend", "milter")
	})
	return &s.cs
}

// Serve accepts connections on l until Shutdown. It returns nil after
// Shutdown.
func (s *Server) Serve(l net.Listener) error { return s.server().Serve(l) }

// Shutdown stops accepting, lets connections finish the message in
// progress (closing them between messages) and the senders' notifications
// in progress finish, and when ctx ends closes what is left: the MTA then
// applies its default action (tempfail) to those messages, and the hold
// sweep sends the notifications.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.server().Shutdown(ctx)
	done := make(chan struct{})
	go func() { s.bg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	s.cancel() // what is left gives up; the hold sweep finishes it
	<-done
	return err
}

type conn struct {
	srv     *Server
	c       *connserver.Conn // busy while a message is between MAIL and its end
	log     *slog.Logger
	actions uint32 // the negotiated actions
}

// Per-connection buffers are pooled: Postfix opens a milter connection per
// SMTP session, often for a single message.
var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 512) }}
)

func (c *conn) serve() {
	c.log = c.srv.Sessions.Logger().With("frontend", "milter", "conn", c.c.ID, "client", c.c.RemoteAddr().String())
	defer func() {
		if p := recover(); p != nil {
			// A bug must not lose mail: answer tempfail, so the MTA
			// retries, and log it.
			c.log.Error("panic in milter connection; answered tempfail", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			c.c.SetWriteDeadline(time.Now().Add(time.Second))
			WritePacket(c.c, respTempfail, nil)
		}
	}()
	err := c.loop()
	switch {
	case err == nil, errors.Is(err, io.EOF), c.c.Closing() && errors.Is(err, os.ErrDeadlineExceeded):
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
	pt := c.srv.PacketTimeout
	if pt <= 0 {
		pt = 30 * time.Second
	}
	negotiated := false
	r := readers.Get().(*bufio.Reader)
	r.Reset(c.c)
	defer func() { r.Reset(nil); readers.Put(r) }()
	w := writers.Get().(*bufio.Writer)
	w.Reset(c.c)
	defer func() { w.Reset(nil); writers.Put(w) }()
	sess := c.srv.Sessions.NewSession(c.log)
	queueID := ""
	// What the MTA says about the sender's login and where it resolved the
	// recipient; authKnown once it agreed to send the login macro.
	login, rcptAddr := "", ""
	authKnown := false
	noMailReply := false
	var noReply uint32
	var content *contentBuf
	reinjection := false // MAIL carried a release envelope id
	// One write deadline per message, not per reply.
	c.c.SetWriteDeadline(time.Now().Add(wt))
	reply := func(code byte, data []byte) error {
		if err := WritePacket(w, code, data); err != nil {
			return err
		}
		return w.Flush()
	}
	for {
		// Between messages while shutting down, wait only briefly: a
		// message the MTA already started (macros, MAIL) is still served.
		if negotiated {
			c.c.SetReadDeadline(c.c.IdleDeadline(idle))
		} else {
			c.c.SetReadDeadline(c.c.IdleDeadline(pt))
		}
		// A packet that has begun must end soon: a peer that stalls in
		// the middle of one holds a connection and its buffer.
		if _, err := r.Peek(1); err != nil {
			return err
		}
		if !packetBuffered(r) {
			c.c.SetReadDeadline(time.Now().Add(pt))
		}
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
				protocol: o.protocol & (protNoConnect | protNoHelo | protNoUnknown | protNRMail),
			}
			if c.srv.Holder != nil {
				// Content is needed, but only for messages not accepted
				// at DATA, and without a reply per header or chunk.
				want.actions |= o.actions & (actDelRcpt | actChgHeaders)
				want.protocol |= o.protocol & (protNRHeader | protNREOH | protNRBody)
			} else {
				want.protocol |= o.protocol & (protNoBody | protNoHeaders | protNoEOH)
			}
			noMailReply = want.protocol&protNRMail != 0
			negotiated = true
			noReply = want.protocol & (protNRHeader | protNREOH | protNRBody)
			data := want.bytes()
			if want.version >= 6 && o.actions&actSetSymList != 0 {
				// Ask for the login and the resolved recipient; the MTA
				// then sends exactly these, so a missing login means
				// the sender did not authenticate.
				want.actions |= actSetSymList
				data = macroRequest(want.bytes())
				authKnown = true
			}
			c.actions = want.actions
			if err := reply(respOptneg, data); err != nil {
				return err
			}
		case cmdMacro:
			// Only the queue id matters; it arrives with MAIL or, when
			// Postfix opens the queue file late, with a later RCPT.
			if len(p.Data) < 1 {
				return errors.New("milter: empty macro packet")
			}
			if id, ok := macroValue(p.Data[1:], "i"); ok && id != "" {
				queueID = id
				sess.SetQueueID(id)
			}
			switch p.Data[0] {
			case cmdMail:
				login, _ = macroValue(p.Data[1:], "auth_authen")
			case cmdRcpt:
				rcptAddr, _ = macroValue(p.Data[1:], "rcpt_addr")
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
			sess.MailAuth(from, gate.Auth{Login: login, Known: authKnown})
			login = ""
			sess.SetQueueID(queueID)
			reinjection = c.srv.Holder != nil && len(args) > 1 && hold.IsReleaseEnvelopeID(args[1:])
			c.c.SetBusy(true)
			c.c.SetWriteDeadline(time.Now().Add(wt))
			if noMailReply {
				continue
			}
			if err := reply(respContinue, nil); err != nil {
				return err
			}
		case cmdRcpt:
			args := splitNUL(p.Data)
			if len(args) == 0 {
				return errors.New("milter: RCPT without an address")
			}
			res := sess.RcptResolved(args[0], rcptAddr)
			rcptAddr = ""
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
			if !sess.NeedsEnd() && !reinjection {
				sess.End(c.srv.ctx)
				c.endMessage(&queueID)
				if err := reply(respAccept, nil); err != nil {
					return err
				}
				continue
			}
			if c.srv.Holder != nil {
				content = newContentBuf(c.srv.maxHoldSize())
			}
			if err := reply(respContinue, nil); err != nil {
				return err
			}
		case cmdHeader:
			kv := splitNUL(p.Data)
			if len(kv) >= 2 {
				sess.Header(kv[0], kv[1])
				content.header(kv[0], kv[1])
			}
			if noReply&protNRHeader == 0 {
				if err := reply(respContinue, nil); err != nil {
					return err
				}
			}
		case cmdEOH:
			content.endHeaders()
			if noReply&protNREOH == 0 {
				if err := reply(respContinue, nil); err != nil {
					return err
				}
			}
		case cmdBody:
			content.body(p.Data)
			if noReply&protNRBody == 0 {
				if err := reply(respContinue, nil); err != nil {
					return err
				}
			}
		case cmdUnknown:
			if err := reply(respContinue, nil); err != nil {
				return err
			}
		case cmdEOM:
			qid := sess.QueueID()
			sender := sess.Sender()
			end := sess.End(c.srv.ctx)
			c.endMessage(&queueID)
			packets, code, after := c.endOfMessage(end, content, qid, sender)
			content = nil
			for _, h := range end.Headers {
				if err := reply(respAddHeader, nul(h.Name, h.Value)); err != nil {
					return err
				}
			}
			for _, pk := range packets {
				if err := reply(pk.Code, pk.Data); err != nil {
					return err
				}
			}
			if err := reply(code, nil); err != nil {
				return err
			}
			if after != nil {
				after()
			}
		case cmdAbort:
			login, rcptAddr = "", ""
			sess.Reset()
			c.endMessage(&queueID)
			content = nil
		case cmdQuitNC:
			sess.Reset()
			c.endMessage(&queueID)
		case cmdQuit:
			return nil
		default:
			return fmt.Errorf("milter: unknown command %q", p.Code)
		}
	}
}

// packetBuffered reports whether r holds a whole packet.
func packetBuffered(r *bufio.Reader) bool {
	b, _ := r.Peek(r.Buffered())
	return len(b) >= 4 && uint64(binary.BigEndian.Uint32(b))+4 <= uint64(len(b))
}

// endMessage forgets the message's state.
func (c *conn) endMessage(queueID *string) {
	c.c.SetBusy(false)
	*queueID = ""
}

// ParseListen parses a milter listen address in the grammar of package
// listenaddr (inet:HOST:PORT, inet:PORT@HOST, inet6:…, unix:PATH,
// local:PATH or HOST:PORT), the one listen.milter is validated with.
func ParseListen(s string) (network, address string, err error) {
	a, err := listenaddr.Milter(s)
	if err != nil {
		return "", "", fmt.Errorf("milter: listen address %w", err)
	}
	return a.Network, a.Address, nil
}
