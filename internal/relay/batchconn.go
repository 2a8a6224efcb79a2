package relay

import (
	"net"
	"sync"
	"time"
)

// batchListener hands the SMTP server connections whose replies are
// written together: go-smtp writes (and sends) every reply line on its own,
// so EHLO's ten lines were ten write system calls, and the replies to a
// pipelined group (RFC 2920) went out one by one. A batchConn keeps what
// is written until the server next reads from the client (or closes): the
// client is then waiting for exactly those replies, and they leave in one
// write. Nothing waits on the client with replies unsent, so a client
// that waits for each reply is answered as before.
type batchListener struct{ net.Listener }

func (l batchListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &batchConn{Conn: c}, nil
}

// maxBatch: more unsent bytes than this are written at once (a reply is a
// few hundred bytes; only a misbehaving peer queues this much).
const maxBatch = 16 << 10

type batchConn struct {
	net.Conn
	mu  sync.Mutex
	buf []byte
	err error
}

func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	c.buf = append(c.buf, p...)
	if len(c.buf) > maxBatch {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (c *batchConn) flushLocked() error {
	if len(c.buf) == 0 || c.err != nil {
		return c.err
	}
	_, c.err = c.Conn.Write(c.buf)
	c.buf = c.buf[:0]
	return c.err
}

// Read sends the replies written so far, then waits for the client.
func (c *batchConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	err := c.flushLocked()
	c.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *batchConn) Close() error {
	c.mu.Lock()
	// crypto/tls's Close leaves the write deadline at "now" after its
	// close_notify: without a fresh one the last reply (221 to QUIT) and
	// the alert, still held here, would never leave.
	c.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	c.flushLocked()
	c.mu.Unlock()
	return c.Conn.Close()
}
