package daemon

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/postfixtest"
)

// Issue 12: the store, learning, the dashboard and the API existed only
// with hold.enabled on. With hold off and a store, the daemon opens the
// store, records (learning, counts), and serves the dashboard and the API;
// without a store, neither is served.
func TestHoldOffStillServesTheDashboardAndTheAPIWithAStore(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		store         string
		wantDashboard int // status of GET /login
		wantAPI       int // status of an unauthenticated check
		wantRecorder  bool
	}{
		{"hold off, a store", "sqlite:s.db", http.StatusOK, http.StatusUnauthorized, true},
		{"hold off, no store", `""`, http.StatusNotFound, http.StatusNotFound, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := fmt.Sprintf("127.0.0.1:%d", postfixtest.FreePort(t))
			body := fmt.Sprintf("store: %s\nhold:\n  enabled: false\nlisten:\n  milter: \"\"\n  policy: \"\"\n  http: %s\n", tt.store, addr)
			var logs lockedLog
			d, stop := runDaemon(t, body, &logs)
			defer stop()
			if d.Holder() != nil {
				t.Error("hold and confirm is on with hold.enabled: false")
			}
			if got := d.recorder != nil; got != tt.wantRecorder {
				t.Errorf("recorder %v, want %v", got, tt.wantRecorder)
			}
			client := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			get := func(method, path string) int {
				req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(`{"recipients":["a@b.com"]}`))
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp.StatusCode
			}
			if got := get("GET", "/login"); got != tt.wantDashboard {
				t.Errorf("GET /login: %d, want %d", got, tt.wantDashboard)
			}
			if got := get("POST", "/api/v1/check"); got != tt.wantAPI {
				t.Errorf("POST /api/v1/check: %d, want %d", got, tt.wantAPI)
			}
		})
	}
}

// The dashboard's effective configuration shows the actions in force, not
// the `actions: {}` of a file that sets none (issue 14).
func TestPolicyViewShowsTheActionsInForce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "stray.yaml")
	if err := os.WriteFile(cfg, []byte("store: sqlite:"+filepath.Join(dir, "s.db")+"\nhold:\n  secret_file: "+filepath.Join(dir, "k")+"\npolicy:\n  actions: {warn: log}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := New(context.Background(), Options{ConfigPath: cfg})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	v := d.PolicyView(context.Background())
	for _, want := range []string{"mode: enforce", "block: reject", "hold: hold", "warn: log", "address_literals: reject"} {
		if !strings.Contains(v.Config, want) {
			t.Errorf("effective configuration lacks %q:\n%s", want, v.Config)
		}
	}
	if strings.Contains(v.Config, "actions: {}") {
		t.Errorf("effective configuration shows no actions:\n%s", v.Config)
	}
}

// stray serve tries the SMTP servers hold depends on at start and warns
// about one that does not answer, instead of failing on the first held
// message (issue 14). It still starts.
func TestServeWarnsAtStartAboutAnSMTPEndpointThatDoesNotAnswer(t *testing.T) {
	t.Parallel()
	sink := postfixtest.StartSink(t)
	dead := fmt.Sprintf("127.0.0.1:%d", postfixtest.FreePort(t))
	dir := t.TempDir()
	body := fmt.Sprintf("store: sqlite:%s\nhold:\n  secret_file: %s\n  notify_smtp: %s\n  reinject_smtp: %s\nlisten:\n  milter: \"\"\n  policy: 127.0.0.1:%d\n  http: \"\"\n",
		filepath.Join(dir, "s.db"), filepath.Join(dir, "k"), sink.Addr, dead, postfixtest.FreePort(t))
	var logs lockedLog
	_, stop := runDaemon(t, body, &logs)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "endpoint=hold.reinject_smtp") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	got := logs.String()
	if !strings.Contains(got, "endpoint does not answer") || !strings.Contains(got, "endpoint=hold.reinject_smtp addr="+dead) {
		t.Fatalf("no warning about %s:\n%s", dead, got)
	}
	if strings.Contains(got, "endpoint=hold.notify_smtp addr="+sink.Addr+" err") {
		t.Errorf("a warning about the answering notify server:\n%s", got)
	}
}

// Without a protected domain, serve says so once when it starts (issue
// 14); with one it does not.
func TestServeSaysWhenNoDomainIsProtected(t *testing.T) {
	t.Parallel()
	for _, protect := range []string{"", "detect:\n  protect: [mil]\n"} {
		body := fmt.Sprintf("%sstore: \"\"\nlisten:\n  milter: \"\"\n  policy: 127.0.0.1:%d\n  http: \"\"\n", protect, postfixtest.FreePort(t))
		var logs lockedLog
		_, stop := runDaemon(t, body, &logs)
		stop()
		if got := strings.Count(logs.String(), "no protected domains"); got != map[bool]int{true: 1, false: 0}[protect == ""] {
			t.Errorf("protect %q: the hint appears %d times:\n%s", protect, got, logs.String())
		}
	}
}

// runDaemon writes a config file with body, starts a daemon on it with its
// log in logs, and runs it until stop (which waits for the shutdown).
func runDaemon(t *testing.T, body string, logs *lockedLog) (d *Daemon, stop func()) {
	t.Helper()
	return runDaemonIn(t, t.TempDir(), body, logs)
}

// runDaemonIn is runDaemon with the config file in dir, for configs that
// name files beside it.
func runDaemonIn(t *testing.T, dir, body string, logs *lockedLog) (d *Daemon, stop func()) {
	t.Helper()
	cfg := filepath.Join(dir, "stray.yaml")
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := New(context.Background(), Options{ConfigPath: cfg, LogOutput: logs})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		d.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	return d, func() { cancel(); <-done }
}
