package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/hold"
	"github.com/stray-mail/stray/internal/store"
)

// env is a dashboard on a real SQLite store with a Holder whose SMTP
// deliveries are recorded.
type env struct {
	t       *testing.T
	st      store.Store
	srv     *httptest.Server
	web     *Server
	holder  *hold.Holder
	mu      sync.Mutex
	sent    [][]string // recipients of each re-injection
	reloads atomic.Int32
}

func newEnv(t *testing.T, mod func(*Options)) *env {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "stray.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, st: st}
	signer, err := hold.NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	e.holder = hold.New(hold.Config{Node: "n1", BaseURL: "http://127.0.0.1", ReinjectSMTP: "127.0.0.1:1"}, st, signer, slog.New(slog.DiscardHandler),
		func(_ context.Context, _, _ string, to []string, _ []byte) error {
			e.mu.Lock()
			e.sent = append(e.sent, to)
			e.mu.Unlock()
			return nil
		})
	checker, err := detect.New(detect.Knowledge{Protected: []string{"mil"}})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Store: st, Holder: e.holder, RulesChanged: func() { e.reloads.Add(1) }, Lookalike: checker.CoversProtectedLookalike,
		Policy: func(context.Context) PolicyView {
			return PolicyView{Mode: "enforce", Protected: []string{"mil"}, Allow: []string{"partner.ml"}, Config: "store: sqlite:stray.db\n"}
		}}
	if mod != nil {
		mod(&o)
	}
	w, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	e.web = w
	e.srv = httptest.NewServer(w.Handler())
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) addUser(name string, role store.Role, password string) {
	e.t.Helper()
	h, err := HashPassword(password)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.st.PutUser(context.Background(), &store.User{Name: name, Role: role, Hash: h}); err != nil {
		e.t.Fatal(err)
	}
}

// hold stores a held message to b@army.ml and returns its id.
func (e *env) hold(body string) string {
	e.t.Helper()
	raw := "From: alice@army.mil\r\nTo: b@army.ml\r\nSubject: Travel plans\r\nContent-Type: text/html\r\n\r\n" + body + "\r\n"
	id, err := e.holder.Hold(context.Background(), hold.Request{QueueID: "Q1", Sender: "alice@army.mil", Raw: []byte(raw),
		Held: []store.Recipient{{Address: "b@army.ml", Verdict: "block", Intended: "army.mil", Suggestion: "b@army.mil", Reasons: []string{"tld-confusion: .ml for .mil"}}}})
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// client is a browser-like client: cookies, no automatic redirects.
type client struct {
	t    *testing.T
	e    *env
	http *http.Client
	csrf string
}

func (e *env) client() *client {
	jar, _ := cookiejar.New(nil)
	// The cookies are Secure; the test server is plain HTTP on loopback,
	// which browsers treat as secure but Go's jar does not.
	return &client{t: e.t, e: e, http: &http.Client{Jar: insecureJar{jar}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type insecureJar struct{ *cookiejar.Jar }

func (j insecureJar) SetCookies(u *url.URL, cs []*http.Cookie) {
	for _, c := range cs {
		c.Secure = false
	}
	j.Jar.SetCookies(u, cs)
}

func (c *client) do(method, path string, form url.Values, hdr ...string) (*http.Response, string) {
	c.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.e.srv.URL+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if m := csrfRe.FindStringSubmatch(string(b)); m != nil {
		c.csrf = m[1]
	}
	return resp, string(b)
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (c *client) get(path string) (*http.Response, string) { return c.do("GET", path, nil) }

func (c *client) post(path string, form url.Values, hdr ...string) (*http.Response, string) {
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", c.csrf)
	}
	return c.do("POST", path, form, hdr...)
}

func (c *client) login(name, password string) *http.Response {
	c.t.Helper()
	c.get("/login")
	resp, _ := c.post("/login", url.Values{"name": {name}, "password": {password}, "next": {"/"}})
	return resp
}

func (c *client) mustLogin(name, password string) {
	c.t.Helper()
	if resp := c.login(name, password); resp.StatusCode != http.StatusSeeOther {
		c.t.Fatalf("login as %s: status %d", name, resp.StatusCode)
	}
	c.get("/") // the page carries the session's CSRF token
}

// loggedIn is a dashboard with one user, alice, of the given role, and a
// client logged in as her.
func loggedIn(t *testing.T, role store.Role) (*env, *client) {
	e := newEnv(t, nil)
	e.addUser("alice", role, "correct horse battery")
	c := e.client()
	c.mustLogin("alice", "correct horse battery")
	return e, c
}

func events(t *testing.T, st store.Store, kind string) []store.Event {
	evs, err := st.Events(context.Background(), store.EventFilter{Kind: kind})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestAnonymousVisitorsAreSentToLoginAndOnlyLocalRedirectsFollow(t *testing.T) {
	e := newEnv(t, nil)
	e.addUser("alice", store.RoleAdmin, "correct horse battery")
	c := e.client()
	resp, _ := c.get("/quarantine?state=held")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?next=%2Fquarantine%3Fstate%3Dheld" {
		t.Fatalf("anonymous /quarantine: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for next, want := range map[string]string{"/quarantine": "/quarantine", "//evil.example/x": "/", "https://evil.example": "/", "/\\evil.example": "/"} {
		c := e.client()
		c.get("/login")
		resp, _ := c.post("/login", url.Values{"name": {"alice"}, "password": {"correct horse battery"}, "next": {next}})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
			t.Errorf("next=%q: %d → %q, want %q", next, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
}

func TestLoginChecksPasswordRecordsAttemptsAndLogoutEndsTheSession(t *testing.T) {
	e := newEnv(t, nil)
	e.addUser("alice", store.RoleAdmin, "correct horse battery")
	c := e.client()
	if resp := c.login("alice", "wrong password!"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: status %d", resp.StatusCode)
	}
	if resp := c.login("mallory", "whatever123"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unknown user: status %d", resp.StatusCode)
	}
	failed := events(t, e.st, "login-failed")
	if len(failed) != 2 || !strings.Contains(failed[0].Detail, "unknown-user") || !strings.Contains(failed[1].Detail, "bad-password") {
		t.Fatalf("login-failed events: %+v", failed)
	}
	c.mustLogin("alice", "correct horse battery")
	resp, body := c.get("/")
	if resp.StatusCode != 200 || !strings.Contains(body, "Overview") || !strings.Contains(body, "alice") {
		t.Fatalf("overview after login: %d", resp.StatusCode)
	}
	if ev := events(t, e.st, "login"); len(ev) != 1 || ev[0].Actor != "user:alice" || !strings.Contains(ev[0].Detail, "ip=127.0.0.1") {
		t.Fatalf("login events: %+v", ev)
	}
	if resp, _ := c.post("/logout", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp, _ := c.get("/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after logout: %d, want a redirect to login", resp.StatusCode)
	}
	if ev := events(t, e.st, "logout"); len(ev) != 1 {
		t.Fatalf("logout events: %+v", ev)
	}
}

func TestLoginWithoutTheFormsTokenIsRefused(t *testing.T) {
	e := newEnv(t, nil)
	e.addUser("alice", store.RoleAdmin, "correct horse battery")
	c := e.client()
	resp, _ := c.do("POST", "/login", url.Values{"name": {"alice"}, "password": {"correct horse battery"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("login without the login cookie and token: %d", resp.StatusCode)
	}
}

func TestLoginIsRateLimited(t *testing.T) {
	e := newEnv(t, nil)
	e.freezeLoginClock() // 11 argon2id logins under -race can outlast the minute
	e.addUser("alice", store.RoleAdmin, "correct horse battery")
	c := e.client()
	codes := map[int]int{}
	for i := 0; i < 11; i++ {
		codes[c.login("alice", fmt.Sprintf("guess number %d", i)).StatusCode]++
	}
	if codes[http.StatusUnauthorized] != 10 || codes[http.StatusTooManyRequests] != 1 {
		t.Fatalf("11 bad logins: %v", codes)
	}
	if resp := c.login("alice", "correct horse battery"); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("right password while limited: %d", resp.StatusCode)
	}
}

func TestPagesCarryStrictSecurityHeaders(t *testing.T) {
	e, c := loggedIn(t, store.RoleAdmin)
	id := e.hold("<p>hi</p>")
	for _, p := range []string{"/", "/quarantine", "/quarantine/" + id, "/policy", "/reports", "/events", "/login"} {
		resp, body := c.get(p)
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d", p, resp.StatusCode)
			continue
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q", p, csp)
		}
		if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: headers %v", p, resp.Header)
		}
		if regexp.MustCompile(`<script>|<script [^s]|\sstyle="|\son[a-z]+="`).MatchString(body) {
			t.Errorf("%s: inline script or style in the page", p)
		}
	}
	for _, ck := range c.http.Jar.Cookies(mustURL(e.srv.URL)) {
		if ck.Name == sessionCookie && len(ck.Value) < 40 {
			t.Errorf("session cookie value too short: %d", len(ck.Value))
		}
	}
}

func mustURL(s string) *url.URL {
	u, _ := url.Parse(s)
	return u
}

func TestSessionCookieIsHttpOnlySecureStrict(t *testing.T) {
	e := newEnv(t, nil)
	e.addUser("alice", store.RoleAdmin, "correct horse battery")
	c := e.client()
	c.get("/login")
	resp, _ := c.post("/login", url.Values{"name": {"alice"}, "password": {"correct horse battery"}})
	var found bool
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie {
			found = true
			if !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" {
				t.Fatalf("session cookie %+v", ck)
			}
		}
	}
	if !found {
		t.Fatal("no session cookie")
	}
}

func TestAdminReleasesFixesAndDiscardsWithCSRFAndTheEventLogNamesThem(t *testing.T) {
	e, c := loggedIn(t, store.RoleAdmin)
	id := e.hold("<p>one</p>")

	// A forged or missing token changes nothing.
	for _, tok := range []string{"forged", ""} {
		resp, _ := c.post("/quarantine/"+id+"/release", url.Values{"csrf": {tok}})
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("csrf %q: %d", tok, resp.StatusCode)
		}
	}
	// So does a request from another site, even with the token.
	if resp, _ := c.post("/quarantine/"+id+"/release", nil, "Origin", "https://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin: %d", resp.StatusCode)
	}
	if m, _ := e.st.Get(context.Background(), id); m.State != store.StateHeld || len(e.sent) != 0 {
		t.Fatalf("after refused requests: %s, sent %v", m.State, e.sent)
	}
	if ev := events(t, e.st, "csrf-refused"); len(ev) != 2 {
		t.Fatalf("csrf-refused events: %d", len(ev))
	}

	resp, _ := c.post("/quarantine/"+id+"/fix", nil, "Origin", e.srv.URL)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("fix: %d", resp.StatusCode)
	}
	if m, _ := e.st.Get(context.Background(), id); m.State != store.StateReleased {
		t.Fatalf("after fix: %s", m.State)
	}
	if len(e.sent) != 1 || e.sent[0][0] != "b@army.mil" {
		t.Fatalf("re-injected to %v, want the suggestion", e.sent)
	}
	if ev := events(t, e.st, "released-fixed"); len(ev) != 1 || ev[0].Actor != "admin:alice" {
		t.Fatalf("released-fixed events: %+v", ev)
	}
	// Acting again is a conflict, not a second delivery.
	if resp, _ := c.post("/quarantine/"+id+"/release", nil); resp.StatusCode != http.StatusConflict || len(e.sent) != 1 {
		t.Fatalf("second release: %d, sent %d", resp.StatusCode, len(e.sent))
	}

	// Bulk: two held, one already released.
	a, b := e.hold("<p>a</p>"), e.hold("<p>b</p>")
	resp, _ = c.post("/quarantine/bulk", url.Values{"action": {"discard"}, "id": {a, b, id}})
	loc, _ := url.QueryUnescape(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(loc, "2 discarded. 1 no longer held.") {
		t.Fatalf("bulk: %d %q", resp.StatusCode, loc)
	}
	for _, x := range []string{a, b} {
		if m, _ := e.st.Get(context.Background(), x); m.State != store.StateDiscarded {
			t.Fatalf("%s after bulk discard: %s", x, m.State)
		}
	}
	if ev := events(t, e.st, "discarded"); len(ev) != 2 || ev[0].Actor != "admin:alice" {
		t.Fatalf("discarded events: %+v", ev)
	}
}

func TestAuditorSeesButCannotChangeAnything(t *testing.T) {
	e := newEnv(t, nil)
	e.addUser("olivia", store.RoleAuditor, "read only please")
	c := e.client()
	c.mustLogin("olivia", "read only please")
	id := e.hold("<p>x</p>")
	resp, body := c.get("/quarantine/" + id)
	if resp.StatusCode != 200 || strings.Contains(body, `action="/quarantine/`+id+`/release"`) || !strings.Contains(body, `id="readonly"`) {
		t.Fatalf("auditor's message page: %d, shows actions", resp.StatusCode)
	}
	for _, p := range []string{"/quarantine/" + id + "/release", "/quarantine/" + id + "/discard"} {
		if resp, _ := c.post(p, nil); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("auditor POST %s: %d", p, resp.StatusCode)
		}
	}
	if resp, _ := c.post("/policy/rules", url.Values{"kind": {"allow"}, "pattern": {"army.ml"}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("auditor adds a rule: %d", resp.StatusCode)
	}
	if m, _ := e.st.Get(context.Background(), id); m.State != store.StateHeld {
		t.Fatalf("state %s", m.State)
	}
	if rules, _ := e.st.ListRules(context.Background()); len(rules) != 0 {
		t.Fatalf("rules %v", rules)
	}
}

func TestMessagePageShowsTheMessageAsTextNeverAsHTML(t *testing.T) {
	e, c := loggedIn(t, store.RoleAdmin)
	id := e.hold(`<script>alert(1)</script><img src=x onerror=alert(2)>`)
	_, body := c.get("/quarantine/" + id)
	if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x") {
		t.Fatal("message HTML rendered into the page")
	}
	if strings.Contains(body, "Travel plans?") {
		t.Error("the preview shows CRLF line ends as control characters")
	}
	for _, want := range []string{"Travel plans", "b@army.ml", "b@army.mil", "tld-confusion", "alice@army.mil", "Allow army.ml"} {
		if !strings.Contains(body, want) {
			t.Errorf("message page lacks %q", want)
		}
	}
}

func TestAllowListingADomainFromAFindingAddsARuleAndReloads(t *testing.T) {
	e, c := loggedIn(t, store.RoleAdmin)
	id := e.hold("x")
	resp, _ := c.post("/policy/rules", url.Values{"kind": {"allow"}, "pattern": {"Army.ML"}, "confirm": {"army.ml"}, "back": {"/quarantine/" + id}})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/quarantine/"+id+"?done=") {
		t.Fatalf("add rule: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	rules, _ := e.st.ListRules(context.Background())
	if len(rules) != 1 || rules[0].Pattern != "army.ml" || rules[0].Kind != "allow" || rules[0].CreatedBy != "alice" || e.reloads.Load() != 1 {
		t.Fatalf("rules %+v, reloads %d", rules, e.reloads.Load())
	}
	_, body := c.get("/quarantine/" + id)
	if !strings.Contains(body, "army.ml allowed") {
		t.Fatal("the message page does not show the domain as allowed")
	}
	for _, bad := range []string{"", "a b", "@x.ml", "x..ml", "-.ml"} {
		if resp, _ := c.post("/policy/rules", url.Values{"kind": {"allow"}, "pattern": {bad}}); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("pattern %q: %d", bad, resp.StatusCode)
		}
	}
	if resp, _ := c.post("/policy/rules", url.Values{"kind": {"allow"}, "pattern": {"partner.example"}, "back": {"https://evil.example"}}); resp.Header.Get("Location")[0] != '/' {
		t.Fatalf("back= left the site: %q", resp.Header.Get("Location"))
	}
	_, body = c.get("/policy")
	if !strings.Contains(body, "army.ml") || !strings.Contains(body, "partner.ml") {
		t.Fatal("policy page lacks the rules")
	}
	rules, _ = e.st.ListRules(context.Background())
	resp, _ = c.post(fmt.Sprintf("/policy/rules/%d/delete", rules[0].ID), nil)
	if after, _ := e.st.ListRules(context.Background()); resp.StatusCode != http.StatusSeeOther || len(after) != 1 || e.reloads.Load() != 3 {
		t.Fatalf("delete: %d, rules %v, reloads %d", resp.StatusCode, after, e.reloads.Load())
	}
	if ev := events(t, e.st, "rule-added"); len(ev) != 2 || ev[1].Actor != "admin:alice" {
		t.Fatalf("rule-added events %+v", ev)
	}
}

func TestOverviewChartsDecisionsDomainsAndSenders(t *testing.T) {
	e := newEnv(t, nil)
	e.addUser("alice", store.RoleAdmin, "correct horse battery")
	ctx := context.Background()
	today := time.Now().UTC().Truncate(24 * time.Hour)
	if err := e.st.AddDecisionCounts(ctx, []store.DecisionCount{
		{Day: today, Verdict: "ok", Action: "pass", N: 120}, {Day: today, Verdict: "block", Action: "reject", N: 7},
		{Day: today.AddDate(0, 0, -3), Verdict: "hold", Action: "hold", N: 2},
	}); err != nil {
		t.Fatal(err)
	}
	for i, rcpt := range []string{"b@army.ml", "c@army.ml", "d@gmial.com"} {
		detail, _ := json.Marshal(hold.Decision{Sender: "alice@army.mil", Recipient: rcpt, Verdict: "block", Intended: "army.mil", Action: "reject"})
		if i == 2 {
			detail, _ = json.Marshal(hold.Decision{Sender: "bob@army.mil", Recipient: rcpt, Verdict: "hold", Intended: "gmail.com", Action: "hold"})
		}
		e.st.AddEvent(ctx, store.Event{Kind: "decision", Actor: "gate", Detail: string(detail)})
	}
	e.hold("x")
	c := e.client()
	c.mustLogin("alice", "correct horse battery")
	_, body := c.get("/")
	for _, want := range []string{"<svg", `class="c-block"`, "army.ml", "→ army.mil", "gmial.com", "alice@army.mil", "129</b> recipients checked", "1</b> held, waiting", ": 120</title>"} {
		if !strings.Contains(body, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	if i, j := strings.Index(body, ">army.ml<"), strings.Index(body, ">gmial.com<"); i < 0 || j < 0 || i > j {
		t.Errorf("army.ml (2) should rank above gmial.com (1)")
	}
}

func TestQuarantineSearchFiltersAndPages(t *testing.T) {
	e, c := loggedIn(t, store.RoleAdmin)
	for i := 0; i < pageSize+3; i++ {
		e.hold(fmt.Sprintf("message %d", i))
	}
	_, body := c.get("/quarantine")
	if n := strings.Count(body, `name="id"`); n != pageSize {
		t.Fatalf("first page shows %d messages, want %d", n, pageSize)
	}
	m := regexp.MustCompile(`href="/quarantine\?([^"]+)" id="older"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no link to older messages")
	}
	_, body = c.get("/quarantine?" + strings.ReplaceAll(m[1], "&amp;", "&"))
	if n := strings.Count(body, `name="id"`); n != 3 {
		t.Fatalf("second page shows %d, want 3", n)
	}
	if _, body = c.get("/quarantine?q=nobody.example"); !strings.Contains(body, `id="empty"`) {
		t.Fatal("search for a missing domain shows messages")
	}
	if resp, _ := c.get("/quarantine?before=2026-01-01T00:00:00Z&before_id=%27or%271"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad before_id: %d", resp.StatusCode)
	}
	if resp, _ := c.get("/quarantine?state=bogus"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bogus state: %d", resp.StatusCode)
	}
}

func TestTrustedProxyHeaderLogsInOnlyFromTrustedAddresses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted string
		want    int
	}{{"trusted", "127.0.0.0/8", http.StatusOK}, {"untrusted", "10.0.0.0/8", http.StatusSeeOther}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) {
				o.ProxyHeader = "X-Remote-User"
				o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix(tc.trusted)}
			})
			e.addUser("alice", store.RoleAdmin, "correct horse battery")
			c := e.client()
			resp, _ := c.do("GET", "/", nil, "X-Remote-User", "alice")
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if resp, _ := e.client().do("GET", "/", nil, "X-Remote-User", "nobody"); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("unknown proxy user: %d", resp.StatusCode)
			}
		})
	}
}

func TestANewPasswordEndsOldSessions(t *testing.T) {
	e, c := loggedIn(t, store.RoleAdmin)
	time.Sleep(2 * time.Millisecond)
	e.addUser("alice", store.RoleAdmin, "a brand new password")
	if resp, _ := c.get("/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("old session after a password change: %d", resp.StatusCode)
	}
}

func TestSavedReportsAreBrowsableAndTheHTMLIsSandboxed(t *testing.T) {
	e := newEnv(t, nil)
	e.addUser("alice", store.RoleAuditor, "correct horse battery")
	ctx := context.Background()
	rep := &store.Report{Kind: "audit", Title: "Audit of mail.log", JSON: []byte(`{"Delivered":20,"Leaks":10,"AllDomains":6,"AllSenders":8,"Domains":[{"Domain":"army.ml","Intended":"army.mil","Verdict":"block","Deliveries":7,"Senders":3}]}`),
		HTML: []byte("<html><body><h1>10 of 20</h1></body></html>")}
	if err := e.st.AddReport(ctx, rep); err != nil {
		t.Fatal(err)
	}
	sc := &store.Report{Kind: "scan", Title: "Scan of army.mil", JSON: []byte(`[{"domain":"army.ml","unicode":"army.ml","original":"army.mil","kind":"tld-swap","status":"registered","mx":["mx.army.ml"]},{"domain":"army.mi","unicode":"army.mi","original":"army.mil","status":"unregistered"}]`)}
	if err := e.st.AddReport(ctx, sc); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	c.mustLogin("alice", "correct horse battery")
	_, body := c.get("/reports")
	if !strings.Contains(body, "Audit of mail.log") || !strings.Contains(body, "Scan of army.mil") {
		t.Fatal("reports list lacks the reports")
	}
	_, body = c.get(fmt.Sprintf("/reports/%d", rep.ID))
	if !strings.Contains(body, "<b>10</b> of 20 delivered") || !strings.Contains(body, "army.ml") {
		t.Fatal("audit report page lacks its summary")
	}
	_, body = c.get(fmt.Sprintf("/reports/%d", sc.ID))
	if !strings.Contains(body, "mx.army.ml") || strings.Contains(body, "army.mi<") || !strings.Contains(body, "1 of 2 checked") {
		t.Fatal("scan report page should list the registered lookalike only")
	}
	resp, body := c.get(fmt.Sprintf("/reports/%d/report.html?download=1", rep.ID))
	if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "sandbox") || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") || !strings.Contains(body, "10 of 20") {
		t.Fatalf("download: %v", resp.Header)
	}
	if resp, _ := c.get(fmt.Sprintf("/reports/%d/report.html", sc.ID)); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("scan report has no HTML: %d", resp.StatusCode)
	}
}

func TestPasswordHashes(t *testing.T) {
	h, err := HashPassword("correct horse battery")
	if err != nil || !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=3,p=2$") {
		t.Fatalf("hash %q, %v", h, err)
	}
	if ok, err := CheckPassword(h, "correct horse battery"); !ok || err != nil {
		t.Fatal("right password refused")
	}
	if ok, _ := CheckPassword(h, "correct horse batterY"); ok {
		t.Fatal("wrong password accepted")
	}
	if _, err := HashPassword("short"); err == nil {
		t.Fatal("short password accepted")
	}
	bc, _ := bcrypt.GenerateFromPassword([]byte("imported password"), bcrypt.MinCost)
	if ok, err := CheckPassword(string(bc), "imported password"); !ok || err != nil {
		t.Fatalf("bcrypt hash refused: %v", err)
	}
	if ok, _ := CheckPassword(string(bc), "imported passworD"); ok {
		t.Fatal("bcrypt: wrong password accepted")
	}
	for _, bad := range []string{"", "plain", "$argon2id$v=19$m=0,t=1,p=1$AAAA$AAAA", "$argon2id$v=18$m=65536,t=3,p=2$c2FsdHNhbHQ$" + strings.Repeat("A", 43)} {
		if ok, err := CheckPassword(bad, "x"); ok || err == nil {
			t.Errorf("hash %q: ok=%v err=%v", bad, ok, err)
		}
	}
}

func TestAStoreOutageAnswers503AndNeverLogsAnyoneIn(t *testing.T) {
	e, c := loggedIn(t, store.RoleAdmin)
	id := e.hold("x")
	e.st.Close()
	for _, p := range []string{"/", "/quarantine", "/quarantine/" + id, "/policy", "/reports", "/events"} {
		if resp, body := c.get(p); resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "not reachable") {
			t.Errorf("%s with the store down: %d", p, resp.StatusCode)
		}
	}
	if resp, _ := c.post("/quarantine/"+id+"/release", nil); resp.StatusCode != http.StatusServiceUnavailable || len(e.sent) != 0 {
		t.Errorf("release with the store down: %d, sent %v", resp.StatusCode, e.sent)
	}
	other := e.client()
	if resp := other.login("alice", "correct horse battery"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("login with the store down: %d", resp.StatusCode)
	}
}
