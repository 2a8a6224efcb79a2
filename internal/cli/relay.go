package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/stray-mail/stray/internal/config"
	"github.com/stray-mail/stray/internal/daemon"
	"github.com/stray-mail/stray/internal/listenaddr"
)

const relayHelp = `usage: stray relay --listen HOST:PORT --next-hop HOST:PORT [--allow CIDR]... [--allow-cert NAME|sha256:HEX]... [--client-ca FILE] [--tls-cert FILE --tls-key FILE] [--require-tls] [--next-hop-tls none|opportunistic|required] [--next-hop-fingerprint sha256:HEX] [--next-hop-helo NAME] [--protect DOMAIN]... [--known FILE]... [--deny FILE]... [--config FILE]

Runs only the SMTP relay front end: a smart host for MTAs that speak
neither milter nor policy delegation (Exchange, Microsoft 365, Google
Workspace, Exim, OpenSMTPD). It is an in-line proxy and keeps no queue: for
each client session it opens a session to the next hop (the MTA that
queues and delivers), refuses a mistyped recipient at RCPT with 550 5.1.2
and the address meant, holds one the policy holds (stored, its sender
asked), passes the others on, and answers 250 at the end of DATA only
after the next hop accepted the message. The next hop's own 4xx and 5xx
replies reach the client verbatim; when the next hop is down the client
hears 4xx and keeps the message. Clients outside --allow (default loopback
only) hear 554 at connect; with --allow-cert they may instead relay after
STARTTLS with a client certificate for an allowed name (verified against
--client-ca or the system roots) or with a pinned public key, and are
refused at MAIL (550 5.7.1) without one. SIGHUP re-reads the certificate
and key, and who may relay (relay.allow, relay.allow_certs and
relay.client_ca, unless flags set them) for the sessions that start
after it; a config that does not load keeps the running rules. Every
setting is also in the config file (listen.relay and the relay section);
flags win, and are checked with the file as one. Without --config the
embedded defaults apply, as for stray serve: hold and confirm on, its
store stray.db and signing key stray.key in the working directory.

See docs/relay.md for Exchange, Microsoft 365, Google Workspace, Exim and
OpenSMTPD.

Examples:
  stray relay --listen 127.0.0.1:10025 --next-hop 127.0.0.1:10027 --protect example.com
  stray relay --listen 0.0.0.0:587 --next-hop mx-out.example.com:25 --allow 192.0.2.0/24 \
      --tls-cert /etc/stray/cert.pem --tls-key /etc/stray/key.pem --require-tls
  stray relay --config /etc/stray/stray.yaml --listen 127.0.0.1:10025
  stray relay --listen 127.0.0.1:10025 --next-hop mx-out.example.com:25 \
      --next-hop-fingerprint sha256:$(openssl x509 -in hop.pem -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -c1-64)
`

func runRelay(ctx context.Context, args []string, std Stdio) int {
	fs := newFlagSet("relay", relayHelp, std)
	df := addDetectFlags(fs, "YAML config `FILE` (detect, policy, hold, relay and log sections)")
	addr := fs.String("listen", "", "listen address `HOST:PORT` (default: listen.relay)")
	next := fs.String("next-hop", "", "the MTA that queues and delivers, `HOST:PORT` (default: relay.next_hop)")
	var allow stringsFlag
	fs.Var(&allow, "allow", "client range allowed to relay, `CIDR` (repeatable; default: relay.allow, else loopback only)")
	var allowCerts stringsFlag
	fs.Var(&allowCerts, "allow-cert", "client certificate allowed to relay from outside --allow: a DNS `NAME` it carries (*.example.com: one label under it), verified, or sha256:HEX of a pinned public key (repeatable; default: relay.allow_certs)")
	clientCA := fs.String("client-ca", "", "CA certificates `FILE` (PEM) verifying --allow-cert names (default: relay.client_ca, else the system roots)")
	cert := fs.String("tls-cert", "", "STARTTLS certificate `FILE` (PEM; re-read on SIGHUP and when it changes)")
	key := fs.String("tls-key", "", "STARTTLS private key `FILE` (PEM)")
	requireTLS := fs.Bool("require-tls", false, "refuse MAIL before STARTTLS")
	nextTLS := fs.String("next-hop-tls", "", "STARTTLS to the next hop: none, opportunistic (default) or required")
	pin := fs.String("next-hop-fingerprint", "", "pin the next hop's key, `sha256:HEX` of its certificate's SubjectPublicKeyInfo (STARTTLS then required; no CA consulted)")
	helo := fs.String("next-hop-helo", "", "the `NAME` given in EHLO to the next hop (default: relay.next_hop_helo, else the host name)")
	if _, err := parseInterleaved(fs, args); err != nil {
		return flagExit(err)
	}
	// Every flag is checked, with the config it overrides, before the
	// store is opened (a typo must not leave a new store behind).
	if err := relayFlagProblem(*addr, *nextTLS, *pin); err != nil {
		fmt.Fprintf(std.Err, "stray relay: %v\n", err)
		return ExitUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["tls-cert"] || set["tls-key"] {
		set["tls-cert"], set["tls-key"] = true, true // either sets both
	}
	// The flags are written over the config file (at start and at every
	// reload) before it is checked, so that the two are checked as the
	// whole they make.
	override := func(cfg *config.Config) {
		r := &cfg.Relay
		if *next != "" {
			r.NextHop = *next
		}
		if len(allow) > 0 {
			r.Allow = allow
		}
		if len(allowCerts) > 0 {
			r.AllowCerts = allowCerts
		}
		if *clientCA != "" {
			r.ClientCA = *clientCA
		}
		if *cert != "" || *key != "" {
			r.TLSCert, r.TLSKey = *cert, *key
		}
		if *requireTLS {
			r.RequireTLS = true
		}
		if *nextTLS != "" {
			r.NextHopTLS = config.NextHopTLS(*nextTLS)
		}
		if *pin != "" {
			r.NextHopFingerprint = *pin
		}
		if *helo != "" {
			r.NextHopHelo = *helo
		}
		if *addr != "" {
			cfg.Listen.Relay = *addr
		}
	}
	check := func(cfg *config.Config) error {
		if cfg.Listen.Relay == "" {
			return errNoRelayListen
		}
		return nil
	}
	d, err := daemon.New(ctx, daemon.Options{ConfigPath: *df.config, Override: override, Check: check, LogOutput: std.Err,
		Knowledge: daemon.Knowledge{Protect: df.protect, Known: df.known, Deny: df.deny}})
	if err != nil {
		msg := err.Error()
		if !errors.Is(err, errNoRelayListen) {
			msg = relayFlagNames(msg, set)
		}
		fmt.Fprintf(std.Err, "stray relay: %s\n", msg)
		return runtimeExit(err)
	}
	if err := d.StartRelay(d.Config().Listen.Relay); err != nil {
		fmt.Fprintf(std.Err, "stray relay: %v\n", err)
		d.Close()
		return runtimeExit(err)
	}
	if err := d.Run(ctx); err != nil {
		return ExitRuntime
	}
	return ExitOK
}

var errNoRelayListen = errors.New("--listen is required (or listen.relay)")

// relayFlags are the relay's flags by the config key each overrides,
// longest key first (relay.next_hop_tls before relay.next_hop).
var relayFlags = []struct{ key, flag string }{
	{"relay.next_hop_fingerprint", "next-hop-fingerprint"},
	{"relay.next_hop_helo", "next-hop-helo"},
	{"relay.next_hop_tls", "next-hop-tls"},
	{"relay.require_tls", "require-tls"},
	{"relay.allow_certs", "allow-cert"},
	{"relay.client_ca", "client-ca"},
	{"relay.next_hop", "next-hop"},
	{"relay.tls_cert", "tls-cert"},
	{"relay.tls_key", "tls-key"},
	{"relay.allow", "allow"},
	{"listen.relay", "listen"},
}

// relayFlagNames names, in the config's problems, the flag where the
// command line set a value (or, for a key no flag set, keeps the key and
// adds the flag that would set it).
func relayFlagNames(problems string, set map[string]bool) string {
	var pairs []string
	for _, f := range relayFlags {
		if set[f.flag] {
			pairs = append(pairs, f.key, "--"+f.flag)
		} else {
			pairs = append(pairs, f.key, f.key+" (--"+f.flag+")")
		}
	}
	return strings.NewReplacer(pairs...).Replace(problems)
}

// relayFlagProblem checks the relay flags whose values mean the same
// whatever the config says.
func relayFlagProblem(addr, nextTLS, pin string) error {
	if addr != "" {
		if _, err := listenaddr.TCP(addr); err != nil {
			return fmt.Errorf("--listen %v", err)
		}
	}
	if err := config.NextHopTLS(nextTLS).Check(); err != nil {
		return fmt.Errorf("--next-hop-tls %v", err)
	}
	if pin != "" {
		if _, err := config.ParseFingerprint(pin); err != nil {
			return fmt.Errorf("--next-hop-fingerprint %v", err)
		}
	}
	return nil
}
