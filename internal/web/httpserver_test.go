package web

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/connserver"
)

// testHandler answers GET / at once, POST /body after reading the body,
// and GET /block when unblock is closed.
func testHandler(unblock <-chan struct{}) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("POST /body", func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
			return
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /block", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-unblock:
		case <-r.Context().Done():
		}
		io.WriteString(w, "ok")
	})
	return mux
}

func serveHTTP(t *testing.T, lim HTTPLimits, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewHTTPServer(h, lim, nil)
	done := make(chan struct{})
	go func() { s.Serve(l); close(done) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s.Shutdown(ctx)
		<-done
	})
	return l.Addr().String()
}

func dialHTTP(t *testing.T, addr string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// closedWithin reports whether the server closed nc within d.
func closedWithin(nc net.Conn, d time.Duration) bool {
	nc.SetReadDeadline(time.Now().Add(d))
	_, err := io.ReadAll(nc)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// get sends GET path on nc and returns the response status.
func get(nc net.Conn, path string) (int, error) {
	nc.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(nc, "GET "+path+" HTTP/1.1\r\nHost: stray\r\n\r\n"); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestHTTPServerClosesIdleSlowHeaderAndSlowBodyConnections(t *testing.T) {
	t.Parallel()
	addr := serveHTTP(t, HTTPLimits{ReadHeaderTimeout: 200 * time.Millisecond, ReadTimeout: 400 * time.Millisecond,
		IdleTimeout: 200 * time.Millisecond}, testHandler(nil))
	tests := []struct {
		name string
		talk func(t *testing.T, nc net.Conn)
	}{
		{"IdleKeepAliveAfterARequest", func(t *testing.T, nc net.Conn) {
			if code, err := get(nc, "/"); err != nil || code != http.StatusOK {
				t.Fatalf("GET /: %d, %v", code, err)
			}
		}},
		{"SilentAfterConnecting", func(*testing.T, net.Conn) {}},
		{"SlowHeaders", func(_ *testing.T, nc net.Conn) { io.WriteString(nc, "GET / HTTP/1.1\r\nHost: stray\r\n") }},
		{"SlowBody", func(_ *testing.T, nc net.Conn) {
			io.WriteString(nc, "POST /body HTTP/1.1\r\nHost: stray\r\nContent-Length: 100\r\n\r\nabc")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			nc := dialHTTP(t, addr)
			tt.talk(t, nc)
			if !closedWithin(nc, 3*time.Second) {
				t.Fatal("the connection was still open after 3s; want it closed after the 200-400ms timeouts")
			}
		})
	}
}

func TestHTTPConnectionCap(t *testing.T) {
	t.Parallel()
	t.Run("ASilentConnectionMakesRoomForARequest", func(t *testing.T) {
		t.Parallel()
		addr := serveHTTP(t, HTTPLimits{MaxConns: 2}, testHandler(nil))
		silent := []net.Conn{dialHTTP(t, addr), dialHTTP(t, addr)}
		io.WriteString(silent[1], "POST /body HTTP/1.1\r\nHost: stray\r\nContent-Length: 100\r\n\r\nabc")
		time.Sleep(connserver.DefaultStall + 300*time.Millisecond)
		if code, err := get(dialHTTP(t, addr), "/"); err != nil || code != http.StatusOK {
			t.Fatalf("GET / at the cap: %d, %v", code, err)
		}
		n := 0
		for _, nc := range silent {
			if closedWithin(nc, 100*time.Millisecond) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d stalled connections closed, want the 1 that made room", n)
		}
	})
	t.Run("EveryConnectionBusyAnswers503", func(t *testing.T) {
		t.Parallel()
		unblock := make(chan struct{})
		addr := serveHTTP(t, HTTPLimits{MaxConns: 1}, testHandler(unblock))
		busy := dialHTTP(t, addr)
		io.WriteString(busy, "GET /block HTTP/1.1\r\nHost: stray\r\n\r\n")
		time.Sleep(connserver.DefaultStall + 300*time.Millisecond)
		nc := dialHTTP(t, addr)
		nc.SetDeadline(time.Now().Add(3 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		if err != nil {
			t.Fatalf("over the cap: %v, want a 503", err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "busy") {
			t.Fatalf("over the cap: %d %q %q, want 503 with Retry-After", resp.StatusCode, resp.Header, b)
		}
		close(unblock)
		busy.SetDeadline(time.Now().Add(3 * time.Second))
		if resp, err := http.ReadResponse(bufio.NewReader(busy), nil); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("the busy request: %v", err)
		}
	})
}
