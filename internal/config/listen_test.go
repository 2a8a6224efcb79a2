package config

import (
	"strings"
	"testing"
)

func TestValidateWebAndMetricsListeners(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, yaml, problem string // problem "": valid
	}{
		{"trusted proxies alone name X-Forwarded-For sources", "web:\n  trusted_proxies: [10.0.0.0/8]\n", ""},
		{"a proxy header needs trusted proxies", "web:\n  proxy_header: X-Remote-User\n", "web.proxy_header"},
		{"both proxy settings", "web:\n  proxy_header: X-Remote-User\n  trusted_proxies: [127.0.0.1]\n", ""},
		{"metrics on its own address", "listen:\n  metrics: 127.0.0.1:9098\n", ""},
		{"metrics needs HOST:PORT", "listen:\n  metrics: localhost\n", "listen.metrics"},
		{"metrics on the http address", "listen:\n  http: 127.0.0.1:8098\n  metrics: 127.0.0.1:8098\n", "listen.metrics"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse(strings.NewReader(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			err = c.Validate()
			switch {
			case tc.problem == "" && err != nil:
				t.Errorf("Validate() = %v, want no problem", err)
			case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), tc.problem)):
				t.Errorf("Validate() = %v, want a problem naming %s", err, tc.problem)
			}
		})
	}
}
