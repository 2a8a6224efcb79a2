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
	for i := 0; i <= maxKeys; i++ {
		l.Allow(fmt.Sprint(i))
	}
	now = now.Add(2 * time.Second)
	l.Allow("new")
	if n := len(l.seen); n > 2 {
		t.Fatalf("%d keys kept after all went idle", n)
	}
}
