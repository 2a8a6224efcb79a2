package daemon

import (
	"crypto/tls"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/stray-mail/stray/detect"
	"github.com/stray-mail/stray/internal/config"
	"github.com/stray-mail/stray/internal/relay"
	"github.com/stray-mail/stray/internal/relay/clientcert"
)

// StartRelay starts the SMTP relay front end on addr, as the config's
// relay section says (stray relay's flags written over it: Options.Override).
// On SIGHUP, after the config is reloaded, who may relay (relay.allow,
// relay.allow_certs, relay.client_ca) is read again for new sessions.
func (d *Daemon) StartRelay(addr string) error {
	cfg := d.Config()
	rc := cfg.Relay
	s, err := d.newRelay(cfg)
	if err != nil {
		return err
	}
	d.onHUP("relay allow rules", func() error {
		cfg := d.Config()
		allow, certs, err := relayAccess(cfg)
		if err != nil {
			return err
		}
		return s.SetAccess(allow, certs)
	})
	l, err := listenTCP("relay", addr)
	if err != nil {
		return err
	}
	capped := d.capSMTP(l, "relay", d.caps().Relay)
	d.run("relay", addr, l, func() error { return s.Serve(capped) }, s.Shutdown, "next_hop", rc.NextHop, "max_connections", d.caps().Relay)
	return nil
}

// relayAccess reads who may relay from the config's relay section: the
// client ranges and the client certificate rules, with their CAs.
func relayAccess(cfg *config.Config) ([]netip.Prefix, clientcert.Rules, error) {
	rc := cfg.Relay
	allow, err := rc.AllowPrefixes()
	if err != nil {
		return nil, clientcert.Rules{}, fmt.Errorf("relay.allow: %w", err)
	}
	certs, err := clientcert.Parse(rc.AllowCerts)
	if err != nil {
		return nil, clientcert.Rules{}, fmt.Errorf("relay.allow_certs: %w", err)
	}
	if rc.ClientCA != "" {
		if certs.Roots, err = rc.ClientCAPool(cfg.Path(rc.ClientCA)); err != nil {
			return nil, clientcert.Rules{}, fmt.Errorf("relay.client_ca: %w", err)
		}
	}
	return allow, certs, nil
}

// newRelay builds the relay front end from the config's relay section.
func (d *Daemon) newRelay(cfg *config.Config) (*relay.Server, error) {
	rc := cfg.Relay
	if rc.NextHop == "" {
		return nil, fmt.Errorf("relay.next_hop (--next-hop) is required")
	}
	allow, certs, err := relayAccess(cfg)
	if err != nil {
		return nil, err
	}
	s := &relay.Server{Gate: d.gate, Holder: d.holder, NextHop: rc.NextHop, Allow: allow, AllowCerts: certs,
		RequireTLS: rc.RequireTLS, DSN: rc.DSN, NextHopTLS: string(rc.NextHopTLS), NextHopHelo: rc.NextHopHelo,
		MaxMessageBytes: rc.MaxMessageSize, MaxHoldSize: cfg.Hold.MaxSize}
	if rc.NextHopFingerprint != "" {
		pin, err := config.ParseFingerprint(rc.NextHopFingerprint)
		if err != nil {
			return nil, fmt.Errorf("relay.next_hop_fingerprint: %w", err)
		}
		fp := relay.Fingerprint(pin)
		s.NextHopFingerprint = &fp
	}
	if rc.TLSCert != "" {
		kp := &keyPair{cert: cfg.Path(rc.TLSCert), key: cfg.Path(rc.TLSKey)}
		if _, err := kp.get(nil); err != nil {
			return nil, err
		}
		s.TLS = &tls.Config{GetCertificate: kp.get, MinVersion: tls.VersionTLS12}
		d.onHUP("relay certificate", kp.reload)
	} else if !s.AllowCerts.Empty() {
		return nil, fmt.Errorf("relay.allow_certs: needs relay.tls_cert and relay.tls_key (clients present certificates after STARTTLS)")
	}
	return s, nil
}

// StartSink starts the defensive-registration sink on addr with the
// config's sink.domains.
func (d *Daemon) StartSink(addr string) error { return d.StartSinkWith(addr, d.Config().Sink.Domains) }

// StartSinkWith starts the sink for the "DOMAIN INTENDED" lines of the file
// at path (relative to the config file); its events go to the store when
// there is one.
func (d *Daemon) StartSinkWith(addr, path string) error {
	domains, err := SinkDomains(d.Config(), path)
	if err != nil {
		return fmt.Errorf("sink: %w", err)
	}
	l, err := listenTCP("sink", addr)
	if err != nil {
		return err
	}
	s := relay.NewSink(domains, d.st, d.log, d.reg)
	d.log.Info("sink domains", "count", len(domains))
	capped := d.capSMTP(l, "sink", d.caps().Sink)
	d.run("sink", addr, l, func() error { return s.Serve(capped) }, s.Shutdown, "max_connections", d.caps().Sink)
	return nil
}

// SinkDomains reads the sink's "DOMAIN INTENDED" lines from the file at
// path (relative to the config file). A file without a domain is an
// error: a sink that refuses nothing of its own is a mistake.
func SinkDomains(cfg *config.Config, path string) (map[string]string, error) {
	if path == "" {
		return nil, fmt.Errorf("sink.domains is required")
	}
	f, err := os.Open(cfg.Path(path))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	domains, err := detect.ReadDeny(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(domains) == 0 {
		return nil, fmt.Errorf("%s: no \"DOMAIN INTENDED\" line", path)
	}
	return domains, nil
}

// keyPair serves a certificate from files, re-reading them when they
// change (a renewed certificate needs no restart).
type keyPair struct {
	cert, key string
	mu        sync.Mutex
	loaded    *tls.Certificate
	mtime     time.Time
	checked   time.Time
}

// reload re-reads the files now (SIGHUP); on error the running certificate
// stays.
func (k *keyPair) reload() error {
	c, err := tls.LoadX509KeyPair(k.cert, k.key)
	if err != nil {
		return fmt.Errorf("%s, %s: %w", k.cert, k.key, err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.loaded, k.checked = &c, time.Now()
	if fi, err := os.Stat(k.cert); err == nil {
		k.mtime = fi.ModTime()
	}
	return nil
}

func (k *keyPair) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.loaded != nil && time.Since(k.checked) < time.Second {
		return k.loaded, nil
	}
	k.checked = time.Now()
	fi, err := os.Stat(k.cert)
	if err == nil && k.loaded != nil && fi.ModTime().Equal(k.mtime) {
		return k.loaded, nil
	}
	c, err := tls.LoadX509KeyPair(k.cert, k.key)
	if err != nil {
		if k.loaded != nil {
			return k.loaded, nil // keep serving the one that worked
		}
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	k.loaded = &c
	if fi != nil {
		k.mtime = fi.ModTime()
	}
	return k.loaded, nil
}
