package hold

import (
	"os"
	"syscall"
)

// crashPoint kills the process with SIGKILL when STRAY_TEST_CRASH_AT names
// this point: the crash tests prove that a kill at any step of a release
// delivers the message exactly once, to the address its sender chose.
// Test only; it does nothing when the variable is unset. Points:
// after-claim, before-reinject, after-reinject, after-state-change,
// before-mark-released.
func crashPoint(name string) {
	if v := os.Getenv("STRAY_TEST_CRASH_AT"); v != "" && v == name {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
}
