package daemon

import (
	"context"
	"net/http"
	"slices"
	"sort"

	"go.yaml.in/yaml/v3"

	"github.com/stray-mail/stray/internal/realip"
	"github.com/stray-mail/stray/internal/store"
	"github.com/stray-mail/stray/internal/web"
	"github.com/stray-mail/stray/internal/web/api"
)

// mountWeb adds the check API (at /api/v1/) and the dashboard (at /) to
// the HTTP listener's routes. Both need the store (tokens, users), not
// hold and confirm.
func (d *Daemon) mountWeb(mux *http.ServeMux) error {
	cfg := d.Config()
	proxies, err := cfg.Web.Proxies()
	if err != nil {
		return err
	}
	if *cfg.Web.API {
		if d.st == nil {
			d.log.Warn("check API off: its tokens live in the store (store)")
		} else {
			// Failed authentications are limited per client: behind a
			// trusted proxy, the client it forwards for.
			clientIP := func(r *http.Request) string { return realip.Key(realip.From(r, proxies)) }
			srv, err := api.New(api.Config{Gate: d.gate, Tokens: d.st, Log: d.log, Rate: cfg.Web.APIRate,
				Burst: int(2 * cfg.Web.APIRate), AllowedOrigins: cfg.Web.CORSOrigins, Registerer: d.reg, ClientIP: clientIP})
			if err != nil {
				return err
			}
			mux.Handle(api.Prefix, srv.Handler())
		}
	}
	if !*cfg.Web.Dashboard {
		return nil
	}
	if d.st == nil {
		d.log.Warn("dashboard off: it needs the store (store)")
		return nil
	}
	lookalike := func(domain string, suffix bool) (string, bool) {
		return d.gate.Engine().Checker.CoversProtectedLookalike(domain, suffix)
	}
	srv, err := web.New(web.Options{Store: d.st, Holder: d.holder, Policy: d.PolicyView, RulesChanged: d.RequestReload, Lookalike: lookalike,
		SessionTTL: cfg.Web.SessionTTL.D(), ProxyHeader: cfg.Web.ProxyHeader, TrustedProxies: proxies, Log: d.log})
	if err != nil {
		return err
	}
	mux.Handle("/", srv.Handler())
	ctx, cancel := context.WithCancel(context.Background())
	d.wg.Add(1)
	go func() { defer d.wg.Done(); srv.Run(ctx) }()
	d.shutdown = append(d.shutdown, func(context.Context) error { cancel(); return nil })
	return nil
}

// PolicyView is what the dashboard's policy page shows: the running
// config and the configured knowledge the running engine was built from
// (not re-read from disk).
func (d *Daemon) PolicyView(context.Context) web.PolicyView {
	d.mu.Lock()
	cfg, k := d.cfg, d.knowledge
	d.mu.Unlock()
	shown := *cfg
	shown.Store = store.RedactDSN(cfg.Store)
	shown.Policy = cfg.Policy.Effective()
	v := web.PolicyView{Mode: string(shown.Policy.Mode), Allow: cfg.Policy.Allow, DenyRules: cfg.Policy.Deny,
		LearnMinSenders: cfg.Detect.Learn.MinSenders, LearnMinDays: cfg.Detect.Learn.MinDays}
	if b, err := yaml.Marshal(&shown); err == nil {
		v.Config = string(b)
	}
	v.Protected = slices.Sorted(slices.Values(k.Protected))
	v.Deny = k.Deny
	for dom, n := range k.Known {
		v.Known = append(v.Known, web.DomainCount{Domain: dom, Count: int64(n)})
	}
	sort.Slice(v.Known, func(i, j int) bool {
		if v.Known[i].Count != v.Known[j].Count {
			return v.Known[i].Count > v.Known[j].Count
		}
		return v.Known[i].Domain < v.Known[j].Domain
	})
	return v
}
