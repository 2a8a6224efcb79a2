package relay

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// A Shutdown before Serve began (a daemon stopping right after start)
// leaves Serve nothing to accept: it returns at once.
func TestServeAfterShutdownReturns(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{})
	s := &Server{Gate: e.gate, NextHop: e.hop.Addr}
	s.Shutdown(context.Background())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		l.Close()
		t.Fatal("Serve kept accepting after Shutdown")
	}
}

// QUIT over TLS gets its 221 (with DSN on smtpConn does TLS; off,
// go-smtp): crypto/tls's Close sets an expired write deadline after its
// close_notify, and the batched reply was then never sent.
func TestQuitOverTLSIsAnswered(t *testing.T) {
	t.Parallel()
	for _, dsn := range []bool{false, true} {
		e := newEnv(t, opts{modify: func(s *Server) {
			s.TLS = &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}}
			s.DSN = dsn
		}})
		c, err := smtp.DialStartTLS(e.relay, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Quit(); err != nil {
			t.Errorf("dsn %v: QUIT over TLS: %v", dsn, err)
		}
	}
}
