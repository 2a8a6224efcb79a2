package relay

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// writesConn records each write that reaches the network.
type writesConn struct {
	net.Conn
	writes []string
	closed bool
}

func (c *writesConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, string(p))
	return len(p), nil
}
func (c *writesConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (c *writesConn) Close() error                     { c.closed = true; return nil }
func (c *writesConn) SetWriteDeadline(time.Time) error { return nil }

func TestRepliesLeaveInOneWriteWhenTheServerNextReads(t *testing.T) {
	t.Parallel()
	w := &writesConn{}
	c := &batchConn{Conn: w}
	for _, l := range []string{"250-relay.test\r\n", "250-PIPELINING\r\n", "250 SIZE 10\r\n"} {
		c.Write([]byte(l))
	}
	if len(w.writes) != 0 {
		t.Fatalf("written before the server read: %q", w.writes)
	}
	c.Read(make([]byte, 10))
	if len(w.writes) != 1 || w.writes[0] != "250-relay.test\r\n250-PIPELINING\r\n250 SIZE 10\r\n" {
		t.Fatalf("writes %q, want the three lines in one", w.writes)
	}
	c.Write([]byte("221 bye\r\n"))
	c.Close()
	if len(w.writes) != 2 || w.writes[1] != "221 bye\r\n" || !w.closed {
		t.Fatalf("at close: %q closed %v", w.writes, w.closed)
	}
	// A flood of output is not kept without bound.
	w2 := &writesConn{}
	c2 := &batchConn{Conn: w2}
	c2.Write([]byte(strings.Repeat("x", maxBatch+1)))
	if len(w2.writes) != 1 {
		t.Fatalf("%d writes of a large output, want it sent", len(w2.writes))
	}
}

// A real client that waits for each reply sees each one (nothing is held
// back while the relay waits for it), and EHLO's lines come in one segment.
func TestEHLOReplyComesInOneSegment(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{})
	nc, err := net.DialTimeout("tcp", e.relay, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	if n, _ := nc.Read(buf); !strings.HasPrefix(string(buf[:n]), "220 ") {
		t.Fatalf("greeting %q", buf[:n])
	}
	io.WriteString(nc, "EHLO client.test\r\n")
	n, _ := nc.Read(buf)
	if got := string(buf[:n]); strings.Count(got, "\r\n") < 5 || !strings.Contains(got, "\r\n250 ") {
		t.Fatalf("first segment of the EHLO reply: %q, want all its lines", got)
	}
}
