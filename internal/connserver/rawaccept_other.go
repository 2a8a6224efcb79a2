//go:build !linux

package connserver

import "net"

// ListenUnix listens on a unix socket at path.
func ListenUnix(path string) (net.Listener, error) { return net.Listen("unix", path) }
