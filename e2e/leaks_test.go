package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/postfixtest"
)

// startStrayListen starts `stray serve` with loopback milter and http
// listeners, extra lines in its listen section, and body.
func startStrayListen(t *testing.T, listen, body string) *stray {
	t.Helper()
	s := &stray{t: t, log: &syncBuffer{}}
	s.Milter = fmt.Sprintf("127.0.0.1:%d", postfixtest.FreePort(t))
	s.HTTP = fmt.Sprintf("127.0.0.1:%d", postfixtest.FreePort(t))
	s.cfg = filepath.Join(t.TempDir(), "stray.yaml")
	cfg := fmt.Sprintf("listen:\n  milter: inet:%s\n  policy: \"\"\n  http: %s\n%sshutdown_timeout: 5s\nlog:\n  level: debug\n%s", s.Milter, s.HTTP, listen, body)
	if err := os.WriteFile(s.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	s.more = loopbackAddrs.FindAllString(listen, -1) // start waits for them too
	s.start()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("stray log:\n%s", s.log.String())
		}
	})
	return s
}

var loopbackAddrs = regexp.MustCompile(`127\.0\.0\.1:[0-9]+`)

func fetch(t *testing.T, url string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

func TestMetricsOnTheirOwnListenerAreGoneFromTheSendersListener(t *testing.T) {
	metrics := fmt.Sprintf("127.0.0.1:%d", postfixtest.FreePort(t))
	s := startStrayListen(t, "  metrics: "+metrics+"\n", "store: \"\"\n")
	if code, body := fetch(t, "http://"+metrics+"/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Errorf("listen.metrics /metrics: %d %.200s", code, body)
	}
	if code, _ := fetch(t, "http://"+metrics+"/healthz"); code != 200 {
		t.Errorf("listen.metrics /healthz: %d", code)
	}
	if code, _ := fetch(t, "http://"+s.HTTP+"/metrics"); code != http.StatusNotFound {
		t.Errorf("listen.http still serves /metrics: %d", code)
	}
	if code, _ := fetch(t, "http://"+s.HTTP+"/healthz"); code != 200 {
		t.Errorf("listen.http /healthz: %d", code)
	}
}

func TestMetricsStayOnTheHTTPListenerWithoutListenMetrics(t *testing.T) {
	s := startStrayListen(t, "", "store: \"\"\n")
	if code, body := fetch(t, "http://"+s.HTTP+"/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics on listen.http: %d %.200s", code, body)
	}
}

func TestHoldLinksRateLimitSendersApartBehindATrustedProxy(t *testing.T) {
	dir := t.TempDir()
	s := startStrayListen(t, "", fmt.Sprintf("store: sqlite:%s/stray.db\nhold:\n  secret_file: %s/stray.key\nweb:\n  trusted_proxies: [127.0.0.1]\n", dir, dir))
	link := "http://" + s.HTTP + "/h/0123/release?e=1&s=x"
	for i := 0; i < 30; i++ {
		if code, _ := fetch(t, link, "X-Forwarded-For", "198.51.100.1"); code == http.StatusTooManyRequests {
			t.Fatalf("request %d of one sender refused", i+1)
		}
	}
	if code, _ := fetch(t, link, "X-Forwarded-For", "198.51.100.1"); code != http.StatusTooManyRequests {
		t.Fatalf("31st request of one sender: %d, want 429", code)
	}
	if code, _ := fetch(t, link, "X-Forwarded-For", "203.0.113.5"); code == http.StatusTooManyRequests {
		t.Fatal("another sender behind the same proxy was refused")
	}
}

// The check API limits failed authentications per client: behind a trusted
// proxy, per forwarded client, so one client guessing tokens does not lock
// out every other user of the proxy.
func TestCheckAPIFailureLimitSeparatesClientsBehindATrustedProxy(t *testing.T) {
	dir := t.TempDir()
	s := startStrayListen(t, "", fmt.Sprintf("store: sqlite:%s/stray.db\nhold:\n  secret_file: %s/stray.key\nweb:\n  trusted_proxies: [127.0.0.1]\n", dir, dir))
	post := func(client string) int {
		req, err := http.NewRequest("POST", "http://"+s.HTTP+"/api/v1/check", strings.NewReader(`{"recipients":["a@example.com"]}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer stray_nope_nope")
		req.Header.Set("X-Forwarded-For", client)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	limited := false
	for i := 0; i < 30 && !limited; i++ {
		limited = post("198.51.100.1") == http.StatusTooManyRequests
	}
	if !limited {
		t.Fatal("30 bad tokens from one client were never limited")
	}
	if code := post("203.0.113.5"); code != http.StatusUnauthorized {
		t.Fatalf("another client behind the same proxy: %d, want 401", code)
	}
}

// The reply listener is capped: a flood of idle connections (from any
// client: the refusal of strangers comes after accept) never holds more
// than replyMaxConns descriptors, the oldest idle ones make room, and the
// listener keeps greeting the MTA.
// Every SMTP listener is capped: a flood of idle connections cannot take
// the descriptors the milter and policy server need, and the listener
// still greets a new client. The relay and the sink face senders'
// networks and, for the sink, the Internet: before their caps, 60 of 60
// idle connections stayed open.
func TestSMTPListenersAreCappedAndKeepGreeting(t *testing.T) {
	dir := t.TempDir()
	domains := filepath.Join(dir, "registered.txt")
	if err := os.WriteFile(domains, []byte("army.ml army.mil\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	store := fmt.Sprintf("store: sqlite:%s/stray.db\nhold:\n  secret_file: %s/stray.key\n", dir, dir)
	for _, tt := range []struct {
		name, listen, body string
		max                int
	}{
		{"reply", "reply", store + "  reply_domain: reply.example.org\n", 32},
		{"relay", "relay", store + "relay:\n  next_hop: 127.0.0.1:9\n", 5},
		{"sink", "sink", store + "sink:\n  domains: " + domains + "\n", 5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr := fmt.Sprintf("127.0.0.1:%d", postfixtest.FreePort(t))
			listen := fmt.Sprintf("  %s: %s\n  max_connections:\n    relay: 5\n    sink: 5\n", tt.listen, addr)
			startStrayListen(t, listen, tt.body)
			greet := func() (net.Conn, string) {
				c, err := net.DialTimeout("tcp", addr, 2*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				c.SetReadDeadline(time.Now().Add(3 * time.Second))
				line, _ := bufio.NewReader(c).ReadString('\n')
				return c, line
			}
			var conns []net.Conn
			for i := 0; i < 60; i++ {
				c, line := greet()
				if !strings.HasPrefix(line, "220 ") {
					t.Fatalf("connection %d greeted with %q", i+1, line)
				}
				conns = append(conns, c)
			}
			open := 0
			for _, c := range conns {
				c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				if _, err := c.Read(make([]byte, 1)); errors.Is(err, os.ErrDeadlineExceeded) {
					open++
				}
				c.Close()
			}
			if open > tt.max {
				t.Fatalf("%d of 60 idle %s connections still open, want at most %d", open, tt.name, tt.max)
			}
		})
	}
}
