package web

import (
	"net/http"
	"strings"
	"testing"
)

func TestStaticServesFilesButNeverListsADirectory(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	c := e.client()
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/static/dashboard.js", http.StatusOK},
		{"/static/", http.StatusNotFound},
		{"/static", http.StatusNotFound},
		{"/static/.", http.StatusTemporaryRedirect}, // to /static/, a 404
		{"/static/..%2ftemplates%2flogin.html", http.StatusNotFound},
		{"/static/index.html", http.StatusNotFound},
		{"/static/nonexistent.css", http.StatusNotFound},
	} {
		resp, body := c.get(tc.path)
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s: %d, want %d", tc.path, resp.StatusCode, tc.want)
		}
		if tc.want == http.StatusOK && !strings.Contains(resp.Header.Get("Content-Type"), "javascript") {
			t.Errorf("GET %s: Content-Type %q", tc.path, resp.Header.Get("Content-Type"))
		}
		if strings.Contains(body, "dashboard.js\">") || strings.Contains(body, "<pre>") {
			t.Errorf("GET %s lists the directory: %.200s", tc.path, body)
		}
	}
}
