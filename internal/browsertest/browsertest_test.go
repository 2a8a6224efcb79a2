package browsertest

import (
	"context"
	"fmt"
	"html/template"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The browser tests run one after another, not in parallel: each starts a
// chromium, and the machines that run them have two cores and other test
// binaries running.

// csp is the dashboard's kind of policy: scripts and everything else only
// from the server itself, no inline script.
const csp = "default-src 'self'; script-src 'self'"

const token = "c2VjcmV0LXRva2Vu"

var pages = template.Must(template.New("").Parse(`
{{define "form"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Greeter</title>
<link rel="stylesheet" href="/style.css"><script src="/app.js" defer></script></head>
<body><h1>Greeter</h1><p id="js">script did not run</p>
<form id="greet" method="post" action="/greet">
<input type="hidden" name="csrf" value="{{.}}">
<label>Name <input id="name" name="name" required></label>
<button id="send" type="submit">Greet</button>
</form></body></html>{{end}}
{{define "greeting"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Hello</title>
<link rel="stylesheet" href="/style.css"></head>
<body><p id="greeting">Hello, {{.}}</p><div id="tall">the page goes on</div></body></html>{{end}}
{{define "forbidden"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Forbidden</title></head>
<body><h1 id="forbidden">Forbidden</h1></body></html>{{end}}
{{define "inline"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>inline</title></head>
<body><p id="p">An inline script follows.</p>
<script>document.title = "the inline script ran";</script></body></html>{{end}}
{{define "hang"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hang</title>
<script src="/hang.js"></script></head><body><p id="p">Never loads.</p></body></html>{{end}}
{{define "throw"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>throw</title>
<script src="/throw.js"></script></head>
<body><p id="p">The script throws, and the image is missing.</p><img src="/missing.png" alt=""></body></html>{{end}}
`))

// site serves the test pages on 127.0.0.1 under a strict CSP. Anything else,
// /favicon.ico among it, is a 404.
func site(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	render := func(w http.ResponseWriter, status int, name string, data any) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(status)
		if err := pages.ExecuteTemplate(w, name, data); err != nil {
			t.Errorf("rendering %s: %v", name, err)
		}
	}
	static := func(typ, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", typ)
			fmt.Fprint(w, body)
		}
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "s1", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		render(w, http.StatusOK, "form", token)
	})
	mux.HandleFunc("POST /greet", func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie("session")
		if err != nil || c.Value != "s1" || r.PostFormValue("csrf") != token {
			render(w, http.StatusForbidden, "forbidden", nil)
			return
		}
		render(w, http.StatusOK, "greeting", r.PostFormValue("name"))
	})
	mux.HandleFunc("GET /inline", func(w http.ResponseWriter, r *http.Request) {
		render(w, http.StatusOK, "inline", nil)
	})
	mux.HandleFunc("GET /throw", func(w http.ResponseWriter, r *http.Request) {
		render(w, http.StatusOK, "throw", nil)
	})
	mux.HandleFunc("GET /hang", func(w http.ResponseWriter, r *http.Request) {
		render(w, http.StatusOK, "hang", nil)
	})
	mux.HandleFunc("GET /hang.js", static("text/javascript", `for (;;) {}`))
	mux.HandleFunc("GET /app.js", static("text/javascript",
		`document.getElementById("js").textContent = "script ran";`))
	mux.HandleFunc("GET /throw.js", static("text/javascript",
		`console.error("about to fail"); throw new Error("boom");`))
	mux.HandleFunc("GET /style.css", static("text/css",
		`body { margin: 0; font-family: sans-serif; } #tall { height: 2400px; background: #eef; }`))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestFormIsFilledSubmittedAndScreenshotted(t *testing.T) {
	srv := site(t)
	b := Start(t)

	if code := b.Open(t, srv.URL+"/", "#name"); code != http.StatusOK {
		t.Fatalf("GET / = %d", code)
	}
	// The external script runs under the CSP.
	if got := b.Text(t, "#js"); got != "script ran" {
		t.Errorf("#js = %q, want the external script's text", got)
	}
	c := b.Cookie(t, "session")
	if c == nil || c.Value != "s1" || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
		t.Errorf("session cookie = %+v, want s1, HttpOnly, SameSite=Strict", c)
	}

	b.Fill(t, "#name", "Ada <Lovelace>")
	if got := b.Value(t, "#name"); got != "Ada <Lovelace>" {
		t.Errorf("#name = %q after Fill", got)
	}
	if code := b.ClickNavigate(t, "#send"); code != http.StatusOK {
		t.Fatalf("POST /greet = %d, want 200", code)
	}
	if got := b.Text(t, "#greeting"); got != "Hello, Ada <Lovelace>" {
		t.Errorf("#greeting = %q", got)
	}
	if got := b.URL(t); got != srv.URL+"/greet" {
		t.Errorf("URL = %q, want %s/greet", got, srv.URL)
	}
	if got := b.Title(t); got != "Hello" {
		t.Errorf("title = %q", got)
	}

	p := b.Screenshot(t, "greeting")
	dir, err := ArtifactDir()
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(p) != dir || !strings.HasSuffix(p, "-greeting.png") {
		t.Errorf("screenshot at %s, want <test>-greeting.png in %s", p, dir)
	}
	// The whole page, not just the 1280×900 window.
	w := Eval[int](t, b, `document.documentElement.scrollWidth`)
	h := Eval[int](t, b, `document.documentElement.scrollHeight`)
	if got := pngSize(t, p); got.X != w || got.Y != h || h <= DefaultHeight {
		t.Errorf("screenshot is %v, want the page's %dx%d (taller than the window)", got, w, h)
	}

	b.NoProblems(t)
}

func TestForgedCSRFTokenIsRejected(t *testing.T) {
	srv := site(t)
	b := Start(t)

	b.Open(t, srv.URL+"/", "#name")
	b.Fill(t, "#name", "Mallory")
	b.Forge(t, "#greet", "csrf", "forged")
	b.Forge(t, "#greet", "extra", "added") // a field the form does not have
	if got := b.Value(t, `#greet input[name="csrf"]`); got != "forged" {
		t.Errorf("csrf field = %q after Forge", got)
	}
	if got := b.Value(t, `#greet input[name="extra"]`); got != "added" {
		t.Errorf("added field = %q after Forge", got)
	}
	if code := b.Submit(t, "#greet"); code != http.StatusForbidden {
		t.Errorf("POST /greet with a forged token = %d, want 403", code)
	}
	b.WaitVisible(t, "#forbidden")
	// A short page's screenshot is the whole window.
	if got := pngSize(t, b.Screenshot(t, "forbidden")); got != image.Pt(DefaultWidth, DefaultHeight) {
		t.Errorf("screenshot of a short page is %v, want the window, %dx%d", got, DefaultWidth, DefaultHeight)
	}

	// Forging is the test's script: it breaks no CSP. The 403 is the
	// status checked above, not a problem.
	b.NoProblems(t)
	var logged bool
	for _, m := range b.Messages() {
		logged = logged || m.Document && strings.Contains(m.Text, "403")
	}
	if !logged {
		t.Errorf("no message about the 403 document in %v", b.Messages())
	}

	// The real token still works.
	b.ClearCookies(t)
	if b.Cookie(t, "session") != nil {
		t.Error("session cookie survived ClearCookies")
	}
	b.Open(t, srv.URL+"/", "#name")
	b.Fill(t, "#name", "Ada")
	if code := b.Submit(t, "#greet"); code != http.StatusOK {
		t.Errorf("POST /greet with the page's token = %d, want 200", code)
	}
}

func TestInlineScriptIsReportedAsCSPViolation(t *testing.T) {
	srv := site(t)
	b := Start(t)

	b.Open(t, srv.URL+"/inline", "#p")
	if got := b.Title(t); got != "inline" {
		t.Errorf("title = %q: the CSP did not stop the inline script", got)
	}
	var found bool
	for _, p := range b.Problems() {
		if p.IsCSPViolation() && p.URL == srv.URL+"/inline" && strings.Contains(p.Text, "script-src") {
			found = true
		}
	}
	if !found {
		t.Errorf("no CSP violation for the inline script in %v", b.Messages())
	}

	r := &recorder{TB: t}
	b.NoProblems(r)
	if len(r.errors) != 1 || !strings.Contains(r.errors[0], "Content Security Policy") {
		t.Errorf("NoProblems reported %q, want one failure naming the CSP violation", r.errors)
	}

	b.ClearMessages()
	b.NoProblems(t)
}

func TestThrowingPageIsReported(t *testing.T) {
	srv := site(t)
	b := Start(t)

	b.Open(t, srv.URL+"/throw", "#p")
	var exception, consoleError, missing bool
	for _, p := range b.Problems() {
		switch {
		case p.Source == "exception" && strings.Contains(p.Text, "boom") && strings.HasSuffix(p.URL, "/throw.js") && p.Line == 1:
			exception = true
		case p.Source == "console" && p.Level == "error" && p.Text == "about to fail":
			consoleError = true
		case p.Source == "network" && p.URL == srv.URL+"/missing.png":
			missing = true
		}
	}
	if !exception || !consoleError || !missing {
		t.Errorf("reported: exception %v, console.error %v, missing image %v; messages %v",
			exception, consoleError, missing, b.Messages())
	}
	r := &recorder{TB: t}
	b.NoProblems(r)
	if len(r.errors) != 1 || !strings.Contains(r.errors[0], "boom") || !strings.Contains(r.errors[0], "missing.png") {
		t.Errorf("NoProblems reported %q, want one failure naming the exception and the image", r.errors)
	}
}

// The browser reaches loopback and nothing else: other names and addresses
// fail at once, without a DNS query or a connection.
func TestOnlyLoopbackIsReachable(t *testing.T) {
	srv := site(t)
	b := Start(t)

	for _, url := range []string{"http://stray.example/", "http://192.0.2.1/", "http://127.0.0.2" + srv.URL[strings.LastIndexByte(srv.URL, ':'):] + "/"} {
		ctx, cancel := context.WithTimeout(b.Context(), 30*time.Second)
		start := time.Now()
		err := chromedp.Do(ctx, chromedp.Navigate(url))
		cancel()
		if err == nil || !strings.Contains(err.Error(), "ERR_NAME_NOT_RESOLVED") {
			t.Errorf("navigating to %s: %v, want ERR_NAME_NOT_RESOLVED", url, err)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("navigating to %s took %v", url, d)
		}
	}
	b.Open(t, srv.URL+"/", "#name")
}

// A page that never finishes cannot hold the test beyond the browser's
// deadline: the step fails, naming the deadline, and the browser is killed.
func TestHungPageEndsAtTheDeadline(t *testing.T) {
	srv := site(t)
	const deadline = 15 * time.Second
	b := StartWith(t, Options{Timeout: deadline})
	proc := chromedp.FromContext(b.Context()).Browser.Process()

	r := &recorder{TB: t}
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Navigate(r, srv.URL+"/hang")
	}()
	select {
	case <-done:
	case <-time.After(deadline + time.Minute):
		t.Fatal("Navigate still waits a minute after the deadline")
	}
	if len(r.errors) != 1 || !strings.Contains(r.errors[0], "deadline passed") {
		t.Errorf("Navigate failed with %q, want the deadline named", r.errors)
	}
	if d := time.Since(start); d > deadline {
		t.Errorf("Navigate took %v, more than the whole deadline", d)
	}
	for i := 0; proc.Signal(syscall.Signal(0)) == nil; i++ {
		if i == 100 {
			t.Fatalf("browser process %d still runs after the deadline", proc.Pid)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A browser that dies fails the next step with a message that says so.
func TestDeadBrowserFailsTheNextStep(t *testing.T) {
	srv := site(t)
	b := Start(t)
	b.Open(t, srv.URL+"/", "#name")
	if err := chromedp.FromContext(b.Context()).Browser.Process().Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.Context().Done():
	case <-time.After(time.Minute):
		t.Fatal("the tab's context outlives its browser")
	}

	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.Click(r, "#send")
	}()
	<-done
	if len(r.errors) != 1 || !strings.Contains(r.errors[0], "the browser is gone") {
		t.Errorf("Click failed with %q, want the browser named gone", r.errors)
	}
}

func TestFindTakesSTRAY_CHROMIUM(t *testing.T) {
	t.Setenv("STRAY_CHROMIUM", filepath.Join(t.TempDir(), "no-such-browser"))
	if path, why := Find(); path != "" || !strings.Contains(why, "STRAY_CHROMIUM") {
		t.Errorf("Find() = %q, %q; want no path and a reason naming STRAY_CHROMIUM", path, why)
	}
}

func TestFileNamesAreSafe(t *testing.T) {
	for in, want := range map[string]string{
		"TestX/sub test": "TestX_sub_test",
		"a.png":          "a.png",
		"../../etc":      ".._.._etc",
		"..":             "_",
		"":               "_",
	} {
		if got := fileName(in); got != want {
			t.Errorf("fileName(%q) = %q, want %q", in, got, want)
		}
	}
}

// pngSize decodes the PNG file p and returns its size.
func pngSize(t *testing.T, p string) image.Point {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s: %v", p, err)
	}
	return img.Bounds().Size()
}

// recorder is a test that keeps its errors instead of failing.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}
