//go:build !linux

package milter

import (
	"io"
	"net"
)

// connIO is what the milter reads and writes a connection through.
func connIO(c net.Conn) io.ReadWriter { return c }

// releaseIO gives back what connIO took.
func releaseIO(io.ReadWriter) {}
