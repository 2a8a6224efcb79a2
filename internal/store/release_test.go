package store

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// The choice a sender made (send to the suggested address, or as typed)
// is stored with the move to releasing, so that a node retrying a release
// another node left unfinished repeats that choice instead of guessing.
func TestClaimReleaseStoresTheChosenActionWithTheMoveToReleasing(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		mustHold(t, s, newMessage("m1", t0))
		if got, _ := s.Get(ctx, "m1"); got.Release.Action != "" || len(got.Release.To) != 0 {
			t.Fatalf("a held message has a release choice: %+v", got.Release)
		}
		fix := Release{Action: ReleaseFixed, To: []string{"bob@gmail.com", "carol@example.com"}}
		at := t0.Add(time.Hour).Truncate(time.Microsecond)
		if err := s.ClaimRelease(ctx, "m1", fix, Event{Time: at, Actor: "sender:127.0.0.1"}); err != nil {
			t.Fatal(err)
		}
		// Reopen: the choice is on disk, not in this process.
		s2 := openStore(t, dsn)
		got, err := s2.Get(ctx, "m1")
		if err != nil {
			t.Fatal(err)
		}
		if got.State != StateReleasing || got.Release.Action != ReleaseFixed || !slices.Equal(got.Release.To, fix.To) || !got.UpdatedAt.Equal(at) {
			t.Errorf("after the claim: state %s release %+v updated %v", got.State, got.Release, got.UpdatedAt)
		}
		if l, err := s2.List(ctx, Filter{States: []State{StateReleasing}}); err != nil || len(l) != 1 || l[0].Release.Action != ReleaseFixed {
			t.Errorf("List: %+v %v", l, err)
		}
		if k := kinds(eventsOf(t, s2, "m1")); !slices.Equal(k, []string{"releasing", "held"}) {
			t.Errorf("events %v", k)
		}

		// A second claim (another node, another link) loses and changes
		// nothing: the first choice stands.
		err = s2.ClaimRelease(ctx, "m1", Release{Action: ReleaseAsTyped, To: []string{"bob@gmial.com"}}, Event{Actor: "sender"})
		if !errors.Is(err, ErrConflict) {
			t.Errorf("second claim: %v, want ErrConflict", err)
		}
		if got, _ := s2.Get(ctx, "m1"); got.Release.Action != ReleaseFixed || !slices.Equal(got.Release.To, fix.To) {
			t.Errorf("a losing claim changed the choice: %+v", got.Release)
		}
		if err := s2.ClaimRelease(ctx, "nosuch", fix, Event{}); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing: %v, want ErrNotFound", err)
		}
		for _, bad := range []Release{{Action: "bounce", To: []string{"a@b"}}, {Action: ReleaseFixed}, {Action: ReleaseFixed, To: []string{""}}} {
			if err := s2.ClaimRelease(ctx, "m1", bad, Event{}); err == nil || errors.Is(err, ErrConflict) {
				t.Errorf("%+v: %v, want a validation error", bad, err)
			}
		}
	})
}

// A sender is told about a warned domain at most once a day, however many
// nodes and messages ask at once; the next day, once again.
func TestClaimWarnNoticeIsTrueOncePerSenderDomainAndDay(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		a, b := openStore(t, dsn), openStore(t, dsn)
		ctx := context.Background()
		day := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
		var mu sync.Mutex
		won := 0
		var wg sync.WaitGroup
		for i := 0; i < 10; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := a
				if i%2 == 1 {
					s = b
				}
				ok, err := s.ClaimWarnNotice(ctx, "alice@example.org", "gmial.com", day.Add(time.Duration(i)*time.Minute))
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					won++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if won != 1 {
			t.Fatalf("%d claims won on one day, want 1", won)
		}
		for _, tc := range []struct {
			name, sender, domain string
			at                   time.Time
			want                 bool
		}{
			{"same day, later", "alice@example.org", "gmial.com", day.Add(14 * time.Hour), false},
			{"another domain", "alice@example.org", "hotmial.com", day, true},
			{"another sender", "bob@example.org", "gmial.com", day, true},
			{"the next day", "alice@example.org", "gmial.com", day.Add(24 * time.Hour), true},
			{"the next day again", "alice@example.org", "gmial.com", day.Add(25 * time.Hour), false},
			{"an earlier day", "alice@example.org", "gmial.com", day, false},
		} {
			if ok, err := a.ClaimWarnNotice(ctx, tc.sender, tc.domain, tc.at); err != nil || ok != tc.want {
				t.Errorf("%s: %v %v, want %v", tc.name, ok, err, tc.want)
			}
		}
		if _, err := a.ClaimWarnNotice(ctx, "alice@example.org", "", day); err == nil {
			t.Error("empty domain accepted")
		}
	})
}

// Several nodes sweep at once and find the same stale release: exactly one
// retries it (its UpdatedAt moves, so it is no longer stale), the choice
// stays.
func TestRetryReleaseIsWonByOneNodeAndKeepsTheChoice(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		a, b := openStore(t, dsn), openStore(t, dsn)
		ctx := context.Background()
		mustHold(t, a, newMessage("m1", t0))
		claimed := t0.Add(time.Minute).Truncate(time.Microsecond)
		fix := Release{Action: ReleaseFixed, To: []string{"bob@gmail.com"}}
		if err := a.ClaimRelease(ctx, "m1", fix, Event{Time: claimed}); err != nil {
			t.Fatal(err)
		}
		if err := a.RetryRelease(ctx, "m1", claimed, Event{Actor: "system:retry"}); !errors.Is(err, ErrConflict) {
			t.Errorf("not yet stale: %v, want ErrConflict", err)
		}
		now := claimed.Add(time.Hour)
		var mu sync.Mutex
		won := 0
		var wg sync.WaitGroup
		for i := 0; i < 10; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := a
				if i%2 == 1 {
					s = b
				}
				err := s.RetryRelease(ctx, "m1", now.Add(-10*time.Minute), Event{Time: now, Actor: "system:retry"})
				switch {
				case err == nil:
					mu.Lock()
					won++
					mu.Unlock()
				case !errors.Is(err, ErrConflict):
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if won != 1 {
			t.Fatalf("%d nodes won the retry, want 1", won)
		}
		got, _ := a.Get(ctx, "m1")
		if got.State != StateReleasing || !got.UpdatedAt.Equal(now) || got.Release.Action != ReleaseFixed || !slices.Equal(got.Release.To, fix.To) {
			t.Errorf("after the retry claim: %s %v %+v", got.State, got.UpdatedAt, got.Release)
		}
		if k := kinds(eventsOf(t, a, "m1")); !slices.Equal(k, []string{"release-retry", "releasing", "held"}) {
			t.Errorf("events %v", k)
		}
		if err := a.RetryRelease(ctx, "nosuch", now, Event{}); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing: %v, want ErrNotFound", err)
		}
	})
}
