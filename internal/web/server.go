// Package web is the dashboard: a server-rendered HTML interface
// (html/template, embedded assets, no inline scripts) for administrators and
// auditors. It shows what stray decided, lets administrators handle held
// messages and run-time policy rules, and browses saved audit and scan
// reports. Every state change needs a logged-in administrator and a valid
// CSRF token, and is written to the event log with the acting user.
//
// Pages work without JavaScript; static/dashboard.js only adds
// conveniences (select all, confirmations).
package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/stray-mail/stray/internal/hold"
	"github.com/stray-mail/stray/internal/store"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Options configures a Server.
type Options struct {
	Store store.Store
	// Holder acts on held messages (release, re-send to the suggestion,
	// discard). Nil: the quarantine is read-only.
	Holder *hold.Holder
	// Policy returns what the policy page shows.
	Policy func(ctx context.Context) PolicyView
	// Lookalike reports whether allowing domain (with suffix, everything
	// under it too) would open a lookalike of a protected domain, and which
	// protected domain it imitates. Such an allow rule is refused unless the
	// administrator types the pattern again to confirm it; nil: no
	// protected domains, nothing to confirm.
	Lookalike func(domain string, suffix bool) (intended string, ok bool)
	// RulesChanged is called after a run-time rule was added or deleted,
	// so that the running engine picks it up (the daemon rebuilds it).
	RulesChanged func()
	// SessionTTL is how long a login lasts (default 12h).
	SessionTTL time.Duration
	// ProxyHeader names a header carrying a user name authenticated by a
	// reverse proxy; believed only from TrustedProxies.
	ProxyHeader    string
	TrustedProxies []netip.Prefix
	Log            *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// PolicyView is the effective configuration and knowledge.
type PolicyView struct {
	// Config is the effective configuration as YAML, secrets redacted.
	Config    string
	Protected []string
	// Known are the known-correspondent files' domains, most written to
	// first.
	Known []DomainCount
	// Deny maps denied lookalikes (from deny files) to what they imitate.
	Deny map[string]string
	// Allow and DenyRules are the configured policy's lists.
	Allow, DenyRules []string
	Mode             string
	Err              string
	// LearnMinSenders and LearnMinDays are the evidence a domain learned
	// from traffic needs to be trusted (detect.learn).
	LearnMinSenders, LearnMinDays int
}

// DomainCount is a domain with a count.
type DomainCount struct {
	Domain string
	Count  int64
}

// Server serves the dashboard.
type Server struct {
	o      Options
	log    *slog.Logger
	pages  map[string]*template.Template
	static fs.FS
	limits loginLimits
}

// New makes a dashboard server.
func New(o Options) (*Server, error) {
	if o.Store == nil {
		return nil, errors.New("web: the dashboard needs a store")
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = 12 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{o: o, log: o.Log, pages: map[string]*template.Template{}, limits: newLoginLimits()}
	files, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(f, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", f)
		if err != nil {
			return nil, fmt.Errorf("web: %s: %w", f, err)
		}
		s.pages[name] = t
	}
	s.static, _ = fs.Sub(assets, "static")
	return s, nil
}

// Handler returns the dashboard's routes. Mount it at / next to the other
// HTTP routes (/api/, /h/, /metrics): its patterns are specific.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /static/{file}", s.staticFile)
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.login)
	mux.Handle("POST /logout", s.auth(anyRole, s.logout))
	mux.Handle("GET /{$}", s.auth(anyRole, s.overview))
	mux.Handle("GET /quarantine", s.auth(anyRole, s.quarantine))
	mux.Handle("GET /quarantine/{id}", s.auth(anyRole, s.message))
	mux.Handle("POST /quarantine/bulk", s.auth(adminOnly, s.bulk))
	mux.Handle("POST /quarantine/{id}/{action}", s.auth(adminOnly, s.act))
	mux.Handle("GET /policy", s.auth(anyRole, s.policy))
	mux.Handle("POST /policy/rules", s.auth(adminOnly, s.addRule))
	mux.Handle("POST /policy/rules/{id}/delete", s.auth(adminOnly, s.deleteRule))
	mux.Handle("POST /policy/sender-allows/{id}/delete", s.auth(adminOnly, s.deleteSenderAllow))
	mux.Handle("GET /reports", s.auth(anyRole, s.reports))
	mux.Handle("GET /reports/{id}", s.auth(anyRole, s.report))
	mux.Handle("GET /reports/{id}/report.html", s.auth(anyRole, s.reportHTML))
	mux.Handle("GET /events", s.auth(anyRole, s.events))
	return mux
}

// staticFile serves one embedded asset; there is no directory listing
// (a directory, or anything that is not a regular file, is not found).
func (s *Server) staticFile(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	f, err := s.static.Open(name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	rs, ok := f.(io.ReadSeeker)
	if err != nil || !fi.Mode().IsRegular() || !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "max-age=3600")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, name, time.Time{}, rs)
}

// securityHeaders are set on every dashboard page.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "+
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// view is what every page template gets.
type view struct {
	Title  string
	Nav    string
	User   *store.User
	CSRF   string
	Flash  string
	Error  string
	Data   any
	Admin  bool
	Holder bool
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, page string, v view) {
	t, ok := s.pages[page]
	if !ok {
		http.Error(w, "no such page", http.StatusInternalServerError)
		return
	}
	if v.Flash == "" {
		v.Flash = r.URL.Query().Get("done")
		if len(v.Flash) > 200 {
			v.Flash = v.Flash[:200]
		}
	}
	v.Holder = s.o.Holder != nil
	securityHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := t.Execute(w, v); err != nil {
		s.log.Error("rendering a page", "page", page, "err", err)
	}
}

// fail shows an error page.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, u *session, status int, msg string) {
	v := view{Title: http.StatusText(status), Error: msg}
	if u != nil {
		v.User, v.CSRF, v.Admin = u.user, u.csrf, u.user.Role == store.RoleAdmin
	}
	s.render(w, r, status, "error", v)
}

// localPath returns p when it is a path on this site, else "/": redirect
// targets from forms and query strings never leave the dashboard.
func localPath(p string) string {
	if p == "" || p[0] != '/' || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\r\n\t") {
		return "/"
	}
	return p
}

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	},
	"day": func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	"size": func(n int64) string {
		switch {
		case n >= 1<<20:
			return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
		case n >= 1<<10:
			return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
		}
		return fmt.Sprintf("%d B", n)
	},
	"join":   strings.Join,
	"fields": detailFields,
	"deref":  func(b *bool) bool { return b != nil && *b },
	"domainOf": func(a string) string {
		if i := strings.LastIndexByte(a, '@'); i >= 0 {
			return a[i+1:]
		}
		return a
	},
	"pct": func(a, b int64) string {
		if b == 0 {
			return "0%"
		}
		return fmt.Sprintf("%.1f%%", 100*float64(a)/float64(b))
	},
}
