package api

import (
	"sync"
	"time"
)

// limiter is a set of token buckets, one per key (a token ID, a client
// address), refilled at rate per second up to burst. It keeps at most max
// buckets: a full bucket carries no state and is dropped when room is
// needed; when every bucket is in use, new keys share one overflow bucket
// (a flood of addresses slows itself, not the clients already known).
type limiter struct {
	mu       sync.Mutex
	rate     float64
	burst    float64
	max      int
	m        map[string]*bucket
	overflow bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst, max int) *limiter {
	return &limiter{rate: rate, burst: float64(burst), max: max, m: map[string]*bucket{},
		overflow: bucket{tokens: float64(burst)}}
}

// refill brings b up to now.
func (l *limiter) refill(b *bucket, now time.Time) {
	if now.After(b.last) {
		b.tokens += now.Sub(b.last).Seconds() * l.rate
		if b.tokens > l.burst {
			b.tokens = l.burst
		}
		b.last = now
	}
}

// bucket finds key's bucket, making room for it when needed; the caller
// holds mu.
func (l *limiter) bucket(key string, now time.Time) *bucket {
	if b, ok := l.m[key]; ok {
		l.refill(b, now)
		return b
	}
	if len(l.m) >= l.max {
		for k, b := range l.m {
			l.refill(b, now)
			if b.tokens >= l.burst {
				delete(l.m, k)
			}
		}
	}
	if len(l.m) >= l.max {
		l.refill(&l.overflow, now)
		return &l.overflow
	}
	b := &bucket{tokens: l.burst, last: now}
	l.m[key] = b
	return b
}

// take spends one token of key's bucket. When there is none it says how
// long until there will be.
func (l *limiter) take(key string, now time.Time) (ok bool, retry time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(key, now)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, l.wait(b)
}

// peek says whether take would succeed, without spending anything.
func (l *limiter) peek(key string, now time.Time) (ok bool, retry time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.bucket(key, now); b.tokens < 1 {
		return false, l.wait(b)
	}
	return true, 0
}

func (l *limiter) wait(b *bucket) time.Duration {
	return time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

func (l *limiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}
