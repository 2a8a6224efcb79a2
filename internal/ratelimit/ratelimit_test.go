package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

func TestWindowAllowsNPerWindowPerKey(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(3, time.Minute)
	l.SetClock(func() time.Time { return now })
	for i := 0; i < 3; i++ {
		if !l.Allow("a") {
			t.Fatalf("event %d refused", i+1)
		}
	}
	if l.Allow("a") {
		t.Fatal("4th event in the window allowed")
	}
	if !l.Allow("b") {
		t.Fatal("another key refused")
	}
	now = now.Add(61 * time.Second)
	if !l.Allow("a") {
		t.Fatal("refused after the window passed")
	}
	l.Reset("b")
	for i := 0; i < 3; i++ {
		if !l.Allow("b") {
			t.Fatalf("after Reset, event %d refused", i+1)
		}
	}
}

func TestWindowForgetsIdleKeysUnderAFlood(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(1, time.Second)
	l.SetClock(func() time.Time { return now })
	for i := 0; i <= MaxKeys; i++ {
		l.Allow(fmt.Sprint(i))
	}
	now = now.Add(2 * time.Second)
	l.Allow("new")
	if n := l.Len(); n > 2 {
		t.Fatalf("%d keys kept after all went idle", n)
	}
}

func TestWindowStaysBoundedAndFastUnder100kDistinctKeys(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	l := New(10, time.Minute)
	l.SetClock(func() time.Time { return now })
	const keys = 100_000
	start := time.Now()
	for i := 0; i < keys; i++ {
		if !l.Allow(fmt.Sprint("10.", i)) {
			t.Fatalf("first event of key %d refused", i)
		}
	}
	took := time.Since(start)
	if n := l.Len(); n > MaxKeys {
		t.Errorf("%d keys kept, want at most MaxKeys (%d)", n, MaxKeys)
	}
	// O(1) per call: 100k calls take about 0.1 s (0.8 s with -race); a
	// scan of the map on every call took minutes.
	limit := time.Second
	if raceEnabled {
		limit = 5 * time.Second
	}
	if took > limit {
		t.Errorf("%d distinct keys took %v", keys, took)
	}
	t.Logf("%d distinct keys: %v (%v per call), %d kept", keys, took, took/keys, l.Len())
}

func TestWindowKeepsCountingAKeyBelowTheBound(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	l := New(2, time.Minute)
	l.SetClock(func() time.Time { return now })
	l.Allow("attacker")
	l.Allow("attacker")
	for i := 0; i < MaxKeys-1; i++ {
		now = now.Add(time.Millisecond)
		l.Allow(fmt.Sprint(i))
	}
	if l.Allow("attacker") {
		t.Fatal("a key at its limit was forgotten while the Window had room")
	}
	if n := l.Len(); n != MaxKeys {
		t.Fatalf("%d keys, want %d", n, MaxKeys)
	}
}
