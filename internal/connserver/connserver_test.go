package connserver

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// flakyListener fails its first failures Accept calls as a full descriptor
// table does (EMFILE), then accepts normally.
type flakyListener struct {
	net.Listener
	failures atomic.Int32
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.failures.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

func listen(t *testing.T) net.Listener { return listenOn(t, "tcp") }

// listenOn listens on loopback TCP, or on a unix socket as the daemon does
// (ListenUnix).
func listenOn(t testing.TB, network string) net.Listener {
	t.Helper()
	var l net.Listener
	var err error
	if network == "unix" {
		l, err = ListenUnix(filepath.Join(t.TempDir(), "s.sock"))
	} else {
		l, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// networks are the transports the servers are tested on.
var networks = []string{"tcp", "unix"}

// echo answers each line with the same line, marking progress per line and
// the connection busy while the line starts with "busy".
func echo(c *Conn) {
	r := bufio.NewReader(c)
	for {
		c.SetReadDeadline(c.IdleDeadline(10 * time.Second))
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		c.SetBusy(len(line) >= 4 && line[:4] == "busy")
		if _, err := io.WriteString(c, line); err != nil {
			return
		}
	}
}

func dialEcho(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	network := "tcp"
	if strings.HasPrefix(addr, "/") {
		network = "unix"
	}
	nc, err := net.DialTimeout(network, addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	return nc, bufio.NewReader(nc)
}

// roundTrip sends a line and reads the echo.
func roundTrip(nc net.Conn, r *bufio.Reader, line string) error {
	if _, err := io.WriteString(nc, line+"\n"); err != nil {
		return err
	}
	got, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if got != line+"\n" {
		return errors.New("echo " + got + ", want " + line)
	}
	return nil
}

func serve(t *testing.T, s *Server, l net.Listener) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	ended := make(chan struct{})
	go func() { done <- s.Serve(l); close(ended) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		<-ended
	})
	return done
}

func TestServeKeepsAcceptingAfterEMFILE(t *testing.T) {
	t.Parallel()
	fl := &flakyListener{Listener: listen(t)}
	fl.failures.Store(4)
	s := &Server{Handle: echo}
	done := serve(t, s, fl)
	nc, r := dialEcho(t, fl.Addr().String())
	if err := roundTrip(nc, r, "hello"); err != nil {
		select {
		case err := <-done:
			t.Fatalf("Serve returned %v after EMFILE; want it to retry", err)
		default:
		}
		t.Fatalf("no answer after EMFILE: %v", err)
	}
	if n := fl.failures.Load(); n >= 0 {
		t.Fatalf("the listener still has %d failures to give; the test did not exercise them", n+1)
	}
}

func TestListenerKeepsAcceptingAfterEMFILE(t *testing.T) {
	t.Parallel()
	fl := &flakyListener{Listener: listen(t)}
	fl.failures.Store(4)
	l := NewListener(fl, 0, nil)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	nc, r := dialEcho(t, fl.Addr().String())
	if err := roundTrip(nc, r, "hello"); err != nil {
		t.Fatalf("no answer after EMFILE: %v", err)
	}
}

func TestServeReturnsAfterShutdownWhileBackingOff(t *testing.T) {
	t.Parallel()
	fl := &flakyListener{Listener: listen(t)}
	fl.failures.Store(1 << 30)
	s := &Server{Handle: echo}
	done := make(chan error, 1)
	go func() { done <- s.Serve(fl) }()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after Shutdown: %v, want nil", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Serve did not return after Shutdown")
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("Serve took %v to return after Shutdown", d)
	}
}

// closed reports whether the server closed nc (a read ends with EOF or a
// reset, not a timeout).
func closed(nc net.Conn, within time.Duration) bool {
	nc.SetReadDeadline(time.Now().Add(within))
	_, err := nc.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func TestConnectionCap(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// first is what the first connection sends before the cap is
		// reached ("" nothing).
		first string
		// firstClosed: the first connection gives way to the new one;
		// else the new one is refused.
		firstClosed bool
	}{
		{"AStalledIdleConnectionGivesWayToANewOne", "", true},
		{"AnIdleConnectionAfterARequestGivesWay", "hello", true},
		{"ABusyConnectionKeepsItsPlaceAndTheNewOneIsRefused", "busy", false},
	}
	for _, tt := range tests {
		for _, network := range networks {
			t.Run(tt.name+"/"+network, func(t *testing.T) {
				t.Parallel()
				l := listenOn(t, network)
				s := &Server{Handle: echo, MaxConns: 1, Stall: 100 * time.Millisecond}
				serve(t, s, l)
				first, fr := dialEcho(t, l.Addr().String())
				if tt.first != "" {
					if err := roundTrip(first, fr, tt.first); err != nil {
						t.Fatal(err)
					}
				}
				time.Sleep(300 * time.Millisecond)
				second, sr := dialEcho(t, l.Addr().String())
				err := roundTrip(second, sr, "second")
				if tt.firstClosed {
					if err != nil {
						t.Fatalf("the new connection was not served: %v", err)
					}
					if !closed(first, 2*time.Second) {
						t.Fatal("the stalled connection was not closed")
					}
					return
				}
				if err == nil {
					t.Fatal("the new connection was served over the cap")
				}
				if err := roundTrip(first, fr, "busy still"); err != nil {
					t.Fatalf("the busy connection was disturbed: %v", err)
				}
			})
		}
	}
}

func TestConnectionCapRefusesWhileEveryConnectionIsFresh(t *testing.T) {
	t.Parallel()
	l := listen(t)
	s := &Server{Handle: echo, MaxConns: 2, Stall: time.Hour}
	serve(t, s, l)
	var conns []net.Conn
	for i := range 2 {
		nc, r := dialEcho(t, l.Addr().String())
		if err := roundTrip(nc, r, "x"); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, nc)
	}
	start := time.Now()
	third, _ := dialEcho(t, l.Addr().String())
	if !closed(third, 2*time.Second) {
		t.Fatal("the connection over the cap was not closed")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("refusing took %v; want it prompt so the MTA applies its default action", d)
	}
	for i, nc := range conns {
		if closed(nc, 50*time.Millisecond) {
			t.Fatalf("connection %d was closed", i)
		}
	}
}

func TestListenerCapRefusesWithTheAnswerAndFreesPlacesOnClose(t *testing.T) {
	t.Parallel()
	l := NewListener(listen(t), 1, nil)
	l.Refuse = func(c net.Conn) { io.WriteString(c, "busy, try later\n") }
	l.lim.stall = time.Hour
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	first, _ := dialEcho(t, l.Addr().String())
	c1 := <-accepted
	second, sr := dialEcho(t, l.Addr().String())
	if got, err := sr.ReadString('\n'); err != nil || got != "busy, try later\n" {
		t.Fatalf("refused connection got %q, %v", got, err)
	}
	second.Close()
	if n := l.Open(); n != 1 {
		t.Fatalf("open connections %d, want 1", n)
	}
	c1.Close()
	first.Close()
	if n := l.Open(); n != 0 {
		t.Fatalf("open connections after Close %d, want 0", n)
	}
	third, _ := dialEcho(t, l.Addr().String())
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(2 * time.Second):
		t.Fatal("a closed connection did not free its place")
	}
	third.Close()
}

// A SIGTERM in the first instant after start shuts a listener down before
// its Serve goroutine runs: Serve must then return at once (it accepted
// forever, and the daemon's shutdown waited for it).
func TestServeAfterShutdownReturnsAtOnce(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handle: func(*Conn) {}}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after Shutdown: %v, want nil", err)
		}
	case <-time.After(2 * time.Second):
		l.Close()
		t.Fatal("Serve after Shutdown is still accepting")
	}
}

// holdOpen answers one line and then holds the connection, busy, until
// release closes.
func holdOpen(release <-chan struct{}) func(*Conn) {
	return func(c *Conn) {
		r := bufio.NewReader(c)
		c.SetReadDeadline(c.IdleDeadline(10 * time.Second))
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		c.SetBusy(true)
		if _, err := io.WriteString(c, line); err != nil {
			return
		}
		<-release
	}
}

// Whatever the accept model, a new connection is answered while every
// earlier one is in the middle of something: an MTA's new session must
// not wait for another to end.
func TestANewConnectionIsServedWhileEveryOtherIsBusy(t *testing.T) {
	t.Parallel()
	for _, network := range networks {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			l := listenOn(t, network)
			release := make(chan struct{})
			defer close(release)
			s := &Server{Handle: holdOpen(release)}
			serve(t, s, l)
			for i := range 50 {
				nc, r := dialEcho(t, l.Addr().String())
				if err := roundTrip(nc, r, "x"); err != nil {
					t.Fatalf("connection %d, with %d busy: %v", i, i, err)
				}
			}
		})
	}
}
