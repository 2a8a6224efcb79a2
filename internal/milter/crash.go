package milter

import (
	"os"
	"syscall"
)

// crashPoint kills the process with SIGKILL when STRAY_TEST_CRASH_AT names
// this point: the crash tests prove that a kill at any step loses nothing.
// It does nothing otherwise.
func crashPoint(name string) {
	if v := os.Getenv("STRAY_TEST_CRASH_AT"); v != "" && v == name {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
}
