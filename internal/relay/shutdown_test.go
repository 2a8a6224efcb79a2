package relay

import (
	"context"
	"net"
	"testing"
	"time"
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
