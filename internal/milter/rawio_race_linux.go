//go:build linux && race

package milter

import (
	"errors"
	"syscall"
)

// sysRead and sysWrite, under the race detector, go through package
// syscall, which tells the detector that what one goroutine writes to a
// socket happens before what another reads from it (raw system calls do
// not, and every test that checks state after a reply would report a
// race). The poller's waits and deadlines are the same as without it.
func sysRead(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Read(int(fd), p)
	return max(n, 0), errno(err)
}

func sysWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Write(int(fd), p)
	return max(n, 0), errno(err)
}

func errno(err error) syscall.Errno {
	var e syscall.Errno
	if err != nil && !errors.As(err, &e) {
		return syscall.EIO
	}
	return e
}
