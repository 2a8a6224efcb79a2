package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/config"
	"github.com/stray-mail/stray/internal/connserver"
	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/hold"
	"github.com/stray-mail/stray/internal/milter"
	"github.com/stray-mail/stray/internal/policy"
	"github.com/stray-mail/stray/internal/policyd"
	"github.com/stray-mail/stray/internal/postconf"
	"github.com/stray-mail/stray/internal/store"
	"github.com/stray-mail/stray/internal/web"
)

const serveHelp = `usage: stray serve [--config FILE] [--protect DOMAIN]... [--known FILE]... [--deny FILE]...

Runs every listener the config names in one daemon: the milter (Postfix
smtpd_milters / Sendmail INPUT_MAIL_FILTER), the Postfix policy server
(check_policy_service), HTTP (the dashboard, the check API, the senders'
hold links, /healthz, and /metrics unless listen.metrics gives it an
address of its own), with listen.relay the SMTP relay (stray relay), and
with listen.sink the sink (stray sink). Without --config it runs on the
embedded defaults, on loopback only:

  milter  inet:127.0.0.1:8895
  policy  127.0.0.1:10045
  http    127.0.0.1:8098

One log line per decision goes to standard error (queue id, sender,
recipient, verdict, intended, action). SIGHUP reloads the config and the
knowledge files and swaps them in atomically (messages in flight finish
with the old ones; listener addresses need a restart). SIGTERM or SIGINT
stops accepting, lets messages in progress finish for shutdown_timeout, then
closes what is left: the MTA tempfails those messages and retries them.

At start, beside the listeners, it asks Postfix's postconf for always_bcc,
sender_bcc_maps, recipient_bcc_maps, virtual_alias_maps and alias_maps,
reads the file-based maps (hash:, lmdb:, texthash:, ...: their source
files) and logs one warning, with file and line, per target address that
the engine flags: Postfix adds those after stray's RCPT-time check. It
never delays or stops the start, and says nothing without postconf.

Examples:
  stray serve
  stray serve --config /etc/stray/stray.yaml
  stray serve --protect mil --known /var/lib/stray/known.txt
  stray serve --config /etc/stray/stray.yaml --postfix-config /etc/postfix-out
`

const milterHelp = `usage: stray milter --listen inet:HOST:PORT|unix:PATH [--protect DOMAIN]... [--known FILE]... [--deny FILE]... [--config FILE]

Runs only the milter front end. Postfix: smtpd_milters = inet:HOST:PORT,
milter_default_action = tempfail. A recipient whose verdict maps to reject is
refused at RCPT with a 550 5.1.2 reply naming the suggested address; the
message's other recipients are delivered. hold quarantines the message in
Postfix's hold queue; warn delivers and logs it (an X-Stray-Warning header
only with hold.warn_header).

Examples:
  stray milter --listen inet:127.0.0.1:8895 --protect mil
  stray milter --listen unix:/var/spool/postfix/stray/milter.sock --config /etc/stray/stray.yaml
`

const policyHelp = `usage: stray policy --listen HOST:PORT [--protect DOMAIN]... [--known FILE]... [--deny FILE]... [--config FILE]

Runs only the Postfix policy delegation server. Postfix:
smtpd_recipient_restrictions = ..., check_policy_service inet:HOST:PORT.
Answers 550 5.1.2 (reject, with the suggestion), HOLD, PREPEND
X-Stray-Warning, or DUNNO.

Examples:
  stray policy --listen 127.0.0.1:10045 --protect mil
`

// daemon is a running set of listeners around one gate.
type daemon struct {
	cfgPath              string
	protect, known, deny []string
	log                  *slog.Logger
	gate                 *gate.Gate
	cfg                  *config.Config
	holder               *hold.Holder   // nil: hold and confirm off
	recorder             *hold.Recorder // nil without a store
	st                   store.Store    // nil: no store
	node                 string         // this node's name in the event log
	reg                  *prometheus.Registry
	shutdown             []func(context.Context) error
	errs                 chan error
	reloadReq            chan struct{} // a run-time rule changed: rebuild the engine
	cfgMu                sync.Mutex    // guards cfg after start (reload replaces it)
	wg                   sync.WaitGroup

	// lastGood is what the store last answered, for when it cannot.
	lastGood storeKnowledge
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(orDefault(c.Level, "info")))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// loadConfig reads the config file, or the defaults when there is none.
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	return config.Load(path)
}

// buildEngine builds detection knowledge and policy from a config.
func buildEngine(cfg *config.Config, protect, known []string, deny ...string) (*gate.Engine, error) {
	k, err := cfg.Knowledge(protect, known, deny...)
	if err != nil {
		return nil, err
	}
	return engineFrom(cfg, k)
}

func engineFrom(cfg *config.Config, k detect.Knowledge) (*gate.Engine, error) {
	c, err := detect.New(k)
	if err != nil {
		return nil, err
	}
	p, err := policy.Compile(cfg.Policy, "policy")
	if err != nil {
		return nil, err
	}
	return &gate.Engine{Checker: c, Policy: p, WarnHeader: cfg.Hold.WarnHeader}, nil
}

func newDaemon(df *detectFlags, std Stdio) (*daemon, *config.Config, error) {
	cfg, err := loadConfig(*df.config)
	if err != nil {
		return nil, nil, err
	}
	eng, err := buildEngine(cfg, df.protect, df.known, df.deny...)
	if err != nil {
		return nil, nil, err
	}
	d := &daemon{cfgPath: *df.config, protect: df.protect, known: df.known, deny: df.deny, log: newLogger(cfg.Log, std.Err),
		reg: prometheus.NewRegistry(), errs: make(chan error, 4), reloadReq: make(chan struct{}, 1)}
	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.gate = gate.New(eng, d.log, d.reg)
	d.cfg = cfg
	if *cfg.Hold.Enabled && cfg.Store != "" {
		if err := d.openHold(cfg); err != nil {
			return nil, nil, err
		}
		// Add what the store learned from traffic.
		eng, err := d.buildEngine(cfg)
		if err != nil {
			return nil, nil, err
		}
		d.gate.Swap(eng)
	}
	return d, cfg, nil
}

// openHold opens the store and sets up hold and confirm and learning.
func (d *daemon) openHold(cfg *config.Config) error {
	if err := d.openHoldOnly(cfg); err != nil {
		return err
	}
	d.recorder = hold.NewRecorder(d.st, d.log)
	d.recorder.OnSenderAllow(d.requestReload) // a release as typed applies at once
	d.gate.SetReleases(d.holder)
	d.gate.SetRecorder(d.recorder)
	d.gate.SetWarner(d.holder)
	d.log.Info("hold and confirm on", "store", store.RedactDSN(cfg.StoreDSN()), "node", d.node)
	return nil
}

// openHoldOnly opens the store and makes the Holder, without a gate (the
// quarantine command).
func (d *daemon) openHoldOnly(cfg *config.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, cfg.StoreDSN())
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	key, err := hold.LoadOrCreateKey(cfg.Path(cfg.Hold.SecretFile))
	if err != nil {
		st.Close()
		return err
	}
	signer, err := hold.NewSigner(key)
	if err != nil {
		st.Close()
		return err
	}
	node := cfg.Hold.Node
	if node == "" {
		node, _ = os.Hostname()
	}
	d.node = node
	d.st = st
	d.holder = hold.New(hold.Config{
		Node: node, BaseURL: cfg.Hold.BaseURL, Expire: time.Duration(cfg.Hold.Expire), OnExpiry: cfg.Hold.OnExpiry,
		NotifySMTP: cfg.Hold.NotifySMTP, NotifyFrom: cfg.Hold.NotifyFrom, ReinjectSMTP: cfg.Hold.ReinjectSMTP,
		Sweep: time.Duration(cfg.Hold.Sweep), ReplyDomain: cfg.Hold.ReplyDomain,
		ReleaseStale: time.Duration(cfg.Hold.ReleaseStale), RetryWindow: time.Duration(cfg.Hold.RetryWindow),
	}, st, signer, d.log, nil)
	return nil
}

// listen opens a listener; a unix socket left by a previous run is removed.
func listen(network, addr string) (net.Listener, error) {
	if network == "unix" {
		if fi, err := os.Stat(addr); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(addr)
		}
		l, err := net.Listen(network, addr)
		if err == nil {
			os.Chmod(addr, 0o666) // the MTA runs as another user
		}
		return l, err
	}
	// No TCP keepalive: MTA connections are local and short, and each
	// accepted connection would cost four setsockopt calls.
	lc := net.ListenConfig{KeepAlive: -1}
	return lc.Listen(context.Background(), network, addr)
}

func (d *daemon) startMilter(addr string) error {
	network, a, err := milter.ParseListen(addr)
	if err != nil {
		return err
	}
	l, err := listen(network, a)
	if err != nil {
		return fmt.Errorf("milter: %w", err)
	}
	s := &milter.Server{Gate: d.gate, Holder: d.holder, MaxHoldSize: d.cfg.Hold.MaxSize, OnStoreError: d.cfg.Hold.OnStoreError,
		MaxConns: d.caps().Milter}
	d.run("milter", addr, func() error { return s.Serve(l) }, s.Shutdown, "max_connections", s.MaxConns)
	return nil
}

func (d *daemon) startPolicy(addr string) error {
	l, err := listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	s := &policyd.Server{Gate: d.gate, MaxConns: d.caps().Policy}
	d.run("policy", addr, func() error { return s.Serve(l) }, s.Shutdown, "max_connections", s.MaxConns)
	return nil
}

func (d *daemon) startRelay(addr string) error {
	s, err := d.newRelay(d.cfg.Relay)
	if err != nil {
		return err
	}
	l, err := listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	d.run("relay", addr, func() error { return s.Serve(l) }, s.Shutdown)
	return nil
}

func (d *daemon) startHTTP(addr string) error {
	l, err := listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	cfg := d.config()
	proxies, err := cfg.Web.Proxies()
	if err != nil {
		l.Close()
		return err
	}
	mux := http.NewServeMux()
	if cfg.Listen.Metrics == "" {
		mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /healthz", healthz)
	if d.holder != nil {
		mux.Handle("/h/", d.holder.HandlerBehind(proxies))
	}
	if err := d.mountWeb(mux); err != nil {
		l.Close()
		return err
	}
	maxConns := d.caps().HTTP
	s := web.NewHTTPServer(mux, web.HTTPLimits{MaxConns: maxConns}, d.log.With("listener", "http"))
	d.run("http", addr, func() error {
		if err := s.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, s.Shutdown, "max_connections", maxConns)
	return nil
}

// startMetrics serves /metrics (and /healthz) on listen.metrics, apart
// from the http listener that senders reach.
func (d *daemon) startMetrics(addr string) error {
	l, err := listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", healthz)
	s := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	d.run("metrics", addr, func() error {
		if err := s.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, s.Shutdown)
	return nil
}

func healthz(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") }

// replyMaxConns caps the reply listener's connections.
const replyMaxConns = 32

func (d *daemon) startReply(addr string) error {
	if d.holder == nil {
		return fmt.Errorf("reply: needs hold and confirm with a store")
	}
	l, err := listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("reply: %w", err)
	}
	clients, err := d.cfg.Hold.ReplyClientPrefixes()
	if err != nil {
		l.Close()
		return fmt.Errorf("reply: %w", err)
	}
	rs := d.holder.NewReplyServer(hold.ReplyOptions{Clients: clients, RequireAuth: d.cfg.Hold.ReplyRequireAuth})
	d.log.Info("replies accepted only from", "listener", "reply", "clients", fmt.Sprint(clients), "require_auth", d.cfg.Hold.ReplyRequireAuth)
	// Only the organisation's MTA talks here: a small cap keeps a flood
	// from taking the descriptors the milter and policy server need, and
	// accept errors (EMFILE) are retried rather than ending the listener.
	capped := connserver.NewListener(l, replyMaxConns, d.log.With("listener", "reply"))
	capped.Refuse = func(c net.Conn) { io.WriteString(c, "421 4.7.0 too many connections, try again later\r\n") }
	d.run("reply", addr, func() error { return rs.Serve(capped) }, rs.Shutdown)
	return nil
}

// caps are the listeners' connection caps under this process's
// file-descriptor limit.
func (d *daemon) caps() config.MaxConnections {
	nofile := uint64(1 << 20)
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil {
		nofile = rl.Cur
	}
	return d.cfg.Listen.Caps(nofile)
}

func (d *daemon) run(name, addr string, serve func() error, shutdown func(context.Context) error, attrs ...any) {
	d.log.Info("listening", append([]any{"listener", name, "addr", addr}, attrs...)...)
	d.shutdown = append(d.shutdown, shutdown)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := serve(); err != nil {
			d.errs <- fmt.Errorf("%s: %w", name, err)
		}
	}()
}

// config is the running configuration.
func (d *daemon) config() *config.Config {
	d.cfgMu.Lock()
	defer d.cfgMu.Unlock()
	return d.cfg
}

// reload re-reads the config and knowledge (files and what the store has
// learned) and swaps them in; on error the running ones stay.
func (d *daemon) reload() {
	cfg, err := loadConfig(d.cfgPath)
	if err == nil {
		var eng *gate.Engine
		if eng, err = d.buildEngine(cfg); err == nil {
			d.gate.Swap(eng)
			d.cfgMu.Lock()
			d.cfg = cfg
			d.cfgMu.Unlock()
			d.log.Info("reloaded configuration and knowledge", "config", d.cfgPath)
			return
		}
	}
	d.log.Error("reload failed; keeping the running configuration", "err", err)
}

// buildEngine is buildEngine with the correspondents learned from traffic
// added to the known ones and the run-time rules added to the policy, when
// there is a store.
func (d *daemon) buildEngine(cfg *config.Config) (*gate.Engine, error) {
	k, err := cfg.Knowledge(d.protect, d.known, d.deny...)
	if err != nil {
		return nil, err
	}
	var allows []store.SenderAllow
	if d.st != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		learned, rules := d.lastGood.read(ctx, d.st, d.log)
		for _, c := range learned {
			// Trust needs evidence: several senders on several days.
			if cfg.Detect.Learn.Trusted(c.Senders, c.Days) {
				k.Known[c.Domain] += int(min(c.Deliveries, 1<<30))
			}
		}
		cfg = withRules(cfg, rules, d.log)
		if allows, err = d.st.ListSenderAllows(ctx); err != nil {
			d.log.Warn("per-sender allows unavailable", "err", err)
		}
	}
	eng, err := engineFrom(cfg, k)
	if err != nil || len(allows) == 0 {
		return eng, err
	}
	var pa []policy.SenderAllow
	for _, a := range allows {
		x := policy.SenderAllow{Sender: a.Sender, Recipient: a.Recipient}
		if err := x.Check(); err != nil {
			d.log.Warn("skipping a per-sender allow", "id", a.ID, "err", err)
			continue
		}
		pa = append(pa, x)
	}
	if eng.Policy, err = eng.Policy.WithSenderAllows(pa); err != nil {
		return nil, err
	}
	return eng, nil
}

// withRules returns cfg with the run-time rules (from the dashboard) added
// to its policy's allow and deny lists; cfg itself is not changed. A rule
// the policy cannot read is skipped with a warning: a bad row in the store
// must not stop the daemon from starting or reloading.
func withRules(cfg *config.Config, rules []store.Rule, log *slog.Logger) *config.Config {
	if len(rules) == 0 {
		return cfg
	}
	c := *cfg
	c.Policy.Allow = slices.Clone(cfg.Policy.Allow)
	c.Policy.Deny = slices.Clone(cfg.Policy.Deny)
	for _, r := range rules {
		if _, err := policy.NormalizePattern(r.Pattern); err != nil {
			log.Warn("skipping a run-time policy rule", "id", r.ID, "kind", r.Kind, "pattern", r.Pattern, "err", err)
			continue
		}
		switch r.Kind {
		case "allow":
			c.Policy.Allow = append(c.Policy.Allow, r.Pattern)
		case "deny":
			c.Policy.Deny = append(c.Policy.Deny, r.Pattern)
		}
	}
	return &c
}

// learnedRefresh is how often the knowledge is rebuilt with what the store
// learned from traffic (every node's).
const learnedRefresh = 10 * time.Minute

// wait runs until ctx ends or a listener fails, reloading on SIGHUP, then
// shuts everything down within timeout.
func (d *daemon) wait(ctx context.Context, timeout time.Duration) int {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	code := ExitOK
	var refresh <-chan time.Time
	if d.holder != nil {
		sweepCtx, stopSweep := context.WithCancel(context.Background())
		defer stopSweep()
		go d.holder.Run(sweepCtx)
		t := time.NewTicker(learnedRefresh)
		defer t.Stop()
		refresh = t.C
	}
loop:
	for {
		select {
		case <-hup:
			d.reload()
		case <-refresh:
			d.reload()
		case <-d.reloadReq:
			d.reload()
		case err := <-d.errs:
			d.log.Error("listener failed", "err", err)
			code = 1
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	d.log.Info("shutting down", "timeout", timeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, f := range d.shutdown {
		wg.Add(1)
		go func() { defer wg.Done(); f(sctx) }()
	}
	wg.Wait()
	d.wg.Wait()
	if d.recorder != nil {
		d.recorder.Close()
	}
	if d.st != nil {
		d.st.Close()
	}
	d.log.Info("stopped")
	return code
}

// startProfile writes a CPU profile to $STRAY_CPUPROFILE until the daemon
// stops: for diagnosing a production load without rebuilding.
func startProfile(log *slog.Logger) func() {
	path := os.Getenv("STRAY_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		log.Error("cpu profile", "err", err)
		return func() {}
	}
	log.Info("writing CPU profile", "path", path)
	return func() { pprof.StopCPUProfile(); f.Close() }
}

func runServe(ctx context.Context, args []string, std Stdio) int {
	fs := newFlagSet("serve", serveHelp, std)
	df := addDetectFlags(fs, "YAML config `FILE` (default: embedded defaults, loopback listeners)")
	var pc postconf.Postconf
	fs.StringVar(&pc.Path, "postconf", "", "Postfix's postconf `PATH`, to check the MTA's maps at start (default: postconf in PATH or /usr/sbin; off: no check)")
	fs.StringVar(&pc.ConfigDir, "postfix-config", "", "Postfix configuration `DIR` for that check (postconf -c; default: Postfix's own)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return flagExit(err)
	}
	d, cfg, err := newDaemon(df, std)
	if err != nil {
		fmt.Fprintf(std.Err, "stray serve: %v\n", err)
		return ExitUsage
	}
	starts := []struct {
		addr  string
		start func(string) error
	}{{cfg.Listen.Milter, d.startMilter}, {cfg.Listen.Policy, d.startPolicy}, {cfg.Listen.HTTP, d.startHTTP}, {cfg.Listen.Metrics, d.startMetrics}, {cfg.Listen.Reply, d.startReply}, {cfg.Listen.Relay, d.startRelay}, {cfg.Listen.Sink, d.startSink}}
	n := 0
	for _, s := range starts {
		if s.addr == "" {
			continue
		}
		if err := s.start(s.addr); err != nil {
			fmt.Fprintf(std.Err, "stray serve: %v\n", err)
			d.wait(canceled(), time.Second)
			return 1
		}
		n++
	}
	if n == 0 {
		fmt.Fprintln(std.Err, "stray serve: no listeners configured (listen.milter, listen.policy, listen.http)")
		return ExitUsage
	}
	if pc.Path != "off" {
		go d.warnMTALookalikes(ctx, pc)
	}
	defer startProfile(d.log)()
	return d.wait(ctx, time.Duration(cfg.ShutdownTimeout))
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// runSingle runs one front end (stray milter, stray policy).
func runSingle(ctx context.Context, name, help string, args []string, std Stdio, start func(*daemon, string) error) int {
	fs := newFlagSet(name, help, std)
	df := addDetectFlags(fs, "YAML config `FILE` (detect, policy, hold and log sections)")
	addr := fs.String("listen", "", "listen address (required)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return flagExit(err)
	}
	if *addr == "" {
		fmt.Fprintf(std.Err, "stray %s: --listen is required\n", name)
		return ExitUsage
	}
	d, cfg, err := newDaemon(df, std)
	if err != nil {
		fmt.Fprintf(std.Err, "stray %s: %v\n", name, err)
		return ExitUsage
	}
	if err := start(d, *addr); err != nil {
		fmt.Fprintf(std.Err, "stray %s: %v\n", name, err)
		return 1
	}
	return d.wait(ctx, time.Duration(cfg.ShutdownTimeout))
}

func runMilter(ctx context.Context, args []string, std Stdio) int {
	return runSingle(ctx, "milter", milterHelp, args, std, (*daemon).startMilter)
}

func runPolicy(ctx context.Context, args []string, std Stdio) int {
	return runSingle(ctx, "policy", policyHelp, args, std, (*daemon).startPolicy)
}

const configHelp = `usage: stray config check [--format text|json] FILE

Validates a configuration file without starting anything: strict YAML (an
unknown key is an error), every field checked, every problem reported at
once with its field path, and the knowledge files read.

A valid file is followed by what it turns on, as stray serve would run it:
the detection, hold, dashboard and API switches (a switch whose key is on
but that lacks what it needs shows as off, with the reason), the protected
domains, the knowledge files, the policy mode, the store and the
listeners. Read them after every change: a key that silently turns
something off shows here.

  t.yaml: ok
    detect.builtin: on
    detect.protect: example.com
    hold.enabled: on
    web.dashboard: off
    web.api: on
    listen.milter: inet:127.0.0.1:8895
    ...

--format json prints one JSON object: {"config":FILE, "ok":true,
"detect":{"builtin":true,"protect":[...],...}, "hold":{"enabled":true},
"web":{"dashboard":false,"api":true}, "listen":{...}, ...}, or
{"config":FILE, "ok":false, "problems":[...]}.

Exit status: 0 valid, 2 problems (one per line on standard error, or in
the JSON object).

Examples:
  stray config check /etc/stray/stray.yaml
  stray config check --format json /etc/stray/stray.yaml
`

// configReport is stray config check's JSON output.
type configReport struct {
	Config   string   `json:"config"`
	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
	*config.Effective
}

func runConfig(_ context.Context, args []string, std Stdio) int {
	fs := newFlagSet("config", configHelp, std)
	format := fs.String("format", "text", "output format: text or json")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintf(std.Err, "stray config check: --format %q: want text or json\n", *format)
		return ExitUsage
	}
	if len(pos) != 2 || pos[0] != "check" {
		fmt.Fprint(std.Err, configHelp)
		return ExitUsage
	}
	cfg, err := config.Load(pos[1])
	if err == nil {
		_, err = buildEngine(cfg, nil, nil)
	}
	if err != nil {
		var probs config.Problems
		isProbs := errors.As(err, &probs)
		switch {
		case *format == "json":
			if !isProbs {
				probs = config.Problems{err.Error()}
			}
			json.NewEncoder(std.Out).Encode(configReport{Config: pos[1], Problems: probs})
		case isProbs:
			fmt.Fprintf(std.Err, "%s: %d problem(s):\n", pos[1], len(probs))
			for _, p := range probs {
				fmt.Fprintf(std.Err, "  %s\n", p)
			}
		default:
			fmt.Fprintf(std.Err, "stray config check: %v\n", err)
		}
		return ExitUsage
	}
	eff := cfg.Effective()
	eff.Store = store.RedactDSN(eff.Store)
	if *format == "json" {
		json.NewEncoder(std.Out).Encode(configReport{Config: pos[1], OK: true, Effective: &eff})
		return ExitOK
	}
	fmt.Fprintf(std.Out, "%s: ok\n", pos[1])
	eff.WriteText(std.Out, "  ")
	return ExitOK
}
