package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/address"
	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/policy"
	"github.com/stray-mail/stray/internal/store"
)

// Prefix is where the API lives; Handler serves every path below it.
const Prefix = "/api/v1/"

// Request limits.
const (
	// MaxBody is the largest request body accepted (413 above it).
	MaxBody = 64 << 10
	// MaxRecipients is the largest batch (400 above it).
	MaxRecipients = 100
)

// Defaults for the zero values of Config's limits.
const (
	DefaultRate          = 20               // requests per second per token
	DefaultBurst         = 40               // per token
	DefaultAuthFailRate  = 1.0              // failed authentications per second per client address
	DefaultAuthFailBurst = 10               // per client address
	DefaultTokenCacheTTL = 30 * time.Second // how long a verified token is trusted without the store
	tokenCacheSize       = 1024             // verified tokens kept at most
	limiterSize          = 10000            // rate-limit buckets kept at most, per limiter
)

// Config configures a Server. Gate and Tokens are required; the zero value
// of everything else is a sensible default.
type Config struct {
	// Gate decides, as for the MTA front ends (its current engine, so
	// that a reload takes effect at once); nothing the API checks is
	// recorded.
	Gate *gate.Gate
	// Tokens finds API tokens by ID (the store).
	Tokens TokenStore
	// Log receives one debug line per check and an info line per failed
	// authentication (client address and token ID, never the secret).
	// Nil logs nowhere.
	Log *slog.Logger

	// Rate is the sustained number of check requests per second allowed
	// for one token, Burst how many it may make at once. 0: DefaultRate
	// and DefaultBurst; a negative Rate switches the limit off.
	Rate  float64
	Burst int
	// AuthFailRate and AuthFailBurst bound failed authentications per
	// client address (IPv6 per /64): once a client has used them up, it
	// gets 429 for any token not already verified, until the bucket
	// refills. 0: DefaultAuthFailRate and DefaultAuthFailBurst; a negative
	// rate switches the limit off.
	AuthFailRate  float64
	AuthFailBurst int
	// TokenCacheTTL is how long a verified token is trusted without asking
	// the store again: a deleted token keeps working for at most this
	// long. 0: DefaultTokenCacheTTL; negative: ask the store every time.
	TokenCacheTTL time.Duration

	// AllowedOrigins are the web origins ("https://mail.example.org",
	// scheme, host and port exactly as a browser sends them) whose pages
	// may call the check API. Empty: no CORS headers at all, so only
	// same-origin pages and non-browser clients can call it.
	AllowedOrigins []string
	// ClientIP returns the client's address for the failed-authentication
	// limit; nil: the connection's peer address (set it when stray is
	// behind a reverse proxy).
	ClientIP func(*http.Request) string
	// Now is the clock (tests); nil: time.Now.
	Now func() time.Time
	// Registerer, when set, registers the API's metrics.
	Registerer prometheus.Registerer
}

// TokenStore finds API tokens; store.Store implements it. GetToken returns
// an error wrapping store.ErrNotFound for an unknown ID.
type TokenStore interface {
	GetToken(ctx context.Context, id string) (*store.Token, error)
}

// Server is the HTTP check API. It is safe for concurrent use.
type Server struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	origins  map[string]bool
	cache    *tokenCache
	perToken *limiter // nil: unlimited
	authFail *limiter // nil: unlimited
	metrics  *metrics
}

// New checks c and makes a Server.
func New(c Config) (*Server, error) {
	var probs []string
	if c.Gate == nil {
		probs = append(probs, "Gate is required")
	}
	if c.Tokens == nil {
		probs = append(probs, "Tokens is required")
	}
	s := &Server{cfg: c, log: c.Log, now: c.Now, origins: map[string]bool{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	for i, o := range c.AllowedOrigins {
		n, err := normalizeOrigin(o)
		if err != nil {
			probs = append(probs, fmt.Sprintf("AllowedOrigins[%d]: %v", i, err))
			continue
		}
		s.origins[n] = true
	}
	if c.Burst < 0 || c.AuthFailBurst < 0 {
		probs = append(probs, "Burst and AuthFailBurst must not be negative")
	}
	if len(probs) > 0 {
		return nil, fmt.Errorf("api: %s", strings.Join(probs, "; "))
	}
	s.perToken = newLimiterOrNil(c.Rate, c.Burst, DefaultRate, DefaultBurst)
	s.authFail = newLimiterOrNil(c.AuthFailRate, c.AuthFailBurst, DefaultAuthFailRate, DefaultAuthFailBurst)
	ttl := c.TokenCacheTTL
	if ttl == 0 {
		ttl = DefaultTokenCacheTTL
	}
	s.cache = newTokenCache(ttl, tokenCacheSize)
	s.metrics = newMetrics(c.Registerer)
	return s, nil
}

func newLimiterOrNil(rate float64, burst int, defRate float64, defBurst int) *limiter {
	if rate < 0 {
		return nil
	}
	if rate == 0 {
		rate = defRate
	}
	if burst == 0 {
		burst = defBurst
	}
	return newLimiter(rate, burst, limiterSize)
}

// normalizeOrigin checks an origin ("https://mail.example.org[:port]") and
// returns it as browsers send it: lower-case scheme and host, no path.
func normalizeOrigin(o string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(o))
	if err != nil {
		return "", fmt.Errorf("%q: %v", o, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q: want an origin such as https://mail.example.org (scheme, host, optional port)", o)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

type metrics struct {
	requests *prometheus.CounterVec
	latency  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stray_api_requests_total",
			Help: "HTTP API requests, by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "stray_api_check_seconds",
			Help:    "Time to answer a check request that passed authentication.",
			Buckets: []float64{5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 5e-2},
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency)
	}
	return m
}

// route is one path and method the handler serves, with every status it
// may answer. openapi_test.go checks that openapi.yaml documents exactly
// these; 404 (no such path) and 405 (no such method) can be answered for
// any path and are documented once, as components.responses.
type route struct {
	Path     string
	Method   string
	Statuses []int
	serve    func(s *Server, w http.ResponseWriter, r *http.Request)
}

// routes is what Handler serves.
func routes() []route {
	rs := []route{
		{Path: Prefix + "check", Method: http.MethodPost, serve: (*Server).check,
			Statuses: []int{200, 400, 401, 413, 415, 429, 503}},
		{Path: Prefix + "check", Method: http.MethodOptions, serve: (*Server).preflight,
			Statuses: []int{204, 403}},
	}
	for _, a := range assets {
		rs = append(rs, route{Path: Prefix + a.path, Method: http.MethodGet, Statuses: []int{200, 304},
			serve: func(s *Server, w http.ResponseWriter, r *http.Request) { s.asset(w, r, a) }})
	}
	return rs
}

// Handler serves the API under /api/v1/.
func (s *Server) Handler() http.Handler {
	byPath := map[string]map[string]route{}
	for _, rt := range routes() {
		if byPath[rt.Path] == nil {
			byPath[rt.Path] = map[string]route{}
		}
		byPath[rt.Path][rt.Method] = rt
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		methods, ok := byPath[r.URL.Path]
		if !ok {
			h.Set("Cache-Control", "no-store")
			writeError(w, http.StatusNotFound, "no such API path: see "+Prefix+"openapi.yaml")
			s.count("other", http.StatusNotFound)
			return
		}
		rt, ok := methods[r.Method]
		if !ok {
			allow := make([]string, 0, len(methods))
			for m := range methods {
				allow = append(allow, m)
			}
			slices.Sort(allow)
			h.Set("Allow", strings.Join(allow, ", "))
			h.Set("Cache-Control", "no-store")
			s.cors(h, r)
			writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: use "+strings.Join(allow, " or "))
			s.count(strings.TrimPrefix(r.URL.Path, Prefix), http.StatusMethodNotAllowed)
			return
		}
		rt.serve(s, w, r)
	})
}

func (s *Server) count(route string, code int) {
	s.metrics.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
}

// CheckRequest is the body of POST /api/v1/check.
type CheckRequest struct {
	// Sender is the address the message will be sent from (optional): the
	// policy may treat senders differently (scopes).
	Sender string `json:"sender,omitempty"`
	// Recipients are the addresses to check, 1 to MaxRecipients, each as
	// typed ("b@army.ml", "<b@army.ml>", "Bob <b@army.ml>").
	Recipients []string `json:"recipients"`
}

// CheckResponse is the answer to POST /api/v1/check.
type CheckResponse struct {
	// Results has one element per recipient, in request order.
	Results []Result `json:"results"`
	// Flagged is how many results have a verdict other than ok (invalid
	// addresses included).
	Flagged int `json:"flagged"`
}

// Result is the answer for one recipient: the fields of `stray check
// --format json` (detect.Finding.MarshalJSON, with address as given), what
// the policy would do when the message is sent, and a sentence for people.
type Result struct {
	Address string `json:"address"`
	// Verdict is the engine's (ok, warn, hold, block), or detect.Invalid
	// for an address that cannot be parsed.
	Verdict    string          `json:"verdict"`
	Intended   *string         `json:"intended"`
	Suggestion *string         `json:"suggestion"`
	Score      float64         `json:"score"`
	Reasons    []detect.Reason `json:"reasons"`
	// Action is what stray would do with this recipient at send time
	// (policy.Decide): reject, tempfail, hold, warn, log or pass.
	Action policy.Action `json:"action"`
	// Message is gate.Describe's sentence, when flagged.
	Message string `json:"message,omitempty"`
	// Error says why the address could not be parsed (verdict invalid,
	// action pass: the MTA decides what to do with it).
	Error string `json:"error,omitempty"`
}

// ErrorResponse is the body of every answer other than 200, 204 and 304.
type ErrorResponse struct {
	Error string `json:"error"`
}

// invalidResult is the answer for an address that cannot be parsed.
func invalidResult(in string, err error) Result {
	return Result{Address: in, Verdict: detect.Invalid, Reasons: []detect.Reason{}, Action: policy.Pass, Error: err.Error(),
		Message: fmt.Sprintf("%q is not an e-mail address; check it", in)}
}

// result is the answer for one recipient the gate decided.
func result(in string, d policy.Decision) Result {
	g := d.Finding
	r := Result{Address: in, Verdict: g.Verdict.String(), Score: g.Score, Reasons: g.Reasons, Action: d.Action}
	if g.Intended != "" {
		r.Intended = &g.Intended
	}
	if g.Suggestion != "" {
		r.Suggestion = &g.Suggestion
	}
	if r.Reasons == nil {
		r.Reasons = []detect.Reason{}
	}
	if g.Verdict != detect.OK {
		r.Message = gate.Describe(g)
	}
	return r
}

// checkResults decides the recipients through the gate, as the MTA front
// ends do (routes, address literals, scopes: no second decision path). A
// recipient is read as people write it (a display name and angle brackets
// allowed) or as the MTA would take it (a source route); one that neither
// reads is invalid, and the MTA decides what to do with it.
func (s *Server) checkResults(ctx context.Context, sender string, rcpts []string) []Result {
	addrs := make([]string, len(rcpts))
	errs := make([]error, len(rcpts))
	for i, rc := range rcpts {
		addrs[i] = strings.TrimSpace(rc)
		if a, err := address.Parse(rc); err == nil {
			addrs[i] = a.String()
		} else {
			errs[i] = err
		}
	}
	out := make([]Result, len(rcpts))
	for i, res := range s.cfg.Gate.Check(ctx, sender, addrs) {
		in := strings.TrimSpace(rcpts[i])
		if errs[i] != nil && res.Decision.Rule == policy.RuleUnreadable {
			out[i] = invalidResult(in, errs[i])
			continue
		}
		out[i] = result(in, res.Decision)
	}
	return out
}

// check serves POST /api/v1/check.
func (s *Server) check(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	s.cors(h, r)
	fail := func(code int, msg string) {
		writeError(w, code, msg)
		s.count("check", code)
	}

	tokenID, code, msg := s.authenticate(r, h)
	if code != 0 {
		fail(code, msg)
		return
	}
	if s.perToken != nil {
		if ok, retry := s.perToken.take(tokenID, s.now()); !ok {
			h.Set("Retry-After", retryAfter(retry))
			s.log.Debug("api: token over its rate limit", "token_id", tokenID)
			fail(http.StatusTooManyRequests, "too many requests for this token: retry later")
			return
		}
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		fail(http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return
	}
	if r.ContentLength > MaxBody {
		fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", MaxBody))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", MaxBody))
		return
	case err != nil:
		fail(http.StatusBadRequest, "reading request body: "+err.Error())
		return
	}
	req, err := decodeCheckRequest(body)
	if err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	if e := s.cfg.Gate.Engine(); e == nil || e.Checker == nil || e.Policy == nil {
		s.log.Warn("api: no engine to check with")
		fail(http.StatusServiceUnavailable, "not ready: retry later")
		return
	}
	resp := CheckResponse{Results: s.checkResults(r.Context(), req.Sender, req.Recipients)}
	for _, res := range resp.Results {
		if res.Verdict != detect.OK.String() {
			resp.Flagged++
		}
	}
	writeJSON(w, http.StatusOK, resp)
	elapsed := time.Since(start)
	s.count("check", http.StatusOK)
	s.metrics.latency.Observe(elapsed.Seconds())
	// Recipients are not logged: compose-time checks are not mail.
	s.log.Debug("api: check", "token_id", tokenID, "recipients", len(req.Recipients), "flagged", resp.Flagged, "elapsed", elapsed)
}

// decodeCheckRequest parses and checks a request body; its errors are
// meant for the client.
func decodeCheckRequest(body []byte) (CheckRequest, error) {
	var req CheckRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return req, fmt.Errorf("request body: %s: want %s", te.Field, jsonKind(te.Type.Kind().String()))
		}
		return req, fmt.Errorf("request body: %v", strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); err != io.EOF {
		return req, errors.New("request body: more than one JSON value")
	}
	if n := len(req.Recipients); n < 1 || n > MaxRecipients {
		return req, fmt.Errorf("recipients: want 1 to %d addresses, got %d", MaxRecipients, n)
	}
	req.Sender = strings.TrimSpace(req.Sender)
	if req.Sender != "" && req.Sender != "<>" {
		a, err := address.Parse(req.Sender)
		if err != nil {
			return req, fmt.Errorf("sender: %v", err)
		}
		req.Sender = a.Local + "@" + a.Domain
	} else {
		req.Sender = ""
	}
	return req, nil
}

func jsonKind(k string) string {
	switch k {
	case "slice":
		return "an array of strings"
	case "string":
		return "a string"
	}
	return k
}

// cors sets the CORS headers of an actual (not preflight) request from an
// allowed origin. With no origins configured it sets nothing.
func (s *Server) cors(h http.Header, r *http.Request) {
	if len(s.origins) == 0 {
		return
	}
	h.Add("Vary", "Origin")
	if o := r.Header.Get("Origin"); o != "" && s.origins[o] {
		h.Set("Access-Control-Allow-Origin", o)
		h.Set("Access-Control-Expose-Headers", "Retry-After, WWW-Authenticate")
	}
}

// preflight answers a CORS preflight (OPTIONS /api/v1/check): 204 with the
// CORS headers for an allowed origin asking for POST, 403 otherwise.
func (s *Server) preflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if len(s.origins) > 0 {
		h.Add("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
	}
	o := r.Header.Get("Origin")
	if o == "" || !s.origins[o] {
		writeError(w, http.StatusForbidden, "origin not allowed")
		s.count("check", http.StatusForbidden)
		return
	}
	if m := r.Header.Get("Access-Control-Request-Method"); m != http.MethodPost {
		writeError(w, http.StatusForbidden, "only POST is allowed from other origins")
		s.count("check", http.StatusForbidden)
		return
	}
	h.Set("Access-Control-Allow-Origin", o)
	h.Set("Access-Control-Allow-Methods", "POST")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	h.Set("Access-Control-Max-Age", "600")
	// Chromium's private network access: a public web-mail page may call
	// a stray on a private address only if it says so.
	if strings.EqualFold(r.Header.Get("Access-Control-Request-Private-Network"), "true") {
		h.Set("Access-Control-Allow-Private-Network", "true")
	}
	w.WriteHeader(http.StatusNoContent)
	s.count("check", http.StatusNoContent)
}

// clientKey is the client's address for the failed-authentication limit:
// an IPv4 address, or an IPv6 /64 (one host usually has a whole /64).
func (s *Server) clientKey(r *http.Request) string {
	var host string
	if s.cfg.ClientIP != nil {
		host = s.cfg.ClientIP(r)
	} else {
		host = r.RemoteAddr
		if ap, err := netip.ParseAddrPort(host); err == nil {
			host = ap.Addr().String()
		}
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.WithZone("").Prefix(64)
		return p.String()
	}
	return a.String()
}

func retryAfter(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return strconv.FormatInt(secs, 10)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // cannot happen with our types
		code, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	w.Write(b)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, ErrorResponse{Error: msg})
}
