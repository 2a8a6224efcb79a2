package milter

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// socketPair is a connected pair over TCP or a unix socket on loopback.
func socketPair(t *testing.T, network string) (server, client net.Conn) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "s")
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err = net.Dial(network, l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

func TestConnIOCarriesWhatTheSocketCarriesAndKeepsItsDeadlinesAndEnds(t *testing.T) {
	t.Parallel()
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			server, client := socketPair(t, network)
			rw := connIO(server)
			if _, ok := rw.(*rawIO); !ok {
				t.Fatalf("connIO of a %s socket is a %T, want raw system calls", network, rw)
			}
			client.SetReadDeadline(time.Now().Add(10 * time.Second))
			// More than the socket buffers hold: the write must wait for
			// the reader, and the reader gets every byte in order.
			big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
			done := make(chan error, 1)
			go func() {
				n, err := rw.Write(big)
				if err == nil && n != len(big) {
					err = io.ErrShortWrite
				}
				done <- err
			}()
			got, err := io.ReadAll(io.LimitReader(client, int64(len(big))))
			if err != nil || !bytes.Equal(got, big) {
				t.Fatalf("read %d bytes (%v), want the %d written", len(got), err, len(big))
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			// Reads see what the peer wrote, a few bytes at a time.
			client.Write([]byte("hello"))
			buf := make([]byte, 3)
			if n, err := io.ReadFull(rw, buf); n != 3 || err != nil || string(buf) != "hel" {
				t.Fatalf("read %q %v", buf[:n], err)
			}
			if n, err := rw.Read(buf); n != 2 || err != nil || string(buf[:n]) != "lo" {
				t.Fatalf("read %q %v", buf[:n], err)
			}
			// The read deadline holds.
			server.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, err := rw.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("read past the deadline: %v", err)
			}
			server.SetReadDeadline(time.Time{})
			client.SetReadDeadline(time.Time{})
			// The peer's close is io.EOF itself (bufio and io.ReadFull
			// compare with ==).
			client.Close()
			if _, err := rw.Read(buf); err != io.EOF {
				t.Fatalf("read after the peer closed: %v, want io.EOF", err)
			}
		})
	}
}

func TestConnIOReadEndsWhenTheConnectionIsClosed(t *testing.T) {
	t.Parallel()
	server, _ := socketPair(t, "tcp")
	rw := connIO(server)
	done := make(chan error, 1)
	go func() {
		_, err := rw.Read(make([]byte, 10))
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	server.Close() // as connserver does to a connection it evicts
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read on a closed connection: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a read on a closed connection did not end")
	}
}
