package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// The PostgreSQL DSN's own parameters keep their meaning whatever drives
// the pool: pool_max_conns caps the connections, connect_timeout bounds a
// connection attempt, search_path puts stray's tables in a schema,
// application_name names the connections.

// withParams returns dsn with its query parameters set to kv (name, value…).
func withParams(t *testing.T, dsn string, kv ...string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// serverConns counts the server's connections named app.
func serverConns(t *testing.T, app string) int64 {
	t.Helper()
	admin := postgresAdmin(t)
	ctx := context.Background()
	defer admin.Close(ctx)
	var n int64
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPostgresPoolMaxConnsCapsTheServerConnections(t *testing.T) {
	t.Parallel()
	base := postgresDSN(t)
	for _, c := range []struct {
		max     int
		atLeast int64 // what 16 concurrent holds open at least
	}{
		{max: 2, atLeast: 1},
		{max: 8, atLeast: 3}, // the control: the same load opens more when allowed
	} {
		t.Run(fmt.Sprint(c.max), func(t *testing.T) {
			b := make([]byte, 6)
			rand.Read(b)
			app := "stray_pool_" + hex.EncodeToString(b)
			s := openStore(t, withParams(t, base, "pool_max_conns", fmt.Sprint(c.max), "application_name", app))
			var wg sync.WaitGroup
			errs := make(chan error, 16)
			for i := range 16 {
				wg.Go(func() {
					m := newMessage(fmt.Sprintf("%s-%02d", app, i), t0)
					m.Raw = compressible(256 << 10)
					errs <- s.Hold(context.Background(), m, Event{})
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			n := serverConns(t, app)
			if n > int64(c.max) || n < c.atLeast {
				t.Errorf("pool_max_conns=%d: %d server connections after 16 concurrent holds, want %d–%d", c.max, n, c.atLeast, c.max)
			}
			s.Close()
			// Closing the store ends its connections.
			deadline := time.Now().Add(5 * time.Second)
			for serverConns(t, app) > 0 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if n := serverConns(t, app); n != 0 {
				t.Errorf("%d connections left after Close", n)
			}
		})
	}
}

func TestPostgresBadPoolParametersAreRefusedAtOpen(t *testing.T) {
	t.Parallel()
	base := postgresDSN(t)
	for _, kv := range [][2]string{
		{"pool_max_conns", "0"},
		{"pool_max_conns", "many"},
		{"pool_max_conn_lifetime", "forever"},
		{"connect_timeout", "soon"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := Open(ctx, withParams(t, base, kv[0], kv[1]))
		cancel()
		if err == nil {
			s.Close()
			t.Errorf("%s=%s: Open succeeded", kv[0], kv[1])
			continue
		}
		if !strings.HasPrefix(err.Error(), "store: open postgres: ") || !strings.Contains(err.Error(), kv[0]) {
			t.Errorf("%s=%s: %v", kv[0], kv[1], err)
		}
	}
}

// connect_timeout bounds Open even when the caller's context has no
// deadline: a server that accepts and never answers is given up on.
func TestPostgresConnectTimeoutBoundsOpenWithoutADeadline(t *testing.T) {
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
	start := time.Now()
	s, err := Open(context.Background(), "postgres://postgres@"+silent.Addr().String()+"/test?sslmode=disable&connect_timeout=1")
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded against a silent server")
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 4*time.Second {
		t.Errorf("Open gave up after %v, want about connect_timeout=1 s: %v", d, err)
	}
}

// search_path puts the tables in the named schema, and every pooled
// connection uses it.
func TestPostgresSearchPathKeepsTheTablesInItsSchema(t *testing.T) {
	t.Parallel()
	dsn := postgresDSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	schema := u.Query().Get("search_path")
	s := openStore(t, dsn)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() { errs <- s.Hold(context.Background(), newMessage(fmt.Sprintf("sp%d", i), t0), Event{}) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := sqlOf(t, s, "SELECT current_schema()::text"); got[0][0] != schema {
		t.Errorf("current_schema() = %v, want %s", got[0][0], schema)
	}
	admin := postgresAdmin(t)
	ctx := context.Background()
	defer admin.Close(ctx)
	var n int64
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM `+schema+`.messages`).Scan(&n); err != nil || n != 8 {
		t.Errorf("%s.messages: %d rows (%v), want 8", schema, n, err)
	}
}
