//go:build linux

package milter

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// rawIO reads and writes a socket with raw system calls through its
// syscall.RawConn: the socket is non-blocking, so a read or a write never
// blocks in the kernel, and Go's poller still waits for readiness and
// keeps the deadlines. What it saves is the runtime's bookkeeping around
// a system call that may block (entersyscall, exitsyscall), which wakes
// the runtime's monitor thread whenever the process was idle: with one
// short milter conversation per SMTP session that wake-up, and the
// monitor's sleeps after it, cost more CPU than the conversation itself.
type rawIO struct {
	rc syscall.RawConn
	// Each direction's current buffer and outcome, so that the callbacks
	// are made once per connection, not once per call.
	r, w   rawCall
	rd, wr func(fd uintptr) bool
}

type rawCall struct {
	buf   []byte
	n     int
	errno syscall.Errno
}

// connIO is what the milter reads and writes a connection through: raw
// system calls for a TCP or unix socket, the connection itself otherwise.
func connIO(c net.Conn) io.ReadWriter {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	r := raws.Get().(*rawIO)
	r.rc = rc
	return r
}

// releaseIO gives back what connIO took, once the connection is done.
func releaseIO(rw io.ReadWriter) {
	if r, ok := rw.(*rawIO); ok {
		*r = rawIO{rd: r.rd, wr: r.wr}
		raws.Put(r)
	}
}

var raws = sync.Pool{New: func() any {
	r := &rawIO{}
	r.rd = r.read
	r.wr = r.write
	return r
}}

// read is the read callback: false asks the poller to wait until the
// socket is readable.
func (r *rawIO) read(fd uintptr) bool {
	c := &r.r
	for {
		n, e := sysRead(fd, c.buf)
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		c.n, c.errno = int(n), e
		return true
	}
}

// write is the write callback: it writes all of r.buf, and asks the
// poller to wait while the socket's buffer is full.
func (r *rawIO) write(fd uintptr) bool {
	c := &r.w
	for c.n < len(c.buf) {
		n, e := sysWrite(fd, c.buf[c.n:])
		switch e {
		case 0:
			c.n += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			c.errno = e
			return true
		}
	}
	return true
}

func (r *rawIO) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.r = rawCall{buf: p}
	err := r.rc.Read(r.rd)
	n, e := r.r.n, r.r.errno
	r.r.buf = nil
	switch {
	case err != nil:
		return 0, err
	case e != 0:
		return 0, os.NewSyscallError("read", e)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (r *rawIO) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.w = rawCall{buf: p}
	err := r.rc.Write(r.wr)
	n, e := r.w.n, r.w.errno
	r.w.buf = nil
	switch {
	case err != nil:
		return n, err
	case e != 0:
		return n, os.NewSyscallError("write", e)
	}
	return n, nil
}
