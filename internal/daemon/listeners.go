package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stray-mail/stray/internal/config"
	"github.com/stray-mail/stray/internal/connserver"
	"github.com/stray-mail/stray/internal/hold"
	"github.com/stray-mail/stray/internal/listenaddr"
	"github.com/stray-mail/stray/internal/milter"
	"github.com/stray-mail/stray/internal/policyd"
	"github.com/stray-mail/stray/internal/web"
)

// ErrNoListeners is Start's answer when the config names no listener.
var ErrNoListeners = errors.New("no listeners configured (listen.milter, listen.policy, listen.http, listen.relay, listen.sink)")

// Start starts every listener the config names. On error, the ones
// already started keep running until Close.
func (d *Daemon) Start() error {
	l := d.Config().Listen
	starts := []struct {
		addr  string
		start func(string) error
	}{{l.Milter, d.StartMilter}, {l.Policy, d.StartPolicy}, {l.HTTP, d.StartHTTP}, {l.Metrics, d.StartMetrics}, {l.Reply, d.StartReply}, {l.Relay, d.StartRelay}, {l.Sink, d.StartSink}}
	n := 0
	for _, s := range starts {
		if s.addr == "" {
			continue
		}
		if err := s.start(s.addr); err != nil {
			return err
		}
		n++
	}
	if n == 0 {
		return ErrNoListeners
	}
	if e := d.gate.Engine(); e != nil && len(e.Checker.Protected()) == 0 {
		d.log.Warn("no protected domains (detect.protect or --protect): stray protects only popular providers until told the organisation's own domains; their lookalikes (army.ml for army.mil) pass")
	}
	return nil
}

// listenTCP opens the listener for a HOST:PORT listen key, read with the
// grammar the config is validated with: a bad address is a config error, a
// listener that cannot open an ErrUnavailable one.
func listenTCP(name, addr string) (net.Listener, error) {
	a, err := parseListen(name, addr)
	if err != nil {
		return nil, err
	}
	return listen(name, a.Network, a.Address)
}

// parseListen reads the address of the listener name (milter, policy,
// http, …) as its Start function does.
func parseListen(name, addr string) (listenaddr.Addr, error) {
	if name == "milter" {
		network, a, err := milter.ParseListen(addr)
		return listenaddr.Addr{Network: network, Address: a}, err
	}
	a, err := listenaddr.TCP(addr)
	if err != nil {
		return a, fmt.Errorf("%s: listen address %w", name, err)
	}
	return a, nil
}

// listen opens a listener; a unix socket left by a previous run is removed.
// A listener that cannot open is an ErrUnavailable error.
func listen(name, network, addr string) (net.Listener, error) {
	var l net.Listener
	var err error
	if network == "unix" {
		if fi, serr := os.Stat(addr); serr == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(addr)
		}
		// Accepted without the runtime's system-call bookkeeping
		// (connserver.ListenUnix): Postfix connects once per SMTP session.
		if l, err = connserver.ListenUnix(addr); err == nil {
			os.Chmod(addr, 0o666) // the MTA runs as another user
		}
	} else {
		// No TCP keepalive: MTA connections are local and short, and each
		// accepted connection would cost four setsockopt calls.
		lc := net.ListenConfig{KeepAlive: -1}
		l, err = lc.Listen(context.Background(), network, addr)
	}
	if err != nil {
		return nil, unavailable(fmt.Errorf("%s: %w", name, err))
	}
	return l, nil
}

// StartMilter starts the milter on addr (milter.ParseListen: inet:HOST:PORT,
// inet:PORT@HOST, unix:PATH, …).
func (d *Daemon) StartMilter(addr string) error {
	a, err := parseListen("milter", addr)
	if err != nil {
		return err
	}
	l, err := listen("milter", a.Network, a.Address)
	if err != nil {
		return err
	}
	cfg := d.Config()
	var holder milter.Holder // a nil *hold.Holder must stay a nil interface
	if d.holder != nil {
		holder = d.holder
	}
	s := &milter.Server{Sessions: milter.GateSessions(d.gate), Holder: holder, MaxHoldSize: cfg.Hold.MaxSize, OnStoreError: cfg.Hold.OnStoreError,
		MaxConns: d.caps().Milter}
	d.run("milter", addr, l, func() error { return s.Serve(l) }, s.Shutdown, "max_connections", s.MaxConns)
	return nil
}

// StartPolicy starts the Postfix policy server on addr (HOST:PORT).
func (d *Daemon) StartPolicy(addr string) error {
	l, err := listenTCP("policy", addr)
	if err != nil {
		return err
	}
	s := &policyd.Server{Gate: d.gate, MaxConns: d.caps().Policy}
	d.run("policy", addr, l, func() error { return s.Serve(l) }, s.Shutdown, "max_connections", s.MaxConns)
	return nil
}

// StartHTTP starts the HTTP listener: the dashboard, the check API, the
// senders' hold links, /healthz, and /metrics unless listen.metrics has
// its own.
func (d *Daemon) StartHTTP(addr string) error {
	l, err := listenTCP("http", addr)
	if err != nil {
		return err
	}
	cfg := d.Config()
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
	var h http.Handler = mux
	var tlsCfg *tls.Config
	if t := cfg.Listen.HTTPTLS; t.On() {
		kp := &keyPair{cert: cfg.Path(t.Cert), key: cfg.Path(t.Key)}
		if _, err := kp.get(nil); err != nil {
			l.Close()
			return fmt.Errorf("http: %w", err)
		}
		tlsCfg = &tls.Config{GetCertificate: kp.get, MinVersion: tls.VersionTLS12}
		d.onHUP("http certificate", kp.reload)
		h = web.HSTS(mux)
	}
	s := web.NewHTTPServer(h, web.HTTPLimits{MaxConns: maxConns}, d.log.With("listener", "http"))
	d.run("http", addr, l, func() error {
		var err error
		if tlsCfg != nil {
			err = s.ServeTLS(l, tlsCfg)
		} else {
			err = s.Serve(l)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, s.Shutdown, "max_connections", maxConns, "tls", tlsCfg != nil)
	return nil
}

// StartMetrics serves /metrics (and /healthz) on listen.metrics, apart
// from the http listener that senders reach.
func (d *Daemon) StartMetrics(addr string) error {
	l, err := listenTCP("metrics", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", healthz)
	s := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	d.run("metrics", addr, l, func() error {
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

// StartReply starts the listener for senders' e-mailed replies (hold and
// confirm).
func (d *Daemon) StartReply(addr string) error {
	if d.holder == nil {
		return fmt.Errorf("reply: needs hold and confirm with a store")
	}
	cfg := d.Config()
	l, err := listenTCP("reply", addr)
	if err != nil {
		return err
	}
	clients, err := cfg.Hold.ReplyClientPrefixes()
	if err != nil {
		l.Close()
		return fmt.Errorf("reply: %w", err)
	}
	rs := d.holder.NewReplyServer(hold.ReplyOptions{Clients: clients, RequireAuth: cfg.Hold.ReplyRequireAuth})
	d.log.Info("replies accepted only from", "listener", "reply", "clients", fmt.Sprint(clients), "require_auth", cfg.Hold.ReplyRequireAuth)
	// Only the organisation's MTA talks here: a small cap keeps a flood
	// from taking the descriptors the milter and policy server need, and
	// accept errors (EMFILE) are retried rather than ending the listener.
	capped := d.capSMTP(l, "reply", replyMaxConns)
	d.run("reply", addr, l, func() error { return rs.Serve(capped) }, rs.Shutdown)
	return nil
}

// capSMTP caps an SMTP listener (reply, relay, sink) at max connections:
// a flood cannot take the descriptors the other listeners need, accept
// errors (EMFILE) are retried rather than ending the listener, and a
// client over the cap hears 421 and tries again later.
func (d *Daemon) capSMTP(l net.Listener, name string, max int) net.Listener {
	capped := connserver.NewListener(l, max, d.log.With("listener", name))
	capped.Refuse = func(c net.Conn) { io.WriteString(c, "421 4.7.0 too many connections, try again later\r\n") }
	return capped
}

// caps are the listeners' connection caps under this process's
// file-descriptor limit.
func (d *Daemon) caps() config.MaxConnections {
	nofile := uint64(1 << 20)
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil {
		nofile = rl.Cur
	}
	return d.Config().Listen.Caps(nofile)
}

// run serves l in the background and registers its shutdown: the
// server's Shutdown, then the listener closed. A Serve that begins only
// after Shutdown (a daemon closed at once after Start) would otherwise
// register a listener nobody closes, in a server such as go-smtp's, and
// accept forever while the shutdown waits for it.
func (d *Daemon) run(name, addr string, l net.Listener, serve func() error, shutdown func(context.Context) error, attrs ...any) {
	d.log.Info("listening", append([]any{"listener", name, "addr", addr}, attrs...)...)
	d.shutdown = append(d.shutdown, func(ctx context.Context) error {
		err := shutdown(ctx)
		l.Close()
		return err
	})
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := serve(); err != nil {
			d.errs <- fmt.Errorf("%s: %w", name, err)
		}
	}()
}
