package config

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
)

// Effective is what a configuration turns on, as `stray serve` would run
// it: each switch as it takes effect (a switch whose key is on but that
// needs something missing is off, with the reason), the protected domains,
// the knowledge files, the policy mode, the store and the listeners.
// `stray config check` prints it so that a silent change shows.
type Effective struct {
	Detect struct {
		Builtin bool     `json:"builtin"`
		Protect []string `json:"protect"`
		Known   []string `json:"known"`
		Deny    []string `json:"deny"`
	} `json:"detect"`
	Policy struct {
		Mode  string `json:"mode"`
		Allow int    `json:"allow"` // configured entries
		Deny  int    `json:"deny"`
	} `json:"policy"`
	Hold struct {
		Enabled bool   `json:"enabled"`
		BaseURL string `json:"base_url"`
	} `json:"hold"`
	Web struct {
		Dashboard bool `json:"dashboard"`
		API       bool `json:"api"`
	} `json:"web"`
	// Store is the store DSN (relative SQLite paths resolved); "" is none.
	// Callers that print it should hide a password.
	Store  string            `json:"store"`
	Listen map[string]string `json:"listen"` // milter, policy, http, reply, relay, sink; "" is off
	// Off says why a switch whose key is on is off, by key (hold.enabled,
	// web.dashboard, web.api).
	Off map[string]string `json:"off,omitempty"`
	// Warnings are settings that are valid but probably wrong.
	Warnings []string `json:"warnings,omitempty"`
}

// Effective reports what c turns on.
func (c *Config) Effective() Effective {
	var e Effective
	e.Detect.Builtin = c.Detect.Builtin == nil || *c.Detect.Builtin
	e.Detect.Protect = nonNil(c.Detect.Protect)
	e.Detect.Known = paths(c, c.Detect.Known)
	e.Detect.Deny = paths(c, c.Detect.Deny)
	e.Policy.Mode = string(c.Policy.Effective().Mode)
	e.Policy.Allow, e.Policy.Deny = len(c.Policy.Allow), len(c.Policy.Deny)
	if c.Store != "" {
		e.Store = c.StoreDSN()
	}
	e.Listen = map[string]string{"milter": c.Listen.Milter, "policy": c.Listen.Policy, "http": c.Listen.HTTP, "reply": c.Listen.Reply,
		"relay": c.Listen.Relay, "sink": c.Listen.Sink}
	if c.Listen.HTTPTLS.On() && c.Listen.HTTP != "" {
		e.Listen["http_tls"] = c.Path(c.Listen.HTTPTLS.Cert)
	}
	e.Off = map[string]string{}
	isOn := func(b *bool) bool { return b == nil || *b }
	// As stray serve runs it: the store is opened whenever one is named,
	// hold and confirm or not; hold and confirm, the dashboard and the
	// API need the store (messages, users, tokens), and the dashboard and
	// the API the http listener.
	hold := isOn(c.Hold.Enabled)
	if hold && c.Store == "" {
		hold = false
		e.Off["hold.enabled"] = "needs a store"
	}
	e.Hold.Enabled = hold
	e.Hold.BaseURL = c.Hold.BaseURL
	if hold && c.Listen.HTTP != "" {
		e.Warnings = append(e.Warnings, baseURLWarnings(c.Hold.BaseURL, c.Listen.HTTP)...)
	}
	web := func(key string, b *bool) bool {
		switch {
		case !isOn(b):
			return false
		case c.Store == "":
			e.Off[key] = "needs the store: store"
			return false
		case c.Listen.HTTP == "":
			e.Off[key] = "needs listen.http"
			return false
		}
		return true
	}
	e.Web.Dashboard = web("web.dashboard", c.Web.Dashboard)
	e.Web.API = web("web.api", c.Web.API)
	if len(e.Off) == 0 {
		e.Off = nil
	}
	return e
}

// baseURLWarnings compare the senders' link base with the http listener:
// loopback links from a listener others reach cannot be opened by senders
// elsewhere, and links elsewhere to a loopback-only listener need a proxy.
func baseURLWarnings(base, listen string) []string {
	u, err := url.Parse(base)
	if err != nil || u.Hostname() == "" {
		return []string{fmt.Sprintf("hold.base_url %q names no host: senders' links will not open", base)}
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil
	}
	linkLocal := isLoopbackHost(u.Hostname())
	listenLocal := host != "" && isLoopbackHost(host)
	switch {
	case linkLocal && !listenLocal:
		return []string{fmt.Sprintf("hold.base_url %s is loopback but listen.http %s is reachable from elsewhere: senders on other machines cannot open their links; set hold.base_url to the name they reach", base, listen)}
	case !linkLocal && listenLocal:
		return []string{fmt.Sprintf("hold.base_url %s points elsewhere but listen.http %s listens on loopback only: the links work only through a reverse proxy that forwards /h/ to it", base, listen)}
	}
	return nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func paths(c *Config, files []string) []string {
	out := make([]string, 0, len(files))
	for _, f := range files {
		out = append(out, c.Path(f))
	}
	return out
}

// WriteText writes one "key: value" line per setting, indented by indent.
func (e Effective) WriteText(w io.Writer, indent string) error {
	onOff := func(key string, on bool) string {
		if on {
			return "on"
		}
		if why := e.Off[key]; why != "" {
			return "off (" + why + ")"
		}
		return "off"
	}
	list := func(s []string) string {
		if len(s) == 0 {
			return "none"
		}
		return strings.Join(s, ", ")
	}
	orOff := func(s string) string {
		if s == "" {
			return "off"
		}
		return s
	}
	lines := [][2]string{
		{"detect.builtin", onOff("detect.builtin", e.Detect.Builtin)},
		{"detect.protect", list(e.Detect.Protect)},
		{"detect.known", list(e.Detect.Known)},
		{"detect.deny", list(e.Detect.Deny)},
		{"policy.mode", e.Policy.Mode},
		{"policy.allow", fmt.Sprintf("%d entries", e.Policy.Allow)},
		{"policy.deny", fmt.Sprintf("%d entries", e.Policy.Deny)},
		{"hold.enabled", onOff("hold.enabled", e.Hold.Enabled)},
		{"hold.base_url", orOff(e.Hold.BaseURL)},
		{"web.dashboard", onOff("web.dashboard", e.Web.Dashboard)},
		{"web.api", onOff("web.api", e.Web.API)},
		{"store", orOff(e.Store)},
		{"listen.milter", orOff(e.Listen["milter"])},
		{"listen.policy", orOff(e.Listen["policy"])},
		{"listen.http", orOff(e.Listen["http"])},
		{"listen.http_tls", orOff(e.Listen["http_tls"])},
		{"listen.reply", orOff(e.Listen["reply"])},
		{"listen.relay", orOff(e.Listen["relay"])},
		{"listen.sink", orOff(e.Listen["sink"])},
	}
	for _, l := range lines {
		if _, err := fmt.Fprintf(w, "%s%s: %s\n", indent, l[0], l[1]); err != nil {
			return err
		}
	}
	for _, warn := range e.Warnings {
		if _, err := fmt.Fprintf(w, "%swarning: %s\n", indent, warn); err != nil {
			return err
		}
	}
	return nil
}
