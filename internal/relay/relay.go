package relay

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/hold"
	"github.com/stray-mail/stray/internal/relay/clientcert"
)

// Next-hop TLS modes.
const (
	TLSNone          = "none"
	TLSOpportunistic = "opportunistic"
	TLSRequired      = "required"
)

// Defaults.
const (
	DefaultMaxMessageBytes = 50 << 20
	DefaultMaxHops         = 50 // Postfix's hopcount_limit
	DefaultMaxRecipients   = 1000
)

// Loopback is the default allowed client range.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// Server is the relay. Set its fields before Serve; they must not change
// afterwards (SetAccess replaces who may relay while it serves).
type Server struct {
	Gate *gate.Gate
	// Holder, when set, stores messages with held recipients (hold and
	// confirm); without it a recipient the policy would hold is refused
	// at RCPT (550 5.1.2 with the finding), so that nothing is delivered
	// that should have been held.
	Holder *hold.Holder
	// NextHop is the MTA that queues and delivers, HOST:PORT.
	NextHop string
	// Allow are the client ranges that may relay (default: loopback).
	// Anyone else hears 554 at connect, unless AllowCerts is set.
	// SetAccess replaces Allow and AllowCerts while serving.
	Allow []netip.Prefix
	// AllowCerts, when not empty, also lets clients outside Allow relay
	// after STARTTLS with a certificate that meets a rule (Microsoft 365
	// connectors identify themselves so). Clients outside Allow are then
	// accepted at connect, asked for a certificate in the TLS handshake,
	// and refused at MAIL (550 5.7.1) without an allowed one. Needs TLS.
	AllowCerts clientcert.Rules
	// Domain is this relay's name in the greeting and Received header
	// (default: the host name).
	Domain string
	// MaxMessageBytes is the SIZE limit (default 50 MiB).
	MaxMessageBytes int64
	// MaxRecipients per message (default 1000).
	MaxRecipients int
	// MaxHoldSize bounds a message kept whole for holding (default
	// MaxMessageBytes).
	MaxHoldSize int
	// MaxHops: a message with more Received fields is refused as a loop
	// (default 50).
	MaxHops int
	// TLS, when set, is offered with STARTTLS; RequireTLS then refuses
	// MAIL before it.
	TLS        *tls.Config
	RequireTLS bool
	// DSN offers the DSN extension and passes its parameters on (RET,
	// ENVID, NOTIFY, ORCPT). go-smtp v0.25.1 refuses the
	// ORCPT=rfc822;<xtext of a UTF-8 address> that Postfix sends for an
	// internationalised recipient with a permanent 501, so with DSN each
	// client connection goes through smtpConn, which gives that parameter
	// its RFC 6533 utf-8 type (and therefore does STARTTLS itself), and
	// says why in the 501 to a malformed ENVID.
	DSN bool
	// NextHopTLS is none, opportunistic (default: encrypted when offered,
	// not authenticated) or required; with required, NextHopTLSConfig
	// verifies the next hop's certificate (default: system roots, server
	// name from NextHop).
	NextHopTLS       string
	NextHopTLSConfig *tls.Config
	// NextHopFingerprint, when set, pins the next hop's key: STARTTLS is
	// required and the certificate is accepted only when the SHA-256 of
	// its SubjectPublicKeyInfo is this one (no CA is consulted). A
	// mismatch is 451 to the client and a log line with both values.
	NextHopFingerprint *Fingerprint
	// NextHopHelo is the name the relay gives in EHLO to the next hop
	// (default Domain).
	NextHopHelo string
	// Timeouts: DialTimeout for the next hop (default 30s), CommandTimeout
	// for each of its replies (default 5m), ReadTimeout and WriteTimeout
	// towards the client (default 5m and 1m).
	DialTimeout, CommandTimeout time.Duration
	ReadTimeout, WriteTimeout   time.Duration

	once   sync.Once
	access atomic.Pointer[access] // who may relay: Allow and AllowCerts, then SetAccess
	srv    *smtp.Server
	tlsCfg *tls.Config // offered to clients
	log    *slog.Logger
	connID atomic.Uint64
	// idle are next-hop sessions between transactions, kept for the next
	// client session (as Postfix's connection cache): most clients send
	// one message per session, and a fresh next-hop session costs a
	// connect, a greeting, EHLO and QUIT.
	idle   chan idleNext
	dialer nextDialer
	// readers are Data's 32 kB buffers, reused rather than allocated (and
	// cleared) for every message.
	readers sync.Pool
	closing atomic.Bool
	lmu     sync.Mutex     // guards ls against a Shutdown racing Serve
	ls      []net.Listener // what Serve serves
	// ctx is the sessions' context for the store; Shutdown ends it.
	ctx    context.Context
	cancel context.CancelFunc
}

type idleNext struct {
	c  *nextConn
	at time.Time
}

// maxIdleAge: a kept next-hop session older than this is closed rather
// than reused (MTAs drop idle clients after a while: Postfix after 300s).
const maxIdleAge = 30 * time.Second

// takeNext returns a kept next-hop session, or nil.
func (s *Server) takeNext() *nextConn {
	for {
		select {
		case n := <-s.idle:
			if time.Since(n.at) < maxIdleAge {
				return n.c
			}
			n.c.quit()
		default:
			return nil
		}
	}
}

// keepNext keeps a next-hop session between transactions for reuse, or
// ends it when enough are kept.
func (s *Server) keepNext(c *nextConn) {
	if s.closing.Load() {
		c.quit()
		return
	}
	select {
	case s.idle <- idleNext{c, time.Now()}:
	default:
		// Not on the client's time: go-smtp calls Logout before its
		// connection closes, with the 221 to QUIT not yet sent.
		go c.quit()
	}
}

func (s *Server) init() {
	s.once.Do(func() {
		s.ctx, s.cancel = context.WithCancel(context.Background())
		s.log = s.Gate.Logger().With("frontend", "relay")
		if s.Domain == "" {
			s.Domain = hostname()
		}
		if s.MaxMessageBytes <= 0 {
			s.MaxMessageBytes = DefaultMaxMessageBytes
		}
		if s.MaxRecipients <= 0 {
			s.MaxRecipients = DefaultMaxRecipients
		}
		if s.MaxHoldSize <= 0 {
			s.MaxHoldSize = int(s.MaxMessageBytes)
		}
		if s.MaxHops <= 0 {
			s.MaxHops = DefaultMaxHops
		}
		if s.NextHopTLS == "" {
			s.NextHopTLS = TLSOpportunistic
		}
		s.access.Store(newAccess(s.Allow, s.AllowCerts))
		srv := smtp.NewServer(backend{s})
		srv.Domain = s.Domain
		srv.MaxMessageBytes = s.MaxMessageBytes
		srv.MaxRecipients = s.MaxRecipients
		srv.MaxLineLength = 2000 // RFC 5321's 1000, doubled as go-smtp's client does
		srv.ReadTimeout = orDur(s.ReadTimeout, 5*time.Minute)
		srv.WriteTimeout = orDur(s.WriteTimeout, time.Minute)
		srv.EnableSMTPUTF8 = true
		srv.EnableDSN = s.DSN
		s.tlsCfg = s.clientTLS()
		srv.TLSConfig = s.tlsCfg
		if s.DSN {
			srv.TLSConfig = nil // smtpConn does STARTTLS, below its ORCPT fix
		}
		srv.ErrorLog = errorLog{s.log}
		s.srv = srv
		s.idle = make(chan idleNext, 16)
		s.dialer = s.nextDialer()
		s.readers.New = func() any { return bufio.NewReaderSize(nil, 32<<10) }
	})
}

// access is who may relay: the client ranges, and the client
// certificates that may relay from outside them. A session keeps the one
// in force when it started.
type access struct {
	allow []netip.Prefix
	certs clientcert.Rules
}

func newAccess(allow []netip.Prefix, certs clientcert.Rules) *access {
	if len(allow) == 0 {
		allow = loopback
	}
	return &access{allow: allow, certs: certs}
}

// allowed reports whether a client address is in the ranges.
func (a *access) allowed(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	for _, p := range a.allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// SetAccess replaces who may relay (Allow and AllowCerts, with the roots
// that verify certificates allowed by name) for the sessions that start
// from now on; sessions already open keep the rules they started with.
// Safe while serving: the allow rules re-read on SIGHUP. Certificate rules
// need TLS.
func (s *Server) SetAccess(allow []netip.Prefix, certs clientcert.Rules) error {
	s.init()
	if !certs.Empty() && s.TLS == nil {
		return errors.New("client certificates may relay only with TLS (a certificate and key)")
	}
	s.access.Store(newAccess(allow, certs))
	return nil
}

// nextDialer is how sessions reach the next hop, from the Server's fields.
func (s *Server) nextDialer() nextDialer {
	d := nextDialer{addr: s.NextHop, helo: s.NextHopHelo, mode: s.NextHopTLS, log: s.log,
		dial: orDur(s.DialTimeout, 30*time.Second), timeout: orDur(s.CommandTimeout, 5*time.Minute)}
	if d.helo == "" {
		d.helo = s.Domain
	}
	cfg := s.NextHopTLSConfig
	if cfg == nil {
		host, _, _ := net.SplitHostPort(s.NextHop)
		cfg = &tls.Config{ServerName: host}
	}
	cfg = cfg.Clone()
	if cfg.ClientSessionCache == nil {
		// Resumed sessions: a new next-hop connection skips the full
		// handshake.
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(64)
	}
	if d.mode == TLSOpportunistic {
		// Postfix's "may": encrypt when the next hop offers STARTTLS,
		// never authenticate. Verifying here refused a next hop with a
		// self-signed certificate (a fresh Debian Postfix's), and every
		// message waited in the client's queue; "required" verifies.
		cfg.InsecureSkipVerify = true
	}
	if s.NextHopFingerprint != nil {
		d.mode = TLSRequired
		cfg = pinned(cfg, *s.NextHopFingerprint)
	}
	d.tls = cfg
	return d
}

func orDur(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Serve accepts clients on l until Shutdown. Clients outside Allow hear
// 554 and are disconnected before the SMTP server sees them (with
// AllowCerts, they are refused at MAIL instead unless their certificate
// is allowed).
func (s *Server) Serve(l net.Listener) error {
	s.init()
	// A Shutdown that came first (a daemon stopping right after start)
	// must not leave Serve accepting: go-smtp only closes the listeners
	// it already serves.
	s.lmu.Lock()
	if s.closing.Load() {
		s.lmu.Unlock()
		l.Close()
		return nil
	}
	s.ls = append(s.ls, l)
	s.lmu.Unlock()
	err := s.srv.Serve(&allowListener{Listener: batchListener{l}, s: s})
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting and waits for sessions to end; when ctx ends it
// closes what is left (an unfinished message is then not acknowledged, so
// its client keeps and retries it).
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.lmu.Lock()
	s.closing.Store(true)
	for _, l := range s.ls {
		l.Close()
	}
	s.lmu.Unlock()
	err := s.srv.Shutdown(ctx)
	if ctx.Err() != nil {
		s.cancel() // what is left stops waiting for the store
		s.srv.Close()
	}
	s.cancel()
	for c := s.takeNext(); c != nil; c = s.takeNext() {
		c.quit()
	}
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// allowListener refuses clients outside the allowed ranges at connect,
// unless certificates may relay (then Mail refuses them without one).
type allowListener struct {
	net.Listener
	s *Server
}

func (l *allowListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if a := l.s.access.Load(); a.allowed(c.RemoteAddr()) || !a.certs.Empty() {
			if l.s.DSN {
				return newSMTPConn(c, l.s.tlsCfg, l.s.log.With("client", c.RemoteAddr().String()), l.s.srv.ReadTimeout), nil
			}
			return c, nil
		}
		l.s.log.Warn("client not allowed to relay; refused at connect", "client", c.RemoteAddr().String())
		go func() {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(c, "554 5.7.1 %s: this relay does not accept mail from you\r\n", l.s.Domain)
			c.Close()
		}()
	}
}

type backend struct{ s *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s := b.s
	id := s.connID.Add(1)
	log := s.log.With("conn", id, "client", c.Conn().RemoteAddr().String())
	a := s.access.Load()
	return &session{s: s, c: c, id: id, log: log, gs: s.Gate.NewSession("relay", log), access: a, inRange: a.allowed(c.Conn().RemoteAddr())}, nil
}

// errorLog sends go-smtp's own error messages to the log.
type errorLog struct{ log *slog.Logger }

func (e errorLog) Printf(format string, v ...any) { e.log.Warn(fmt.Sprintf(format, v...)) }
func (e errorLog) Println(v ...any)               { e.log.Warn(fmt.Sprint(v...)) }
