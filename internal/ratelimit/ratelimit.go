// Package ratelimit counts requests per key (a client address, a user
// name) in a sliding window, with bounded memory.
package ratelimit

import (
	"sync"
	"time"
)

// maxKeys bounds memory under a flood of distinct keys: beyond it, keys
// idle for a whole window are forgotten.
const maxKeys = 10000

// Window allows n events per key in any window of the given length.
type Window struct {
	mu     sync.Mutex
	n      int
	window time.Duration
	now    func() time.Time
	seen   map[string][]time.Time
}

// New returns a Window allowing n events per key per window.
func New(n int, window time.Duration) *Window {
	return &Window{n: n, window: window, now: time.Now, seen: map[string][]time.Time{}}
}

// SetClock replaces the clock (tests).
func (l *Window) SetClock(now func() time.Time) { l.now = now }

// Allow records an event for key and reports whether it is within the
// limit. A refused event is not recorded.
func (l *Window) Allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.seen) > maxKeys {
		for k, ts := range l.seen {
			if len(ts) == 0 || now.Sub(ts[len(ts)-1]) > l.window {
				delete(l.seen, k)
			}
		}
	}
	ts := l.seen[key]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) > l.window {
		i++
	}
	ts = ts[i:]
	if len(ts) >= l.n {
		l.seen[key] = ts
		return false
	}
	l.seen[key] = append(ts, now)
	return true
}

// Reset forgets key's events (e.g. after a successful login).
func (l *Window) Reset(key string) {
	l.mu.Lock()
	delete(l.seen, key)
	l.mu.Unlock()
}
