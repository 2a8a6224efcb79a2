//go:build linux

package connserver

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// ListenUnix listens on a unix socket at path. Its Accept calls accept4(2)
// as a raw system call through the socket's syscall.RawConn: the socket is
// non-blocking, so the call never blocks in the kernel, and Go's poller
// still waits for the next connection. net's Accept makes the same call
// through package syscall, whose bookkeeping around a call that may block
// (entersyscall) wakes the runtime's monitor thread whenever the process
// was idle: with Postfix opening a milter connection per SMTP session,
// once or twice per message. An accepted socket becomes an *os.File,
// which registers it with the poller without that bookkeeping (os.NewFile's
// fcntl is the runtime's own), wrapped to give net's addresses and errors.
//
// (A net.UnixListener's own RawConn does not read, so the listener is
// net's, turned into a file.)
func ListenUnix(path string) (net.Listener, error) {
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Net: "unix", Name: path})
	if err != nil {
		return nil, err
	}
	f, err := ul.File() // a duplicate, non-blocking, registered with the poller
	ul.SetUnlinkOnClose(false)
	ul.Close()
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	l := &unixListener{f: f, rc: rc, addr: ul.Addr()}
	l.accept = l.acceptRaw
	return l, nil
}

// unixListener is ListenUnix's listener.
type unixListener struct {
	f      *os.File
	rc     syscall.RawConn
	addr   net.Addr
	accept func(fd uintptr) bool // l.acceptRaw, made once
	closed atomic.Bool

	mu sync.Mutex // one Accept at a time: the fields below are its
	// accept4's outcome and the peer's address.
	nfd   int
	errno syscall.Errno
	rsa   syscall.RawSockaddrUnix
}

func (l *unixListener) Addr() net.Addr { return l.addr }

// Close stops the listener and removes its socket file, as net's does.
func (l *unixListener) Close() error {
	l.closed.Store(true)
	if err := l.f.Close(); err != nil {
		if errors.Is(err, os.ErrClosed) {
			err = net.ErrClosed
		}
		return &net.OpError{Op: "close", Net: "unix", Addr: l.addr, Err: err}
	}
	if p := l.addr.String(); p[0] != '@' { // not the abstract namespace
		os.Remove(p)
	}
	return nil
}

// acceptRaw is the RawConn read callback: false asks the poller to wait.
func (l *unixListener) acceptRaw(fd uintptr) bool {
	for {
		l.rsa = syscall.RawSockaddrUnix{}
		rlen := uint32(unsafe.Sizeof(l.rsa))
		r, _, e := syscall.RawSyscall6(syscall.SYS_ACCEPT4, fd, uintptr(unsafe.Pointer(&l.rsa)), uintptr(unsafe.Pointer(&rlen)),
			syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0, 0)
		switch e {
		case syscall.EINTR, syscall.ECONNABORTED:
			continue
		case syscall.EAGAIN:
			return false
		}
		l.nfd, l.errno = int(r), e
		return true
	}
}

func (l *unixListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.rc.Read(l.accept); err != nil {
		if l.closed.Load() {
			err = net.ErrClosed // not os's "use of closed file"
		}
		return nil, &net.OpError{Op: "accept", Net: "unix", Addr: l.addr, Err: err}
	}
	if l.errno != 0 {
		return nil, &net.OpError{Op: "accept", Net: "unix", Addr: l.addr, Err: os.NewSyscallError("accept4", l.errno)}
	}
	// The peer's address as net gives it: its path, "@" and the name for
	// the abstract namespace, "@" for an unnamed socket.
	p := &l.rsa.Path
	if p[0] == 0 {
		p[0] = '@'
	}
	n := 0
	for n < len(p) && p[n] != 0 {
		n++
	}
	raddr := &net.UnixAddr{Net: "unix", Name: string(unsafe.Slice((*byte)(unsafe.Pointer(&p[0])), n))}
	return &fileConn{f: os.NewFile(uintptr(l.nfd), ""), laddr: l.addr, raddr: raddr}, nil
}

// fileConn is an accepted socket as a net.Conn, with net's errors: a read
// or write on a closed connection fails with net.ErrClosed.
type fileConn struct {
	f            *os.File
	laddr, raddr net.Addr
	closed       atomic.Bool
}

func (c *fileConn) Read(p []byte) (int, error) {
	n, err := c.f.Read(p)
	return n, c.err("read", err)
}

func (c *fileConn) Write(p []byte) (int, error) {
	n, err := c.f.Write(p)
	return n, c.err("write", err)
}

func (c *fileConn) Close() error {
	c.closed.Store(true)
	return c.err("close", c.f.Close())
}

func (c *fileConn) LocalAddr() net.Addr                { return c.laddr }
func (c *fileConn) RemoteAddr() net.Addr               { return c.raddr }
func (c *fileConn) SetDeadline(t time.Time) error      { return c.f.SetDeadline(t) }
func (c *fileConn) SetReadDeadline(t time.Time) error  { return c.f.SetReadDeadline(t) }
func (c *fileConn) SetWriteDeadline(t time.Time) error { return c.f.SetWriteDeadline(t) }

func (c *fileConn) SyscallConn() (syscall.RawConn, error) {
	rc, err := c.f.SyscallConn()
	if err != nil {
		return nil, err
	}
	return rawConn{rc, c}, nil
}

func (c *fileConn) err(op string, err error) error {
	switch {
	case err == nil, err == io.EOF:
		return err
	case c.closed.Load():
		err = net.ErrClosed // not os's "use of closed file"
	default:
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
	}
	return &net.OpError{Op: op, Net: c.laddr.Network(), Source: c.laddr, Addr: c.raddr, Err: err}
}

// rawConn is the socket's syscall.RawConn with net's errors.
type rawConn struct {
	rc syscall.RawConn
	c  *fileConn
}

func (r rawConn) Control(f func(uintptr)) error    { return r.c.err("raw-control", r.rc.Control(f)) }
func (r rawConn) Read(f func(uintptr) bool) error  { return r.c.err("raw-read", r.rc.Read(f)) }
func (r rawConn) Write(f func(uintptr) bool) error { return r.c.err("raw-write", r.rc.Write(f)) }
