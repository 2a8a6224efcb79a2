// Package ratelimit counts requests per key (a client address, a user
// name) in a sliding window, with bounded memory and constant time per
// call.
//
// At most MaxKeys keys are remembered. Keys idle for a whole window are
// forgotten as soon as they are the least recently used; under a flood of
// distinct keys within one window, the least recently used key is
// forgotten to make room. A forgotten key starts afresh, so a flood can
// only buy its sender the allowance it would get from that many keys
// anyway; it never refuses a newcomer.
package ratelimit

import (
	"container/list"
	"sync"
	"time"
)

// MaxKeys bounds the keys a Window remembers (each with at most n event
// times): about 10,000 × (n × 8 + 150) bytes.
const MaxKeys = 10000

// Window allows n events per key in any window of the given length.
type Window struct {
	mu      sync.Mutex
	n       int
	window  time.Duration
	now     func() time.Time
	maxKeys int
	keys    map[string]*list.Element
	lru     list.List // of *entry, most recently used first
}

// entry is one key's recent events, a ring of at most n times (Unix
// nanoseconds), oldest at head.
type entry struct {
	key   string
	times []int64
	head  int
	count int
	last  int64 // last use (an allowed or refused event)
}

// New returns a Window allowing n events per key per window.
func New(n int, window time.Duration) *Window {
	if n < 1 {
		n = 1
	}
	return &Window{n: n, window: window, now: time.Now, maxKeys: MaxKeys, keys: map[string]*list.Element{}}
}

// SetClock replaces the clock (tests).
func (l *Window) SetClock(now func() time.Time) { l.now = now }

// Len is the number of keys remembered.
func (l *Window) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}

// Allow records an event for key and reports whether it is within the
// limit. A refused event is not recorded.
func (l *Window) Allow(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now().UnixNano()
	l.forgetIdle(now)
	var e *entry
	if el, ok := l.keys[key]; ok {
		l.lru.MoveToFront(el)
		e = el.Value.(*entry)
	} else {
		if len(l.keys) >= l.maxKeys {
			l.remove(l.lru.Back())
		}
		e = &entry{key: key, times: make([]int64, l.n)}
		l.keys[key] = l.lru.PushFront(e)
	}
	e.last = now
	cutoff := now - int64(l.window)
	for e.count > 0 && e.times[e.head] < cutoff {
		e.head = (e.head + 1) % l.n
		e.count--
	}
	if e.count >= l.n {
		return false
	}
	e.times[(e.head+e.count)%l.n] = now
	e.count++
	return true
}

// forgetIdle drops least recently used keys idle for more than a window:
// their events are all outside it. Each key is dropped once, so the cost
// is constant per call, amortised.
func (l *Window) forgetIdle(now int64) {
	cutoff := now - int64(l.window)
	for el := l.lru.Back(); el != nil && el.Value.(*entry).last < cutoff; el = l.lru.Back() {
		l.remove(el)
	}
}

func (l *Window) remove(el *list.Element) {
	delete(l.keys, el.Value.(*entry).key)
	l.lru.Remove(el)
}

// Reset forgets key's events (e.g. after a successful login).
func (l *Window) Reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if el, ok := l.keys[key]; ok {
		l.remove(el)
	}
}
