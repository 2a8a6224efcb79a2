package daemon

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/stray-mail/stray/internal/config"
	"github.com/stray-mail/stray/internal/store"
)

// Endpoint is one outside service a configuration depends on, and whether
// it answered.
type Endpoint struct {
	Name string `json:"name"` // the config key: store, hold.notify_smtp, ...
	Addr string `json:"addr"` // passwords hidden
	Err  string `json:"error,omitempty"`
}

// OK reports whether the endpoint answered as it should.
func (e Endpoint) OK() bool { return e.Err == "" }

// endpointTimeout bounds each check.
const endpointTimeout = 5 * time.Second

// CheckEndpoints tries what cfg depends on and stray would otherwise try
// only when it is first needed: the store (opened and written), the SMTP
// servers notifications and releases go through (a greeting and EHLO; a
// message is held long before either is used), and the name in
// hold.base_url (senders must resolve it). withStore false leaves the
// store out (stray serve has just opened it).
func CheckEndpoints(ctx context.Context, cfg *config.Config, withStore bool) []Endpoint {
	var out []Endpoint
	if withStore && cfg.Store != "" {
		e := Endpoint{Name: "store", Addr: store.RedactDSN(cfg.StoreDSN())}
		e.Err = errText(checkStore(ctx, cfg.StoreDSN()))
		out = append(out, e)
	}
	if cfg.Hold.Enabled != nil && *cfg.Hold.Enabled && cfg.Store != "" {
		for _, s := range []struct{ name, addr string }{{"hold.notify_smtp", cfg.Hold.NotifySMTP}, {"hold.reinject_smtp", cfg.Hold.ReinjectSMTP}} {
			if s.addr == "" {
				continue
			}
			out = append(out, Endpoint{Name: s.name, Addr: s.addr, Err: errText(checkSMTP(ctx, s.addr))})
		}
		if u, err := url.Parse(cfg.Hold.BaseURL); err == nil && u.Hostname() != "" && net.ParseIP(u.Hostname()) == nil {
			e := Endpoint{Name: "hold.base_url", Addr: u.Hostname()}
			rctx, cancel := context.WithTimeout(ctx, endpointTimeout)
			_, err := net.DefaultResolver.LookupHost(rctx, u.Hostname())
			cancel()
			e.Err = errText(err)
			out = append(out, e)
		}
	}
	return out
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func checkStore(ctx context.Context, dsn string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*endpointTimeout)
	defer cancel()
	st, err := store.OpenExisting(ctx, dsn)
	if err != nil {
		return err
	}
	defer st.Close()
	return st.Ping(ctx)
}

// checkSMTP reads the server's greeting and says EHLO: a listener that
// accepts but is not an SMTP server (or refuses us) fails here, not on the
// first held message.
func checkSMTP(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: endpointTimeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(endpointTimeout))
	r := bufio.NewReader(c)
	reply := func() (string, error) {
		var last string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return "", err
			}
			last = strings.TrimRight(line, "\r\n")
			if len(last) < 4 || last[3] != '-' {
				return last, nil
			}
		}
	}
	greet, err := reply()
	if err != nil {
		return fmt.Errorf("no greeting: %w", err)
	}
	if !strings.HasPrefix(greet, "220") {
		return fmt.Errorf("greeting %q", greet)
	}
	fmt.Fprintf(c, "EHLO stray-check\r\n")
	ehlo, err := reply()
	if err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	fmt.Fprintf(c, "QUIT\r\n")
	if !strings.HasPrefix(ehlo, "250") {
		return fmt.Errorf("EHLO answered %q", ehlo)
	}
	return nil
}

// endpointHint says what fails while an endpoint does not answer.
var endpointHint = map[string]string{
	"store":              "nothing can be held, learned or counted",
	"hold.notify_smtp":   "senders of held mail are not told",
	"hold.reinject_smtp": "released mail is not delivered (it is retried)",
	"hold.base_url":      "senders cannot open the links in their notifications",
}

// warnEndpoints logs, once at start, each SMTP endpoint and name the
// configuration depends on that does not answer: a warning, not a
// refusal (the MTA may start after stray).
func (d *Daemon) warnEndpoints(ctx context.Context) {
	for _, e := range CheckEndpoints(ctx, d.Config(), false) {
		if e.OK() {
			d.log.Debug("endpoint answers", "endpoint", e.Name, "addr", e.Addr)
			continue
		}
		d.log.Warn("endpoint does not answer", "endpoint", e.Name, "addr", e.Addr, "err", e.Err, "consequence", endpointHint[e.Name])
	}
}
