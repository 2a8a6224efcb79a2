package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The dashboard's records: users, sessions, API tokens, run-time rules,
// decision counts and saved reports, on both backends.

func sessionID(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

func mustPutUser(t *testing.T, s Store, name string, role Role) *User {
	t.Helper()
	u := &User{Name: name, Role: role, Hash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"}
	if err := s.PutUser(context.Background(), u); err != nil {
		t.Fatalf("PutUser %s: %v", name, err)
	}
	return u
}

// between reports whether t, as the store keeps it, lies in [from, to].
func between(t, from, to time.Time) bool {
	return !t.Before(stamp(from)) && !t.After(to)
}

func TestUsersArePutReplacedListedByNameAndDeleted(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()

		before := time.Now()
		u := &User{Name: "alice", Role: RoleAdmin, Hash: "$argon2id$v=19$first", CreatedAt: t0, UpdatedAt: t0}
		if err := s.PutUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		after := time.Now()
		if !between(u.CreatedAt, before, after) || !u.UpdatedAt.Equal(u.CreatedAt) {
			t.Errorf("new user: created %v updated %v, want both the time of PutUser (%v…%v)", u.CreatedAt, u.UpdatedAt, before, after)
		}
		got, err := s.GetUser(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, u) {
			t.Errorf("GetUser:\n got %+v\nwant %+v", got, u)
		}

		// Replace: new role and hash, creation time kept.
		created := u.CreatedAt
		time.Sleep(2 * time.Millisecond)
		u2 := &User{Name: "alice", Role: RoleAuditor, Hash: "$argon2id$v=19$second", CreatedAt: t0}
		if err := s.PutUser(ctx, u2); err != nil {
			t.Fatal(err)
		}
		if !u2.CreatedAt.Equal(created) || !u2.UpdatedAt.After(created) {
			t.Errorf("replaced user: created %v updated %v, want created %v and updated later", u2.CreatedAt, u2.UpdatedAt, created)
		}
		got, err = s.GetUser(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, u2) {
			t.Errorf("GetUser after replace:\n got %+v\nwant %+v", got, u2)
		}

		// Names are case-sensitive and listed bytewise, whatever the
		// database's collation.
		if _, err := s.GetUser(ctx, "Alice"); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetUser Alice: %v, want ErrNotFound", err)
		}
		names := []string{"bob", "Zed", "_x", "a-c", "a.b", "aB", "a@b+c"}
		for _, n := range names {
			mustPutUser(t, s, n, RoleAuditor)
		}
		names = append(names, "alice")
		slices.Sort(names)
		list, err := s.ListUsers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var listed []string
		for _, u := range list {
			listed = append(listed, u.Name)
			if u.Hash == "" || u.Role == "" || u.CreatedAt.IsZero() {
				t.Errorf("listed user incomplete: %+v", u)
			}
		}
		if !slices.Equal(listed, names) {
			t.Errorf("ListUsers: %q, want %q", listed, names)
		}
		if list[slices.Index(listed, "alice")] != *u2 {
			t.Errorf("listed alice %+v, want %+v", list[slices.Index(listed, "alice")], *u2)
		}

		if err := s.DeleteUser(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetUser(ctx, "alice"); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetUser after delete: %v, want ErrNotFound", err)
		}
		if err := s.DeleteUser(ctx, "alice"); !errors.Is(err, ErrNotFound) {
			t.Errorf("DeleteUser twice: %v, want ErrNotFound", err)
		}
		if list, _ := s.ListUsers(ctx); len(list) != len(names)-1 {
			t.Errorf("%d users after delete, want %d", len(list), len(names)-1)
		}
	})
}

func TestPutUserRejectsBadInputWithClearErrors(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		ok := func() *User { return &User{Name: "carol", Role: RoleAdmin, Hash: "$argon2id$v=19$x"} }
		cases := []struct {
			name   string
			change func(*User)
			want   string
		}{
			{"empty name", func(u *User) { u.Name = "" }, "empty user name"},
			{"long name", func(u *User) { u.Name = strings.Repeat("a", 65) }, "user name longer than 64"},
			{"space in name", func(u *User) { u.Name = "carol hunter2" }, "user name: want only"},
			{"slash in name", func(u *User) { u.Name = "a/b" }, "user name: want only"},
			{"non-ASCII name", func(u *User) { u.Name = "zoë" }, "user name: want only"},
			{"NUL in name", func(u *User) { u.Name = "a\x00b" }, "user name: want only"},
			{"no role", func(u *User) { u.Role = "" }, "role"},
			{"unknown role", func(u *User) { u.Role = "root" }, `role "root"`},
			{"empty hash", func(u *User) { u.Hash = "" }, "empty password hash"},
			{"NUL in hash", func(u *User) { u.Hash = "$argon2id\x00" }, "password hash contains a NUL"},
			{"bad UTF-8 hash", func(u *User) { u.Hash = "$\xff" }, "password hash is not valid UTF-8"},
		}
		for _, c := range cases {
			u := ok()
			c.change(u)
			err := s.PutUser(ctx, u)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("%s: the error echoes the name: %v", c.name, err)
			}
		}
		if err := s.PutUser(ctx, nil); err == nil {
			t.Error("nil user accepted")
		}
		if list, _ := s.ListUsers(ctx); len(list) != 0 {
			t.Errorf("bad users stored: %+v", list)
		}

		// The edges of what is allowed.
		for _, name := range []string{strings.Repeat("z", 64), "a", "A.b_c@d+e-F9"} {
			mustPutUser(t, s, name, RoleAuditor)
			if _, err := s.GetUser(ctx, name); err != nil {
				t.Errorf("GetUser %s: %v", name, err)
			}
		}

		// A malformed name cannot exist: not found, with the reason, and
		// without echoing what may be a password typed in the wrong box.
		for _, name := range []string{"", "correct horse battery", strings.Repeat("x", 65)} {
			_, err := s.GetUser(ctx, name)
			if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "user name") {
				t.Errorf("GetUser %q: %v, want ErrNotFound saying why", name, err)
			}
			if err != nil && name != "" && strings.Contains(err.Error(), name) {
				t.Errorf("GetUser %q echoes the name: %v", name, err)
			}
			if err := s.DeleteUser(ctx, name); !errors.Is(err, ErrNotFound) {
				t.Errorf("DeleteUser %q: %v, want ErrNotFound", name, err)
			}
		}
	})
}

func TestSessionsExpireAtTheirTimeAndEndWithTheirUser(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		mustPutUser(t, s, "alice", RoleAdmin)
		mustPutUser(t, s, "bob", RoleAuditor)

		se := &Session{ID: sessionID("secret-1"), User: "alice", CSRF: "csrf-1", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
		if err := s.CreateSession(ctx, se); err != nil {
			t.Fatal(err)
		}
		if se.CreatedAt != stamp(t0) || se.ExpiresAt != stamp(t0.Add(time.Hour)) {
			t.Errorf("CreateSession did not stamp the times: %+v", se)
		}
		got, err := s.GetSession(ctx, se.ID, t0)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, se) {
			t.Errorf("GetSession:\n got %+v\nwant %+v", got, se)
		}
		exp := se.ExpiresAt
		if _, err := s.GetSession(ctx, se.ID, exp.Add(-time.Microsecond)); err != nil {
			t.Errorf("one microsecond before expiry: %v", err)
		}
		for _, now := range []time.Time{exp, exp.Add(time.Microsecond), exp.Add(time.Hour), {}} {
			if _, err := s.GetSession(ctx, se.ID, now); !errors.Is(err, ErrNotFound) {
				t.Errorf("GetSession at %v (expiry %v): %v, want ErrNotFound", now, exp, err)
			}
		}
		if _, err := s.GetSession(ctx, sessionID("nobody"), t0); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing session: %v, want ErrNotFound", err)
		}

		// CreatedAt defaults to now; a zero now is now.
		live := &Session{ID: sessionID("secret-live"), User: "alice", CSRF: "c", ExpiresAt: time.Now().Add(time.Hour)}
		before := time.Now()
		if err := s.CreateSession(ctx, live); err != nil {
			t.Fatal(err)
		}
		if !between(live.CreatedAt, before, time.Now()) {
			t.Errorf("CreatedAt %v, want now", live.CreatedAt)
		}
		if _, err := s.GetSession(ctx, live.ID, time.Time{}); err != nil {
			t.Errorf("live session at zero now: %v", err)
		}

		if err := s.CreateSession(ctx, &Session{ID: se.ID, User: "bob", CSRF: "x", ExpiresAt: t0.Add(9 * time.Hour)}); !errors.Is(err, ErrExists) {
			t.Errorf("taken session id: %v, want ErrExists", err)
		}
		if got, _ := s.GetSession(ctx, se.ID, t0); got == nil || got.User != "alice" {
			t.Errorf("a refused session changed the stored one: %+v", got)
		}
		if err := s.CreateSession(ctx, &Session{ID: sessionID("ghost"), User: "ghost", CSRF: "x", ExpiresAt: t0.Add(time.Hour)}); !errors.Is(err, ErrNotFound) {
			t.Errorf("session of a missing user: %v, want ErrNotFound", err)
		}

		if err := s.DeleteSession(ctx, se.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetSession(ctx, se.ID, t0); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted session: %v, want ErrNotFound", err)
		}
		if err := s.DeleteSession(ctx, se.ID); err != nil {
			t.Errorf("deleting a missing session: %v", err)
		}

		// Deleting a user ends its sessions and only its sessions.
		for i, user := range []string{"alice", "alice", "bob"} {
			if err := s.CreateSession(ctx, &Session{ID: sessionID(fmt.Sprint("c", i)), User: user, CSRF: "x", ExpiresAt: t0.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.DeleteUser(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		if n := sqlInt(t, s, "SELECT count(*) FROM sessions WHERE user_name = ?", "alice"); n != 0 {
			t.Errorf("%d sessions of a deleted user left", n)
		}
		for i, want := range []error{ErrNotFound, ErrNotFound, nil} {
			if _, err := s.GetSession(ctx, sessionID(fmt.Sprint("c", i)), t0); !errors.Is(err, want) {
				t.Errorf("session c%d after deleting alice: %v, want %v", i, err, want)
			}
		}
	})
}

func TestPurgeSessionsDeletesTheExpiredOnes(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		mustPutUser(t, s, "alice", RoleAdmin)
		for i := 1; i <= 3; i++ {
			if err := s.CreateSession(ctx, &Session{ID: sessionID(fmt.Sprint(i)), User: "alice", CSRF: "x", CreatedAt: t0, ExpiresAt: t0.Add(time.Duration(i) * time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		if n, err := s.PurgeSessions(ctx, t0.Add(time.Hour-time.Microsecond)); err != nil || n != 0 {
			t.Errorf("purge before any expiry: %d, %v", n, err)
		}
		if n, err := s.PurgeSessions(ctx, t0.Add(2*time.Hour)); err != nil || n != 2 {
			t.Errorf("purge at the second expiry: %d, %v; want 2 (expired at or before now)", n, err)
		}
		if n := sqlInt(t, s, "SELECT count(*) FROM sessions"); n != 1 {
			t.Errorf("%d sessions left, want 1", n)
		}
		if _, err := s.GetSession(ctx, sessionID("3"), t0); err != nil {
			t.Errorf("unexpired session purged: %v", err)
		}
		if n, err := s.PurgeSessions(ctx, time.Time{}); err != nil || n != 1 {
			t.Errorf("purge now (2025's sessions are long expired): %d, %v", n, err)
		}
	})
}

func TestCreateSessionRejectsBadInputWithClearErrors(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		mustPutUser(t, s, "alice", RoleAdmin)
		ok := func() *Session {
			return &Session{ID: sessionID("s"), User: "alice", CSRF: "tok", ExpiresAt: t0.Add(time.Hour)}
		}
		secret := "the-cookie-secret-not-its-hash-0123456789abcdef0123456789abcdef-and-more"
		cases := []struct {
			name   string
			change func(*Session)
			want   string
		}{
			{"empty id", func(se *Session) { se.ID = "" }, "session id: want 64 lowercase hex"},
			{"short id", func(se *Session) { se.ID = se.ID[:63] }, "session id: want 64 lowercase hex"},
			{"upper-case id", func(se *Session) { se.ID = strings.ToUpper(se.ID) }, "session id: want 64 lowercase hex"},
			{"the secret itself", func(se *Session) { se.ID = secret[:64] }, "session id: want 64 lowercase hex"},
			{"bad user", func(se *Session) { se.User = "a b" }, "session user"},
			{"no user", func(se *Session) { se.User = "" }, "empty session user"},
			{"no CSRF", func(se *Session) { se.CSRF = "" }, "CSRF"},
			{"NUL in CSRF", func(se *Session) { se.CSRF = "a\x00" }, "session CSRF token contains a NUL"},
			{"no expiry", func(se *Session) { se.ExpiresAt = time.Time{} }, "expiry"},
		}
		for _, c := range cases {
			se := ok()
			c.change(se)
			err := s.CreateSession(ctx, se)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
			}
			if err != nil && strings.Contains(err.Error(), secret[:20]) {
				t.Errorf("%s: the error echoes the id: %v", c.name, err)
			}
		}
		if err := s.CreateSession(ctx, nil); err == nil {
			t.Error("nil session accepted")
		}
		if n := sqlInt(t, s, "SELECT count(*) FROM sessions"); n != 0 {
			t.Errorf("%d bad sessions stored", n)
		}
		if _, err := s.GetSession(ctx, "ABC", t0); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetSession of a malformed id: %v, want ErrNotFound", err)
		}
		if err := s.DeleteSession(ctx, "not-hex"); err == nil {
			t.Error("DeleteSession of a malformed id: no error")
		}
	})
}

func TestTokensArePutOnceListedOldestFirstAndDeleted(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		hash := sessionID("token secret")
		toks := []*Token{
			{ID: "bbbbbbbb", Name: "outlook add-in", Hash: hash, CreatedBy: "alice", CreatedAt: t0.Add(2 * time.Hour)},
			{ID: "aaaaaaaa", Name: "thunderbird", Hash: sessionID("other"), CreatedBy: "bob", CreatedAt: t0},
			{ID: strings.Repeat("0123456789abcdefghijklmnopqrstuv", 1), Name: "", Hash: hash, CreatedAt: t0.Add(time.Hour)},
		}
		for _, tk := range toks {
			if err := s.PutToken(ctx, tk); err != nil {
				t.Fatalf("PutToken %s: %v", tk.ID, err)
			}
			if tk.CreatedAt.Location() != time.UTC || tk.CreatedAt.Nanosecond()%1000 != 0 {
				t.Errorf("CreatedAt not stamped: %v", tk.CreatedAt)
			}
		}
		got, err := s.GetToken(ctx, "bbbbbbbb")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, toks[0]) {
			t.Errorf("GetToken:\n got %+v\nwant %+v", got, toks[0])
		}
		list, err := s.ListTokens(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []Token{*toks[1], *toks[2], *toks[0]}
		if !reflect.DeepEqual(list, want) {
			t.Errorf("ListTokens:\n got %+v\nwant %+v", list, want)
		}

		if err := s.PutToken(ctx, &Token{ID: "bbbbbbbb", Name: "thief", Hash: sessionID("x")}); !errors.Is(err, ErrExists) {
			t.Errorf("taken id: %v, want ErrExists", err)
		}
		if got, _ := s.GetToken(ctx, "bbbbbbbb"); got == nil || got.Name != "outlook add-in" || got.Hash != hash {
			t.Errorf("a refused token replaced the stored one: %+v", got)
		}

		before := time.Now()
		now := &Token{ID: "nowtoken", Hash: hash}
		if err := s.PutToken(ctx, now); err != nil {
			t.Fatal(err)
		}
		if !between(now.CreatedAt, before, time.Now()) {
			t.Errorf("CreatedAt %v, want now", now.CreatedAt)
		}

		if err := s.DeleteToken(ctx, "aaaaaaaa"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetToken(ctx, "aaaaaaaa"); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted token: %v, want ErrNotFound", err)
		}
		if err := s.DeleteToken(ctx, "aaaaaaaa"); !errors.Is(err, ErrNotFound) {
			t.Errorf("DeleteToken twice: %v, want ErrNotFound", err)
		}
		if list, _ := s.ListTokens(ctx); len(list) != 3 {
			t.Errorf("%d tokens left, want 3", len(list))
		}
	})
}

func TestPutTokenRejectsBadInputWithClearErrors(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		ok := func() *Token { return &Token{ID: "abcd1234", Name: "n", Hash: sessionID("s"), CreatedBy: "alice"} }
		cases := []struct {
			name   string
			change func(*Token)
			want   string
		}{
			{"empty id", func(tk *Token) { tk.ID = "" }, "token id: want 8–32"},
			{"7-byte id", func(tk *Token) { tk.ID = "abcd123" }, "token id: want 8–32"},
			{"33-byte id", func(tk *Token) { tk.ID = strings.Repeat("a", 33) }, "token id: want 8–32"},
			{"upper-case id", func(tk *Token) { tk.ID = "ABCD1234" }, "token id: want only [0-9a-z]"},
			{"underscore in id", func(tk *Token) { tk.ID = "abcd_1234" }, "token id: want only [0-9a-z]"},
			{"empty hash", func(tk *Token) { tk.Hash = "" }, "token hash: want 64"},
			{"upper-case hash", func(tk *Token) { tk.Hash = strings.ToUpper(tk.Hash) }, "token hash: want 64"},
			{"long hash", func(tk *Token) { tk.Hash += "0" }, "token hash: want 64"},
			{"NUL in name", func(tk *Token) { tk.Name = "x\x00" }, "token name contains a NUL"},
			{"bad UTF-8 creator", func(tk *Token) { tk.CreatedBy = "\xc3" }, "token created by is not valid UTF-8"},
		}
		for _, c := range cases {
			tk := ok()
			c.change(tk)
			if err := s.PutToken(ctx, tk); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
			}
		}
		if err := s.PutToken(ctx, nil); err == nil {
			t.Error("nil token accepted")
		}
		if list, _ := s.ListTokens(ctx); len(list) != 0 {
			t.Errorf("bad tokens stored: %+v", list)
		}
		for _, id := range []string{"", "stray_abcd1234_secret", "ABCD1234"} {
			if _, err := s.GetToken(ctx, id); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "token id") {
				t.Errorf("GetToken %q: %v, want ErrNotFound saying why", id, err)
			}
			if err := s.DeleteToken(ctx, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("DeleteToken %q: %v, want ErrNotFound", id, err)
			}
		}
	})
}

func TestRulesAreAddedOnceListedOldestFirstAndDeleted(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		rules := []*Rule{
			{Kind: "deny", Pattern: "gmial.com", Note: "typo of gmail", CreatedBy: "alice", CreatedAt: t0.Add(time.Hour)},
			{Kind: "allow", Pattern: ".army.mil", CreatedBy: "bob", CreatedAt: t0},
			{Kind: "allow", Pattern: "gmial.com", Note: "really a customer", CreatedAt: t0.Add(time.Hour)}, // same pattern, other kind
			{Kind: "deny", Pattern: "bob@gmаil.com", CreatedAt: t0.Add(2 * time.Hour)},                     // a Cyrillic а
		}
		ids := map[int64]bool{}
		for _, r := range rules {
			r.ID = 999 // AddRule fills it whatever it was
			if err := s.AddRule(ctx, r); err != nil {
				t.Fatalf("AddRule %s %s: %v", r.Kind, r.Pattern, err)
			}
			if r.ID <= 0 || r.ID == 999 || ids[r.ID] {
				t.Errorf("AddRule %s gave id %d", r.Pattern, r.ID)
			}
			ids[r.ID] = true
		}
		list, err := s.ListRules(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Oldest first; the two added at one time in the order added.
		want := []Rule{*rules[1], *rules[0], *rules[2], *rules[3]}
		if !reflect.DeepEqual(list, want) {
			t.Errorf("ListRules:\n got %+v\nwant %+v", list, want)
		}

		dup := &Rule{Kind: "deny", Pattern: "gmial.com", Note: "again"}
		if err := s.AddRule(ctx, dup); !errors.Is(err, ErrExists) {
			t.Errorf("duplicate rule: %v, want ErrExists", err)
		}
		if dup.ID != 0 {
			t.Errorf("a refused rule got id %d", dup.ID)
		}

		before := time.Now()
		now := &Rule{Kind: "deny", Pattern: "example.con"}
		if err := s.AddRule(ctx, now); err != nil {
			t.Fatal(err)
		}
		if !between(now.CreatedAt, before, time.Now()) {
			t.Errorf("CreatedAt %v, want now", now.CreatedAt)
		}

		if err := s.DeleteRule(ctx, rules[0].ID); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteRule(ctx, rules[0].ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("DeleteRule twice: %v, want ErrNotFound", err)
		}
		if err := s.DeleteRule(ctx, 0); !errors.Is(err, ErrNotFound) {
			t.Errorf("DeleteRule 0: %v, want ErrNotFound", err)
		}
		list, _ = s.ListRules(ctx)
		if len(list) != 4 || slices.ContainsFunc(list, func(r Rule) bool { return r.ID == rules[0].ID }) {
			t.Errorf("rules after delete: %+v", list)
		}
		// A deleted rule's kind and pattern can be added again.
		again := &Rule{Kind: "deny", Pattern: "gmial.com"}
		if err := s.AddRule(ctx, again); err != nil {
			t.Errorf("re-adding a deleted rule: %v", err)
		}
	})
}

func TestAddRuleRejectsBadInputWithClearErrors(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		cases := []struct {
			name string
			r    Rule
			want string
		}{
			{"no kind", Rule{Pattern: "x.com"}, "rule kind"},
			{"unknown kind", Rule{Kind: "block", Pattern: "x.com"}, `rule kind "block"`},
			{"upper-case kind", Rule{Kind: "Allow", Pattern: "x.com"}, `rule kind "Allow"`},
			{"empty pattern", Rule{Kind: "deny"}, "empty rule pattern"},
			{"space", Rule{Kind: "deny", Pattern: "x .com"}, "white space"},
			{"tab", Rule{Kind: "deny", Pattern: "x.com\t"}, "white space"},
			{"newline", Rule{Kind: "deny", Pattern: "\nx.com"}, "white space"},
			{"no-break space", Rule{Kind: "deny", Pattern: "x\u00a0.com"}, "white space"},
			{"NUL", Rule{Kind: "deny", Pattern: "x\x00.com"}, "rule pattern contains a NUL"},
			{"bad UTF-8", Rule{Kind: "deny", Pattern: "x\xff.com"}, "rule pattern is not valid UTF-8"},
			{"NUL in note", Rule{Kind: "deny", Pattern: "x.com", Note: "\x00"}, "rule note contains a NUL"},
			{"bad UTF-8 creator", Rule{Kind: "deny", Pattern: "x.com", CreatedBy: "\xff"}, "rule created by is not valid UTF-8"},
		}
		for _, c := range cases {
			if err := s.AddRule(ctx, &c.r); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
			}
		}
		if err := s.AddRule(ctx, nil); err == nil {
			t.Error("nil rule accepted")
		}
		if list, _ := s.ListRules(ctx); len(list) != 0 {
			t.Errorf("bad rules stored: %+v", list)
		}
	})
}

func TestDecisionCountsAddUpPerUTCDayVerdictAndAction(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		d1 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
		d2 := d1.AddDate(0, 0, 1)
		d3 := d1.AddDate(0, 0, 2)
		plus5 := time.FixedZone("+05", 5*3600)
		add := func(cs ...DecisionCount) {
			t.Helper()
			if err := s.AddDecisionCounts(ctx, cs); err != nil {
				t.Fatal(err)
			}
		}
		add(
			DecisionCount{Day: t0, Verdict: "ok", Action: "pass", N: 10},                                      // 12:00 on d1
			DecisionCount{Day: time.Date(2025, 3, 2, 1, 0, 0, 0, plus5), Verdict: "ok", Action: "pass", N: 5}, // 20:00 UTC on d1
			DecisionCount{Day: d2.Add(time.Second), Verdict: "hold", Action: "hold", N: 1},
			DecisionCount{Day: d2.Add(-time.Nanosecond), Verdict: "block", Action: "reject", N: 2}, // the last instant of d1
			DecisionCount{Day: d3, Verdict: "warn", Action: "warn", N: 0},                          // nothing
		)
		add(
			DecisionCount{Day: d1, Verdict: "ok", Action: "pass", N: 1},
			DecisionCount{Day: d2.Add(23 * time.Hour), Verdict: "hold", Action: "hold", N: 2},
			DecisionCount{Day: d2, Verdict: "X-test", Action: "log", N: 7}, // upper case sorts before lower, bytewise
			DecisionCount{Day: d2, Verdict: "hold", Action: "Hold", N: 3},
			DecisionCount{Day: d1, Verdict: "ok", Action: "pass", N: 4}, // the same key twice in one call
		)
		add() // nothing to do

		want := []DecisionCount{
			{Day: d1, Verdict: "block", Action: "reject", N: 2},
			{Day: d1, Verdict: "ok", Action: "pass", N: 20},
			{Day: d2, Verdict: "X-test", Action: "log", N: 7},
			{Day: d2, Verdict: "hold", Action: "Hold", N: 3},
			{Day: d2, Verdict: "hold", Action: "hold", N: 3},
		}
		got, err := s.DecisionCounts(ctx, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("DecisionCounts:\n got %+v\nwant %+v", got, want)
		}
		for _, c := range []struct {
			since time.Time
			want  []DecisionCount
		}{
			{d1, want},
			{d1.Add(-time.Nanosecond), want},
			{d2, want[2:]},
			{d2.Add(18 * time.Hour), want[2:]},               // the day containing since is included
			{time.Date(2025, 3, 2, 3, 0, 0, 0, plus5), want}, // 22:00 UTC on d1
			{d3, nil},
		} {
			got, err := s.DecisionCounts(ctx, c.since)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("DecisionCounts since %v:\n got %+v\nwant %+v", c.since, got, c.want)
			}
		}
	})
}

func TestAddDecisionCountsIsAllOrNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		d1 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
		good := DecisionCount{Day: d1, Verdict: "ok", Action: "pass", N: 1}
		cases := []struct {
			name string
			bad  DecisionCount
			want string
		}{
			{"no day", DecisionCount{Verdict: "ok", Action: "pass", N: 1}, "count 1: no day"},
			{"no verdict", DecisionCount{Day: d1, Action: "pass", N: 1}, "count 1: empty verdict"},
			{"no action", DecisionCount{Day: d1, Verdict: "ok", N: 1}, "count 1: empty verdict or action"},
			{"negative", DecisionCount{Day: d1, Verdict: "ok", Action: "pass", N: -1}, "count 1: negative"},
			{"NUL", DecisionCount{Day: d1, Verdict: "ok", Action: "pa\x00ss", N: 1}, "count 1: action contains a NUL"},
			{"bad UTF-8", DecisionCount{Day: d1, Verdict: "\xff", Action: "pass", N: 1}, "count 1: verdict is not valid UTF-8"},
			{"overflow in one call", DecisionCount{Day: d1, Verdict: "ok", Action: "pass", N: maxInt64}, "count 1: n overflows"},
		}
		for _, c := range cases {
			err := s.AddDecisionCounts(ctx, []DecisionCount{good, c.bad})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
			}
		}
		if got, _ := s.DecisionCounts(ctx, time.Time{}); len(got) != 0 {
			t.Errorf("a refused call stored %+v", got)
		}

		// A failure in the database rolls back what the call wrote
		// before it: "a" sorts before "z", so its row is written first.
		add := func(cs ...DecisionCount) error { return s.AddDecisionCounts(ctx, cs) }
		if err := add(DecisionCount{Day: d1, Verdict: "z", Action: "z", N: maxInt64}, DecisionCount{Day: d1, Verdict: "a", Action: "a", N: 5}); err != nil {
			t.Fatal(err)
		}
		if err := add(DecisionCount{Day: d1, Verdict: "a", Action: "a", N: 1}, DecisionCount{Day: d1, Verdict: "z", Action: "z", N: 1}); err == nil {
			t.Error("a count past 2^63-1 was accepted")
		}
		got, err := s.DecisionCounts(ctx, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		want := []DecisionCount{{Day: d1, Verdict: "a", Action: "a", N: 5}, {Day: d1, Verdict: "z", Action: "z", N: maxInt64}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("after a failed call:\n got %+v\nwant %+v", got, want)
		}
	})
}

// Counts from two nodes at once, naming the same keys in different orders
// (and new keys that both insert first), neither deadlock nor lose a count.
func TestConcurrentDecisionCountsAreAllCounted(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		nodes := []Store{openStore(t, dsn), openStore(t, dsn)}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		d1 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
		var keys []DecisionCount
		for _, day := range []time.Time{d1, d1.AddDate(0, 0, 1)} {
			for _, v := range []string{"ok", "warn", "hold"} {
				keys = append(keys, DecisionCount{Day: day, Verdict: v, Action: "pass"})
			}
		}
		const workers, each = 8, 15
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				cs := slices.Clone(keys)
				if w%2 == 1 {
					slices.Reverse(cs)
				}
				for i := range cs {
					cs[i].N = 1
					cs[i].Day = cs[i].Day.Add(time.Duration(w) * time.Hour) // the same UTC day
				}
				cs = append(cs, cs[0]) // the first key twice: 2 per call
				for range each {
					if err := nodes[w%2].AddDecisionCounts(ctx, cs); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		got, err := nodes[1].DecisionCounts(ctx, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(keys) {
			t.Fatalf("got %d counts, want %d: %+v", len(got), len(keys), got)
		}
		var total int64
		for _, c := range got {
			total += c.N
			if c.N != workers*each && c.N != workers/2*each*3 {
				t.Errorf("%v %s: %d", c.Day, c.Verdict, c.N)
			}
		}
		if want := int64(workers * each * (len(keys) + 1)); total != want {
			t.Errorf("total %d, want %d", total, want)
		}
	})
}

func TestReportsAreListedNewestFirstWithoutBodiesAndReadWithThem(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		var lines bytes.Buffer
		for i := range 200 {
			fmt.Fprintf(&lines, `{"address":"bob%d@gmial.com","verdict":"hold","intended":"gmail.com"}`+"\n", i)
		}
		html := []byte("<!doctype html><title>audit</title>" + strings.Repeat("<tr><td>gmial.com</td></tr>", 500))
		reports := []*Report{
			{Kind: "audit", Title: "March audit", CreatedBy: "alice", CreatedAt: t0, JSON: lines.Bytes(), HTML: html},
			{Kind: "scan", Title: "army.mil lookalikes", CreatedBy: "bob", CreatedAt: t0.Add(time.Hour), JSON: []byte(`{"domain":"army.ml"}`)},
			{Kind: "audit", Title: "no findings", CreatedAt: t0.Add(time.Hour), JSON: nil, HTML: []byte("<p>clean</p>")},
		}
		for _, r := range reports {
			if err := s.AddReport(ctx, r); err != nil {
				t.Fatalf("AddReport %s: %v", r.Title, err)
			}
			if r.ID <= 0 || r.CreatedAt.Nanosecond()%1000 != 0 {
				t.Errorf("AddReport did not fill id and stamp: %d %v", r.ID, r.CreatedAt)
			}
		}

		for i, r := range reports {
			got, err := s.GetReport(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, r) {
				t.Errorf("GetReport %d:\n got %+v\nwant %+v", i, got, r)
			}
		}
		if n := sqlInt(t, s, "SELECT length(json) FROM reports WHERE id = ?", reports[0].ID); n >= int64(len(lines.Bytes()))/4 {
			t.Errorf("JSON of %d bytes stored in %d: not compressed", lines.Len(), n)
		}
		if n := sqlInt(t, s, "SELECT length(html) FROM reports WHERE id = ?", reports[0].ID); n >= int64(len(html))/4 {
			t.Errorf("HTML of %d bytes stored in %d: not compressed", len(html), n)
		}

		head := func(r *Report) Report { h := *r; h.JSON, h.HTML = nil, nil; return h }
		for _, c := range []struct {
			kind  string
			limit int
			want  []Report
		}{
			{"", 0, []Report{head(reports[2]), head(reports[1]), head(reports[0])}},
			{"audit", 0, []Report{head(reports[2]), head(reports[0])}},
			{"scan", 0, []Report{head(reports[1])}},
			{"", 2, []Report{head(reports[2]), head(reports[1])}},
		} {
			got, err := s.ListReports(ctx, c.kind, c.limit)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("ListReports(%q, %d):\n got %+v\nwant %+v", c.kind, c.limit, got, c.want)
			}
		}

		if _, err := s.GetReport(ctx, reports[2].ID+100); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing report: %v, want ErrNotFound", err)
		}
		if _, err := s.ListReports(ctx, "bogus", 0); err == nil || !strings.Contains(err.Error(), `report kind "bogus"`) {
			t.Errorf("ListReports of an unknown kind: %v", err)
		}
		if _, err := s.ListReports(ctx, "", -1); err == nil {
			t.Error("negative limit accepted")
		}
	})
}

func TestListReportsDefaultsTo100(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		for i := range defaultReports + 1 {
			if err := s.AddReport(ctx, &Report{Kind: "scan", Title: fmt.Sprint(i), CreatedAt: t0.Add(time.Duration(i) * time.Second), JSON: []byte("{}")}); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.ListReports(ctx, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 100 || got[0].Title != "100" || got[99].Title != "1" {
			t.Errorf("ListReports limit 0: %d reports, %q…%q", len(got), got[0].Title, got[len(got)-1].Title)
		}
		if got, _ := s.ListReports(ctx, "scan", 1000); len(got) != defaultReports+1 {
			t.Errorf("limit 1000: %d reports", len(got))
		}
	})
}

func TestAddReportRejectsBadInputAndGetReportDamagedBodies(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		s := openStore(t, dsn)
		ctx := context.Background()
		cases := []struct {
			name string
			r    Report
			want string
		}{
			{"no kind", Report{JSON: []byte("{}")}, "report kind"},
			{"unknown kind", Report{Kind: "leak", JSON: []byte("{}")}, `report kind "leak"`},
			{"truncated JSON", Report{Kind: "audit", JSON: []byte(`{"a":1}` + "\n" + `{"a":`)}, "report JSON: value 2"},
			{"not JSON", Report{Kind: "scan", JSON: []byte("army.ml registered")}, "report JSON: value 1"},
			{"NUL in title", Report{Kind: "scan", Title: "\x00", JSON: []byte("{}")}, "report title contains a NUL"},
			{"bad UTF-8 creator", Report{Kind: "scan", CreatedBy: "\xff", JSON: []byte("{}")}, "report created by is not valid UTF-8"},
		}
		for _, c := range cases {
			if err := s.AddReport(ctx, &c.r); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
			}
		}
		if err := s.AddReport(ctx, nil); err == nil {
			t.Error("nil report accepted")
		}
		if got, _ := s.ListReports(ctx, "", 0); len(got) != 0 {
			t.Errorf("bad reports stored: %+v", got)
		}

		r := &Report{Kind: "audit", JSON: bytes.Repeat([]byte(`{"verdict":"hold"}`+"\n"), 1000), HTML: []byte("<p>x</p>")}
		if err := s.AddReport(ctx, r); err != nil {
			t.Fatal(err)
		}
		sqlOf(t, s, "UPDATE reports SET json = substr(json, 1, length(json) / 2) WHERE id = ? RETURNING id", r.ID)
		if got, err := s.GetReport(ctx, r.ID); err == nil {
			t.Errorf("damaged report read back with %d bytes of JSON", len(got.JSON))
		} else if !strings.Contains(err.Error(), "JSON: decompress") {
			t.Errorf("damaged report: %v", err)
		}
	})
}

func TestDashboardRecordsSurviveReopen(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s, err := Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		u := mustPutUser(t, s, "alice", RoleAdmin)
		se := &Session{ID: sessionID("keep"), User: "alice", CSRF: "csrf", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
		tk := &Token{ID: "keeptoken", Name: "add-in", Hash: sessionID("tok"), CreatedBy: "alice"}
		r := &Rule{Kind: "deny", Pattern: "gmial.com", CreatedBy: "alice"}
		rep := &Report{Kind: "scan", Title: "kept", JSON: []byte(`{"domain":"army.ml"}`), HTML: []byte("<p>army.ml</p>")}
		dc := DecisionCount{Day: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), Verdict: "hold", Action: "hold", N: 3}
		for _, err := range []error{
			s.CreateSession(ctx, se), s.PutToken(ctx, tk), s.AddRule(ctx, r), s.AddReport(ctx, rep),
			s.AddDecisionCounts(ctx, []DecisionCount{dc}),
		} {
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}

		s = openStore(t, dsn)
		if got, err := s.GetUser(ctx, "alice"); err != nil || !reflect.DeepEqual(got, u) {
			t.Errorf("user after reopen: %+v, %v", got, err)
		}
		if got, err := s.GetSession(ctx, se.ID, t0); err != nil || !reflect.DeepEqual(got, se) {
			t.Errorf("session after reopen: %+v, %v", got, err)
		}
		if got, err := s.GetToken(ctx, tk.ID); err != nil || !reflect.DeepEqual(got, tk) {
			t.Errorf("token after reopen: %+v, %v", got, err)
		}
		if got, err := s.ListRules(ctx); err != nil || len(got) != 1 || got[0] != *r {
			t.Errorf("rules after reopen: %+v, %v", got, err)
		}
		if got, err := s.GetReport(ctx, rep.ID); err != nil || !reflect.DeepEqual(got, rep) {
			t.Errorf("report after reopen: %+v, %v", got, err)
		}
		if got, err := s.DecisionCounts(ctx, time.Time{}); err != nil || !reflect.DeepEqual(got, []DecisionCount{dc}) {
			t.Errorf("decision counts after reopen: %+v, %v", got, err)
		}
		// The reopened store still cascades.
		if err := s.DeleteUser(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetSession(ctx, se.ID, t0); !errors.Is(err, ErrNotFound) {
			t.Errorf("session of a user deleted after reopen: %v", err)
		}
	})
}

// A database that an older stray created (schema version 1, with held
// messages) gains the dashboard's tables on open and keeps what it had.
func TestOpenUpgradesAVersion1Database(t *testing.T) {
	eachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s, err := Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		m := newMessage("old", t0)
		mustHold(t, s, m)
		for _, table := range []string{"sessions", "users", "api_tokens", "policy_rules", "decision_counts", "reports"} {
			sqlOf(t, s, "DROP TABLE "+table)
		}
		sqlOf(t, s, "DELETE FROM schema_migrations WHERE version = 2 RETURNING version")
		s.Close()

		s = openStore(t, dsn)
		if n := sqlInt(t, s, "SELECT count(*) FROM schema_migrations WHERE version = 2 AND name = 'dashboard'"); n != 1 {
			t.Errorf("migration 2 recorded %d times", n)
		}
		if got, err := s.Get(ctx, "old"); err != nil || !bytes.Equal(got.Raw, m.Raw) {
			t.Errorf("held message after upgrade: %v", err)
		}
		mustPutUser(t, s, "alice", RoleAdmin)
		if err := s.CreateSession(ctx, &Session{ID: sessionID("x"), User: "alice", CSRF: "c", ExpiresAt: t0.Add(time.Hour)}); err != nil {
			t.Error(err)
		}
	})
}
