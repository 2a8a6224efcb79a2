package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The behavioural suite: every test runs against both backends, SQLite in a
// temporary directory and PostgreSQL in a fresh schema of the test server
// (see postgresDSN). A test's subtests are named for the backend.

const (
	envPostgres        = "STRAY_TEST_POSTGRES"
	envRequirePostgres = "STRAY_REQUIRE_POSTGRES"
	defaultPostgres    = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
)

func TestMain(m *testing.M) {
	if path := os.Getenv(envCrashChild); path != "" {
		os.Exit(crashChild(path, os.Getenv(envCrashRound)))
	}
	os.Exit(m.Run())
}

// eachBackend runs fn once per backend, in parallel, each with a DSN naming
// a new, empty store.
func eachBackend(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, sqliteDSN(t))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		fn(t, postgresDSN(t))
	})
}

func sqliteDSN(t *testing.T) string {
	return "sqlite:" + filepath.Join(t.TempDir(), "stray.db")
}

var (
	pgOnce sync.Once
	pgErr  error
)

func postgresBase() string {
	if v := os.Getenv(envPostgres); v != "" {
		return v
	}
	return defaultPostgres
}

// postgresAdmin connects to the test server, or skips the test (fails it
// when STRAY_REQUIRE_POSTGRES is set, as in CI) if there is none.
func postgresAdmin(t *testing.T) *pgx.Conn {
	t.Helper()
	pgOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, postgresBase())
		if err == nil {
			err = c.Ping(ctx)
			c.Close(ctx)
		}
		pgErr = err
	})
	if pgErr != nil {
		if os.Getenv(envRequirePostgres) != "" {
			t.Fatalf("PostgreSQL at %s is required (%s is set) but unreachable: %v", RedactDSN(postgresBase()), envRequirePostgres, pgErr)
		}
		t.Skipf("PostgreSQL at %s unreachable, skipping (set %s to a DSN, or %s=1 to fail): %v",
			RedactDSN(postgresBase()), envPostgres, envRequirePostgres, pgErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, postgresBase())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// postgresDSN creates a schema of its own for the test, dropped when it
// ends, and returns a DSN whose search_path puts stray's tables there: runs
// in parallel, and the leftovers of a killed run, never meet.
func postgresDSN(t *testing.T) string {
	t.Helper()
	admin := postgresAdmin(t)
	ctx := context.Background()
	defer admin.Close(ctx)
	b := make([]byte, 8)
	rand.Read(b)
	schema := "stray_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, postgresBase())
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(postgresBase())
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("%s must be a postgres:// URL", envPostgres)
	}
	q := u.Query()
	q.Set("search_path", schema)
	q.Set("pool_max_conns", "4")
	u.RawQuery = q.Encode()
	return u.String()
}

func openStore(t *testing.T, dsn string) Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// sqlOf runs a query on the backend directly, for what the interface does
// not show (the stored size of raw, the migrations table). Placeholders are
// written '?' and become $n for PostgreSQL. It runs on the writer: for
// SQLite, the connection whose per-connection pragmas the store's writes
// use.
func sqlOf(t *testing.T, s Store, q string, args ...any) [][]any {
	t.Helper()
	ss, ok := s.(*sqlStore)
	if !ok {
		t.Fatalf("unknown backend %T", s)
	}
	rows, err := ss.w.QueryContext(context.Background(), ss.d.rebind(q), args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]any
	for rows.Next() {
		row := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range row {
			ptrs[i] = &row[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

// isSQLite tells the backend of s.
func isSQLite(s Store) bool {
	ss, ok := s.(*sqlStore)
	return ok && ss.d.name == "sqlite"
}

func sqlInt(t *testing.T, s Store, q string, args ...any) int64 {
	t.Helper()
	rows := sqlOf(t, s, q, args...)
	if len(rows) != 1 || len(rows[0]) != 1 {
		t.Fatalf("%s: got %v, want one value", q, rows)
	}
	switch v := rows[0][0].(type) {
	case int64:
		return v
	case int32:
		return int64(v)
	}
	t.Fatalf("%s: got %T", q, rows[0][0])
	return 0
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC) // nanoseconds on purpose

// compressible is a plausible message: headers and a chatty body.
func compressible(n int) []byte {
	var b bytes.Buffer
	b.WriteString("From: Alice <alice@example.com>\r\nTo: bob@gmial.com\r\nSubject: quarterly figures\r\nMessage-ID: <1@example.com>\r\n\r\n")
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "Line %d of the report: revenue is up, costs are down, all is well.\r\n", i)
	}
	return b.Bytes()
}

func newMessage(id string, created time.Time) *Message {
	return &Message{
		ID:      id,
		QueueID: "4F1A2B3C" + id,
		Sender:  "alice@example.com",
		Recipients: []Recipient{{
			Address: "bob@gmial.com", Verdict: "hold", Intended: "gmail.com", Suggestion: "bob@gmail.com",
			Score: 0.93, Reasons: []string{"keyboard-slip: gmial.com is one transposition from gmail.com"},
		}},
		Raw:       compressible(4096),
		State:     StateHeld,
		Node:      "node-a",
		CreatedAt: created,
		ExpiresAt: created.Add(72 * time.Hour),
	}
}

func mustHold(t *testing.T, s Store, m *Message) {
	t.Helper()
	if err := s.Hold(context.Background(), m, Event{Actor: "node:" + m.Node, Detail: "held for confirmation"}); err != nil {
		t.Fatalf("Hold %s: %v", m.ID, err)
	}
}

func eventsOf(t *testing.T, s Store, id string) []Event {
	t.Helper()
	evs, err := s.Events(context.Background(), EventFilter{MessageID: id})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func kinds(evs []Event) []string {
	var ks []string
	for _, e := range evs {
		ks = append(ks, e.Kind)
	}
	return ks
}

func TestHoldThenGetReturnsTheSameMessageCompressedOnDisk(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()

		m := newMessage("0123456789abcdef0123456789abcdef", t0)
		m.Raw = compressible(64 << 10)
		m.Recipients = append(m.Recipients, Recipient{Address: "карл@пример.рф", Verdict: "warn", Score: 0.5})
		mustHold(t, s, m)
		if m.Size != int64(len(m.Raw)) || !m.UpdatedAt.Equal(t0.Truncate(time.Microsecond)) || !m.CreatedAt.Equal(t0.Truncate(time.Microsecond)) {
			t.Errorf("Hold did not fill defaults: size %d, created %v, updated %v", m.Size, m.CreatedAt, m.UpdatedAt)
		}

		got, err := s.Get(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Raw, m.Raw) {
			t.Fatalf("Raw differs: got %d bytes, want %d", len(got.Raw), len(m.Raw))
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("Get:\n got %+v\nwant %+v", *got, *m)
		}
		if got.CreatedAt.Location() != time.UTC || got.ExpiresAt.Location() != time.UTC {
			t.Errorf("times not in UTC: %v", got.CreatedAt.Location())
		}
		stored := sqlInt(t, s, "SELECT length(raw) FROM messages WHERE id = ?", m.ID)
		if stored >= int64(len(m.Raw))/4 {
			t.Errorf("raw stored in %d bytes for %d bytes of text: not compressed", stored, len(m.Raw))
		}

		// Binary content with every byte value survives untouched.
		bin := newMessage("bin", t0)
		bin.Raw = make([]byte, 100_000)
		rand.Read(bin.Raw)
		bin.Raw = append(bin.Raw, []byte("\x00\r\n.\r\n\xff")...)
		mustHold(t, s, bin)
		if got, err := s.Get(ctx, "bin"); err != nil || !bytes.Equal(got.Raw, bin.Raw) {
			t.Fatalf("binary round trip: err %v", err)
		}

		evs := eventsOf(t, s, m.ID)
		if len(evs) != 1 || evs[0].Kind != "held" || evs[0].Actor != "node:node-a" || !evs[0].Time.Equal(m.CreatedAt) || evs[0].ID == 0 {
			t.Errorf("held event: %+v", evs)
		}

		if _, err := s.Get(ctx, "nosuch"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get missing: %v, want ErrNotFound", err)
		}
	})
}

func TestMarkNotifiedIsKeptAndMissingMessageIsNotFound(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		mustHold(t, s, newMessage("m1", t0))
		at := t0.Add(time.Minute + 789*time.Nanosecond)
		if err := s.MarkNotified(ctx, "m1", at); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, "m1")
		if err != nil {
			t.Fatal(err)
		}
		if !got.NotifiedAt.Equal(at.Truncate(time.Microsecond)) {
			t.Errorf("NotifiedAt %v, want %v", got.NotifiedAt, at)
		}
		if err := s.MarkNotified(ctx, "m2", at); !errors.Is(err, ErrNotFound) {
			t.Errorf("MarkNotified missing: %v", err)
		}
	})
}

func TestHoldRejectsBadInputWithClearErrors(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		tests := []struct {
			name string
			edit func(m *Message, ev *Event)
			want string
		}{
			{"empty id", func(m *Message, _ *Event) { m.ID = "" }, "empty message id"},
			{"id with slash", func(m *Message, _ *Event) { m.ID = "a/b" }, "want only"},
			{"long id", func(m *Message, _ *Event) { m.ID = strings.Repeat("a", 65) }, "longer than"},
			{"not held", func(m *Message, _ *Event) { m.State = StateReleased }, `a new message must be "held"`},
			{"no content", func(m *Message, _ *Event) { m.Raw = nil }, "empty message content"},
			{"wrong size", func(m *Message, _ *Event) { m.Size = 3 }, "does not match"},
			{"no recipients", func(m *Message, _ *Event) { m.Recipients = nil }, "no held recipients"},
			{"empty recipient", func(m *Message, _ *Event) { m.Recipients[0].Address = "" }, "empty address"},
			{"no expiry", func(m *Message, _ *Event) { m.ExpiresAt = time.Time{} }, "no expiry"},
			{"sender not UTF-8", func(m *Message, _ *Event) { m.Sender = "al\xffce@example.com" }, "sender is not valid UTF-8"},
			{"NUL in recipient", func(m *Message, _ *Event) { m.Recipients[0].Address = "bob\x00@x" }, "NUL"},
			{"event about another message", func(_ *Message, ev *Event) { ev.MessageID = "other" }, "event is about"},
		}
		for _, tt := range tests {
			m := newMessage("bad", t0)
			ev := Event{}
			tt.edit(m, &ev)
			err := s.Hold(ctx, m, ev)
			if err == nil || !strings.HasPrefix(err.Error(), "store: hold ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s: got %v, want error with %q", tt.name, err, tt.want)
			}
		}
		if err := s.Hold(ctx, nil, Event{}); err == nil {
			t.Error("Hold(nil) succeeded")
		}
		if got, _ := s.List(ctx, Filter{}); len(got) != 0 {
			t.Errorf("rejected holds stored %d messages", len(got))
		}
		if evs, _ := s.Events(ctx, EventFilter{}); len(evs) != 0 {
			t.Errorf("rejected holds recorded events: %+v", evs)
		}

		// The same id twice: the first stays, the second is ErrExists.
		mustHold(t, s, newMessage("dup", t0))
		second := newMessage("dup", t0.Add(time.Hour))
		second.Sender = "mallory@example.com"
		if err := s.Hold(ctx, second, Event{}); !errors.Is(err, ErrExists) {
			t.Fatalf("second Hold: %v, want ErrExists", err)
		}
		got, err := s.Get(ctx, "dup")
		if err != nil || got.Sender != "alice@example.com" {
			t.Errorf("first message changed: %v %+v", err, got)
		}
		if k := kinds(eventsOf(t, s, "dup")); !slices.Equal(k, []string{"held"}) {
			t.Errorf("events %v, want one held", k)
		}
	})
}

func TestListFiltersAndOrdersNewestFirst(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		type spec struct {
			id, sender, rcpt string
			state            State
		}
		specs := []spec{ // oldest first
			{"m1", "alice@example.com", "bob@gmial.com", StateHeld},
			{"m2", "Carol@Example.com", "dave@army.ml", StateDiscarded},
			{"m3", "alice@example.com", "eve@yaho.com", StateHeld},
			{"m4", "frank@example.com", "100%_real@gmial.com", StateReleasing},
			{"m5", "alice@example.com", "GINA@OUTLOOK.CMO", StateExpired},
		}
		for i, sp := range specs {
			m := newMessage(sp.id, t0.Add(time.Duration(i)*time.Minute))
			m.Sender = sp.sender
			m.Recipients[0].Address = sp.rcpt
			mustHold(t, s, m)
			if sp.state != StateHeld {
				if err := s.Transition(ctx, sp.id, StateHeld, sp.state, Event{}); err != nil {
					t.Fatal(err)
				}
			}
		}
		tests := []struct {
			name string
			f    Filter
			want []string
		}{
			{"all", Filter{}, []string{"m5", "m4", "m3", "m2", "m1"}},
			{"held", Filter{States: []State{StateHeld}}, []string{"m3", "m1"}},
			{"held or releasing", Filter{States: []State{StateReleasing, StateHeld}}, []string{"m4", "m3", "m1"}},
			{"sender exact", Filter{Sender: "alice@example.com"}, []string{"m5", "m3", "m1"}},
			{"sender exact is case-sensitive", Filter{Sender: "carol@example.com"}, nil},
			{"search recipient", Filter{Search: "gmial"}, []string{"m4", "m1"}},
			{"search is case-insensitive", Filter{Search: "outlook.cmo"}, []string{"m5"}},
			{"search sender", Filter{Search: "CAROL"}, []string{"m2"}},
			{"search wildcards are literal", Filter{Search: "%_r"}, []string{"m4"}},
			{"search does not look at findings", Filter{Search: "keyboard-slip"}, nil},
			{"before", Filter{Before: t0.Add(2 * time.Minute)}, []string{"m2", "m1"}},
			{"limit", Filter{Limit: 2}, []string{"m5", "m4"}},
			{"id prefix", Filter{IDPrefix: "m"}, []string{"m5", "m4", "m3", "m2", "m1"}},
			{"unique id prefix", Filter{IDPrefix: "m3"}, []string{"m3"}},
			{"id prefix is not a pattern", Filter{IDPrefix: "_3"}, nil},
			{"id prefix longer than any id", Filter{IDPrefix: "m33"}, nil},
			{"combined", Filter{States: []State{StateHeld, StateExpired}, Sender: "alice@example.com", Search: "o", Before: t0.Add(4 * time.Minute)}, []string{"m3", "m1"}},
		}
		for _, tt := range tests {
			got, err := s.List(ctx, tt.f)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			var ids []string
			for _, m := range got {
				ids = append(ids, m.ID)
				if m.Raw != nil || m.Size != int64(len(compressible(4096))) {
					t.Errorf("%s: %s: Raw loaded (%d bytes) or size %d wrong", tt.name, m.ID, len(m.Raw), m.Size)
				}
			}
			if !slices.Equal(ids, tt.want) {
				t.Errorf("%s: got %v, want %v", tt.name, ids, tt.want)
			}
		}
		got, _ := s.List(ctx, Filter{Sender: "frank@example.com"})
		if len(got) != 1 || got[0].State != StateReleasing || got[0].Recipients[0].Suggestion != "bob@gmail.com" {
			t.Errorf("listed message: %+v", got)
		}
		for _, f := range []Filter{{Limit: -1}, {States: []State{"lost"}}, {BeforeID: "m1"}, {Before: t0, BeforeID: "bad id"}, {IDPrefix: "m%"}} {
			if _, err := s.List(ctx, f); err == nil || !strings.HasPrefix(err.Error(), "store: list: ") {
				t.Errorf("List(%+v): %v, want an error", f, err)
			}
		}
	})
}

func TestListPagesThroughMessagesThatShareACreationTime(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		var want []string
		for i := 0; i < 7; i++ { // three share t0+2m, two t0+3m
			at := t0.Add(time.Duration(min(i, 2+i/5)) * time.Minute)
			id := fmt.Sprintf("p%d", i)
			mustHold(t, s, newMessage(id, at))
			want = append(want, id)
		}
		var got []string
		f := Filter{Limit: 2}
		for page := 0; page < 10; page++ {
			ms, err := s.List(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ms {
				got = append(got, m.ID)
			}
			if len(ms) < f.Limit {
				break
			}
			last := ms[len(ms)-1]
			f.Before, f.BeforeID = last.CreatedAt, last.ID
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("paged through %v, want each of %v once", got, want)
		}
	})
}

func TestTransitionChangesStateWithItsEventOrNeither(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		mustHold(t, s, newMessage("m1", t0))

		at := t0.Add(time.Hour).Truncate(time.Microsecond)
		if err := s.Transition(ctx, "m1", StateHeld, StateReleasing, Event{Time: at, Actor: "sender"}); err != nil {
			t.Fatal(err)
		}
		got, _ := s.Get(ctx, "m1")
		if got.State != StateReleasing || !got.UpdatedAt.Equal(at) {
			t.Errorf("after release: state %s updated %v", got.State, got.UpdatedAt)
		}
		if err := s.Transition(ctx, "m1", StateReleasing, StateHeld, Event{Kind: "release-failed", Actor: "node:a", Detail: "451 try later"}); err != nil {
			t.Fatal(err)
		}
		if err := s.Transition(ctx, "m1", StateHeld, StateDiscarded, Event{Actor: "admin:root"}); err != nil {
			t.Fatal(err)
		}
		evs := eventsOf(t, s, "m1")
		if k := kinds(evs); !slices.Equal(k, []string{"discarded", "release-failed", "releasing", "held"}) {
			t.Errorf("events %v", k)
		}
		if evs[2].Actor != "sender" || !evs[2].Time.Equal(at) || evs[1].Detail != "451 try later" {
			t.Errorf("events lost their details: %+v", evs)
		}

		// A transition that fails records nothing.
		err := s.Transition(ctx, "m1", StateHeld, StateReleasing, Event{Actor: "sender"})
		if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "it is discarded") {
			t.Errorf("late release: %v, want ErrConflict naming the state", err)
		}
		err = s.Transition(ctx, "nosuch", StateHeld, StateReleasing, Event{})
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("missing: %v, want ErrNotFound", err)
		}
		for _, bad := range []struct{ from, to State }{{StateHeld, StateHeld}, {"frozen", StateHeld}, {StateHeld, ""}} {
			err := s.Transition(ctx, "m1", bad.from, bad.to, Event{})
			if err == nil || errors.Is(err, ErrConflict) || !strings.HasPrefix(err.Error(), "store: transition m1: ") {
				t.Errorf("%s→%s: %v, want a validation error", bad.from, bad.to, err)
			}
		}
		if err := s.Transition(ctx, "m1", StateDiscarded, StateHeld, Event{MessageID: "m2"}); err == nil {
			t.Error("event about another message accepted")
		}
		if n := len(eventsOf(t, s, "m1")); n != 4 {
			t.Errorf("%d events after failed transitions, want 4", n)
		}
		if n := len(eventsOf(t, s, "nosuch")); n != 0 {
			t.Errorf("%d events for a missing message", n)
		}
		if got, _ := s.Get(ctx, "m1"); got.State != StateDiscarded {
			t.Errorf("state %s after failed transitions", got.State)
		}
	})
}

// Two nodes (two Store instances on one database) and twenty goroutines
// race to release one message: exactly one wins, every other gets
// ErrConflict, and the event log shows one release.
func TestConcurrentReleaseHappensExactlyOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		nodes := []Store{openStore(t, dsn), openStore(t, dsn)}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for round := range 5 {
			id := fmt.Sprintf("race%d", round)
			mustHold(t, nodes[round%2], newMessage(id, t0))
			const racers = 20
			var (
				wg        sync.WaitGroup
				start     = make(chan struct{})
				errs      = make([]error, racers)
				conflicts int
				wins      []int
			)
			for i := range racers {
				wg.Go(func() {
					<-start
					errs[i] = nodes[i%2].Transition(ctx, id, StateHeld, StateReleasing, Event{Actor: fmt.Sprintf("node:%d/%d", i%2, i)})
				})
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				switch {
				case err == nil:
					wins = append(wins, i)
				case errors.Is(err, ErrConflict):
					conflicts++
				default:
					t.Errorf("racer %d: %v", i, err)
				}
			}
			if len(wins) != 1 || conflicts != racers-1 {
				t.Fatalf("round %d: winners %v, %d conflicts; want exactly one winner", round, wins, conflicts)
			}
			evs, err := nodes[1-round%2].Events(ctx, EventFilter{MessageID: id, Kind: "releasing"})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 || evs[0].Actor != fmt.Sprintf("node:%d/%d", wins[0]%2, wins[0]) {
				t.Errorf("round %d: release events %+v, want the winner's only", round, evs)
			}
		}
	})
}

func TestDueFindsExpiredHeldAndStaleReleasing(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		now := t0.Add(10 * 24 * time.Hour)
		hold := func(id string, expires time.Time) {
			m := newMessage(id, t0)
			m.ExpiresAt = expires
			mustHold(t, s, m)
		}
		hold("expired-late", now.Add(-time.Minute))
		hold("expired-early", now.Add(-time.Hour))
		hold("waiting", now.Add(time.Hour))
		hold("expired-at-now", now) // not before now
		hold("discarded", now.Add(-time.Hour))
		if err := s.Transition(ctx, "discarded", StateHeld, StateDiscarded, Event{}); err != nil {
			t.Fatal(err)
		}
		hold("stale", now.Add(time.Hour))
		if err := s.Transition(ctx, "stale", StateHeld, StateReleasing, Event{Time: now.Add(-20 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
		hold("fresh", now.Add(-time.Hour)) // expired, but being released now
		if err := s.Transition(ctx, "fresh", StateHeld, StateReleasing, Event{Time: now.Add(-time.Minute)}); err != nil {
			t.Fatal(err)
		}

		expired, stale, err := s.Due(ctx, now, now.Add(-10*time.Minute), 10)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(expired, []string{"expired-early", "expired-late"}) || !slices.Equal(stale, []string{"stale"}) {
			t.Errorf("Due: expired %v, stale %v", expired, stale)
		}
		expired, stale, err = s.Due(ctx, now, now.Add(-10*time.Minute), 1)
		if err != nil || !slices.Equal(expired, []string{"expired-early"}) || len(stale) != 1 {
			t.Errorf("Due limit 1: %v %v %v", expired, stale, err)
		}
		expired, stale, err = s.Due(ctx, t0, time.Time{}, 0)
		if err != nil || expired != nil || stale != nil {
			t.Errorf("Due with nothing due: %v %v %v", expired, stale, err)
		}
		if _, _, err := s.Due(ctx, now, now, -1); err == nil {
			t.Error("negative limit accepted")
		}
	})
}

func TestEventsFilterAndComeNewestFirst(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		add := func(ev Event) {
			t.Helper()
			if err := s.AddEvent(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		add(Event{Time: t0, Kind: "decision", Actor: "system", Detail: `{"verdict":"block","rcpt":"j@army.ml"}`})
		add(Event{Time: t0.Add(2 * time.Second), MessageID: "m1", Kind: "notified", Actor: "system"})
		add(Event{Time: t0.Add(time.Second), MessageID: "m1", Kind: "held", Actor: "node:a"})
		add(Event{Time: t0.Add(3 * time.Second), Kind: "login", Actor: "admin:root"})
		add(Event{Time: t0.Add(3 * time.Second), Kind: "login", Actor: "admin:ops"}) // same time: later id first

		all, err := s.Events(ctx, EventFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var actors []string
		for _, e := range all {
			actors = append(actors, e.Actor)
		}
		if !slices.Equal(actors, []string{"admin:ops", "admin:root", "system", "node:a", "system"}) {
			t.Errorf("order: %v", actors)
		}
		if all[4].Detail != `{"verdict":"block","rcpt":"j@army.ml"}` || all[4].MessageID != "" {
			t.Errorf("decision event: %+v", all[4])
		}
		for _, tt := range []struct {
			f    EventFilter
			want int
		}{
			{EventFilter{MessageID: "m1"}, 2},
			{EventFilter{Kind: "login"}, 2},
			{EventFilter{Since: t0.Add(2 * time.Second)}, 3},
			{EventFilter{MessageID: "m1", Kind: "held"}, 1},
			{EventFilter{Limit: 1}, 1},
		} {
			if got, err := s.Events(ctx, tt.f); err != nil || len(got) != tt.want {
				t.Errorf("Events(%+v): %d events, %v; want %d", tt.f, len(got), err, tt.want)
			}
		}
		if err := s.AddEvent(ctx, Event{}); err == nil || !strings.Contains(err.Error(), "without a kind") {
			t.Errorf("event without kind: %v", err)
		}
		before := time.Now().Add(-time.Second)
		add(Event{Kind: "now"})
		if got, _ := s.Events(ctx, EventFilter{Kind: "now"}); len(got) != 1 || got[0].Time.Before(before) {
			t.Errorf("event without time: %+v", got)
		}
	})
}

func TestAddDeliveriesCountsMessagesAndDistinctSenders(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		deliver := func(sender string, at time.Time, domains ...string) {
			t.Helper()
			if err := s.AddDeliveries(ctx, sender, domains, at); err != nil {
				t.Fatal(err)
			}
		}
		deliver("a@corp.example", t0.Add(time.Hour), "gmail.com", "example.org", "gmail.com") // one message, two recipients at gmail
		deliver("b@corp.example", t0, "gmail.com")
		deliver("a@corp.example", t0.Add(2*time.Hour), "gmail.com")
		deliver("", t0.Add(3*time.Hour), "example.org") // a bounce: no sender to count
		deliver("a@corp.example", t0)                   // no domains: nothing

		got, err := s.Correspondents(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := []Correspondent{
			{Domain: "gmail.com", Deliveries: 3, Senders: 2, Days: 1, FirstSeen: t0.Truncate(time.Microsecond), LastSeen: t0.Add(2 * time.Hour).Truncate(time.Microsecond)},
			{Domain: "example.org", Deliveries: 2, Senders: 1, Days: 1, FirstSeen: t0.Add(time.Hour).Truncate(time.Microsecond), LastSeen: t0.Add(3 * time.Hour).Truncate(time.Microsecond)},
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Correspondents:\n got %+v\nwant %+v", got, want)
		}
		if top, _ := s.Correspondents(ctx, 1); len(top) != 1 || top[0].Domain != "gmail.com" {
			t.Errorf("limit 1: %+v", top)
		}
		if err := s.AddDeliveries(ctx, "a@x", []string{"ok.com", ""}, t0); err == nil {
			t.Error("empty domain accepted")
		}
		if _, err := s.Correspondents(ctx, -1); err == nil {
			t.Error("negative limit accepted")
		}
	})
}

// A batch of delivery counts, as the recorder writes a second's worth of
// traffic, leaves the store as the same messages added one by one would:
// here 400 messages of 8 recipients each to some 1,600 domains (more rows
// than one statement takes), one namespace of domains added each way.
func TestAddDeliveryCountsIsTheSameAsEachMessageAddedAlone(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		rng := mrand.New(mrand.NewPCG(7, 13))
		type key struct{ sender, domain string }
		var batch []DeliveryCount
		at := map[key]int{}
		for range 400 {
			sender := []string{"a@corp.example", "b@corp.example", ""}[rng.IntN(3)]
			when := t0.Add(time.Duration(rng.IntN(72)) * time.Hour) // three days
			var one []string
			seen := map[string]bool{}
			for range 8 {
				n := rng.IntN(2000)
				one = append(one, fmt.Sprintf("one-%d.example", n))
				if seen[fmt.Sprint(n)] {
					continue // a domain named twice in a message counts once
				}
				seen[fmt.Sprint(n)] = true
				// The batch: one count per sender and domain and day, as
				// the recorder's (a second's worth each).
				k := key{sender, fmt.Sprintf("batch-%d.example", n)}
				if j, ok := at[k]; ok && batch[j].First.Truncate(24*time.Hour).Equal(when.Truncate(24*time.Hour)) {
					batch[j].N++
					if when.Before(batch[j].First) {
						batch[j].First = when
					}
					if when.After(batch[j].Last) {
						batch[j].Last = when
					}
					continue
				}
				at[k] = len(batch)
				batch = append(batch, DeliveryCount{Domain: k.domain, Sender: sender, N: 1, First: when, Last: when})
			}
			if err := s.AddDeliveries(ctx, sender, one, when); err != nil {
				t.Fatal(err)
			}
		}
		batch = append(batch, DeliveryCount{Domain: "batch-0.example", Sender: "z@corp.example"}) // N 0: nothing
		if err := s.AddDeliveryCounts(ctx, batch); err != nil {
			t.Fatal(err)
		}
		got, err := s.Correspondents(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		one, many := map[string]Correspondent{}, map[string]Correspondent{}
		for _, c := range got {
			if n, ok := strings.CutPrefix(c.Domain, "one-"); ok {
				c.Domain = n
				one[n] = c
			} else if n, ok := strings.CutPrefix(c.Domain, "batch-"); ok {
				c.Domain = n
				many[n] = c
			}
		}
		if len(one) < 1000 || !reflect.DeepEqual(one, many) {
			t.Errorf("%d domains one by one, %d in a batch; they differ: %v", len(one), len(many), !reflect.DeepEqual(one, many))
		}

		bad := []struct {
			name string
			c    DeliveryCount
		}{
			{"empty domain", DeliveryCount{Sender: "a@x", N: 1}},
			{"negative count", DeliveryCount{Domain: "x.example", N: -1}},
			{"NUL in the sender", DeliveryCount{Domain: "x.example", Sender: "a\x00@x", N: 1}},
			{"last before first", DeliveryCount{Domain: "x.example", N: 2, First: t0, Last: t0.Add(-time.Second)}},
		}
		for _, b := range bad {
			if err := s.AddDeliveryCounts(ctx, []DeliveryCount{{Domain: "ok.example", N: 1}, b.c}); err == nil {
				t.Errorf("%s: accepted", b.name)
			}
		}
		if cs, _ := s.Correspondents(ctx, 0); len(cs) != len(got) {
			t.Errorf("a refused batch wrote something: %d domains, was %d", len(cs), len(got))
		}
	})
}

// Deliveries from two nodes at once, naming the same domains in different
// orders, neither deadlock nor lose a count.
func TestConcurrentDeliveriesAreAllCounted(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		nodes := []Store{openStore(t, dsn), openStore(t, dsn)}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		domains := []string{"a.example", "b.example", "c.example", "d.example"}
		const workers, each = 8, 10
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				ds := slices.Clone(domains)
				if w%2 == 1 {
					slices.Reverse(ds)
				}
				for i := range each {
					if err := nodes[w%2].AddDeliveries(ctx, fmt.Sprintf("s%d@corp.example", i%3), ds, t0); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		got, err := nodes[0].Correspondents(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(domains) {
			t.Fatalf("got %d domains", len(got))
		}
		for _, c := range got {
			if c.Deliveries != workers*each || c.Senders != 3 {
				t.Errorf("%s: %d deliveries from %d senders, want %d from 3", c.Domain, c.Deliveries, c.Senders, workers*each)
			}
		}
	})
}

func TestReopenAfterCloseKeepsEverything(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s, err := Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		m := newMessage("keep", t0)
		mustHold(t, s, m)
		if err := s.AddDeliveries(ctx, "a@x", []string{"gmail.com"}, t0); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Ping(ctx); err == nil {
			t.Error("Ping after Close succeeded")
		}

		s = openStore(t, dsn)
		got, err := s.Get(ctx, "keep")
		if err != nil || !bytes.Equal(got.Raw, m.Raw) {
			t.Fatalf("after reopen: %v", err)
		}
		if c, _ := s.Correspondents(ctx, 0); len(c) != 1 {
			t.Errorf("correspondents after reopen: %+v", c)
		}
		if k := kinds(eventsOf(t, s, "keep")); !slices.Equal(k, []string{"held"}) {
			t.Errorf("events after reopen: %v", k)
		}
	})
}

// Several processes (or nodes) opening one new database at once apply each
// migration exactly once; opening again changes nothing.
func TestMigrationsRunOnceWhenOpenedConcurrentlyAndAgain(t *testing.T) {
	ms, err := loadMigrations("sqlite")
	if err != nil {
		t.Fatal(err)
	}
	eachBackend(t, func(t *testing.T, dsn string) {
		var wg sync.WaitGroup
		stores := make([]Store, 4)
		errs := make([]error, len(stores))
		for i := range stores {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				stores[i], errs[i] = Open(ctx, dsn)
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("Open %d: %v", i, err)
			}
			stores[i].Close()
		}
		s := openStore(t, dsn)
		if n := sqlInt(t, s, "SELECT count(*) FROM schema_migrations"); n != int64(len(ms)) {
			t.Errorf("%d migrations recorded, want %d", n, len(ms))
		}
		if err := s.Ping(context.Background()); err != nil {
			t.Errorf("Ping: %v", err)
		}
		if evs, _ := s.Events(context.Background(), EventFilter{}); len(evs) != 0 {
			t.Errorf("Ping left events: %+v", evs)
		}
	})
}

func TestOpenRefusesASchemaNewerThanItKnows(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		sqlOf(t, s, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', ?) RETURNING version", timeArg(s, t0))
		s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if _, err := Open(ctx, dsn); err == nil || !strings.Contains(err.Error(), "upgrade stray") {
			t.Errorf("Open: %v, want a refusal", err)
		}
	})
}

func timeArg(s Store, t time.Time) any {
	if isSQLite(s) {
		return t.UnixMicro()
	}
	return t
}

// A stored message damaged on disk (cut short, a flipped bit) fails to load
// with an error instead of coming back as something else.
func TestGetRefusesDamagedContent(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		for _, id := range []string{"cut", "flip"} {
			m := newMessage(id, t0)
			m.Raw = compressible(32 << 10)
			mustHold(t, s, m)
		}
		rows := sqlOf(t, s, "SELECT raw FROM messages WHERE id = ?", "flip")
		raw := slices.Clone(rows[0][0].([]byte))
		raw[len(raw)/2] ^= 0x10
		sqlOf(t, s, "UPDATE messages SET raw = ? WHERE id = ? RETURNING id", raw, "flip")
		sqlOf(t, s, "UPDATE messages SET raw = substr(raw, 1, length(raw) / 2) WHERE id = ? RETURNING id", "cut")
		for _, id := range []string{"cut", "flip"} {
			if m, err := s.Get(ctx, id); err == nil {
				t.Errorf("%s: Get returned %d bytes of a damaged message", id, len(m.Raw))
			} else if !strings.Contains(err.Error(), "decompress") {
				t.Errorf("%s: %v", id, err)
			}
		}
	})
}

func TestPingReportsAWritableStore(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if err := s.Ping(ctx); err == nil {
			t.Error("Ping on a closed store succeeded")
		}
	})
}

// Both dialects define the same tables with the same columns.
func TestBothBackendsHaveTheSameSchema(t *testing.T) {
	for _, d := range []string{"sqlite", "postgres"} {
		if _, err := loadMigrations(d); err != nil {
			t.Fatal(err)
		}
	}
	sq, _ := loadMigrations("sqlite")
	pg, _ := loadMigrations("postgres")
	if len(sq) != len(pg) {
		t.Fatalf("%d sqlite migrations, %d postgres", len(sq), len(pg))
	}
	for i := range sq {
		if sq[i].name != pg[i].name {
			t.Errorf("migration %d: %s vs %s", i+1, sq[i].name, pg[i].name)
		}
	}

	lite := openStore(t, sqliteDSN(t))
	post := openStore(t, postgresDSN(t))
	columns := func(s Store, table string) []string {
		var q string
		if isSQLite(s) {
			q = "SELECT name FROM pragma_table_info(?) ORDER BY cid"
		} else {
			q = "SELECT column_name::text FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position"
		}
		var cols []string
		for _, r := range sqlOf(t, s, q, table) {
			cols = append(cols, r[0].(string))
		}
		return cols
	}
	names := func(s Store, sqliteQ, pgQ string) []string {
		q := pgQ
		if isSQLite(s) {
			q = sqliteQ
		}
		var out []string
		for _, r := range sqlOf(t, s, q) {
			out = append(out, r[0].(string))
		}
		slices.Sort(out)
		return out
	}
	tables := names(lite,
		"SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite%'",
		"SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()")
	if pgTables := names(post, "", "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()"); !slices.Equal(tables, pgTables) {
		t.Errorf("tables: sqlite %v, postgres %v", tables, pgTables)
	}
	for _, table := range []string{"messages", "events", "correspondents", "correspondent_senders", "schema_migrations",
		"users", "sessions", "api_tokens", "policy_rules", "decision_counts", "reports", "correspondent_days", "sender_allows"} {
		if !slices.Contains(tables, table) {
			t.Errorf("no table %s", table)
		}
	}
	for _, table := range tables {
		a, b := columns(lite, table), columns(post, table)
		if len(a) == 0 || !slices.Equal(a, b) {
			t.Errorf("%s: sqlite %v, postgres %v", table, a, b)
		}
	}
	// The indexes the migrations create by name (not those of primary
	// keys and UNIQUE constraints, which the dialects name differently).
	a := names(lite, "SELECT name FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL", "")
	b := names(post, "", "SELECT indexname::text FROM pg_indexes WHERE schemaname = current_schema() AND indexname !~ '_(pkey|key)$'")
	if len(a) == 0 || !slices.Equal(a, b) {
		t.Errorf("indexes: sqlite %v, postgres %v", a, b)
	}
	// Text that is listed in its order sorts bytewise in PostgreSQL too,
	// as in SQLite, whatever the database's default collation.
	for _, c := range [][2]string{{"users", "name"}, {"sessions", "user_name"}, {"decision_counts", "verdict"}, {"decision_counts", "action"}} {
		rows := sqlOf(t, post, "SELECT coalesce(collation_name::text, '') FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? AND column_name = ?", c[0], c[1])
		if len(rows) != 1 || rows[0][0] != "C" {
			t.Errorf("%s.%s: collation %v, want C", c[0], c[1], rows)
		}
	}
}
