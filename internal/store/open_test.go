package store

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseDSNTellsTheBackend(t *testing.T) {
	tests := []struct {
		dsn, kind, target, err string
	}{
		{"sqlite:/var/lib/stray/stray.db", kindSQLite, "/var/lib/stray/stray.db", ""},
		{"sqlite:///var/lib/stray/stray.db", kindSQLite, "/var/lib/stray/stray.db", ""},
		{"sqlite:stray.db", kindSQLite, "stray.db", ""},
		{"sqlite:data/quarantine", kindSQLite, "data/quarantine", ""},
		{"sqlite:/tmp/a?b#c.db", kindSQLite, "/tmp/a?b#c.db", ""},
		{"/var/lib/stray/stray.db", kindSQLite, "/var/lib/stray/stray.db", ""},
		{"stray.sqlite3", kindSQLite, "stray.sqlite3", ""},
		{"postgres://stray@db.internal/stray?sslmode=verify-full", kindPostgres, "postgres://stray@db.internal/stray?sslmode=verify-full", ""},
		{"postgresql://stray@db/stray", kindPostgres, "postgresql://stray@db/stray", ""},
		{"", "", "", "DSN empty"},
		{"sqlite:", "", "", "names no file"},
		{"sqlite::memory:", "", "", "not durable"},
		{"sqlite:file:x.db?mode=ro", "", "", "plain file path"},
		{"mysql://root@db/stray", "", "", "DSN unrecognised"},
		{"stray.txt", "", "", "DSN unrecognised"},
		{"host=db user=stray", "", "", "DSN unrecognised"},
		{"http://x/y.db", "", "", "DSN unrecognised"},
		{"/var/lib/stray/store", "", "", "write sqlite:/var/lib/stray/store"},
		{"postgres://u:secret@h:x/db", "", "", "not a PostgreSQL URL"},
	}
	for _, tt := range tests {
		kind, target, err := parseDSN(tt.dsn)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.HasPrefix(err.Error(), "store: ") {
				t.Errorf("parseDSN(%q): %v, want error with %q", tt.dsn, err, tt.err)
			}
			continue
		}
		if err != nil || kind != tt.kind || target != tt.target {
			t.Errorf("parseDSN(%q) = %q, %q, %v; want %q, %q", tt.dsn, kind, target, err, tt.kind, tt.target)
		}
	}
}

func FuzzParseDSN(f *testing.F) {
	for _, s := range []string{"sqlite:/x.db", "sqlite:///x", "x.db", "postgres://u:p@h/db", "postgresql://h", "", "sqlite:", "mysql://u:pw@h", "a\x00.db"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dsn string) {
		kind, target, err := parseDSN(dsn)
		if err != nil {
			if kind != "" || target != "" || !strings.HasPrefix(err.Error(), "store: ") {
				t.Fatalf("error %v with %q %q", err, kind, target)
			}
			return
		}
		switch kind {
		case kindSQLite:
			if target == "" || strings.ContainsRune(target, 0) || !strings.Contains(dsn, target) {
				t.Fatalf("sqlite target %q from %q", target, dsn)
			}
		case kindPostgres:
			if target != dsn {
				t.Fatalf("postgres target %q from %q", target, dsn)
			}
		default:
			t.Fatalf("kind %q", kind)
		}
	})
}

// A mistyped DSN is echoed in the error to help, but never its password.
func FuzzDSNErrorHidesPassword(f *testing.F) {
	f.Add("mysql", "root", "s3cret-pw", "db.internal:3306/stray")
	f.Add("postgre", "stray", "hunter2hunter2", "h/db")
	f.Add("", "u", "passw0rd!", "h")
	f.Fuzz(func(t *testing.T, scheme, user, pass, rest string) {
		if len(pass) < 6 || strings.Contains(scheme+user+rest, pass) || strings.Contains("store: DSN unrecognised want sqlite:PATH, PATH.db or postgres://… password=xxxxx not a PostgreSQL URL", pass) {
			t.Skip()
		}
		// The error quotes the DSN: an escape in the other parts (a rune
		// written \U000d0000 before "00") can spell the password by itself.
		if strings.Contains(strconv.Quote(scheme+"://"+user+":xxxxx@"+rest), pass) {
			t.Skip()
		}
		dsn := scheme + "://" + user + ":" + pass + "@" + rest
		_, _, err := parseDSN(dsn)
		if err != nil && strings.Contains(err.Error(), pass) {
			t.Fatalf("error %q shows the password %q", err, pass)
		}
	})
}

func FuzzDecompress(f *testing.F) {
	ok, _ := compress([]byte("From: a@b\r\n\r\nhello\r\n"))
	f.Add(ok, int64(20))
	f.Add([]byte{0x1f, 0x8b}, int64(5))
	f.Fuzz(func(t *testing.T, stored []byte, size int64) {
		if size < 0 || size > 1<<20 {
			t.Skip()
		}
		raw, err := decompress(stored, size)
		if err == nil && int64(len(raw)) != size {
			t.Fatalf("%d bytes for size %d", len(raw), size)
		}
		if err == nil {
			again, err := compress(raw)
			if err != nil {
				t.Fatal(err)
			}
			if back, err := decompress(again, size); err != nil || string(back) != string(raw) {
				t.Fatalf("round trip: %v", err)
			}
		}
	})
}

func TestOpenSQLiteMakesPrivateDurableFiles(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "var", "lib")
	path := filepath.Join(dir, "stray.db")
	s := openStore(t, path) // a bare .db path
	mustHold(t, s, newMessage("m1", t0))
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", filepath.Base(f), fi.Mode().Perm())
		}
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("created directory: %v %v", fi.Mode().Perm(), err)
	}
	for q, want := range map[string]any{
		"PRAGMA journal_mode": "wal",
		"PRAGMA synchronous":  int64(2), // FULL: fsync on every commit
		"PRAGMA foreign_keys": int64(1),
	} {
		if rows := sqlOf(t, s, q); rows[0][0] != want {
			t.Errorf("%s = %v, want %v", q, rows[0][0], want)
		}
	}
}

func TestOpenSQLiteFailsClearlyOnAnUnusablePath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "plain")
	if err := os.WriteFile(file, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	notDB := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(notDB, []byte(strings.Repeat("garbage!", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dsn := range []string{"sqlite:" + filepath.Join(file, "x.db"), notDB} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := Open(ctx, dsn)
		cancel()
		if err == nil {
			s.Close()
			t.Errorf("Open(%s) succeeded", dsn)
			continue
		}
		if !strings.HasPrefix(err.Error(), "store: open sqlite ") {
			t.Errorf("Open(%s): %v", dsn, err)
		}
	}
}

// SQLite's disk filling up (simulated with max_page_count) fails the Hold
// with an error, leaving neither the message nor its event.
func TestSQLiteDiskFullFailsHoldWithoutATrace(t *testing.T) {
	t.Parallel()
	s := openStore(t, sqliteDSN(t))
	ctx := context.Background()
	mustHold(t, s, newMessage("m1", t0))
	pages := sqlInt(t, s, "PRAGMA page_count")
	sqlOf(t, s, "PRAGMA max_page_count = "+strconv.FormatInt(pages+2, 10))
	big := newMessage("big", t0)
	big.Raw = make([]byte, 1<<20)
	rand.Read(big.Raw)
	err := s.Hold(ctx, big, Event{})
	if err == nil || !strings.HasPrefix(err.Error(), "store: hold big: ") || !strings.Contains(err.Error(), "full") {
		t.Fatalf("Hold on a full disk: %v", err)
	}
	if _, err := s.Get(ctx, "big"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after failed Hold: %v", err)
	}
	if evs := eventsOf(t, s, "big"); len(evs) != 0 {
		t.Errorf("events after failed Hold: %+v", evs)
	}
	if _, err := s.Get(ctx, "m1"); err != nil {
		t.Errorf("earlier message: %v", err)
	}
}

// Open against a PostgreSQL that refuses, or accepts and never answers,
// ends with an error when the context does: it never hangs.
func TestOpenPostgresFailsPromptlyWhenUnreachable(t *testing.T) {
	t.Parallel()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	for _, dsn := range []string{
		"postgres://postgres:S3cretPw@127.0.0.1:1/test?sslmode=disable", // refused
		"postgres://postgres:S3cretPw@" + silent.Addr().String() + "/test?sslmode=disable",
	} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		start := time.Now()
		s, err := Open(ctx, dsn)
		cancel()
		if err == nil {
			s.Close()
			t.Fatalf("Open(%s) succeeded", dsn)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Open(%s) took %v", dsn, d)
		}
		if !strings.HasPrefix(err.Error(), "store: open postgres: ") || strings.Contains(err.Error(), "S3cretPw") {
			t.Errorf("Open(%s): %v", dsn, err)
		}
	}
}

// A PostgreSQL that goes silent, or away, under an open store: Hold and Ping
// fail when their context ends, store nothing, and the store recovers when
// the server is back.
func TestHoldFailsPromptlyWhenPostgresGoesAway(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(postgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, u.Host)
	u.Host = p.ln.Addr().String()
	s := openStore(t, u.String())
	mustHold(t, s, newMessage("before", t0))

	timed := func(what string, limit time.Duration, fn func(ctx context.Context) error) error {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), limit)
		defer cancel()
		start := time.Now()
		err := fn(ctx)
		if d := time.Since(start); d > limit+2*time.Second {
			t.Errorf("%s took %v with a %v deadline", what, d, limit)
		}
		return err
	}
	p.frozen.Store(true)
	if err := timed("Hold on a silent server", time.Second, func(ctx context.Context) error {
		return s.Hold(ctx, newMessage("silent", t0), Event{})
	}); err == nil || !strings.HasPrefix(err.Error(), "store: hold silent: ") {
		t.Errorf("Hold on a silent server: %v", err)
	}
	if err := timed("Ping on a silent server", time.Second, s.Ping); err == nil {
		t.Error("Ping on a silent server succeeded")
	}

	p.frozen.Store(false)
	if err := timed("Hold after recovery", 10*time.Second, func(ctx context.Context) error {
		return s.Hold(ctx, newMessage("after", t0), Event{})
	}); err != nil {
		t.Errorf("Hold after the server is back: %v", err)
	}
	if _, err := s.Get(context.Background(), "silent"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the failed Hold stored something: %v", err)
	}

	p.cut()
	if err := timed("Hold on a gone server", 5*time.Second, func(ctx context.Context) error {
		return s.Hold(ctx, newMessage("gone", t0), Event{})
	}); err == nil {
		t.Error("Hold on a gone server succeeded")
	}
}

// tcpProxy stands between the store and PostgreSQL: frozen, it keeps every
// connection open and passes nothing (a hung server or a partition); cut,
// it closes everything (a server that is down).
type tcpProxy struct {
	ln     net.Listener
	target string
	frozen atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
	closed bool
}

func startProxy(t *testing.T, target string) *tcpProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(p.cut)
	return p
}

func (p *tcpProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns = append(p.conns, c)
	return true
}

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) || p.frozen.Load() {
			continue // frozen: accept and say nothing
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		if !p.track(up) {
			c.Close()
			continue
		}
		go p.pipe(up, c)
		go p.pipe(c, up)
	}
}

func (p *tcpProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.frozen.Load() {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
}
