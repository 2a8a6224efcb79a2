// Package config loads stray's YAML configuration: strict decoding (unknown
// keys are errors), defaults before decoding, and one Validate that reports
// every problem at once with its field path and a hint. Every choice (a
// policy action, log.level, relay.next_hop_tls, …) is a typed value that
// refuses an unknown word as it is decoded; Load reports those words with
// their field paths beside Validate's problems.
//
// It never starts anything and never reads files other than the config and
// the knowledge files it names.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/listenaddr"
	"github.com/stray-mail/stray/internal/policy"
	"github.com/stray-mail/stray/internal/store/dsn"
)

// Config is the whole configuration file.
type Config struct {
	Detect Detect        `yaml:"detect"`
	Policy policy.Config `yaml:"policy"`
	Listen Listen        `yaml:"listen"`
	// Store is where held messages, events and learned correspondents
	// live: sqlite:PATH (default sqlite:stray.db), a bare PATH.db (or
	// .sqlite, .sqlite3) or postgres://... (package dsn's grammar, the
	// one the store opens with).
	Store string `yaml:"store"`
	Hold  Hold   `yaml:"hold"`
	Web   Web    `yaml:"web"`
	Log   Log    `yaml:"log"`
	// Relay configures the SMTP relay front end (listen.relay).
	Relay Relay `yaml:"relay"`
	// Sink configures the defensive-registration sink (listen.sink).
	Sink Sink `yaml:"sink"`
	// ShutdownTimeout bounds the drain on SIGTERM before connections are
	// closed (default 30s).
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`

	// dir is the directory of the config file; relative paths in it are
	// resolved against it.
	dir string
}

// Detect configures the detection engine's knowledge.
type Detect struct {
	// Protect lists the organisation's own domains or suffixes.
	Protect []string `yaml:"protect"`
	// Known lists known-correspondent files ("DOMAIN [COUNT]" lines).
	Known []string `yaml:"known"`
	// Deny lists files of registered lookalikes to block ("DOMAIN
	// [INTENDED]" lines, as `stray scan --emit-deny` writes them).
	Deny []string `yaml:"deny"`
	// Builtin enables the built-in provider list (default true).
	Builtin *bool `yaml:"builtin"`
	// Learn sets the evidence learning needs before a delivered domain is
	// trusted as a known correspondent.
	Learn Learn `yaml:"learn"`
}

// Learn is the evidence a domain learned from traffic needs to be trusted:
// mail to it from several distinct senders on several distinct UTC days.
type Learn struct {
	MinSenders int `yaml:"min_senders"` // default 3
	MinDays    int `yaml:"min_days"`    // default 2
}

// Trusted reports whether a learned domain has enough evidence.
func (l Learn) Trusted(senders, days int64) bool {
	return senders >= int64(l.MinSenders) && days >= int64(l.MinDays)
}

// Listen names the listeners `stray serve` runs; an empty one is off.
type Listen struct {
	// Milter: inet:HOST:PORT, inet:PORT@HOST, inet:PORT, inet6:…,
	// unix:PATH, local:PATH or HOST:PORT (package listenaddr's grammar,
	// the one the daemon opens with). Every other listen key is HOST:PORT.
	Milter string `yaml:"milter"`
	// Policy: HOST:PORT for Postfix policy delegation.
	Policy string `yaml:"policy"`
	// HTTP: HOST:PORT for the dashboard, the check API, the senders' hold
	// links, /healthz, and /metrics unless Metrics is set.
	HTTP string `yaml:"http"`
	// HTTPTLS, when set, serves listen.http over TLS with this certificate
	// and key (PEM files, re-read when they change), with HSTS: senders
	// open their links from anywhere in the organisation, and the
	// dashboard's cookie is Secure.
	HTTPTLS TLSFiles `yaml:"http_tls"`
	// Metrics: HOST:PORT serving /metrics (and /healthz) only. When set,
	// /metrics is no longer served on HTTP, which senders reach.
	Metrics string `yaml:"metrics"`
	// Reply: HOST:PORT of the SMTP listener for senders' replies to hold
	// notifications (hold.reply_domain routed here by the MTA). Empty: off.
	Reply string `yaml:"reply"`
	// Relay: HOST:PORT of the SMTP relay front end (a smart host in front
	// of the next hop, relay.next_hop). Empty: off.
	Relay string `yaml:"relay"`
	// Sink: HOST:PORT of the SMTP sink for the organisation's own
	// defensive registrations (sink.domains). Empty: off.
	Sink string `yaml:"sink"`
	// MaxConnections caps each listener's open connections.
	MaxConnections MaxConnections `yaml:"max_connections"`
}

// TLSFiles names a PEM certificate (chain) and its private key.
type TLSFiles struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// On reports whether both files are named.
func (t TLSFiles) On() bool { return t.Cert != "" && t.Key != "" }

// MaxConnections caps the open connections of each listener kind; 0 (the
// default) sizes the cap from the process's file-descriptor limit. At the
// cap a new connection takes the place of the idle one that has gone
// longest without completing anything, or is closed at once (the MTA then
// applies its default action and retries).
type MaxConnections struct {
	Milter int `yaml:"milter"`
	Policy int `yaml:"policy"`
	HTTP   int `yaml:"http"`
	// Relay counts client sessions; each also holds a connection to the
	// next hop, so it takes two descriptors.
	Relay int `yaml:"relay"`
	Sink  int `yaml:"sink"`
}

// Automatic connection caps: at most these, and together no more than the
// file-descriptor limit less FDReserve (the store, logs, listeners,
// outgoing SMTP).
const (
	DefaultMaxMilter = 512
	DefaultMaxPolicy = 256
	DefaultMaxHTTP   = 256
	DefaultMaxRelay  = 256
	DefaultMaxSink   = 256
	FDReserve        = 64
)

// Caps returns the connection caps to use under a file-descriptor limit of
// nofile: a set cap as it is; an automatic one its default, shrunk (in
// proportion with the other automatic ones of the listeners that are on)
// so that all fit in nofile less FDReserve.
func (l Listen) Caps(nofile uint64) MaxConnections {
	type kind struct {
		on  bool
		set int
		def int
		fds int64 // descriptors per connection
		out *int
	}
	var m MaxConnections
	kinds := []kind{
		{l.Milter != "", l.MaxConnections.Milter, DefaultMaxMilter, 1, &m.Milter},
		{l.Policy != "", l.MaxConnections.Policy, DefaultMaxPolicy, 1, &m.Policy},
		{l.HTTP != "", l.MaxConnections.HTTP, DefaultMaxHTTP, 1, &m.HTTP},
		{l.Relay != "", l.MaxConnections.Relay, DefaultMaxRelay, 2, &m.Relay},
		{l.Sink != "", l.MaxConnections.Sink, DefaultMaxSink, 1, &m.Sink},
	}
	budget := int64(min(nofile, 1<<30)) - FDReserve
	auto := int64(0)
	for _, k := range kinds {
		switch {
		case k.set > 0:
			*k.out = k.set
			if k.on {
				budget -= int64(k.set) * k.fds
			}
		case k.on:
			auto += int64(k.def) * k.fds
		default:
			*k.out = k.def
		}
	}
	for _, k := range kinds {
		if k.set > 0 || !k.on {
			continue
		}
		*k.out = k.def
		if auto > budget {
			*k.out = int(max(1, max(budget, 0)*int64(k.def)/auto))
		}
	}
	return m
}

// Hold configures hold and confirm.
type Hold struct {
	// Enabled: hold messages in the store and ask the sender (default
	// true). Off: a hold quarantines the message in the MTA's hold queue.
	Enabled *bool `yaml:"enabled"`
	// SecretFile holds the key that signs links and release headers
	// (created, 0600, when missing). Every node sharing a store must use
	// the same key.
	SecretFile string `yaml:"secret_file"`
	// BaseURL is where senders' links point: this node's http listener,
	// as reachable by senders. Unset in a file, it follows listen.http.
	BaseURL string `yaml:"base_url"`
	// Expire is how long a held message waits for its sender.
	Expire Duration `yaml:"expire"`
	// OnExpiry: discard (default; the sender is told) or release.
	OnExpiry OnExpiry `yaml:"on_expiry"`
	// NotifySMTP is the submission server for notifications; NotifyFrom
	// their sender.
	NotifySMTP string `yaml:"notify_smtp"`
	NotifyFrom string `yaml:"notify_from"`
	// ReinjectSMTP is where released messages go: the MTA.
	ReinjectSMTP string `yaml:"reinject_smtp"`
	// OnStoreError: tempfail (default; the MTA retries) or quarantine.
	OnStoreError OnStoreError `yaml:"on_store_error"`
	// MaxSize bounds a message held in the store (bytes); larger ones are
	// quarantined in the MTA.
	MaxSize int `yaml:"max_size"`
	// Node names this node in the event log (default: the host name).
	Node string `yaml:"node"`
	// Sweep is how often expired holds, unfinished releases and missing
	// notifications are handled.
	Sweep Duration `yaml:"sweep"`
	// ReleaseStale is how long a release may stay unfinished before the
	// sweep takes its node for dead and retries it, as the sender chose
	// (0: 10m).
	ReleaseStale Duration `yaml:"release_stale"`
	// RetryWindow is how long after a message was held an identical
	// delivery counts as the MTA's retry once the message is no longer
	// held (0: 15m). Later it is a new message, held again.
	RetryWindow Duration `yaml:"retry_window"`
	// WarnHeader adds X-Stray-Warning to a message with a recipient the
	// warn action let through (default false). Every recipient reads it,
	// so turn it on only when those are internal; the sender gets a
	// notice either way (at most one per recipient domain a day).
	WarnHeader bool `yaml:"warn_header"`
	// ReplyDomain, with listen.reply, lets senders answer by replying:
	// notifications get a signed Reply-To at this domain, which the MTA
	// routes to the reply listener.
	ReplyDomain string `yaml:"reply_domain"`
	// ReplyClients are the addresses or prefixes of the organisation's
	// MTA, the only clients the reply listener accepts (others are refused
	// at connect). Empty: this machine only (127.0.0.0/8 and ::1).
	ReplyClients []string `yaml:"reply_clients"`
	// ReplyRequireAuth accepts a reply only when the MTA authenticated
	// its sender as the one who sent the held message (Postfix:
	// smtpd_sasl_authenticated_header = yes). Default false.
	ReplyRequireAuth bool `yaml:"reply_require_auth"`
}

// Log configures the structured log on standard error.
type Log struct {
	Level  LogLevel  `yaml:"level"`  // debug, info (default), warn, error
	Format LogFormat `yaml:"format"` // text (default) or json
}

// Web configures the dashboard and the HTTP check API, both served on
// listen.http.
type Web struct {
	// Dashboard serves the dashboard at / (needs a store; default true).
	Dashboard *bool `yaml:"dashboard"`
	// SessionTTL is how long a dashboard login lasts (default 12h).
	SessionTTL Duration `yaml:"session_ttl"`
	// ProxyHeader, when set, names a header carrying the user name that
	// a trusted reverse proxy has authenticated (e.g. X-Remote-User).
	// It is believed only from TrustedProxies; the user must exist.
	ProxyHeader string `yaml:"proxy_header"`
	// TrustedProxies are the reverse proxies in front of listen.http
	// (addresses or prefixes). From them, X-Forwarded-For names the client
	// (its right-most address that is not a trusted proxy), for rate
	// limits and the event log; from anyone else it is ignored.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// API serves the HTTP check API at /api/v1/ (default true).
	API *bool `yaml:"api"`
	// APIRate is the requests per second allowed per API token (default
	// 20, bursts of twice that).
	APIRate float64 `yaml:"api_rate"`
	// CORSOrigins are web origins (https://mail.example.com) whose pages
	// may call the check API from a browser.
	CORSOrigins []string `yaml:"cors_origins"`
}

// Duration is a time.Duration written as "30s" in YAML.
type Duration time.Duration

// D is d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalText writes "30s", "72h0m0s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText parses "30s", "72h".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// OnExpiry is what happens to a held message whose sender never
// answered (hold.on_expiry).
type OnExpiry string

const (
	// ExpiryDiscard discards it; the sender was told it would be.
	ExpiryDiscard OnExpiry = "discard"
	// ExpiryRelease delivers it as typed.
	ExpiryRelease OnExpiry = "release"
)

// Check reports whether o is a choice; "" is the default.
func (o OnExpiry) Check() error {
	switch o {
	case "", ExpiryDiscard, ExpiryRelease:
		return nil
	}
	return fmt.Errorf("%q: want discard or release", string(o))
}

// UnmarshalText accepts discard or release.
func (o *OnExpiry) UnmarshalText(b []byte) error { return unmarshalEnum(o, b) }

// OnStoreError is what the milter answers when a message it must hold
// cannot be stored (hold.on_store_error).
type OnStoreError string

const (
	// StoreErrorTempfail: a temporary failure; the MTA keeps the message
	// and its client retries. Nothing is lost.
	StoreErrorTempfail OnStoreError = "tempfail"
	// StoreErrorQuarantine: the MTA's hold queue.
	StoreErrorQuarantine OnStoreError = "quarantine"
)

// Check reports whether o is a choice; "" is the default.
func (o OnStoreError) Check() error {
	switch o {
	case "", StoreErrorTempfail, StoreErrorQuarantine:
		return nil
	}
	return fmt.Errorf("%q: want tempfail or quarantine", string(o))
}

// UnmarshalText accepts tempfail or quarantine.
func (o *OnStoreError) UnmarshalText(b []byte) error { return unmarshalEnum(o, b) }

// Loopback defaults: a newcomer's `stray serve` listens only on this machine.
const (
	DefaultMilter = "inet:127.0.0.1:8895"
	DefaultPolicy = "127.0.0.1:10045"
	DefaultHTTP   = "127.0.0.1:8098"
)

// on returns a new *bool set to true. Each default switch needs its own:
// YAML decoding writes through the pointer, so a shared one would let
// "web: {dashboard: false}" turn detection off too.
func on() *bool {
	t := true
	return &t
}

// Default returns the configuration used when no file is given.
func Default() *Config {
	return &Config{
		Detect: Detect{Builtin: on(), Learn: Learn{MinSenders: 3, MinDays: 2}},
		Listen: Listen{Milter: DefaultMilter, Policy: DefaultPolicy, HTTP: DefaultHTTP},
		Store:  "sqlite:stray.db",
		Hold: Hold{Enabled: on(), SecretFile: "stray.key", BaseURL: "http://" + DefaultHTTP, Expire: Duration(72 * time.Hour),
			OnExpiry: ExpiryDiscard, NotifySMTP: "127.0.0.1:25", NotifyFrom: "stray@localhost", ReinjectSMTP: "127.0.0.1:25",
			OnStoreError: StoreErrorTempfail, MaxSize: 64 << 20, Sweep: Duration(time.Minute)},
		Web:             Web{Dashboard: on(), SessionTTL: Duration(12 * time.Hour), API: on(), APIRate: 20},
		Relay:           Relay{DSN: true},
		Log:             Log{Level: "info", Format: "text"},
		ShutdownTimeout: Duration(30 * time.Second),
	}
}

// Load reads and validates a configuration file. A value refused as it is
// decoded (an unknown enum word, a bad duration) is reported with the
// validation problems of the rest, each with its field path.
func Load(path string) (*Config, error) { return LoadWith(path, nil) }

// LoadWith is Load with override applied after the file is read and
// before it is checked: a command's flags, which win over the file, so
// that the file and the flags are checked as the whole they make.
func LoadWith(path string, override func(*Config)) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	c, probs, err := parse(f)
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	c.dir = filepath.Dir(path)
	if override != nil {
		override(c)
	}
	if err := c.Validate(); err != nil {
		var vp Problems
		if !errors.As(err, &vp) {
			return nil, fmt.Errorf("config: %s: %w", path, err)
		}
		probs = append(probs, vp...)
	}
	if len(probs) > 0 {
		sort.Strings(probs)
		return nil, fmt.Errorf("config: %s: %w", path, probs)
	}
	return c, nil
}

// Parse decodes YAML strictly over the defaults. It does not validate. A
// value refused as it is decoded is a Problems error naming every such
// value with its field path.
func Parse(r io.Reader) (*Config, error) {
	c, probs, err := parse(r)
	if err != nil {
		return nil, err
	}
	if len(probs) > 0 {
		sort.Strings(probs)
		return nil, probs
	}
	return c, nil
}

// parse decodes YAML strictly over the defaults. The values refused as
// they are decoded are probs, and the config is decoded without them
// (they keep their defaults).
func parse(r io.Reader) (c *Config, probs Problems, err error) {
	data, err := io.ReadAll(io.LimitReader(r, 16<<20))
	if err != nil {
		return nil, nil, err
	}
	c, err = decode(data)
	if err == nil {
		return c, nil, nil
	}
	probs, cleaned := decodeProblems(data)
	if len(probs) == 0 {
		return nil, nil, err
	}
	if cleaned == nil {
		return nil, nil, probs
	}
	if c, err = decode(cleaned); err != nil {
		return nil, nil, append(probs, err.Error())
	}
	return c, probs, nil
}

// decode decodes data strictly over the defaults.
func decode(data []byte) (*Config, error) {
	c := Default()
	c.Hold.BaseURL = "" // unset: derived from listen.http below
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	// An explicit null ("builtin: ~") leaves a nil pointer: the default.
	for _, b := range []**bool{&c.Detect.Builtin, &c.Hold.Enabled, &c.Web.Dashboard, &c.Web.API} {
		if *b == nil {
			*b = on()
		}
	}
	if c.Hold.BaseURL == "" {
		c.Hold.BaseURL = baseURLFor(c.Listen.HTTP, c.Listen.HTTPTLS.On())
	}
	return c, nil
}

// baseURLFor is the senders' link base when hold.base_url is not set: the
// http listener's own address, so that moving listen.http moves the links
// with it. A listener on every address (0.0.0.0:8098, :8098) is named by
// this host's name.
func baseURLFor(listen string, tls bool) string {
	scheme := "http://"
	if tls {
		scheme = "https://"
	}
	if listen == "" {
		listen = DefaultHTTP
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return scheme + listen
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil && h != "" {
			host = h
		}
	}
	return scheme + net.JoinHostPort(host, port)
}

// Problems is every validation error, each with its field path.
type Problems []string

func (p Problems) Error() string { return strings.Join(p, "; ") }

// Validate reports every problem at once.
func (c *Config) Validate() error {
	var p Problems
	for i, d := range c.Detect.Protect {
		if _, err := detect.NormalizeDomain(d); err != nil {
			p = append(p, fmt.Sprintf("detect.protect[%d]: %v (want a domain or suffix such as mil or example.com)", i, err))
		}
	}
	if c.Detect.Learn.MinSenders < 1 {
		p = append(p, fmt.Sprintf("detect.learn.min_senders: %d: want at least 1 (default 3)", c.Detect.Learn.MinSenders))
	}
	if c.Detect.Learn.MinDays < 1 {
		p = append(p, fmt.Sprintf("detect.learn.min_days: %d: want at least 1 (default 2)", c.Detect.Learn.MinDays))
	}
	for i, k := range c.Detect.Known {
		if _, err := os.Stat(c.Path(k)); err != nil {
			p = append(p, fmt.Sprintf("detect.known[%d]: %v (want a file of \"DOMAIN [COUNT]\" lines)", i, err))
		}
	}
	for i, k := range c.Detect.Deny {
		if _, err := os.Stat(c.Path(k)); err != nil {
			p = append(p, fmt.Sprintf("detect.deny[%d]: %v (want a file of \"DOMAIN [INTENDED]\" lines, from stray scan --emit-deny)", i, err))
		}
	}
	if _, err := policy.Compile(c.Policy, "policy"); err != nil {
		var pp policy.Problems
		if errors.As(err, &pp) {
			p = append(p, pp...)
		} else {
			p = append(p, err.Error())
		}
	}
	if c.Listen.Milter != "" {
		if _, err := listenaddr.Milter(c.Listen.Milter); err != nil {
			p = append(p, "listen.milter: "+err.Error())
		}
	}
	mc := c.Listen.MaxConnections
	for name, n := range map[string]int{"milter": mc.Milter, "policy": mc.Policy, "http": mc.HTTP, "relay": mc.Relay, "sink": mc.Sink} {
		if n < 0 {
			p = append(p, fmt.Sprintf("listen.max_connections.%s: %d: want 0 (sized from the file-descriptor limit) or a positive number", name, n))
		}
	}
	if (c.Listen.Reply == "") != (c.Hold.ReplyDomain == "") {
		p = append(p, "hold.reply_domain and listen.reply: set both (answering by reply) or neither")
	}
	if (c.Listen.HTTPTLS.Cert == "") != (c.Listen.HTTPTLS.Key == "") {
		p = append(p, "listen.http_tls: name both cert and key (PEM files), or neither")
	} else if c.Listen.HTTPTLS.On() && c.Listen.HTTP == "" {
		p = append(p, "listen.http_tls: set, but listen.http is off")
	}
	if c.Listen.Metrics != "" && c.Listen.Metrics == c.Listen.HTTP {
		p = append(p, fmt.Sprintf("listen.metrics: %q is listen.http's address; leave it empty to serve /metrics on listen.http", c.Listen.Metrics))
	}
	for name, a := range map[string]string{"listen.policy": c.Listen.Policy, "listen.http": c.Listen.HTTP, "listen.reply": c.Listen.Reply,
		"listen.metrics": c.Listen.Metrics, "listen.relay": c.Listen.Relay, "listen.sink": c.Listen.Sink} {
		if a == "" {
			continue
		}
		if _, err := listenaddr.TCP(a); err != nil {
			p = append(p, name+": "+err.Error())
		}
	}
	p = append(p, c.relayProblems()...)
	if err := c.Log.Level.Check(); err != nil {
		p = append(p, "log.level: "+err.Error())
	}
	if err := c.Log.Format.Check(); err != nil {
		p = append(p, "log.format: "+err.Error())
	}
	if c.Store != "" {
		if _, err := dsn.Parse(c.Store); err != nil {
			p = append(p, "store: "+err.Error())
		}
	}
	if err := c.Hold.OnExpiry.Check(); err != nil {
		p = append(p, "hold.on_expiry: "+err.Error())
	}
	if err := c.Hold.OnStoreError.Check(); err != nil {
		p = append(p, "hold.on_store_error: "+err.Error())
	}
	for name, a := range map[string]string{"hold.notify_smtp": c.Hold.NotifySMTP, "hold.reinject_smtp": c.Hold.ReinjectSMTP} {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			p = append(p, fmt.Sprintf("%s: %q: %v (want HOST:PORT)", name, a, err))
		}
	}
	if c.Hold.Expire < 0 {
		p = append(p, "hold.expire: negative")
	}
	if _, err := c.Hold.ReplyClientPrefixes(); err != nil {
		var pp Problems
		if errors.As(err, &pp) {
			p = append(p, pp...)
		}
	}
	if len(c.Hold.ReplyClients) > 0 && c.Listen.Reply == "" {
		p = append(p, "hold.reply_clients: set, but answering by reply is off (set listen.reply and hold.reply_domain, or remove it)")
	}
	if c.Hold.ReplyRequireAuth && c.Listen.Reply == "" {
		p = append(p, "hold.reply_require_auth: set, but answering by reply is off (set listen.reply and hold.reply_domain, or remove it)")
	}
	if c.Hold.ReleaseStale < 0 {
		p = append(p, "hold.release_stale: negative")
	}
	if c.Hold.RetryWindow < 0 {
		p = append(p, "hold.retry_window: negative")
	}
	if c.Web.SessionTTL < 0 {
		p = append(p, "web.session_ttl: negative")
	}
	if c.Web.APIRate < 0 {
		p = append(p, "web.api_rate: negative")
	}
	if c.Web.ProxyHeader != "" && len(c.Web.TrustedProxies) == 0 {
		p = append(p, "web.proxy_header: needs web.trusted_proxies (the addresses of the reverse proxy that sets it)")
	}
	if _, err := c.Web.Proxies(); err != nil {
		p = append(p, err.Error())
	}
	for i, o := range c.Web.CORSOrigins {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" {
			p = append(p, fmt.Sprintf("web.cors_origins[%d]: %q: want an origin such as https://mail.example.com", i, o))
		}
	}
	if c.ShutdownTimeout < 0 {
		p = append(p, "shutdown_timeout: negative")
	}
	sort.Strings(p)
	if len(p) > 0 {
		return p
	}
	return nil
}

// Proxies parses TrustedProxies: addresses or CIDR prefixes.
func (w Web) Proxies() ([]netip.Prefix, error) {
	var ps []netip.Prefix
	for i, s := range w.TrustedProxies {
		if a, err := netip.ParseAddr(s); err == nil {
			ps = append(ps, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("web.trusted_proxies[%d]: %q: want an address or a prefix such as 10.0.0.0/8", i, s)
		}
		ps = append(ps, p.Masked())
	}
	return ps, nil
}

// ReplyClientPrefixes parses ReplyClients: addresses or CIDR prefixes.
// Empty means this machine only (127.0.0.0/8 and ::1); a prefix that
// covers every address is an error, not a way to open the listener.
func (h Hold) ReplyClientPrefixes() ([]netip.Prefix, error) {
	if len(h.ReplyClients) == 0 {
		return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}, nil
	}
	var ps []netip.Prefix
	var p Problems
	for i, s := range h.ReplyClients {
		if a, err := netip.ParseAddr(s); err == nil {
			ps = append(ps, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		pf, err := netip.ParsePrefix(s)
		switch {
		case err != nil:
			p = append(p, fmt.Sprintf("hold.reply_clients[%d]: %q: want your MTA's address or prefix, such as 10.0.0.25 or 10.0.0.0/29", i, s))
		case pf.Bits() == 0:
			p = append(p, fmt.Sprintf("hold.reply_clients[%d]: %q accepts replies from anywhere: name your MTA's addresses", i, s))
		default:
			ps = append(ps, pf.Masked())
		}
	}
	if len(p) > 0 {
		return nil, p
	}
	return ps, nil
}

// StoreDSN is the store DSN with a relative SQLite path (sqlite:PATH,
// sqlite://PATH or a bare PATH.db) resolved against the config file's
// directory.
func (c *Config) StoreDSN() string {
	d, err := dsn.Parse(c.Store)
	if err != nil || d.Kind != dsn.SQLite || filepath.IsAbs(d.Target) || c.dir == "" {
		return c.Store
	}
	return "sqlite:" + c.Path(d.Target)
}

// Path resolves a path from the config file relative to its directory.
func (c *Config) Path(p string) string {
	if filepath.IsAbs(p) || c.dir == "" {
		return p
	}
	return filepath.Join(c.dir, p)
}

// Knowledge loads the detection knowledge the config names, adding the
// extra protected domains, known files and deny files given on the command
// line.
func (c *Config) Knowledge(protect, knownFiles []string, denyFiles ...string) (detect.Knowledge, error) {
	k := detect.Knowledge{Known: map[string]int{}, Deny: map[string]string{}, NoBuiltin: !*c.Detect.Builtin}
	for _, f := range c.Detect.Deny {
		denyFiles = append(denyFiles, c.Path(f))
	}
	for _, path := range denyFiles {
		if err := readDenyFile(path, k.Deny); err != nil {
			return k, err
		}
	}
	k.Protected = append(append(k.Protected, c.Detect.Protect...), protect...)
	files := make([]string, 0, len(c.Detect.Known)+len(knownFiles))
	for _, f := range c.Detect.Known {
		files = append(files, c.Path(f))
	}
	files = append(files, knownFiles...)
	for _, path := range files {
		if err := readKnownFile(path, k.Known); err != nil {
			return k, err
		}
	}
	return k, nil
}

func readDenyFile(path string, into map[string]string) error {
	return readFile(path, func(r io.Reader) error {
		m, err := detect.ReadDeny(r)
		for d, i := range m {
			into[d] = i
		}
		return err
	})
}

func readKnownFile(path string, into map[string]int) error {
	return readFile(path, func(r io.Reader) error {
		m, err := detect.ReadKnown(r)
		for d, n := range m {
			into[d] += n
		}
		return err
	})
}

// readFile opens path and parses it, naming the file in errors.
func readFile(path string, parse func(io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := parse(f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
