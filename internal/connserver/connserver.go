// Package connserver runs the accept loop and two-phase shutdown shared by
// stray's protocol front ends (milter, policy server): one goroutine per
// connection, connections marked busy while a message or request is in
// progress, and a Shutdown that stops accepting, wakes idle connections,
// lets busy ones finish, and closes what is left when its context ends.
//
// It knows nothing of any protocol.
package connserver

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Conn is an accepted connection.
type Conn struct {
	net.Conn
	ID   uint64
	srv  *Server
	busy atomic.Bool
}

// SetBusy marks the connection as in the middle of something (a message, a
// request) that shutdown should let finish.
func (c *Conn) SetBusy(b bool) { c.busy.Store(b) }

// Busy reports whether the connection is marked busy.
func (c *Conn) Busy() bool { return c.busy.Load() }

// Closing reports whether the server is shutting down.
func (c *Conn) Closing() bool { return c.srv.closing.Load() }

// IdleDeadline is the read deadline for the next read: idle normally, only
// the shutdown grace while closing and not busy.
func (c *Conn) IdleDeadline(idle time.Duration) time.Time {
	if c.Closing() && !c.Busy() {
		return time.Now().Add(c.srv.Grace)
	}
	return time.Now().Add(idle)
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

	mu        sync.Mutex
	listeners map[net.Listener]bool
	conns     map[*Conn]bool
	closing   atomic.Bool
	wg        sync.WaitGroup
	nextID    atomic.Uint64
}

// Serve accepts connections on l until Shutdown; it then returns nil.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.listeners == nil {
		s.listeners, s.conns = map[net.Listener]bool{}, map[*Conn]bool{}
	}
	if s.Grace <= 0 {
		s.Grace = 250 * time.Millisecond
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
		c := &Conn{Conn: nc, ID: s.nextID.Add(1), srv: s}
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		s.conns[c] = true
		s.wg.Add(1)
		s.mu.Unlock()
		go s.run(c)
	}
}

// Track registers a connection accepted elsewhere (tests) and serves it.
func (s *Server) Track(nc net.Conn) *Conn {
	s.mu.Lock()
	if s.conns == nil {
		s.listeners, s.conns = map[net.Listener]bool{}, map[*Conn]bool{}
	}
	c := &Conn{Conn: nc, ID: s.nextID.Add(1), srv: s}
	s.conns[c] = true
	s.wg.Add(1)
	s.mu.Unlock()
	go s.run(c)
	return c
}

// Wait waits for every connection to end.
func (s *Server) Wait() { s.wg.Wait() }

func (s *Server) run(c *Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	s.Handle(c)
}

// Shutdown stops accepting, wakes idle connections (they end after the
// grace unless something starts), lets busy ones finish, and when ctx ends
// closes the rest.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.mu.Lock()
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		if !c.Busy() {
			c.SetReadDeadline(time.Now().Add(s.Grace))
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
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}
