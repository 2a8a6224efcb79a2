package config

import (
	"os"
	"strings"
	"testing"
)

// Moving listen.http without hold.base_url kept the senders' links on the
// old port (issue 14): the links now follow the listener unless base_url
// is set.
func TestBaseURLFollowsTheHTTPListenerUnlessSet(t *testing.T) {
	t.Parallel()
	host, _ := os.Hostname()
	tests := []struct {
		yaml, want string
	}{
		{"", "http://127.0.0.1:8098"},
		{"listen:\n  http: 127.0.0.1:9000\n", "http://127.0.0.1:9000"},
		{"listen:\n  http: \"[::1]:9000\"\n", "http://[::1]:9000"},
		{"listen:\n  http: 0.0.0.0:8443\n", "http://" + host + ":8443"},
		{"listen:\n  http: 127.0.0.1:9000\nhold:\n  base_url: https://stray.example.org\n", "https://stray.example.org"},
	}
	for _, tt := range tests {
		c, err := Parse(strings.NewReader(tt.yaml))
		if err != nil {
			t.Fatalf("%q: %v", tt.yaml, err)
		}
		if c.Hold.BaseURL != tt.want {
			t.Errorf("%q: base_url %q, want %q", tt.yaml, c.Hold.BaseURL, tt.want)
		}
	}
}

func TestConfigCheckWarnsWhenLinksAndListenerDisagree(t *testing.T) {
	t.Parallel()
	tests := []struct {
		yaml, want string
	}{
		{"listen:\n  http: 0.0.0.0:8098\nhold:\n  base_url: http://127.0.0.1:8098\n", "is loopback but listen.http"},
		{"listen:\n  http: 127.0.0.1:8098\nhold:\n  base_url: https://stray.example.org\n", "reverse proxy"},
		{"listen:\n  http: 192.0.2.10:8098\n", ""},
		{"listen:\n  http: 127.0.0.1:8098\n", ""},
	}
	for _, tt := range tests {
		c, err := Parse(strings.NewReader(tt.yaml))
		if err != nil {
			t.Fatal(err)
		}
		w := strings.Join(c.Effective().Warnings, "\n")
		if tt.want == "" && w != "" || tt.want != "" && !strings.Contains(w, tt.want) {
			t.Errorf("%q: warnings %q, want %q", tt.yaml, w, tt.want)
		}
	}
}

func TestHTTPTLSNeedsBothFilesAndTheListener(t *testing.T) {
	t.Parallel()
	for yaml, want := range map[string]string{
		"listen:\n  http_tls: {cert: c.pem}\n":                           "name both cert and key",
		"listen:\n  http: \"\"\n  http_tls: {cert: c.pem, key: k.pem}\n": "listen.http is off",
	} {
		c, err := Parse(strings.NewReader(yaml))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", yaml, err, want)
		}
	}
}
