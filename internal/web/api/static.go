package api

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
)

//go:embed openapi.yaml static/stray-check.js static/stray-check.css static/demo.html static/demo.js static/demo.css
var files embed.FS

// DemoCSP is the Content-Security-Policy of the demo page: nothing inline,
// nothing from elsewhere.
const DemoCSP = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// asset is a file served as it is under Prefix.
type asset struct {
	path  string // below Prefix
	file  string // in files
	ctype string
	csp   string
	body  []byte
	etag  string
}

// assets are the static files the API serves: its description, the
// compose-form snippet and its style sheet, and the demo page.
var assets = func() []asset {
	as := []asset{
		{path: "openapi.yaml", file: "openapi.yaml", ctype: "application/yaml; charset=utf-8"},
		{path: "stray-check.js", file: "static/stray-check.js", ctype: "text/javascript; charset=utf-8"},
		{path: "stray-check.css", file: "static/stray-check.css", ctype: "text/css; charset=utf-8"},
		{path: "demo", file: "static/demo.html", ctype: "text/html; charset=utf-8", csp: DemoCSP},
		{path: "demo.js", file: "static/demo.js", ctype: "text/javascript; charset=utf-8"},
		{path: "demo.css", file: "static/demo.css", ctype: "text/css; charset=utf-8"},
	}
	for i := range as {
		b, err := files.ReadFile(as[i].file)
		if err != nil {
			panic(err) // embedded: cannot happen
		}
		sum := sha256.Sum256(b)
		as[i].body, as[i].etag = b, `"`+hex.EncodeToString(sum[:8])+`"`
	}
	return as
}()

// OpenAPI returns the API's OpenAPI 3.1 description (openapi.yaml).
func OpenAPI() []byte {
	b, _ := files.ReadFile("openapi.yaml")
	return b
}

// asset serves a static file, with an ETag so browsers revalidate cheaply.
func (s *Server) asset(w http.ResponseWriter, r *http.Request, a asset) {
	h := w.Header()
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	if a.csp != "" {
		h.Set("Content-Security-Policy", a.csp)
		h.Set("X-Frame-Options", "DENY")
	}
	route := a.path
	if etagMatch(r.Header.Get("If-None-Match"), a.etag) {
		w.WriteHeader(http.StatusNotModified)
		s.count(route, http.StatusNotModified)
		return
	}
	h.Set("Content-Type", a.ctype)
	h.Set("Content-Length", strconv.Itoa(len(a.body)))
	w.WriteHeader(http.StatusOK)
	w.Write(a.body)
	s.count(route, http.StatusOK)
}

// etagMatch reports whether an If-None-Match header names etag (weak
// comparison, as RFC 9110 wants for If-None-Match).
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}
