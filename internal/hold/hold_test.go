package hold

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/store"
)

// mta stands in for the MTA and stray's milter in front of it: a copy that
// carries a valid release header of a message being released is delivered
// and the release recorded (as the milter does once it has accepted it);
// a second copy of a message already released is dropped.
type mta struct {
	t         *testing.T
	mu        sync.Mutex
	h         *Holder // the milter's node
	delivered []delivery
	notes     []delivery // notifications
	envIDs    []string
	// dupes: deliver every copy, as if two copies passed the milter at
	// the same moment.
	dupes bool
	// stall, when set, holds up the first re-injection until it is
	// closed, after telling stalled.
	stall, stalled chan struct{}
}

type delivery struct {
	to  []string
	raw []byte
}

func (m *mta) send(ctx context.Context, server, from string, to []string, raw []byte) error {
	if server != "notify:25" && m.stall != nil {
		m.mu.Lock()
		stall := m.stall
		m.stall = nil
		m.mu.Unlock()
		if stall != nil {
			close(m.stalled)
			<-stall
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if server == "notify:25" {
		m.notes = append(m.notes, delivery{to, raw})
		return nil
	}
	m.envIDs = append(m.envIDs, envelopeID(ctx))
	v, ok := headerValue(raw, ReleaseHeaderName)
	if !ok {
		m.t.Errorf("a re-injection without its release header:\n%s", raw)
		return nil
	}
	id, kind := m.h.CheckReinjection(ctx, v)
	if m.dupes && kind != NotReinjected {
		m.delivered = append(m.delivered, delivery{to, raw})
		return nil
	}
	switch kind {
	case Duplicate:
		return nil
	case Reinjecting:
		m.delivered = append(m.delivered, delivery{to, raw})
		m.h.Reinjected(ctx, id)
	default:
		m.t.Errorf("the MTA would hold the re-injection of %s again", id)
	}
	return nil
}

func headerValue(raw []byte, name string) (string, bool) {
	for _, line := range strings.Split(string(raw), "\r\n") {
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// crashed is what a crash point panics with in these tests (SIGKILL in a
// real process).
type crashed string

// testHolder is a Holder on a fresh SQLite store with a clock the test
// moves; crashAt names the step at which its "process" dies.
func testHolder(t *testing.T, st store.Store, m *mta, clock *time.Time, crashAt string) *Holder {
	t.Helper()
	h := New(Config{Node: "n1", BaseURL: "http://127.0.0.1", NotifySMTP: "notify:25", NotifyFrom: "stray@example.org",
		ReinjectSMTP: "mta:25", ReleaseStale: time.Minute, RetryWindow: 15 * time.Minute},
		st, testSigner(t), slog.New(slog.NewTextHandler(io.Discard, nil)), m.send)
	h.now = func() time.Time { return *clock }
	h.crash = func(p string) {
		if p == crashAt {
			panic(crashed(p))
		}
	}
	return h
}

func openTestStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

const reportMsg = "From: alice@example.org\r\nTo: Joe <joe@gmial.com>, ann@example.org\r\nCc: JOE@gmial.com\r\nSubject: figures\r\n" +
	"Message-ID: <20261130.QID@mail.example.org>\r\nDate: Mon, 30 Nov 2026 04:00:00 +0000\r\n\r\nThe figures, joe@gmial.com.\r\n"

func joeRequest(queueID string) Request {
	return Request{QueueID: queueID, Sender: "alice@example.org",
		Held: []store.Recipient{{Address: "joe@gmial.com", Verdict: "hold", Intended: "gmail.com", Suggestion: "joe@gmail.com"}},
		Raw:  []byte(strings.ReplaceAll(reportMsg, "QID", queueID))}
}

// A node dies at each step of "send it to joe@gmail.com instead"; another
// node (a restart) sweeps once the release is stale. The message reaches
// joe@gmail.com exactly once and never joe@gmial.com. Before the choice was
// stored, the retry sent it to the typo.
//
// The one step that delivers twice is a death between the MTA accepting
// the copy and the milter recording it (before-mark-released): nothing
// tells a copy the MTA queued from one it dropped, and twice is better
// than never.
func TestAFixInterruptedByACrashIsDeliveredOnceToTheSuggestedAddress(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		crashAt string
		fix     bool
		want    string
		times   int
	}{
		{"after-claim", true, "joe@gmail.com", 1},
		{"before-reinject", true, "joe@gmail.com", 1},
		{"after-reinject", true, "joe@gmail.com", 1},
		{"before-mark-released", true, "joe@gmail.com", 2},
		{"after-state-change", true, "joe@gmail.com", 1},
		{"after-claim", false, "joe@gmial.com", 1},
		{"before-reinject", false, "joe@gmial.com", 1},
		{"after-reinject", false, "joe@gmial.com", 1},
	} {
		name := tc.crashAt + map[bool]string{true: "/fix", false: "/release"}[tc.fix]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := openTestStore(t)
			clock := time.Date(2026, 11, 30, 4, 0, 0, 0, time.UTC)
			m := &mta{t: t}
			dying := testHolder(t, st, m, &clock, tc.crashAt)
			m.h = dying
			held, err := dying.HoldMessage(context.Background(), joeRequest("4AB12"))
			if err != nil || !held.Waiting {
				t.Fatalf("hold: %+v %v", held, err)
			}
			func() {
				defer func() {
					if p := recover(); p != nil && p != crashed(tc.crashAt) {
						panic(p)
					}
				}()
				dying.Release(context.Background(), held.ID, "sender:127.0.0.1", tc.fix)
			}()
			// The restarted node, after the stale threshold.
			clock = clock.Add(2 * time.Minute)
			restarted := testHolder(t, st, m, &clock, "")
			m.h = restarted
			restarted.Sweep(context.Background())
			restarted.Sweep(context.Background())

			if len(m.delivered) != tc.times {
				t.Fatalf("delivered %d times, want %d", len(m.delivered), tc.times)
			}
			for _, d := range m.delivered {
				if len(d.to) != 1 || d.to[0] != tc.want {
					t.Fatalf("delivered to %v, want %s", d.to, tc.want)
				}
			}
			if got, _ := st.Get(context.Background(), held.ID); got.State != store.StateReleased {
				t.Errorf("state %s, want released", got.State)
			}
			if id := m.envIDs[0]; id != ReleaseEnvelopeID(held.ID) {
				t.Errorf("re-injected with ENVID %q", id)
			}
		})
	}
}

// The copy sent to the suggested address names it in To and Cc (a
// reply-all must not leak to the typo again); the body is untouched.
func TestAFixedMessageNamesTheSuggestedAddressInToAndCc(t *testing.T) {
	t.Parallel()
	st := openTestStore(t)
	clock := time.Date(2026, 11, 30, 4, 0, 0, 0, time.UTC)
	m := &mta{t: t}
	h := testHolder(t, st, m, &clock, "")
	m.h = h
	held, _ := h.HoldMessage(context.Background(), joeRequest("4AB12"))
	if err := h.Release(context.Background(), held.ID, "sender", true); err != nil {
		t.Fatal(err)
	}
	got := string(m.delivered[0].raw)
	for _, want := range []string{"\r\nTo: Joe <joe@gmail.com>, ann@example.org\r\n", "\r\nCc: joe@gmail.com\r\n", "The figures, joe@gmial.com.\r\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("fixed copy lacks %q:\n%s", want, got)
		}
	}
}

// A daily report to ops@gmial.com is held and cancelled; tomorrow's
// identical report (new queue id, so a new MTA-made Message-ID and Date) is
// a new message: held again, its sender asked again. A retry of a message
// still held, or within the retry window, maps to it and asks nobody.
func TestTomorrowsIdenticalReportIsHeldAgainNotDiscardedAsARetry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openTestStore(t)
	clock := time.Date(2026, 11, 30, 4, 0, 0, 0, time.UTC)
	m := &mta{t: t}
	h := testHolder(t, st, m, &clock, "")
	m.h = h

	first, err := h.HoldMessage(ctx, joeRequest("4AB12"))
	if err != nil || !first.Waiting || first.Retry {
		t.Fatalf("first: %+v %v", first, err)
	}
	// The MTA retries the same delivery while it is held: same message.
	clock = clock.Add(5 * time.Minute)
	if again, _ := h.HoldMessage(ctx, joeRequest("4AB12")); again.ID != first.ID || !again.Waiting || !again.Retry {
		t.Errorf("retry while held: %+v, want %s waiting", again, first.ID)
	}
	if err := h.Notify(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	if err := h.Discard(ctx, first.ID, "sender"); err != nil {
		t.Fatal(err)
	}
	// A retry just after the cancel: still the same, answered message;
	// no notification for a message that is not waiting.
	clock = clock.Add(time.Minute)
	late, _ := h.HoldMessage(ctx, joeRequest("4AB12"))
	if late.ID != first.ID || late.Waiting {
		t.Errorf("retry after cancel: %+v", late)
	}
	if err := h.Notify(ctx, late.ID); err != nil || len(m.notes) != 1 {
		t.Errorf("notified %d times (%v), want once", len(m.notes), err)
	}

	// Tomorrow: a new message with the same text.
	clock = clock.Add(24 * time.Hour)
	tomorrow, err := h.HoldMessage(ctx, joeRequest("7CD34"))
	if err != nil {
		t.Fatal(err)
	}
	if tomorrow.ID == first.ID || !tomorrow.Waiting || tomorrow.Retry {
		t.Fatalf("tomorrow's report: %+v, want a new held message", tomorrow)
	}
	if got, err := st.Get(ctx, tomorrow.ID); err != nil || got.State != store.StateHeld {
		t.Fatalf("tomorrow's report in the store: %v %v", got, err)
	}
	if err := h.Notify(ctx, tomorrow.ID); err != nil || len(m.notes) != 2 {
		t.Fatalf("notifications %d (%v), want 2", len(m.notes), err)
	}
	if !bytes.Contains(m.notes[1].raw, []byte("/h/"+tomorrow.ID+"/release")) {
		t.Errorf("the second notification does not link to the new message:\n%s", m.notes[1].raw)
	}
	// Its own retry maps to it, and the day after that is new again.
	if again, _ := h.HoldMessage(ctx, joeRequest("7CD34")); again.ID != tomorrow.ID {
		t.Errorf("retry of tomorrow's report: %s, want %s", again.ID, tomorrow.ID)
	}
	if err := h.Discard(ctx, tomorrow.ID, "sender"); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(24 * time.Hour)
	third, _ := h.HoldMessage(ctx, joeRequest("9EF56"))
	if third.ID == first.ID || third.ID == tomorrow.ID || !third.Waiting {
		t.Errorf("the third day's report: %+v", third)
	}
	if _, err := st.Get(ctx, third.ID); errors.Is(err, store.ErrNotFound) {
		t.Error("the third report is not stored")
	}
}

// Two nodes sweep the same stale release at once: one re-injects it. Node
// a is still re-injecting (its MTA is slow) when node b sweeps.
func TestTwoNodesSweepingAStaleReleaseDeliverItOnce(t *testing.T) {
	t.Parallel()
	st := openTestStore(t)
	clock := time.Date(2026, 11, 30, 4, 0, 0, 0, time.UTC)
	m := &mta{t: t}
	dying := testHolder(t, st, m, &clock, "before-reinject")
	m.h = dying
	held, _ := dying.HoldMessage(context.Background(), joeRequest("4AB12"))
	func() {
		defer func() { recover() }()
		dying.Release(context.Background(), held.ID, "sender", true)
	}()
	clock = clock.Add(2 * time.Minute)
	a, b := testHolder(t, st, m, &clock, ""), testHolder(t, st, m, &clock, "")
	m.h = a
	// The fake MTA delivers every copy it is given (no milter between
	// two simultaneous copies): only the sweep's claim keeps it to one.
	m.dupes = true
	m.stall, m.stalled = make(chan struct{}), make(chan struct{})
	stall := m.stall
	done := make(chan struct{})
	go func() { defer close(done); a.Sweep(context.Background()) }()
	<-m.stalled
	b.Sweep(context.Background())
	close(stall)
	<-done
	if len(m.delivered) != 1 {
		t.Fatalf("delivered %d times, want once", len(m.delivered))
	}
}

// A release claimed by a stray that did not store the choice (before the
// upgrade) is never guessed: the sweep puts it back on hold, to be
// answered again, and sends nothing.
func TestAStaleReleaseWithoutAStoredChoiceIsHeldAgainNotGuessed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openTestStore(t)
	clock := time.Date(2026, 11, 30, 4, 0, 0, 0, time.UTC)
	m := &mta{t: t}
	h := testHolder(t, st, m, &clock, "")
	m.h = h
	held, _ := h.HoldMessage(ctx, joeRequest("4AB12"))
	if err := st.Transition(ctx, held.ID, store.StateHeld, store.StateReleasing, store.Event{Time: clock, Actor: "sender"}); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(2 * time.Minute)
	h.Sweep(ctx)
	if len(m.delivered) != 0 {
		t.Fatalf("delivered %v without knowing the sender's choice", m.delivered)
	}
	if got, _ := st.Get(ctx, held.ID); got.State != store.StateHeld {
		t.Errorf("state %s, want held", got.State)
	}
}
