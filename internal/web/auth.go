package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/stray-mail/stray/internal/ratelimit"
	"github.com/stray-mail/stray/internal/realip"
	"github.com/stray-mail/stray/internal/store"
)

// Cookies. The session cookie holds a random secret; the store keeps its
// SHA-256 only. The login cookie carries the login form's CSRF token
// (double submit), so that nobody can log a victim in as someone else.
const (
	sessionCookie = "stray_session"
	loginCookie   = "stray_login"
	csrfField     = "csrf"
)

type role int

const (
	anyRole role = iota
	adminOnly
)

// session is an authenticated request's user.
type session struct {
	id   string // the store's session id ("" for none)
	user *store.User
	csrf string
}

type pageFunc func(w http.ResponseWriter, r *http.Request, u *session)

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func sessionID(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// clientAddr is the request's client: its peer, or behind a trusted
// proxy the address X-Forwarded-For names (see internal/realip).
func (s *Server) clientAddr(r *http.Request) netip.Addr {
	return realip.From(r, s.o.TrustedProxies)
}

// Login limits. An attempt counts against its user name from its client
// address, against the address for any user, and against everyone: an
// attacker who exhausts one user's allowance from his addresses leaves
// that user's own address alone, one address cannot spray many users, and
// the global cap bounds password guessing (and argon2id work) from many
// addresses at once.
const (
	loginsPerUserAndSource = 10
	loginsPerSource        = 30
	loginsGlobal           = 300
)

type loginLimits struct {
	pair, source, global *ratelimit.Window
}

func newLoginLimits() loginLimits {
	return loginLimits{
		pair:   ratelimit.New(loginsPerUserAndSource, time.Minute),
		source: ratelimit.New(loginsPerSource, time.Minute),
		global: ratelimit.New(loginsGlobal, time.Minute),
	}
}

func pairKey(name, source string) string { return strings.ToLower(name) + "\x00" + source }

// allow records a login attempt; the narrowest limit is checked first, so
// that an attempt it refuses does not use up the wider ones.
func (l loginLimits) allow(name, source string) bool {
	return l.pair.Allow(pairKey(name, source)) && l.source.Allow(source) && l.global.Allow("")
}

// auth wraps a page: it finds the user (session cookie, or a trusted
// proxy's header), sends anonymous visitors to the login page, and for
// state changes checks the role, the request's origin and the CSRF token.
func (s *Server) auth(need role, page pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w.Header())
		u, err := s.authenticate(w, r)
		if err != nil {
			s.log.Error("dashboard authentication", "err", err)
			s.fail(w, r, nil, http.StatusServiceUnavailable, "The store is not reachable; try again in a moment.")
			return
		}
		if u == nil {
			if r.Method != http.MethodGet {
				s.fail(w, r, nil, http.StatusForbidden, "Your session has ended. Log in again.")
				return
			}
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			if !sameOrigin(r) {
				s.fail(w, r, u, http.StatusForbidden, "This request came from another site and was refused.")
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
			if err := r.ParseForm(); err != nil {
				s.fail(w, r, u, http.StatusBadRequest, "The form could not be read.")
				return
			}
			if subtle.ConstantTimeCompare([]byte(r.PostForm.Get(csrfField)), []byte(u.csrf)) != 1 {
				s.event(r.Context(), store.Event{Kind: "csrf-refused", Actor: "user:" + u.user.Name,
					Detail: "ip=" + s.clientAddr(r).String() + " path=" + r.URL.Path})
				s.fail(w, r, u, http.StatusForbidden, "The form's security token is not valid (it may be out of date). Reload the page and try again.")
				return
			}
			if need == adminOnly && u.user.Role != store.RoleAdmin {
				s.fail(w, r, u, http.StatusForbidden, "Your role ("+string(u.user.Role)+") may look but not change anything.")
				return
			}
		}
		page(w, r, u)
	})
}

// sameOrigin refuses a state change whose Origin (or, without one, Referer)
// names another site. Browsers send Origin on every cross-site POST.
func sameOrigin(r *http.Request) bool {
	src := r.Header.Get("Origin")
	if src == "" {
		src = r.Header.Get("Referer")
	}
	if src == "" {
		return true // not a browser, or one that hides it; the CSRF token still applies
	}
	u, err := url.Parse(src)
	return err == nil && u.Host == r.Host
}

// authenticate returns the request's user, or nil.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (*session, error) {
	ctx := r.Context()
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" && len(c.Value) < 100 {
		ses, err := s.o.Store.GetSession(ctx, sessionID(c.Value), s.o.Now())
		switch {
		case err == nil:
			u, err := s.o.Store.GetUser(ctx, ses.User)
			if errors.Is(err, store.ErrNotFound) {
				return nil, nil
			}
			if err != nil {
				return nil, err
			}
			if ses.CreatedAt.Before(u.UpdatedAt) {
				break // the password or role changed since: log in again
			}
			if name := s.proxyUser(r); name != "" && name != u.Name {
				break // the proxy now says someone else: start their session
			}
			return &session{id: ses.ID, user: u, csrf: ses.CSRF}, nil
		case !errors.Is(err, store.ErrNotFound):
			return nil, err
		}
	}
	name := s.proxyUser(r)
	if name == "" {
		return nil, nil
	}
	u, err := s.o.Store.GetUser(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		s.event(ctx, store.Event{Kind: "login-failed", Actor: "user:" + clip(name), Detail: "ip=" + s.clientAddr(r).String() + " via=proxy reason=unknown-user"})
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ses, err := s.startSession(w, r, u, "proxy")
	if err != nil {
		return nil, err
	}
	return ses, nil
}

// proxyUser is the user a trusted reverse proxy vouches for, or "".
func (s *Server) proxyUser(r *http.Request) string {
	if s.o.ProxyHeader == "" {
		return ""
	}
	name := strings.TrimSpace(r.Header.Get(s.o.ProxyHeader))
	if name == "" {
		return ""
	}
	a := realip.Peer(r) // the proxy itself vouches, not whom it forwards for
	for _, p := range s.o.TrustedProxies {
		if p.Contains(a) {
			return name
		}
	}
	return ""
}

// startSession stores a new session for u and sets its cookie.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, u *store.User, via string) (*session, error) {
	secret := randomToken()
	now := s.o.Now()
	ses := &store.Session{ID: sessionID(secret), User: u.Name, CSRF: randomToken(), CreatedAt: now, ExpiresAt: now.Add(s.o.SessionTTL)}
	if err := s.o.Store.CreateSession(r.Context(), ses); err != nil {
		return nil, err
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: secret, Path: "/", HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode, Expires: ses.ExpiresAt})
	s.event(r.Context(), store.Event{Kind: "login", Actor: "user:" + u.Name, Detail: "ip=" + s.clientAddr(r).String() + " via=" + via + " role=" + string(u.Role)})
	s.log.Info("dashboard login", "user", u.Name, "role", u.Role, "via", via, "ip", s.clientAddr(r).String())
	return &session{id: ses.ID, user: u, csrf: ses.CSRF}, nil
}

func (s *Server) event(ctx context.Context, ev store.Event) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.o.Store.AddEvent(ctx, ev); err != nil {
		s.log.Warn("recording an event failed", "kind", ev.Kind, "err", err)
	}
}

func clip(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

type loginData struct {
	Next, Name string
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.showLogin(w, r, http.StatusOK, r.URL.Query().Get("next"), "", "")
}

func (s *Server) showLogin(w http.ResponseWriter, r *http.Request, status int, next, name, msg string) {
	token := randomToken()
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: token, Path: "/login", HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	s.render(w, r, status, "login", view{Title: "Log in", CSRF: token, Error: msg, Data: loginData{Next: localPath(next), Name: name}})
}

// hashing bounds the argon2id computations running at once (64 MiB each).
var hashing = make(chan struct{}, 2)

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.showLogin(w, r, http.StatusBadRequest, "", "", "The form could not be read.")
		return
	}
	name, password, next := strings.TrimSpace(r.PostForm.Get("name")), r.PostForm.Get("password"), r.PostForm.Get("next")
	c, err := r.Cookie(loginCookie)
	if err != nil || !sameOrigin(r) || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostForm.Get(csrfField))) != 1 {
		s.showLogin(w, r, http.StatusForbidden, next, name, "The login form was out of date. Please try again.")
		return
	}
	client := s.clientAddr(r)
	ip, source := client.String(), realip.Key(client)
	if !s.limits.allow(name, source) {
		s.event(r.Context(), store.Event{Kind: "login-failed", Actor: "user:" + clip(name), Detail: "ip=" + ip + " reason=rate-limited"})
		w.Header().Set("Retry-After", "60")
		s.showLogin(w, r, http.StatusTooManyRequests, next, name, "Too many attempts. Wait a minute and try again.")
		return
	}
	u, err := s.o.Store.GetUser(r.Context(), name)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Error("login: reading the user", "err", err)
		s.showLogin(w, r, http.StatusServiceUnavailable, next, name, "The store is not reachable; try again in a moment.")
		return
	}
	hash := dummyHash()
	if u != nil {
		hash = u.Hash
	}
	hashing <- struct{}{}
	ok, herr := CheckPassword(hash, password)
	<-hashing
	if u == nil || !ok {
		reason := "bad-password"
		if u == nil {
			reason = "unknown-user"
		}
		if herr != nil && u != nil {
			s.log.Error("login: the stored password hash is unusable", "user", u.Name, "err", herr)
		}
		s.event(r.Context(), store.Event{Kind: "login-failed", Actor: "user:" + clip(name), Detail: "ip=" + ip + " reason=" + reason})
		s.showLogin(w, r, http.StatusUnauthorized, next, name, "Wrong user name or password.")
		return
	}
	s.limits.pair.Reset(pairKey(name, source))
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.o.Store.DeleteSession(r.Context(), sessionID(c.Value)) // no session fixation
	}
	if _, err := s.startSession(w, r, u, "password"); err != nil {
		s.log.Error("login: storing the session", "err", err)
		s.showLogin(w, r, http.StatusServiceUnavailable, next, name, "The store is not reachable; try again in a moment.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: "/login", MaxAge: -1, Secure: true, HttpOnly: true})
	http.Redirect(w, r, localPath(next), http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, u *session) {
	if err := s.o.Store.DeleteSession(r.Context(), u.id); err != nil {
		s.log.Error("logout", "err", err)
	}
	s.event(r.Context(), store.Event{Kind: "logout", Actor: "user:" + u.user.Name, Detail: "ip=" + s.clientAddr(r).String()})
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login?done="+url.QueryEscape("You are logged out."), http.StatusSeeOther)
}

// Run deletes expired sessions every hour until ctx ends.
func (s *Server) Run(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := s.o.Store.PurgeSessions(ctx, s.o.Now()); err != nil && ctx.Err() == nil {
			s.log.Warn("purging expired sessions", "err", err)
		} else if n > 0 {
			s.log.Debug("purged expired sessions", "n", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
