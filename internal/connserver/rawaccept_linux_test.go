package connserver

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The raw accept gives a unix socket's connections what net's Accept
// gives: the same addresses, net.ErrClosed after Close and when the
// listener closes, timeouts that are os.ErrDeadlineExceeded, and a
// syscall.RawConn.
func TestRawAcceptBehavesAsNet(t *testing.T) {
	dir := t.TempDir()
	viaNet, err := net.ListenUnix("unix", &net.UnixAddr{Net: "unix", Name: filepath.Join(dir, "net.sock")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { viaNet.Close() })
	rawPath := filepath.Join(dir, "raw.sock")
	viaRaw, err := ListenUnix(rawPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { viaRaw.Close() })
	if _, ok := viaRaw.(*unixListener); !ok {
		t.Fatalf("ListenUnix gave a %T", viaRaw)
	}
	if a, w := viaRaw.Addr(), viaNet.Addr(); a.Network() != w.Network() || a.String() != rawPath {
		t.Errorf("listener address %s %q, want unix %q", a.Network(), a, rawPath)
	}

	// pair dials l from client (nil: unnamed) and accepts the connection.
	pair := func(l net.Listener, client *net.UnixAddr) (server, cl net.Conn) {
		t.Helper()
		c, err := net.DialUnix("unix", client, &net.UnixAddr{Net: "unix", Name: l.Addr().String()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, c
	}
	clients := map[string]func(string) *net.UnixAddr{
		"unnamed": func(string) *net.UnixAddr { return nil },
		"path": func(side string) *net.UnixAddr {
			return &net.UnixAddr{Net: "unix", Name: filepath.Join(dir, side+".client")}
		},
		"abstract": func(side string) *net.UnixAddr {
			return &net.UnixAddr{Net: "unix", Name: "@stray-test-" + side + "-" + filepath.Base(dir)}
		},
	}
	for name, client := range clients {
		ns, _ := pair(viaNet, client("net"))
		rs, rc := pair(viaRaw, client("raw"))
		for _, a := range []struct {
			what      string
			got, want net.Addr
		}{
			{"remote", rs.RemoteAddr(), ns.RemoteAddr()},
			{"local", rs.LocalAddr(), ns.LocalAddr()},
		} {
			// The two sides differ only in the test's names for them.
			g, w := shape(a.got.Network()+" "+a.got.String()), shape(a.want.Network()+" "+a.want.String())
			if g != w {
				t.Errorf("%s client: %s address %q, net gives %q", name, a.what, a.got, a.want)
			}
		}
		if name == "path" && rs.RemoteAddr().String() != filepath.Join(dir, "raw.client") {
			t.Errorf("remote address %q, want the client's path", rs.RemoteAddr())
		}

		// Data both ways, and through the RawConn the milter uses.
		if _, err := rc.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(rs, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("read %q, %v", buf, err)
		}
		sc, ok := rs.(syscall.Conn)
		if !ok {
			t.Fatal("no syscall.Conn")
		}
		if _, err := sc.SyscallConn(); err != nil {
			t.Fatal(err)
		}

		// A deadline is a timeout, as net's.
		rs.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		_, err := rs.Read(buf)
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("read past the deadline: %v, want a timeout", err)
		}
		// The peer's close is EOF.
		rc.Close()
		rs.SetReadDeadline(time.Time{})
		if _, err := rs.Read(buf); err != io.EOF {
			t.Errorf("read after the peer closed: %v, want EOF", err)
		}
		// After Close, net.ErrClosed, also through the RawConn.
		rs.Close()
		if _, err := rs.Read(buf); !errors.Is(err, net.ErrClosed) {
			t.Errorf("read after Close: %v, want net.ErrClosed", err)
		}
		if err := rs.Close(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("second Close: %v, want net.ErrClosed", err)
		}
		raw, _ := sc.SyscallConn()
		if err := raw.Read(func(uintptr) bool { return true }); !errors.Is(err, net.ErrClosed) {
			t.Errorf("RawConn read after Close: %v, want net.ErrClosed", err)
		}
	}

	// A listener closed while Accept waits: net.ErrClosed, and the
	// socket file is gone.
	done := make(chan error, 1)
	go func() { _, err := viaRaw.Accept(); done <- err }()
	time.Sleep(20 * time.Millisecond)
	if err := viaRaw.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept on a closed listener: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still waiting after the listener closed")
	}
	if _, err := os.Stat(rawPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file after Close: %v, want it removed", err)
	}
	if err := viaRaw.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v, want net.ErrClosed", err)
	}
}

// shape is an address with the test's own names for the two sides taken
// out.
func shape(a string) string {
	return strings.NewReplacer("net.", "X.", "raw.", "X.", "-net-", "-X-", "-raw-", "-X-").Replace(a)
}
