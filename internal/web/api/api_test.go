package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/policy"
	"github.com/stray-mail/stray/internal/store"
)

// fakeTokens is a token store that counts lookups.
type fakeTokens struct {
	mu    sync.Mutex
	m     map[string]store.Token
	calls int
	err   error
}

func (f *fakeTokens) GetToken(_ context.Context, id string) (*store.Token, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	t, ok := f.m[id]
	if !ok {
		return nil, fmt.Errorf("token %s: %w", id, store.ErrNotFound)
	}
	return &t, nil
}

func (f *fakeTokens) add(t *testing.T, name string) string {
	t.Helper()
	plain, tok, err := NewToken(name, "test")
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[tok.ID] = tok
	return plain
}

func (f *fakeTokens) lookups() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeTokens) remove(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.m, id)
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// engine is the engine of the tests: --protect mil, default policy.
// gateOf is a gate on e that logs nowhere and registers no metrics.
func gateOf(e *gate.Engine) *gate.Gate { return gate.New(e, slog.New(slog.DiscardHandler), nil) }

func engine(t testing.TB, pc policy.Config) *gate.Engine {
	t.Helper()
	c, err := detect.New(detect.Knowledge{Protected: []string{"mil"}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Compile(pc, "policy")
	if err != nil {
		t.Fatal(err)
	}
	return &gate.Engine{Checker: c, Policy: p}
}

type fixture struct {
	srv    *Server
	h      http.Handler
	tokens *fakeTokens
	clock  *clock
	token  string // a valid token
}

func newFixture(t testing.TB, mod func(*Config)) *fixture {
	t.Helper()
	e := engine(t, policy.Config{})
	fx := &fixture{tokens: &fakeTokens{m: map[string]store.Token{}}, clock: &clock{t: time.Unix(1_800_000_000, 0)}}
	if tt, ok := t.(*testing.T); ok {
		fx.token = fx.tokens.add(tt, "test")
	} else {
		plain, tok, err := NewToken("bench", "test")
		if err != nil {
			t.Fatal(err)
		}
		fx.tokens.m[tok.ID] = tok
		fx.token = plain
	}
	c := Config{Gate: gateOf(e), Tokens: fx.tokens, Now: fx.clock.now}
	if mod != nil {
		mod(&c)
	}
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	fx.srv, fx.h = s, s.Handler()
	return fx
}

type req struct {
	method, path string
	body         string
	header       map[string]string
	remote       string
}

func (fx *fixture) do(r req) *httptest.ResponseRecorder {
	if r.method == "" {
		r.method = http.MethodPost
	}
	if r.path == "" {
		r.path = "/api/v1/check"
	}
	hr := httptest.NewRequest(r.method, r.path, strings.NewReader(r.body))
	if r.remote != "" {
		hr.RemoteAddr = r.remote
	}
	for k, v := range r.header {
		if v == "" {
			hr.Header.Del(k)
			continue
		}
		hr.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	fx.h.ServeHTTP(w, hr)
	return w
}

// check posts a check request with the fixture's token.
func (fx *fixture) check(body string, extra ...string) *httptest.ResponseRecorder {
	h := map[string]string{"Authorization": "Bearer " + fx.token, "Content-Type": "application/json"}
	for i := 0; i+1 < len(extra); i += 2 {
		h[extra[i]] = extra[i+1]
	}
	return fx.do(req{body: body, header: h})
}

func errorBody(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("status %d: Content-Type %q, want application/json", w.Code, ct)
	}
	var e map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
		t.Fatalf("status %d: body is not JSON: %v: %q", w.Code, err, w.Body)
	}
	msg, ok := e["error"].(string)
	if !ok || msg == "" || len(e) != 1 {
		t.Errorf("status %d: want exactly {\"error\": \"...\"}, got %s", w.Code, w.Body)
	}
	return msg
}

func TestCheckAnswersEveryDocumentedStatus(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, nil)
	id, _, _ := ParseToken(fx.token)
	okBody := `{"recipients":["b@army.ml"]}`
	json100 := `{"recipients":[` + strings.Repeat(`"a@b.c",`, 100) + `"a@b.c"]}`
	huge := `{"recipients":["` + strings.Repeat("x", MaxBody) + `@b.c"]}`
	auth := "Bearer " + fx.token
	ctJSON := "application/json"
	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   string
		header map[string]string
		want   int
		errHas string
	}{
		{name: "ok", body: okBody, want: 200},
		{name: "ok with charset", body: okBody, header: map[string]string{"Content-Type": "application/json; charset=utf-8"}, want: 200},
		{name: "ok lower-case bearer", body: okBody, header: map[string]string{"Authorization": "bearer " + fx.token}, want: 200},
		{name: "ok with sender", body: `{"sender":"Me <a@army.mil>","recipients":["b@army.ml"]}`, want: 200},
		{name: "ok with null sender", body: `{"sender":"<>","recipients":["b@army.ml"]}`, want: 200},
		{name: "no token", body: okBody, header: map[string]string{"Authorization": ""}, want: 401, errHas: "missing"},
		{name: "basic auth", body: okBody, header: map[string]string{"Authorization": "Basic dTpw"}, want: 401},
		{name: "malformed token", body: okBody, header: map[string]string{"Authorization": "Bearer stray_abc"}, want: 401},
		{name: "unknown id", body: okBody, header: map[string]string{"Authorization": "Bearer stray_zzzzzzzzzzzz_" + strings.Repeat("a", 52)}, want: 401},
		{name: "wrong secret", body: okBody, header: map[string]string{"Authorization": "Bearer stray_" + id + "_" + strings.Repeat("a", 52)}, want: 401},
		{name: "no content type", body: okBody, header: map[string]string{"Content-Type": ""}, want: 415},
		{name: "form content type", body: okBody, header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, want: 415},
		{name: "text content type", body: okBody, header: map[string]string{"Content-Type": "text/plain"}, want: 415},
		{name: "too large", body: huge, want: 413},
		{name: "not JSON", body: `recipients=a@b.c`, want: 400},
		{name: "empty body", body: ``, want: 400},
		{name: "truncated", body: `{"recipients":["a@b.c"`, want: 400},
		{name: "array", body: `["a@b.c"]`, want: 400},
		{name: "null", body: `null`, want: 400, errHas: "recipients"},
		{name: "unknown field", body: `{"recipients":["a@b.c"],"cc":["x@y.z"]}`, want: 400, errHas: "cc"},
		{name: "no recipients", body: `{"recipients":[]}`, want: 400, errHas: "recipients"},
		{name: "recipients missing", body: `{"sender":"a@army.mil"}`, want: 400, errHas: "recipients"},
		{name: "101 recipients", body: json100, want: 400, errHas: "101"},
		{name: "recipients not a list", body: `{"recipients":"a@b.c"}`, want: 400, errHas: "recipients"},
		{name: "recipient not a string", body: `{"recipients":[1]}`, want: 400},
		{name: "two values", body: okBody + okBody, want: 400},
		{name: "bad sender", body: `{"sender":"not an address","recipients":["a@b.c"]}`, want: 400, errHas: "sender"},
		{name: "GET check", method: "GET", want: 405},
		{name: "PUT check", method: "PUT", body: okBody, want: 405},
		{name: "no such path", path: "/api/v1/nope", want: 404},
		{name: "no such path v2", method: "GET", path: "/api/v2/check", want: 404},
		{name: "POST static", path: "/api/v1/demo", want: 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{"Authorization": auth, "Content-Type": ctJSON}
			for k, v := range tc.header {
				h[k] = v
			}
			w := fx.do(req{method: tc.method, path: tc.path, body: tc.body, header: h})
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.want, w.Body)
			}
			securityHeaders(t, w)
			if tc.want == 200 {
				return
			}
			if msg := errorBody(t, w); !strings.Contains(msg, tc.errHas) {
				t.Errorf("error %q does not mention %q", msg, tc.errHas)
			}
			if strings.Contains(w.Body.String(), fx.token[len(fx.token)-20:]) {
				t.Errorf("answer repeats the secret: %s", w.Body)
			}
			switch tc.want {
			case 401:
				if a := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(a, `Bearer realm="stray"`) {
					t.Errorf("WWW-Authenticate %q", a)
				}
			case 405:
				if w.Header().Get("Allow") == "" {
					t.Error("405 without Allow")
				}
			}
		})
	}
	if w := fx.do(req{method: "GET", path: "/api/v1/check"}); w.Header().Get("Allow") != "OPTIONS, POST" {
		t.Errorf("Allow %q, want \"OPTIONS, POST\"", w.Header().Get("Allow"))
	}
}

func securityHeaders(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	h := w.Header()
	if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("status %d: missing security headers: %v", w.Code, h)
	}
	if w.Code != 200 && w.Code != 304 || h.Get("Content-Type") == "application/json" {
		if h.Get("Cache-Control") != "no-store" {
			t.Errorf("status %d: Cache-Control %q, want no-store", w.Code, h.Get("Cache-Control"))
		}
	}
}

func TestStatusesServedAreTheDeclaredOnes(t *testing.T) {
	// Every status a route declares (and so openapi.yaml documents) is
	// really answered: 429 and 503 included.
	t.Parallel()
	seen := map[string]map[int]bool{}
	note := func(method string, code int) {
		if seen[method] == nil {
			seen[method] = map[int]bool{}
		}
		seen[method][code] = true
	}
	fx := newFixture(t, func(c *Config) { c.Rate, c.Burst = 1, 1; c.AllowedOrigins = []string{"https://mail.example.org"} })
	ok := `{"recipients":["b@army.ml"]}`
	note("POST", fx.check(ok).Code) // 200
	note("POST", fx.check(ok).Code) // 429
	fx.clock.advance(2 * time.Second)
	note("POST", fx.check(ok, "Authorization", "Bearer nope").Code) // 401
	note("POST", fx.check(ok, "Content-Type", "text/plain").Code)   // 415
	fx.clock.advance(2 * time.Second)
	note("POST", fx.check(`{"recipients":[]}`).Code) // 400
	fx.clock.advance(2 * time.Second)
	note("POST", fx.check(`{"recipients":["`+strings.Repeat("x", MaxBody)+`"]}`).Code) // 413
	fx2 := newFixture(t, nil)
	fx2.tokens.err = errors.New("database is down")
	note("POST", fx2.check(ok).Code)
	fx3 := newFixture(t, func(c *Config) { c.Gate = gateOf(nil) })
	note("POST", fx3.check(ok).Code)
	pre := func(origin string) int {
		return fx.do(req{method: "OPTIONS", header: map[string]string{"Origin": origin, "Access-Control-Request-Method": "POST"}}).Code
	}
	note("OPTIONS", pre("https://mail.example.org"))
	note("OPTIONS", pre("https://evil.example"))
	for _, rt := range routes() {
		if !strings.HasSuffix(rt.Path, "/check") {
			continue
		}
		var got []int
		for c := range seen[rt.Method] {
			got = append(got, c)
		}
		slices.Sort(got)
		if !slices.Equal(got, rt.Statuses) {
			t.Errorf("%s %s answered %v, declares %v", rt.Method, rt.Path, got, rt.Statuses)
		}
	}
}

// stray check's JSON for one address, as internal/cli writes it.
func strayCheckJSON(t *testing.T, c *detect.Checker, addr string) map[string]any {
	t.Helper()
	f, err := c.Check(addr)
	if err != nil {
		t.Fatalf("%s: %v", addr, err)
	}
	f.Address = strings.TrimSpace(addr)
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

type checkAnswer struct {
	Results []map[string]any `json:"results"`
	Flagged int              `json:"flagged"`
}

func decodeAnswer(t *testing.T, w *httptest.ResponseRecorder) checkAnswer {
	t.Helper()
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var a checkAnswer
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		t.Fatalf("%v: %s", err, w.Body)
	}
	return a
}

func TestBatchResultsAreStrayCheckFindingsWithActionAndMessage(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, nil)
	addrs := []string{"b@army.ml", "j@gmial.com", "ok@ymail.com", " Bob <c@army.mil> ", "k@gmаil.com", "not an address", ""}
	body, _ := json.Marshal(CheckRequest{Sender: "a@army.mil", Recipients: addrs})
	w := fx.check(string(body))
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	a := decodeAnswer(t, w)
	if len(a.Results) != len(addrs) {
		t.Fatalf("%d results for %d recipients", len(a.Results), len(addrs))
	}
	c := fx.srv.cfg.Gate.Engine().Checker
	want := []struct {
		verdict, suggestion, action string
		err                         bool
	}{
		{"block", "b@army.mil", "reject", false},
		{"hold", "j@gmail.com", "hold", false},
		{"ok", "", "pass", false},
		{"ok", "", "pass", false},
		{"block", "k@gmail.com", "reject", false},
		// Issue 11: an unparsable address is invalid, never ok; the MTA
		// decides what to do with it (pass), and the client is told.
		{"invalid", "", "pass", true},
		{"invalid", "", "pass", true},
	}
	flagged := 0
	for i, r := range a.Results {
		w := want[i]
		if r["verdict"] != w.verdict || r["action"] != w.action {
			t.Errorf("%q: verdict %v action %v, want %s %s", addrs[i], r["verdict"], r["action"], w.verdict, w.action)
		}
		if w.suggestion != "" && r["suggestion"] != w.suggestion {
			t.Errorf("%q: suggestion %v, want %s", addrs[i], r["suggestion"], w.suggestion)
		}
		if _, has := r["error"]; has != w.err {
			t.Errorf("%q: error present %v, want %v: %v", addrs[i], has, w.err, r)
		}
		for _, k := range []string{"address", "verdict", "intended", "suggestion", "score", "reasons", "action"} {
			if _, ok := r[k]; !ok {
				t.Errorf("%q: no %q", addrs[i], k)
			}
		}
		if r["address"] != strings.TrimSpace(addrs[i]) {
			t.Errorf("address %v, want %q", r["address"], strings.TrimSpace(addrs[i]))
		}
		msg, _ := r["message"].(string)
		if (w.verdict != "ok") != (msg != "") {
			t.Errorf("%q: message %q for verdict %s", addrs[i], msg, w.verdict)
		}
		if w.verdict != "ok" {
			flagged++
		}
		if w.err {
			continue
		}
		// The stray check fields are exactly stray check's.
		for k, v := range strayCheckJSON(t, c, addrs[i]) {
			if !reflect.DeepEqual(r[k], v) {
				t.Errorf("%q: %s = %v, stray check says %v", addrs[i], k, r[k], v)
			}
		}
	}
	if a.Flagged != flagged {
		t.Errorf("flagged %d, want %d", a.Flagged, flagged)
	}
	if m := a.Results[0]["message"]; m != "b@army.ml looks like a typo of army.mil; did you mean b@army.mil?" {
		t.Errorf("message %q", m)
	}
}

func TestCheckAppliesThePolicyAtSendTime(t *testing.T) {
	t.Parallel()
	pc := policy.Config{Allow: []string{"partner.ml"}, Deny: []string{".cm"}, Actions: map[policy.VerdictName]policy.ActionName{"hold": "warn"},
		Scopes: []policy.Scope{{Senders: []string{".navy.mil"}, Actions: map[policy.VerdictName]policy.ActionName{"block": "tempfail"}}}}
	e := engine(t, pc)
	fx := newFixture(t, func(c *Config) { c.Gate = gateOf(e) })
	a := decodeAnswer(t, fx.check(`{"recipients":["x@partner.ml","y@shop.cm","j@gmial.com","b@army.ml"]}`))
	got := []string{}
	for _, r := range a.Results {
		got = append(got, fmt.Sprint(r["verdict"], "/", r["action"]))
	}
	if want := []string{"ok/pass", "block/reject", "hold/warn", "block/reject"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	a = decodeAnswer(t, fx.check(`{"sender":"s@ships.navy.mil","recipients":["b@army.ml"]}`))
	if a.Results[0]["action"] != "tempfail" {
		t.Errorf("scoped sender: action %v, want tempfail", a.Results[0]["action"])
	}
	audit := engine(t, policy.Config{Mode: "audit"})
	fx = newFixture(t, func(c *Config) { c.Gate = gateOf(audit) })
	if a := decodeAnswer(t, fx.check(`{"recipients":["b@army.ml"]}`)); a.Results[0]["action"] != "log" || a.Results[0]["verdict"] != "block" {
		t.Errorf("audit mode: %v", a.Results[0])
	}
}

func TestCheckUsesTheEngineOfTheMoment(t *testing.T) {
	t.Parallel()
	g := gateOf(engine(t, policy.Config{}))
	fx := newFixture(t, func(c *Config) { c.Gate = g })
	if a := decodeAnswer(t, fx.check(`{"recipients":["b@army.ml"]}`)); a.Results[0]["verdict"] != "block" {
		t.Fatalf("before reload: %v", a.Results[0])
	}
	g.Swap(engine(t, policy.Config{Allow: []string{"army.ml"}}))
	if a := decodeAnswer(t, fx.check(`{"recipients":["b@army.ml"]}`)); a.Results[0]["verdict"] != "ok" {
		t.Fatalf("after reload: %v", a.Results[0])
	}
}

func TestTokenVerification(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, func(c *Config) { c.AuthFailRate = -1 })
	id, secret, ok := ParseToken(fx.token)
	if !ok {
		t.Fatalf("NewToken made %q, which ParseToken refuses", fx.token)
	}
	other := fx.tokens.add(t, "other")
	oid, _, _ := ParseToken(other)
	body := `{"recipients":["a@gmail.com"]}`
	for _, tc := range []struct {
		name, header string
		want         int
	}{
		{"valid", "Bearer " + fx.token, 200},
		{"valid, spaces", "Bearer   " + fx.token + "  ", 200},
		{"other valid", "Bearer " + other, 200},
		{"wrong secret", "Bearer stray_" + id + "_" + strings.Repeat("b", len(secret)), 401},
		{"other's secret", "Bearer stray_" + oid + "_" + secret, 401},
		{"secret one off", "Bearer stray_" + id + "_" + lastChanged(secret), 401},
		{"unknown id", "Bearer stray_" + strings.Repeat("0", 12) + "_" + secret, 401},
		{"no prefix", "Bearer " + id + "_" + secret, 401},
		{"upper case", "Bearer " + strings.ToUpper(fx.token), 401},
		{"no secret", "Bearer stray_" + id + "_", 401},
		{"short id", "Bearer stray_abc_" + secret, 401},
		{"bad characters", "Bearer stray_" + id + "_" + secret[:20] + "!" + secret[21:], 401},
		{"no scheme", fx.token, 401},
		{"token scheme", "Token " + fx.token, 401},
		{"empty bearer", "Bearer ", 401},
		{"two tokens", "Bearer " + fx.token + " " + fx.token, 401},
	} {
		w := fx.check(body, "Authorization", tc.header)
		if w.Code != tc.want {
			t.Errorf("%s: status %d, want %d: %s", tc.name, w.Code, tc.want, w.Body)
		}
		if tc.want == 401 && w.Header().Get("WWW-Authenticate") != `Bearer realm="stray", error="invalid_token"` {
			t.Errorf("%s: WWW-Authenticate %q", tc.name, w.Header().Get("WWW-Authenticate"))
		}
	}
}

func TestTokenLookupsAreCachedForTheTTL(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, func(c *Config) { c.TokenCacheTTL = 30 * time.Second; c.AuthFailRate = -1 })
	id, _, _ := ParseToken(fx.token)
	body := `{"recipients":["a@gmail.com"]}`
	for i := 0; i < 5; i++ {
		if w := fx.check(body); w.Code != 200 {
			t.Fatalf("status %d", w.Code)
		}
	}
	if n := fx.tokens.lookups(); n != 1 {
		t.Errorf("%d store lookups for 5 requests, want 1", n)
	}
	// A wrong secret for a cached ID is refused from the cache.
	if w := fx.check(body, "Authorization", "Bearer stray_"+id+"_"+strings.Repeat("a", 52)); w.Code != 401 {
		t.Errorf("wrong secret, cached ID: status %d", w.Code)
	}
	if n := fx.tokens.lookups(); n != 1 {
		t.Errorf("wrong secret went to the store")
	}
	// Revoked: still accepted within the TTL, refused after it.
	fx.tokens.remove(id)
	fx.clock.advance(29 * time.Second)
	if w := fx.check(body); w.Code != 200 {
		t.Errorf("within the TTL after revocation: status %d", w.Code)
	}
	fx.clock.advance(time.Second)
	if w := fx.check(body); w.Code != 401 {
		t.Errorf("after the TTL: status %d, want 401", w.Code)
	}
	if n := fx.tokens.lookups(); n != 2 {
		t.Errorf("%d lookups, want 2", n)
	}
	// Failures are not cached: a token added later works at once.
	late := fx.tokens.add(t, "late")
	if w := fx.check(body, "Authorization", "Bearer "+late); w.Code != 200 {
		t.Errorf("new token: status %d", w.Code)
	}
}

func TestNoTokenCacheAsksTheStoreEveryTime(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, func(c *Config) { c.TokenCacheTTL = -1 })
	for i := 0; i < 3; i++ {
		fx.check(`{"recipients":["a@gmail.com"]}`)
	}
	if n := fx.tokens.lookups(); n != 3 {
		t.Errorf("%d lookups, want 3", n)
	}
}

func TestTokenCacheIsBounded(t *testing.T) {
	t.Parallel()
	c := newTokenCache(time.Minute, 4)
	now := time.Unix(0, 0)
	for i := 0; i < 100; i++ {
		c.put(fmt.Sprint(i), "h", now)
		if c.len() > 4 {
			t.Fatalf("%d entries, max 4", c.len())
		}
	}
	if _, ok := c.get("99", now); !ok {
		t.Error("the newest entry was dropped")
	}
	if _, ok := c.get("99", now.Add(time.Minute)); ok {
		t.Error("expired entry returned")
	}
}

func TestPerTokenRateLimitAnswers429ThenRecovers(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, func(c *Config) { c.Rate, c.Burst = 2, 3 })
	other := fx.tokens.add(t, "other")
	body := `{"recipients":["a@gmail.com"]}`
	for i := 0; i < 3; i++ {
		if w := fx.check(body); w.Code != 200 {
			t.Fatalf("request %d in the burst: %d", i+1, w.Code)
		}
	}
	w := fx.check(body)
	if w.Code != 429 {
		t.Fatalf("over the burst: %d, want 429", w.Code)
	}
	if ra := w.Header().Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After %q, want 1", ra)
	}
	errorBody(t, w)
	if w := fx.check(body, "Authorization", "Bearer "+other); w.Code != 200 {
		t.Errorf("another token is limited too: %d", w.Code)
	}
	fx.clock.advance(500 * time.Millisecond) // one token back at 2/s
	if w := fx.check(body); w.Code != 200 {
		t.Errorf("after 0.5 s: %d, want 200", w.Code)
	}
	if w := fx.check(body); w.Code != 429 {
		t.Errorf("again: %d, want 429", w.Code)
	}
	fx.clock.advance(10 * time.Second)
	for i := 0; i < 3; i++ {
		if w := fx.check(body); w.Code != 200 {
			t.Fatalf("after recovery, request %d: %d", i+1, w.Code)
		}
	}
}

func TestFailedAuthenticationsAreLimitedPerClient(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, func(c *Config) { c.AuthFailRate, c.AuthFailBurst = 1, 3 })
	fresh := fx.tokens.add(t, "fresh")
	body := `{"recipients":["a@gmail.com"]}`
	const attacker, neighbour = "192.0.2.1:1234", "192.0.2.2:1234"
	send := func(remote, token string) *httptest.ResponseRecorder {
		return fx.do(req{body: body, remote: remote, header: map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/json"}})
	}
	// The valid token is verified (and cached) before the attack.
	if w := send(attacker, fx.token); w.Code != 200 {
		t.Fatalf("valid: %d", w.Code)
	}
	guess := "stray_" + strings.Repeat("1", 12) + "_" + strings.Repeat("a", 52)
	for i := 0; i < 3; i++ {
		if w := send(attacker, guess); w.Code != 401 {
			t.Fatalf("guess %d: %d, want 401", i+1, w.Code)
		}
	}
	lookups := fx.tokens.lookups()
	w := send(attacker, guess)
	if w.Code != 429 || w.Header().Get("Retry-After") == "" {
		t.Fatalf("guess 4: %d (Retry-After %q), want 429", w.Code, w.Header().Get("Retry-After"))
	}
	if fx.tokens.lookups() != lookups {
		t.Error("a limited client still reaches the store")
	}
	if w := send(attacker, fx.token); w.Code != 200 {
		t.Errorf("cached valid token from the limited client: %d, want 200", w.Code)
	}
	if w := send(attacker, fresh); w.Code != 429 {
		t.Errorf("uncached token from the limited client: %d, want 429", w.Code)
	}
	if w := send(neighbour, guess); w.Code != 401 {
		t.Errorf("another client: %d, want 401", w.Code)
	}
	fx.clock.advance(time.Second)
	if w := send(attacker, guess); w.Code != 401 {
		t.Errorf("after a second: %d, want 401", w.Code)
	}
	// IPv6 clients are counted per /64.
	for i := 0; i < 3; i++ {
		send(fmt.Sprintf("[2001:db8::%d]:1", i+1), guess)
	}
	if w := send("[2001:db8::ffff]:1", guess); w.Code != 429 {
		t.Errorf("same /64: %d, want 429", w.Code)
	}
	if w := send("[2001:db8:0:1::1]:1", guess); w.Code != 401 {
		t.Errorf("other /64: %d, want 401", w.Code)
	}
}

func TestClientIPHookKeysTheFailureLimit(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, func(c *Config) {
		c.AuthFailRate, c.AuthFailBurst = 1, 1
		c.ClientIP = func(r *http.Request) string { return r.Header.Get("X-Real-IP") }
	})
	send := func(ip string) int {
		return fx.check(`{"recipients":["a@b.c"]}`, "Authorization", "Bearer nope", "X-Real-IP", ip).Code
	}
	if a, b, c := send("198.51.100.1"), send("198.51.100.1"), send("198.51.100.2"); a != 401 || b != 429 || c != 401 {
		t.Errorf("got %d %d %d, want 401 429 401", a, b, c)
	}
}

func TestLimiterIsBounded(t *testing.T) {
	t.Parallel()
	l := newLimiter(1, 2, 10)
	now := time.Unix(0, 0)
	for i := 0; i < 1000; i++ {
		l.take(fmt.Sprint(i), now)
		if l.len() > 10 {
			t.Fatalf("%d buckets, max 10", l.len())
		}
	}
	// Keys beyond the busy ten share one overflow bucket, now empty.
	if ok, _ := l.take("new1", now); ok {
		t.Error("overflow bucket not shared")
	}
	if ok, _ := l.take("1", now); !ok {
		t.Error("a known client suffers from the flood")
	}
	// Once they refill, old buckets make room.
	now = now.Add(time.Hour)
	if ok, _ := l.take("new4", now); !ok || l.len() > 10 {
		t.Errorf("after refill: %v, %d buckets", ok, l.len())
	}
}

func TestCORS(t *testing.T) {
	t.Parallel()
	const mail = "https://mail.example.org"
	fx := newFixture(t, func(c *Config) { c.AllowedOrigins = []string{"HTTPS://Mail.Example.org/", "http://localhost:8080"} })
	pre := func(fx *fixture, origin, method string, extra ...string) *httptest.ResponseRecorder {
		h := map[string]string{"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": "authorization,content-type"}
		for i := 0; i+1 < len(extra); i += 2 {
			h[extra[i]] = extra[i+1]
		}
		return fx.do(req{method: "OPTIONS", header: h})
	}
	w := pre(fx, mail, "POST", "Access-Control-Request-Private-Network", "true")
	if w.Code != 204 {
		t.Fatalf("allowed preflight: %d %s", w.Code, w.Body)
	}
	h := w.Header()
	for k, v := range map[string]string{
		"Access-Control-Allow-Origin":          mail,
		"Access-Control-Allow-Methods":         "POST",
		"Access-Control-Allow-Headers":         "Authorization, Content-Type",
		"Access-Control-Max-Age":               "600",
		"Access-Control-Allow-Private-Network": "true",
	} {
		if h.Get(k) != v {
			t.Errorf("%s: %q, want %q", k, h.Get(k), v)
		}
	}
	if !strings.Contains(h.Get("Vary"), "Origin") {
		t.Errorf("Vary %q", h.Get("Vary"))
	}
	if h.Get("Access-Control-Allow-Credentials") != "" {
		t.Error("credentials allowed")
	}
	for _, tc := range []struct{ origin, method string }{
		{"https://evil.example", "POST"},
		{"https://mail.example.org.evil.example", "POST"},
		{"http://mail.example.org", "POST"}, // scheme matters
		{"https://mail.example.org:8443", "POST"},
		{"null", "POST"},
		{"", "POST"},
		{mail, "DELETE"},
	} {
		w := pre(fx, tc.origin, tc.method)
		if w.Code != 403 || w.Header().Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight %q %s: %d, ACAO %q; want 403 without", tc.origin, tc.method, w.Code, w.Header().Get("Access-Control-Allow-Origin"))
		}
	}
	// The actual requests: allowed origin sees the answer, errors included.
	body := `{"recipients":["a@gmail.com"]}`
	for _, w := range []*httptest.ResponseRecorder{fx.check(body, "Origin", mail), fx.check(body, "Origin", mail, "Authorization", "")} {
		if w.Header().Get("Access-Control-Allow-Origin") != mail || !strings.Contains(w.Header().Get("Access-Control-Expose-Headers"), "Retry-After") {
			t.Errorf("status %d from an allowed origin: headers %v", w.Code, w.Header())
		}
	}
	if w := fx.check(body, "Origin", "https://evil.example"); w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Error("ACAO for a foreign origin")
	}
	if w := fx.check(body, "Origin", "http://localhost:8080"); w.Header().Get("Access-Control-Allow-Origin") != "http://localhost:8080" {
		t.Error("second origin not allowed")
	}

	// None configured: no CORS headers at all.
	none := newFixture(t, nil)
	for _, w := range []*httptest.ResponseRecorder{pre(none, mail, "POST"), none.check(body, "Origin", mail)} {
		for k := range w.Header() {
			if strings.HasPrefix(k, "Access-Control-") || k == "Vary" {
				t.Errorf("no origins configured, status %d: header %s", w.Code, k)
			}
		}
	}
	if w := pre(none, mail, "POST"); w.Code != 403 {
		t.Errorf("no origins configured: preflight %d, want 403", w.Code)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	e := engine(t, policy.Config{})
	ok := Config{Gate: gateOf(e), Tokens: &fakeTokens{}}
	if _, err := New(ok); err != nil {
		t.Fatal(err)
	}
	for _, mod := range []func(*Config){
		func(c *Config) { c.Gate = nil },
		func(c *Config) { c.Tokens = nil },
		func(c *Config) { c.AllowedOrigins = []string{"*"} },
		func(c *Config) { c.AllowedOrigins = []string{"mail.example.org"} },
		func(c *Config) { c.AllowedOrigins = []string{"https://mail.example.org/inbox"} },
		func(c *Config) { c.AllowedOrigins = []string{"ftp://mail.example.org"} },
		func(c *Config) { c.Burst = -1 },
	} {
		c := ok
		mod(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func TestNewTokenMakesParsableUniqueTokens(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		plain, tok, err := NewToken("add-in", "admin")
		if err != nil {
			t.Fatal(err)
		}
		id, secret, ok := ParseToken(plain)
		if !ok || id != tok.ID || len(id) != 12 || len(secret) != 52 {
			t.Fatalf("%q: id %q secret %d chars ok %v", plain, id, len(secret), ok)
		}
		if tok.Hash != HashSecret(secret) || len(tok.Hash) != 64 || strings.Contains(tok.Hash, secret) {
			t.Fatalf("hash %q", tok.Hash)
		}
		if tok.Name != "add-in" || tok.CreatedBy != "admin" || tok.CreatedAt.IsZero() {
			t.Fatalf("%+v", tok)
		}
		if seen[id] || seen[secret] {
			t.Fatal("repeated id or secret")
		}
		seen[id], seen[secret] = true, true
	}
}

func TestSecretsAndRecipientsAreNeverLogged(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	fx := newFixture(t, func(c *Config) {
		c.Log = slogTo(&buf)
	})
	_, secret, _ := ParseToken(fx.token)
	fx.check(`{"recipients":["secret-person@army.ml"]}`)
	fx.check(`{"recipients":["a@b.c"]}`, "Authorization", "Bearer "+lastChanged(fx.token))
	fx.check(`{"recipients":["a@b.c"]}`, "Authorization", "Bearer stray_"+strings.Repeat("9", 12)+"_"+secret)
	fx.tokens.err = errors.New("db down")
	fx.srv.cache = newTokenCache(time.Second, 4)
	fx.check(`{"recipients":["a@b.c"]}`)
	log := buf.String()
	if !strings.Contains(log, "authentication failed") || !strings.Contains(log, "token lookup failed") {
		t.Errorf("expected lines missing:\n%s", log)
	}
	for _, bad := range []string{secret, secret[:16], "secret-person", "army.ml"} {
		if strings.Contains(log, bad) {
			t.Errorf("log contains %q:\n%s", bad, log)
		}
	}
}

func TestStaticFilesAndDemoPage(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, nil)
	for _, tc := range []struct{ path, ctype, has string }{
		{"/api/v1/openapi.yaml", "application/yaml; charset=utf-8", "openapi: 3.1"},
		{"/api/v1/stray-check.js", "text/javascript; charset=utf-8", "data-stray-check"},
		{"/api/v1/stray-check.css", "text/css; charset=utf-8", ".stray-check-item"},
		{"/api/v1/demo", "text/html; charset=utf-8", `data-stray-check`},
		{"/api/v1/demo.js", "text/javascript; charset=utf-8", "sessionStorage"},
		{"/api/v1/demo.css", "text/css; charset=utf-8", "main"},
	} {
		w := fx.do(req{method: "GET", path: tc.path})
		if w.Code != 200 || w.Header().Get("Content-Type") != tc.ctype || !strings.Contains(w.Body.String(), tc.has) {
			t.Errorf("GET %s: %d %q, body has %q: %v", tc.path, w.Code, w.Header().Get("Content-Type"), tc.has, strings.Contains(w.Body.String(), tc.has))
		}
		securityHeaders(t, w)
		etag := w.Header().Get("ETag")
		w2 := fx.do(req{method: "GET", path: tc.path, header: map[string]string{"If-None-Match": "W/" + etag}})
		if etag == "" || w2.Code != 304 || w2.Body.Len() != 0 {
			t.Errorf("GET %s with If-None-Match: %d", tc.path, w2.Code)
		}
	}
	w := fx.do(req{method: "GET", path: "/api/v1/demo"})
	if csp := w.Header().Get("Content-Security-Policy"); csp != "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'" {
		t.Errorf("demo CSP %q", csp)
	}
	if w.Header().Get("X-Frame-Options") != "DENY" {
		t.Error("demo can be framed")
	}
}

// Nothing inline anywhere (the demo's CSP forbids it), and nothing the
// snippet does needs 'unsafe-inline' or 'unsafe-eval'.
func TestNoInlineScriptsStylesOrEval(t *testing.T) {
	t.Parallel()
	html, _ := files.ReadFile("static/demo.html")
	page := strings.ToLower(string(html))
	for _, bad := range []string{"<style", " style=", "javascript:", " onclick", " onload", " oninput", " onsubmit", " onchange"} {
		if strings.Contains(page, bad) {
			t.Errorf("demo.html has %q", bad)
		}
	}
	for _, tag := range strings.Split(page, "<script")[1:] {
		if !strings.Contains(tag[:strings.Index(tag, ">")], "src=") || !strings.HasPrefix(tag[strings.Index(tag, ">")+1:], "</script>") {
			t.Errorf("inline script: <script%s", tag[:min(80, len(tag))])
		}
	}
	for _, f := range []string{"static/stray-check.js", "static/demo.js"} {
		js, _ := files.ReadFile(f)
		code := stripComments(string(js))
		for _, bad := range []string{"eval(", "new Function", "innerHTML", "outerHTML", "insertAdjacentHTML", ".style", `"style"`, "document.write", "import(", "require(", "setTimeout(\"", "http://", "https://"} {
			if strings.Contains(code, bad) {
				t.Errorf("%s uses %q", f, bad)
			}
		}
	}
	// The ids demo.js looks up are on the page.
	js, _ := files.ReadFile("static/demo.js")
	for _, id := range []string{"stray-demo-token", "stray-demo-token-form", "stray-demo-from", "stray-demo-form", "stray-demo-result", "to", "cc"} {
		if !strings.Contains(string(js), `"`+id+`"`) || !strings.Contains(string(html), `id="`+id+`"`) {
			t.Errorf("id %q not used by demo.js or not on the page", id)
		}
	}
}

func stripComments(js string) string {
	var b strings.Builder
	for _, l := range strings.Split(js, "\n") {
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "//") || strings.HasPrefix(t, "*") || strings.HasPrefix(t, "/*") {
			continue
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}

func TestMetricsCountRequests(t *testing.T) {
	t.Parallel()
	reg := newRegistry()
	fx := newFixture(t, func(c *Config) { c.Registerer = reg })
	fx.check(`{"recipients":["a@b.c"]}`)
	fx.check(`{"recipients":["a@b.c"]}`, "Authorization", "")
	fx.do(req{method: "GET", path: "/api/v1/demo"})
	got := gatherCounts(t, reg, "stray_api_requests_total")
	for _, want := range []string{"check/200", "check/401", "demo/200"} {
		if got[want] != 1 {
			t.Errorf("%s counted %v times: %v", want, got[want], got)
		}
	}
}

func TestBodyWithoutLengthIsCutAt64KiB(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, nil)
	body := `{"recipients":["` + strings.Repeat("x", MaxBody) + `@b.c"]}`
	r := httptest.NewRequest("POST", "/api/v1/check", io.MultiReader(strings.NewReader(body)))
	r.ContentLength = -1
	r.Header.Set("Authorization", "Bearer "+fx.token)
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	fx.h.ServeHTTP(w, r)
	if w.Code != 413 {
		t.Fatalf("status %d, want 413", w.Code)
	}
	errorBody(t, w)
	// Exactly at the limit is fine.
	pad := MaxBody - len(`{"recipients":["a@b.c"]}`)
	ok := `{"recipients":["a@b.c"]}` + strings.Repeat(" ", pad)
	if w := fx.check(ok); w.Code != 200 {
		t.Errorf("body of exactly %d bytes: %d", len(ok), w.Code)
	}
}

// Issue 12: the API decided beside the gate (Checker.Check and
// Policy.Decide) and drifted from the MTA front ends: a recipient routed
// through a lookalike (b%army.ml@army.mil) was ok for the API and refused
// at RCPT. Every recipient the MTA would see gets the MTA's decision.
func TestCheckDecidesEveryRecipientLikeTheMTAFrontEnds(t *testing.T) {
	t.Parallel()
	e := engine(t, policy.Config{Allow: []string{"partner.ml"}})
	g := gateOf(e)
	fx := newFixture(t, func(c *Config) { c.Gate = g })
	for _, rcpt := range []string{"b@army.ml", "b%army.ml@army.mil", "army.ml!b@army.mil", "@army.mil:b@army.ml", "j@[192.0.2.1]",
		"x@partner.ml", "j@gmial.com", "ok@gmail.com"} {
		t.Run(rcpt, func(t *testing.T) {
			body, _ := json.Marshal(CheckRequest{Sender: "a@army.mil", Recipients: []string{rcpt}})
			a := decodeAnswer(t, fx.check(string(body)))
			s := g.NewSession("milter", nil)
			s.Mail("a@army.mil")
			want := s.Rcpt(rcpt).Decision
			if a.Results[0]["verdict"] != want.Finding.Verdict.String() || a.Results[0]["action"] != want.Action.String() {
				t.Errorf("API %v/%v, MTA front ends %v/%v", a.Results[0]["verdict"], a.Results[0]["action"], want.Finding.Verdict, want.Action)
			}
		})
	}
}
