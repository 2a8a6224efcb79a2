package store

import (
	"context"
	"errors"
	"slices"
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
