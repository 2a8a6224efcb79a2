package hold

import (
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/stray-mail/stray/internal/ratelimit"
	"github.com/stray-mail/stray/internal/realip"
	"github.com/stray-mail/stray/internal/store"
)

// Handler serves the sender's link pages under /h/: GET shows what the link
// will do and a button, POST does it. Link scanners and previews fetch with
// GET, so they never release or cancel anything. Each client address may
// load 30 pages a minute.
func (h *Holder) Handler() http.Handler { return h.HandlerBehind(nil) }

// HandlerBehind is Handler for a listener behind reverse proxies: when the
// immediate peer is in proxies, the client is the right-most
// X-Forwarded-For address that is not a proxy, so that senders behind one
// proxy are limited apart. From any other peer the header is ignored.
func (h *Holder) HandlerBehind(proxies []netip.Prefix) http.Handler {
	mux := http.NewServeMux()
	lim := ratelimit.New(30, time.Minute)
	client := func(r *http.Request) netip.Addr { return realip.From(r, proxies) }
	mux.HandleFunc("GET /h/{id}/{action}", func(w http.ResponseWriter, r *http.Request) { h.page(w, r, lim, client(r), false) })
	mux.HandleFunc("POST /h/{id}/{action}", func(w http.ResponseWriter, r *http.Request) { h.page(w, r, lim, client(r), true) })
	mux.HandleFunc("GET /h/style.css", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		w.Header().Set("Cache-Control", "max-age=86400")
		w.Write([]byte(pageCSS))
	})
	return mux
}

type pageData struct {
	Title, Text, Error string
	Action, Button     string
	ID, E, S           string
	Message            *store.Message
	Subject            string
	Done               bool
}

var actionWords = map[string][2]string{
	ActionRelease: {"Send anyway", "Send the message to the address as you typed it."},
	ActionCancel:  {"Cancel", "Discard the message; nobody else receives it."},
	ActionFix:     {"Send to the suggested address", "Send the message to the address stray suggests instead."},
}

func (h *Holder) page(w http.ResponseWriter, r *http.Request, lim *ratelimit.Window, client netip.Addr, act bool) {
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Robots-Tag", "noindex")
	if !lim.Allow(realip.Key(client)) {
		w.WriteHeader(http.StatusTooManyRequests)
		render(w, pageData{Title: "Too many requests", Error: "Please wait a minute and try again."})
		return
	}
	id, action := r.PathValue("id"), r.PathValue("action")
	e, s := r.URL.Query().Get("e"), r.URL.Query().Get("s")
	if act {
		r.ParseForm()
		e, s = r.PostForm.Get("e"), r.PostForm.Get("s")
	}
	words, ok := actionWords[action]
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		render(w, pageData{Title: "Not found", Error: "This link is not valid."})
		return
	}
	switch err := h.signer.VerifyLink(id, action, e, s, h.now()); {
	case errors.Is(err, ErrExpired):
		w.WriteHeader(http.StatusGone)
		render(w, pageData{Title: "Link expired", Error: "This link has expired. The message was discarded or sent when its time ran out."})
		return
	case err != nil:
		w.WriteHeader(http.StatusForbidden)
		render(w, pageData{Title: "Invalid link", Error: "This link is not valid. Use the link from your notification as it is."})
		return
	}
	m, err := h.store.Get(r.Context(), id)
	if err != nil {
		status := http.StatusServiceUnavailable
		if errors.Is(err, store.ErrNotFound) {
			status = http.StatusNotFound
		}
		w.WriteHeader(status)
		render(w, pageData{Title: "Not available", Error: "This message cannot be found right now; try again later."})
		return
	}
	d := pageData{Title: words[0], Text: words[1], Action: action, Button: words[0], ID: id, E: e, S: s, Message: m, Subject: subject(m.Raw)}
	if m.State != store.StateHeld {
		d.Error = "This message is no longer waiting: it was " + string(m.State) + "."
		render(w, d)
		return
	}
	if !act {
		render(w, d)
		return
	}
	actor := "sender:" + client.String()
	switch action {
	case ActionRelease:
		err = h.Release(r.Context(), id, actor, false)
	case ActionFix:
		err = h.Release(r.Context(), id, actor, true)
	case ActionCancel:
		err = h.Discard(r.Context(), id, actor)
	}
	switch {
	case errors.Is(err, ErrNotHeld):
		d.Error = "This message is no longer waiting: someone answered first."
	case err != nil:
		h.log.Error("link action failed", "id", id, "action", action, "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		d.Error = "That did not work; the message is still held. Please try again in a few minutes."
	default:
		d.Done = true
		d.Title = "Done"
		d.Text = map[string]string{ActionRelease: "The message has been sent.", ActionFix: "The message has been sent to the suggested address.", ActionCancel: "The message has been discarded."}[action]
	}
	render(w, d)
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{.Title}} - stray</title><link rel="stylesheet" href="/h/style.css"></head>
<body><main>
<h1>{{.Title}}</h1>
{{if .Error}}<p class="error">{{.Error}}</p>{{end}}
{{with .Message}}
<dl>
<dt>From</dt><dd>{{.Sender}}</dd>
{{if $.Subject}}<dt>Subject</dt><dd>{{$.Subject}}</dd>{{end}}
{{range .Recipients}}<dt>Held recipient</dt><dd>{{.Address}}{{if .Suggestion}} &mdash; did you mean <strong>{{.Suggestion}}</strong>?{{end}}</dd>{{end}}
</dl>
{{end}}
{{if .Text}}<p>{{.Text}}</p>{{end}}
{{if and .Action (not .Error) (not .Done)}}
<form method="post" action="/h/{{.ID}}/{{.Action}}">
<input type="hidden" name="e" value="{{.E}}"><input type="hidden" name="s" value="{{.S}}">
<button type="submit">{{.Button}}</button>
</form>
{{end}}
</main></body></html>
`))

const pageCSS = `body{font-family:system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
main{max-width:36rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 3px #0002}
h1{font-size:1.4rem;margin-top:0}dt{font-weight:600;margin-top:.6rem}dd{margin:0}
.error{color:#a31515}button{font-size:1rem;padding:.6rem 1.2rem;border:0;border-radius:6px;background:#1f5fbf;color:#fff;cursor:pointer}`

func render(w http.ResponseWriter, d pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pageTmpl.Execute(w, d); err != nil {
		slog.Default().Error("render", "err", err)
	}
}
