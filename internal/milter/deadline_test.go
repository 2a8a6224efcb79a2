package milter

import (
	"testing"
	"time"
)

func TestDeadlineMovesLaterOnlyByASliceOfItsTimeoutAndAlwaysEarlier(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	var got []time.Time
	d := deadline{set: func(t time.Time) error { got = append(got, t); return nil }}
	steps := []struct {
		at      time.Time
		timeout time.Duration
		set     bool
	}{
		{t0.Add(10 * time.Minute), 10 * time.Minute, true},                          // the first
		{t0.Add(10*time.Minute + 5*time.Millisecond), 10 * time.Minute, false},      // a packet 5 ms later
		{t0.Add(10*time.Minute + 999*time.Millisecond), 10 * time.Minute, false},    // under a second later
		{t0.Add(10*time.Minute + time.Second), 10 * time.Minute, true},              // a second: capped step
		{t0.Add(30 * time.Second), 30 * time.Second, true},                          // earlier: always
		{t0.Add(30*time.Second + 299*time.Millisecond), 30 * time.Second, false},    // under 1% of 30s
		{t0.Add(30*time.Second + 300*time.Millisecond), 30 * time.Second, true},     // 1% of 30s
		{t0.Add(30*time.Second + 300*time.Millisecond), 30 * time.Second, false},    // the same
		{t0.Add(30*time.Second + 301*time.Millisecond), time.Millisecond, true},     // a tiny timeout: every move
		{t0.Add(30*time.Second + 301*time.Millisecond - 1), time.Millisecond, true}, // earlier by a nanosecond
	}
	for i, s := range steps {
		n := len(got)
		d.to(s.at, s.timeout)
		if set := len(got) > n; set != s.set {
			t.Fatalf("step %d: set %v, want %v", i, set, s.set)
		}
		if d.at != got[len(got)-1] {
			t.Fatalf("step %d: remembers %v, last set %v", i, d.at, got[len(got)-1])
		}
	}
}
