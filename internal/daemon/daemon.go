package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/config"
	"github.com/stray-mail/stray/internal/gate"
	"github.com/stray-mail/stray/internal/hold"
	"github.com/stray-mail/stray/internal/postconf"
	"github.com/stray-mail/stray/internal/record"
	"github.com/stray-mail/stray/internal/store"
)

// ErrUnavailable marks a failure of something the daemon needs at run
// time (the store unreachable, a listener that cannot open), as opposed
// to a mistake in the config or the command line.
var ErrUnavailable = errors.New("unavailable")

// unavailableError is an error that is also ErrUnavailable; its text is
// the wrapped error's.
type unavailableError struct{ err error }

func (e unavailableError) Error() string        { return e.err.Error() }
func (e unavailableError) Unwrap() error        { return e.err }
func (e unavailableError) Is(target error) bool { return target == ErrUnavailable }

// unavailable marks err as an ErrUnavailable failure.
func unavailable(err error) error { return unavailableError{err} }

// Options say how to start a Daemon.
type Options struct {
	// ConfigPath is the YAML config ("" : the embedded defaults).
	ConfigPath string
	// Override, when set, writes a command's flags over the config file,
	// at start and at every reload, before the config is checked.
	Override func(*config.Config)
	// Check, when set, is a command's own check of the loaded config (its
	// flags over the config), run before anything is opened: a mistake
	// leaves no store behind. Its error is returned as it is.
	Check func(*config.Config) error
	// Knowledge adds command-line knowledge to the config's.
	Knowledge Knowledge
	// LogOutput receives the log (standard error).
	LogOutput io.Writer
	// MTAMaps, when set, checks the MTA's maps for lookalikes at start,
	// beside the listeners (stray serve).
	MTAMaps *postconf.Postconf
}

// Daemon is a running set of listeners around one gate.
type Daemon struct {
	opts     Options
	log      *slog.Logger
	gate     *gate.Gate
	builder  *EngineBuilder
	holder   *hold.Holder     // nil: hold and confirm off
	recorder *record.Recorder // nil without a store
	st       store.Store      // nil: no store
	node     string           // this node's name in the event log
	reg      *prometheus.Registry

	shutdown  []func(context.Context) error
	errs      chan error
	reloadReq chan struct{} // a run-time rule changed: rebuild the engine
	hupMu     sync.Mutex
	hup       []hupHook // what else SIGHUP re-reads (certificates)
	wg        sync.WaitGroup
	stopped   atomic.Bool // stop ran: the listeners, recorder and store are closed

	mu        sync.Mutex // guards cfg and knowledge after start (reload replaces them)
	cfg       *config.Config
	knowledge detect.Knowledge // the configured knowledge of the running engine
	// allowWarned is the last set of LookalikeAllows logged (under mu).
	allowWarned string
}

// NewLogger is the daemon's logger as the config's log section says.
func NewLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(orDefault(string(c.Level), string(config.LogInfo))))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == config.LogJSON {
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

// LoadConfig reads the config file, or the defaults when there is none,
// with override (a command's flags; nil: none) applied before it is
// checked.
func LoadConfig(path string, override func(*config.Config)) (*config.Config, error) {
	if path != "" {
		return config.LoadWith(path, override)
	}
	c := config.Default()
	if override == nil {
		return c, nil
	}
	override(c)
	if err := c.Validate(); err != nil {
		return nil, err // no file: the override (a command's flags) is all it checked
	}
	return c, nil
}

// storeTimeout bounds opening the store and the reads of a rebuild.
const storeTimeout = 30 * time.Second

// New loads the config, opens the store when one is configured, and builds
// the engine; it starts no listener. A store that cannot be opened is an
// ErrUnavailable error; a bad config or knowledge file is any other.
func New(ctx context.Context, o Options) (*Daemon, error) {
	cfg, err := LoadConfig(o.ConfigPath, o.Override)
	if err != nil {
		return nil, err
	}
	if o.Check != nil {
		if err := o.Check(cfg); err != nil {
			return nil, err
		}
	}
	if o.LogOutput == nil {
		o.LogOutput = io.Discard
	}
	d := &Daemon{opts: o, cfg: cfg, log: NewLogger(cfg.Log, o.LogOutput), reg: prometheus.NewRegistry(),
		errs: make(chan error, 8), reloadReq: make(chan struct{}, 1)}
	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.builder = &EngineBuilder{Knowledge: o.Knowledge, Log: d.log}
	// The knowledge files are read once, here: a mistake in them is a
	// config mistake, found before the store is touched.
	k, err := cfg.Knowledge(o.Knowledge.Protect, o.Knowledge.Known, o.Knowledge.Deny...)
	if err != nil {
		return nil, err
	}
	if cfg.Store != "" {
		if err := d.openStore(ctx, cfg); err != nil {
			return nil, err
		}
	}
	bctx, cancel := context.WithTimeout(ctx, storeTimeout)
	eng, err := d.builder.BuildWith(bctx, cfg, k)
	cancel()
	if err != nil {
		d.closeStore()
		return nil, err
	}
	d.knowledge = k
	d.warnLookalikeAllows(cfg, eng.Checker)
	var deps []gate.Option
	if d.recorder != nil {
		deps = append(deps, gate.WithRecorder(d.recorder))
	}
	if d.holder != nil {
		deps = append(deps, gate.WithReleases(d.holder), gate.WithWarner(d.holder))
	}
	d.gate = gate.New(eng, d.log, d.reg, deps...)
	if d.holder != nil {
		d.log.Info("hold and confirm on", "store", store.RedactDSN(cfg.StoreDSN()), "node", d.node)
	}
	return d, nil
}

// openStore opens the store, the recorder (learning, events, counts), and
// the Holder when hold and confirm is on.
func (d *Daemon) openStore(ctx context.Context, cfg *config.Config) error {
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	d.st = st
	d.builder.Store = st
	d.recorder = record.New(st, d.log)
	d.recorder.OnSenderAllow(d.RequestReload) // a release as typed applies at once
	if !*cfg.Hold.Enabled {
		d.log.Info("store open; hold and confirm off", "store", store.RedactDSN(cfg.StoreDSN()))
		return nil
	}
	d.holder, d.node, err = NewHolder(cfg, st, d.log)
	if err != nil {
		d.closeStore()
		return err
	}
	return nil
}

func openStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	st, err := store.Open(ctx, cfg.StoreDSN())
	if err != nil {
		return nil, unavailable(fmt.Errorf("store: %w", err))
	}
	return st, nil
}

// NewHolder makes the hold-and-confirm Holder on an open store (also for
// stray quarantine), and returns it with this node's name.
func NewHolder(cfg *config.Config, st store.Store, log *slog.Logger) (*hold.Holder, string, error) {
	key, err := hold.LoadOrCreateKey(cfg.Path(cfg.Hold.SecretFile))
	if err != nil {
		return nil, "", err
	}
	signer, err := hold.NewSigner(key)
	if err != nil {
		return nil, "", err
	}
	node := cfg.Hold.Node
	if node == "" {
		node, _ = os.Hostname()
	}
	h := hold.New(hold.Config{
		Node: node, BaseURL: cfg.Hold.BaseURL, Expire: time.Duration(cfg.Hold.Expire), OnExpiry: cfg.Hold.OnExpiry,
		NotifySMTP: cfg.Hold.NotifySMTP, NotifyFrom: cfg.Hold.NotifyFrom, ReinjectSMTP: cfg.Hold.ReinjectSMTP,
		Sweep: time.Duration(cfg.Hold.Sweep), ReplyDomain: cfg.Hold.ReplyDomain,
		ReleaseStale: time.Duration(cfg.Hold.ReleaseStale), RetryWindow: time.Duration(cfg.Hold.RetryWindow),
	}, st, signer, log, nil)
	return h, node, nil
}

func (d *Daemon) closeStore() {
	if d.recorder != nil {
		d.recorder.Close()
	}
	if d.st != nil {
		d.st.Close()
	}
}

// build builds the engine for cfg and returns it with the configured
// knowledge it was built from (for the dashboard's policy page).
func (d *Daemon) build(ctx context.Context, cfg *config.Config) (*gate.Engine, detect.Knowledge, error) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	return d.builder.Build(ctx, cfg)
}

// Gate is the daemon's gate.
func (d *Daemon) Gate() *gate.Gate { return d.gate }

// Store is the daemon's store (nil: none configured).
func (d *Daemon) Store() store.Store { return d.st }

// Holder is the hold-and-confirm Holder (nil: off).
func (d *Daemon) Holder() *hold.Holder { return d.holder }

// Logger is the daemon's logger.
func (d *Daemon) Logger() *slog.Logger { return d.log }

// Config is the running configuration.
func (d *Daemon) Config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// Reload re-reads the config and knowledge (files and what the store has
// learned) and swaps them in; on error the running ones stay.
func (d *Daemon) Reload(ctx context.Context) error {
	if d.recorder != nil {
		d.recorder.Flush() // what was learned up to now counts
	}
	cfg, err := LoadConfig(d.opts.ConfigPath, d.opts.Override)
	if err == nil {
		var eng *gate.Engine
		var k detect.Knowledge
		if eng, k, err = d.build(ctx, cfg); err == nil {
			d.warnLookalikeAllows(cfg, eng.Checker)
			d.gate.Swap(eng)
			d.mu.Lock()
			d.cfg, d.knowledge = cfg, k
			d.mu.Unlock()
			d.log.Info("reloaded configuration and knowledge", "config", d.opts.ConfigPath)
			return nil
		}
	}
	d.log.Error("reload failed; keeping the running configuration", "err", err)
	return err
}

// hupHook is something a listener re-reads on SIGHUP.
type hupHook struct {
	name   string
	reload func() error
}

// onHUP registers reload to run on SIGHUP.
func (d *Daemon) onHUP(name string, reload func() error) {
	d.hupMu.Lock()
	defer d.hupMu.Unlock()
	d.hup = append(d.hup, hupHook{name, reload})
}

// ReloadFiles re-reads what the listeners keep from files (the relay's
// certificate and key), as SIGHUP does; a file that cannot be read is
// logged and the running one kept. It returns the first error.
func (d *Daemon) ReloadFiles() error {
	d.hupMu.Lock()
	hooks := append([]hupHook(nil), d.hup...)
	d.hupMu.Unlock()
	var first error
	for _, h := range hooks {
		if err := h.reload(); err != nil {
			d.log.Error("cannot reload; keeping the running one", "what", h.name, "err", err)
			if first == nil {
				first = err
			}
			continue
		}
		d.log.Info("reloaded", "what", h.name)
	}
	return first
}

// RequestReload asks the daemon's loop to rebuild the engine (a run-time
// rule changed); it never blocks.
func (d *Daemon) RequestReload() {
	select {
	case d.reloadReq <- struct{}{}:
	default:
	}
}

// learnedRefresh is how often the knowledge is rebuilt with what the store
// learned from traffic (every node's).
const learnedRefresh = 10 * time.Minute

// Run runs until ctx ends or a listener fails, reloading on SIGHUP (also
// the listeners' certificates: ReloadFiles), on a
// rule change and every learnedRefresh with a store, then shuts everything
// down within the config's shutdown_timeout. A failed listener is an
// ErrUnavailable error.
func (d *Daemon) Run(ctx context.Context) error {
	defer startProfile(d.log)()
	return d.wait(ctx, time.Duration(d.Config().ShutdownTimeout))
}

// wait runs until ctx ends or a listener fails, then shuts down within
// timeout.
func (d *Daemon) wait(ctx context.Context, timeout time.Duration) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var failed error
	var refresh <-chan time.Time
	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	if d.holder != nil {
		d.wg.Add(1)
		go func() { defer d.wg.Done(); d.holder.Run(bg) }()
	}
	if d.opts.MTAMaps != nil {
		d.wg.Add(1)
		go func() { defer d.wg.Done(); d.warnMTALookalikes(bg, *d.opts.MTAMaps) }()
	}
	if d.holder != nil {
		d.wg.Add(1)
		go func() { defer d.wg.Done(); d.warnEndpoints(bg) }()
	}
	if d.st != nil {
		t := time.NewTicker(learnedRefresh)
		defer t.Stop()
		refresh = t.C
	}
loop:
	for {
		select {
		case <-hup:
			d.Reload(bg)
			d.ReloadFiles()
		case <-refresh:
			d.Reload(bg)
		case <-d.reloadReq:
			d.Reload(bg)
		case err := <-d.errs:
			d.log.Error("listener failed", "err", err)
			failed = unavailable(err)
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	d.stop(timeout, stopBG)
	return failed
}

// stop shuts the listeners down within timeout (two phases: each
// listener's Shutdown drains, then closes what is left when its context
// ends), stops the background work, and closes the recorder and the store.
// Only its first call does anything.
func (d *Daemon) stop(timeout time.Duration, stopBG func()) {
	if !d.stopped.CompareAndSwap(false, true) {
		stopBG()
		return
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
	stopBG()
	d.wg.Wait()
	d.closeStore()
	d.log.Info("stopped")
}

// Close stops what New and the Start functions started, when Run will not
// be called (a listener failed to start). After Run, or a first Close, it
// does nothing.
func (d *Daemon) Close() { d.stop(time.Second, func() {}) }

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
