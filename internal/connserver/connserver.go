// Package connserver runs the accept loop and two-phase shutdown shared by
// stray's protocol front ends (milter, policy server): one goroutine per
// connection, connections marked busy while a message or request is in
// progress, and a Shutdown that stops accepting, wakes idle connections,
// lets busy ones finish, and closes what is left when its context ends.
//
// It also keeps a listener serving under hostile load: accept errors (a
// full file-descriptor table, EMFILE) back off and retry instead of ending
// the daemon, and a connection cap bounds what one listener may hold. At the
// cap a new connection takes the place of the idle one that has gone
// longest without completing anything (a packet, a request), so a client
// that connects and stalls cannot lock out the MTA; when every connection
// is busy or active the new one is refused at once, and the MTA's default
// action (a tempfail) and its retries take over. Listener gives net/http
// the same cap.
//
// It knows nothing of any protocol.
package connserver

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is an accepted connection.
type Conn struct {
	net.Conn
	ID   uint64
	srv  *Server // nil for a Listener's connections
	lim  *limiter
	busy atomic.Bool
	// last is when the connection last completed something (or was
	// accepted), in nanoseconds since lim.base.
	last atomic.Int64
}

// SetBusy marks the connection as in the middle of something (a message, a
// request) that shutdown should let finish and that the connection cap
// never interrupts.
func (c *Conn) SetBusy(b bool) { c.busy.Store(b) }

// Busy reports whether the connection is marked busy.
func (c *Conn) Busy() bool { return c.busy.Load() }

// Closing reports whether the server is shutting down.
func (c *Conn) Closing() bool { return c.srv != nil && c.srv.closing.Load() }

// Progress records that the peer completed something (a packet, a
// request): at the connection cap, the connection that has gone longest
// without progress gives way first.
func (c *Conn) Progress() { c.progress(time.Now()) }

func (c *Conn) progress(now time.Time) { c.last.Store(int64(now.Sub(c.lim.base))) }

// IdleDeadline is the read deadline for the next read: idle normally, only
// the shutdown grace while closing and not busy. Protocols call it before
// reading each packet or request, so it also records progress.
func (c *Conn) IdleDeadline(idle time.Duration) time.Time {
	now := time.Now()
	c.progress(now)
	if c.Closing() && !c.Busy() {
		return now.Add(c.srv.Grace)
	}
	return now.Add(idle)
}

// Close closes the connection and frees its place under the cap.
func (c *Conn) Close() error {
	c.lim.remove(c)
	return c.Conn.Close()
}

// DefaultStall is how long a connection must have gone without progress
// before a new one may take its place at the cap: no minimum, the oldest
// goes first. A minimum would let a flood of reconnecting clients take
// every place the moment it qualified, and lock the MTA out.
const DefaultStall = 0

// limiter tracks a listener's connections and enforces its cap.
type limiter struct {
	max   int           // 0: no cap
	stall time.Duration // minimum; see DefaultStall
	log   *slog.Logger
	base  time.Time

	mu     sync.Mutex
	conns  map[*Conn]struct{}
	nextID atomic.Uint64
	shed   throttle // log of evictions and refusals
	accept throttle // log of accept errors
}

func (l *limiter) init(max int, stall time.Duration, log *slog.Logger) {
	if stall < 0 {
		stall = DefaultStall
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l.max, l.stall, l.log, l.base = max, stall, log, time.Now()
	l.conns = map[*Conn]struct{}{}
}

func (l *limiter) newConn(nc net.Conn) *Conn {
	c := &Conn{Conn: nc, ID: l.nextID.Add(1), lim: l}
	c.progress(time.Now())
	return c
}

// admit registers c. At the cap it closes the connection that has gone
// longest without progress (not busy, stalled at least l.stall); when
// there is none it returns false and c must be refused.
func (l *limiter) admit(c *Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max > 0 && len(l.conns) >= l.max {
		v := l.victim()
		if v == nil {
			if ok, n := l.shed.allow(); ok {
				l.log.Warn("connection limit reached and every connection active; refusing new connections",
					"max_connections", l.max, "refused_or_closed_since_last_log", n)
			}
			return false
		}
		delete(l.conns, v)
		v.Conn.Close() // its handler's next read fails and it ends
		if ok, n := l.shed.allow(); ok {
			l.log.Warn("connection limit reached; closing the connections idle longest to make room",
				"max_connections", l.max, "refused_or_closed_since_last_log", n)
		}
	}
	l.conns[c] = struct{}{}
	return true
}

// victim is the connection that has gone longest without progress, when it
// is not busy and has stalled for at least l.stall. l.mu is held.
func (l *limiter) victim() *Conn {
	limit := int64(time.Since(l.base) - l.stall)
	var v *Conn
	var oldest int64
	for c := range l.conns {
		if c.Busy() {
			continue
		}
		if last := c.last.Load(); last <= limit && (v == nil || last < oldest) {
			v, oldest = c, last
		}
	}
	return v
}

func (l *limiter) remove(c *Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// Accept-error backoff, as net/http's: 5ms doubling to 1s.
const (
	minAcceptDelay = 5 * time.Millisecond
	maxAcceptDelay = time.Second
)

// acceptFailed logs an accept error at a bounded rate and returns the next
// delay after prev.
func (l *limiter) acceptFailed(err error, prev time.Duration) time.Duration {
	d := min(max(2*prev, minAcceptDelay), maxAcceptDelay)
	if ok, n := l.accept.allow(); ok {
		l.log.Error("accepting a connection failed; retrying", "err", err, "retry_in", d.String(), "failures_since_last_log", n)
	}
	return d
}

// throttle lets one log line through per interval and counts the rest.
type throttle struct {
	mu         sync.Mutex
	next       time.Time
	suppressed int
}

// throttleEvery is the interval of a throttle.
const throttleEvery = 10 * time.Second

// allow reports whether to log now, and how many events were not logged
// since the last time.
func (t *throttle) allow() (bool, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if now.Before(t.next) {
		t.suppressed++
		return false, 0
	}
	n := t.suppressed
	t.next, t.suppressed = now.Add(throttleEvery), 0
	return true, n
}

// Server accepts connections and runs Handle for each.
type Server struct {
	// Handle serves one connection; the connection is closed when it
	// returns.
	Handle func(*Conn)
	// Grace is how long an idle connection may still start something
	// after shutdown begins (default 250ms): an MTA may already have sent
	// a command it does not wait an answer for.
	Grace time.Duration
	// MaxConns caps the open connections (0: no cap). At the cap a new
	// connection replaces the idle one that has gone longest without
	// progress, or is closed at once when there is none.
	MaxConns int
	// Stall is how long a connection must have gone without progress to
	// give way at the cap (default DefaultStall: no minimum).
	Stall time.Duration
	// Log receives accept errors and cap events, at a bounded rate.
	Log *slog.Logger

	mu        sync.Mutex
	started   bool
	listeners map[net.Listener]bool
	lim       limiter
	closing   atomic.Bool
	wg        sync.WaitGroup
}

func (s *Server) start() {
	if !s.started {
		s.started = true
		s.listeners = map[net.Listener]bool{}
		if s.Grace <= 0 {
			s.Grace = 250 * time.Millisecond
		}
		s.lim.init(s.MaxConns, s.Stall, s.Log)
	}
}

// Serve accepts connections on l until Shutdown; it then returns nil. An
// accept error other than a closed listener is retried after a delay (5ms
// doubling to 1s): a full descriptor table must not end the daemon.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	s.start()
	if s.closing.Load() {
		// Shut down before this Serve ran (a signal right after start):
		// nobody would close l.
		s.mu.Unlock()
		l.Close()
		return nil
	}
	s.listeners[l] = true
	s.mu.Unlock()
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			delay = s.lim.acceptFailed(err, delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		s.serve(nc)
	}
}

// serve admits and serves an accepted connection.
func (s *Server) serve(nc net.Conn) *Conn {
	c := s.lim.newConn(nc)
	c.srv = s
	s.mu.Lock()
	if s.closing.Load() || !s.lim.admit(c) {
		s.mu.Unlock()
		nc.Close()
		return nil
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go s.run(c)
	return c
}

// Track registers a connection accepted elsewhere (tests) and serves it.
// It returns nil when the connection was refused (the cap, shutdown).
func (s *Server) Track(nc net.Conn) *Conn {
	s.mu.Lock()
	s.start()
	s.mu.Unlock()
	return s.serve(nc)
}

// Wait waits for every connection to end.
func (s *Server) Wait() { s.wg.Wait() }

func (s *Server) run(c *Conn) {
	defer s.wg.Done()
	defer c.Close()
	s.Handle(c)
}

// Shutdown stops accepting, wakes idle connections (they end after the
// grace unless something starts), lets busy ones finish, and when ctx ends
// closes the rest.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.mu.Lock()
	s.start()
	for l := range s.listeners {
		l.Close()
	}
	s.lim.mu.Lock()
	for c := range s.lim.conns {
		if !c.Busy() {
			c.SetReadDeadline(time.Now().Add(s.Grace))
		}
	}
	s.lim.mu.Unlock()
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.lim.mu.Lock()
		for c := range s.lim.conns {
			c.Conn.Close()
		}
		s.lim.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// Listener caps the connections accepted from a net.Listener as Server
// does, and retries accept errors itself, for servers that run their own
// accept loop (net/http). Its connections are *Conn.
type Listener struct {
	net.Listener
	// Refuse, when set, answers a connection refused at the cap (say, an
	// HTTP 503) before it is closed; it must not block long.
	Refuse func(net.Conn)

	lim limiter
}

// NewListener caps l at max connections (0: no cap).
func NewListener(l net.Listener, max int, log *slog.Logger) *Listener {
	ll := &Listener{Listener: l}
	ll.lim.init(max, 0, log)
	return ll
}

// Accept returns the next admitted connection. Accept errors other than a
// closed listener are retried after a delay, as Server.Serve does.
func (l *Listener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			delay = l.lim.acceptFailed(err, delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		c := l.lim.newConn(nc)
		if l.lim.admit(c) {
			return c, nil
		}
		if l.Refuse != nil {
			nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			l.Refuse(nc)
		}
		nc.Close()
	}
}

// Open reports the number of open connections.
func (l *Listener) Open() int {
	l.lim.mu.Lock()
	defer l.lim.mu.Unlock()
	return len(l.lim.conns)
}
