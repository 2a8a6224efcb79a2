package web

import (
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"testing"
	"time"

	"github.com/stray-mail/stray/internal/ratelimit"
	"github.com/stray-mail/stray/internal/store"
)

// clientFrom is a browser-like client whose connections come from the
// loopback address from (127.0.0.2, 127.0.0.3, …): another machine, as the
// server sees it.
func (e *env) clientFrom(from string) *client {
	c := e.client()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	jar, _ := cookiejar.New(nil)
	c.http = &http.Client{Jar: insecureJar{jar}, Transport: &http.Transport{DialContext: d.DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return c
}

// freezeLoginClock stops the login limiters' clock, so that a slow machine
// (argon2id under -race) cannot let a window pass within a test.
func (e *env) freezeLoginClock() {
	now := time.Now()
	for _, w := range []*ratelimit.Window{e.web.limits.pair, e.web.limits.source, e.web.limits.global} {
		w.SetClock(func() time.Time { return now })
	}
}

func (c *client) loginVia(name, password string, hdr ...string) int {
	c.t.Helper()
	c.do("GET", "/login", nil, hdr...)
	resp, _ := c.post("/login", map[string][]string{"name": {name}, "password": {password}, "next": {"/"}}, hdr...)
	return resp.StatusCode
}

func TestAnAttackerElsewhereCannotLockAUserOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.freezeLoginClock()
	e.addUser("alice", store.RoleAdmin, "correct horse battery")
	attacker := e.clientFrom("127.0.0.2")
	limited := 0
	for i := 0; i < 12; i++ {
		if attacker.loginVia("alice", fmt.Sprintf("guess %d", i)) == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited != 2 {
		t.Fatalf("12 bad logins for alice from one address: %d refused as too many, want 2", limited)
	}
	if code := e.clientFrom("127.0.0.3").loginVia("alice", "correct horse battery"); code != http.StatusSeeOther {
		t.Fatalf("alice from her own address while an attacker is limited: %d, want 303", code)
	}
	if code := attacker.loginVia("alice", "correct horse battery"); code != http.StatusTooManyRequests {
		t.Fatalf("the attacker's address is still limited for alice: %d", code)
	}
}

func TestOneAddressTryingManyUsersIsLimited(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.freezeLoginClock()
	c := e.clientFrom("127.0.0.4")
	limited := 0
	for i := 0; i < loginsPerSource+1; i++ {
		if c.loginVia(fmt.Sprintf("user%d", i), "wrong password") == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited != 1 {
		t.Fatalf("%d logins for distinct users from one address: %d refused, want 1", loginsPerSource+1, limited)
	}
	if code := e.clientFrom("127.0.0.5").loginVia("user0", "wrong password"); code != http.StatusUnauthorized {
		t.Fatalf("another address: %d, want 401", code)
	}
}

func TestLoginsHaveAGlobalCap(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.web.limits.global = ratelimit.New(3, time.Minute)
	e.freezeLoginClock()
	codes := map[int]int{}
	for i := 0; i < 4; i++ {
		codes[e.clientFrom(fmt.Sprintf("127.0.1.%d", i+1)).loginVia("alice", "wrong password")]++
	}
	if codes[http.StatusUnauthorized] != 3 || codes[http.StatusTooManyRequests] != 1 {
		t.Fatalf("4 logins from 4 addresses under a global cap of 3: %v", codes)
	}
}

func TestLoginLimitsCountTheClientBehindATrustedProxy(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options) { o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.6/32")} })
	e.freezeLoginClock()
	e.addUser("alice", store.RoleAdmin, "correct horse battery")
	proxy := e.clientFrom("127.0.0.6")
	for i := 0; i < 11; i++ {
		proxy.loginVia("alice", "wrong password", "X-Forwarded-For", "198.51.100.66")
	}
	if code := e.clientFrom("127.0.0.6").loginVia("alice", "correct horse battery", "X-Forwarded-For", "203.0.113.7"); code != http.StatusSeeOther {
		t.Fatalf("alice behind the same proxy: %d, want 303", code)
	}
	// From an untrusted peer the header buys nothing.
	direct := e.clientFrom("127.0.0.7")
	for i := 0; i < 10; i++ {
		direct.loginVia("alice", "wrong password", "X-Forwarded-For", fmt.Sprintf("192.0.2.%d", i))
	}
	if code := direct.loginVia("alice", "wrong password", "X-Forwarded-For", "192.0.2.200"); code != http.StatusTooManyRequests {
		t.Fatalf("a forged X-Forwarded-For escaped the limit: %d", code)
	}
}
