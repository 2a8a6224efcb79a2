package milter

import (
	"context"
	"os"
	"testing"
	"time"
)

func contextWithTimeout(t testing.TB, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func init() {
	if os.Getenv("STRAY_TEST_LOG") != "" {
		testLog = os.Stderr
	}
}
