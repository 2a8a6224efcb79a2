package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/stray-mail/stray/internal/config"
	"github.com/stray-mail/stray/internal/daemon"
	"github.com/stray-mail/stray/internal/listenaddr"
	"github.com/stray-mail/stray/internal/postconf"
	"github.com/stray-mail/stray/internal/store"
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
with the old ones; listener addresses need a restart), and re-reads the
relay's and the HTTP listener's TLS certificates (a broken one is logged
and the running one kept) and who may relay (relay.allow,
relay.allow_certs, relay.client_ca; for the sessions that start after
it). SIGTERM or SIGINT
stops accepting, lets messages in progress finish for shutdown_timeout, then
closes what is left: the MTA tempfails those messages and retries them.

The store (when the config names one) is opened whether or not hold and
confirm is on: learning from traffic, the decision counts, the dashboard
and the check API need only the store.

At start, beside the listeners, it asks Postfix's postconf for always_bcc,
sender_bcc_maps, recipient_bcc_maps, virtual_alias_maps and alias_maps,
reads the file-based maps (hash:, lmdb:, texthash:, ...: their source
files) and logs one warning, with file and line, per target address that
the engine flags: Postfix adds those after stray's RCPT-time check. It
never delays or stops the start, and says nothing without postconf.

Exit status: 0 stopped by SIGTERM or SIGINT, 2 usage or config error, 3
runtime failure (the store unreachable, a listener that cannot open or
fails).

Examples:
  stray serve
  stray serve --config /etc/stray/stray.yaml
  stray serve --protect mil --known /var/lib/stray/known.txt
  stray serve --config /etc/stray/stray.yaml --postfix-config /etc/postfix-out
`

const milterHelp = `usage: stray milter --listen inet:HOST:PORT|inet:PORT@HOST|unix:PATH [--protect DOMAIN]... [--known FILE]... [--deny FILE]... [--config FILE]

Runs only the milter front end. Postfix: smtpd_milters = inet:HOST:PORT,
milter_default_action = tempfail. --listen takes what listen.milter takes:
inet:HOST:PORT (Postfix's form), inet:PORT@HOST or inet:PORT (Sendmail's
and libmilter's; every address), inet6: the same over IPv6 only, unix:PATH
or local:PATH, or a bare HOST:PORT; a PORT is a number from 1 to 65535. A recipient whose verdict maps to reject is
refused at RCPT with a 550 5.1.2 reply naming the suggested address; the
message's other recipients are delivered. hold quarantines the message in
Postfix's hold queue; warn delivers and logs it (an X-Stray-Warning header
only with hold.warn_header).

Exit status: 0 stopped, 2 usage or config error, 3 runtime failure (the
store unreachable, the listener cannot open or fails).

Examples:
  stray milter --listen inet:127.0.0.1:8895 --protect mil
  stray milter --listen unix:/var/spool/postfix/stray/milter.sock --config /etc/stray/stray.yaml
`

const policyHelp = `usage: stray policy --listen HOST:PORT [--protect DOMAIN]... [--known FILE]... [--deny FILE]... [--config FILE]

Runs only the Postfix policy delegation server. Postfix:
smtpd_recipient_restrictions = ..., check_policy_service inet:HOST:PORT.
Answers 550 5.1.2 (reject, with the suggestion), HOLD, PREPEND
X-Stray-Warning, or DUNNO.

Exit status: 0 stopped, 2 usage or config error, 3 runtime failure (the
store unreachable, the listener cannot open or fails).

Examples:
  stray policy --listen 127.0.0.1:10045 --protect mil
`

// newDaemon loads the config, opens the store and builds the engine, as
// the detect flags say.
func newDaemon(ctx context.Context, df *detectFlags, std Stdio, mtaMaps *postconf.Postconf) (*daemon.Daemon, error) {
	return daemon.New(ctx, daemon.Options{ConfigPath: *df.config, LogOutput: std.Err, MTAMaps: mtaMaps,
		Knowledge: daemon.Knowledge{Protect: df.protect, Known: df.known, Deny: df.deny}})
}

// runtimeExit is the exit code for a daemon error: ExitRuntime for what
// failed at run time (store, listener), ExitUsage for the rest (config).
func runtimeExit(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, daemon.ErrUnavailable):
		return ExitRuntime
	}
	return ExitUsage
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
	mtaMaps := &pc
	if pc.Path == "off" {
		mtaMaps = nil
	}
	d, err := newDaemon(ctx, df, std, mtaMaps)
	if err != nil {
		fmt.Fprintf(std.Err, "stray serve: %v\n", err)
		return runtimeExit(err)
	}
	if err := d.Start(); err != nil {
		fmt.Fprintf(std.Err, "stray serve: %v\n", err)
		d.Close()
		if errors.Is(err, daemon.ErrNoListeners) {
			return ExitUsage
		}
		return ExitRuntime
	}
	if err := d.Run(ctx); err != nil {
		return ExitRuntime
	}
	return ExitOK
}

// runSingle runs one front end (stray milter, stray policy). check reads
// --listen with the grammar the config's listen key is validated with,
// before anything is opened.
func runSingle(ctx context.Context, name, help string, args []string, std Stdio, check func(string) (listenaddr.Addr, error), start func(*daemon.Daemon, string) error) int {
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
	if _, err := check(*addr); err != nil {
		fmt.Fprintf(std.Err, "stray %s: --listen %v\n", name, err)
		return ExitUsage
	}
	d, err := newDaemon(ctx, df, std, nil)
	if err != nil {
		fmt.Fprintf(std.Err, "stray %s: %v\n", name, err)
		return runtimeExit(err)
	}
	if err := start(d, *addr); err != nil {
		fmt.Fprintf(std.Err, "stray %s: %v\n", name, err)
		d.Close()
		return runtimeExit(err)
	}
	if err := d.Run(ctx); err != nil {
		return ExitRuntime
	}
	return ExitOK
}

func runMilter(ctx context.Context, args []string, std Stdio) int {
	return runSingle(ctx, "milter", milterHelp, args, std, listenaddr.Milter, (*daemon.Daemon).StartMilter)
}

func runPolicy(ctx context.Context, args []string, std Stdio) int {
	return runSingle(ctx, "policy", policyHelp, args, std, listenaddr.TCP, (*daemon.Daemon).StartPolicy)
}

const configHelp = `usage: stray config check [--connect] [--format text|json] FILE

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
{"config":FILE, "ok":false, "problems":[...]}. A "warning:" line (JSON:
"warnings") is a setting that is valid but probably wrong, such as
hold.base_url on loopback while listen.http is reachable from elsewhere,
or deserves a second look: an allow rule that lets mail through to a
lookalike of a protected domain (army.ml, or all of .ml, with mil
protected), which stray serve also logs at start.

--connect also tries what the file depends on and a daemon would first
try only when a message is held: the store (opened, written), the SMTP
servers of hold.notify_smtp and hold.reinject_smtp (greeting and EHLO),
and the name in hold.base_url; one "connect NAME ADDR: ok" or "FAILED"
line each (JSON: "endpoints"). stray serve makes the same SMTP and name
checks at start and logs a warning for each that fails.

Exit status: 0 valid (and, with --connect, everything answered), 2
problems (one per line on standard error, or in the JSON object), 3 with
--connect, something did not answer.

Examples:
  stray config check /etc/stray/stray.yaml
  stray config check --connect /etc/stray/stray.yaml
  stray config check --format json /etc/stray/stray.yaml
`

// configReport is stray config check's JSON output.
type configReport struct {
	Config   string   `json:"config"`
	OK       bool     `json:"ok"`
	Problems []string `json:"problems,omitempty"`
	*config.Effective
	Endpoints []daemon.Endpoint `json:"endpoints,omitempty"`
}

func runConfig(ctx context.Context, args []string, std Stdio) int {
	fs := newFlagSet("config", configHelp, std)
	format := fs.String("format", "text", "output format: text or json")
	connect := fs.Bool("connect", false, "also try the store, the SMTP servers and the base_url name the config depends on")
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
	cfg, warnings, err := daemon.CheckConfig(pos[1])
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
	eff.Warnings = append(eff.Warnings, warnings...)
	code := ExitOK
	var endpoints []daemon.Endpoint
	if *connect {
		endpoints = daemon.CheckEndpoints(ctx, cfg, true)
		for _, e := range endpoints {
			if !e.OK() {
				code = ExitRuntime
			}
		}
	}
	if *format == "json" {
		json.NewEncoder(std.Out).Encode(configReport{Config: pos[1], OK: true, Effective: &eff, Endpoints: endpoints})
		return code
	}
	fmt.Fprintf(std.Out, "%s: ok\n", pos[1])
	eff.WriteText(std.Out, "  ")
	for _, e := range endpoints {
		if e.OK() {
			fmt.Fprintf(std.Out, "  connect %s %s: ok\n", e.Name, e.Addr)
		} else {
			fmt.Fprintf(std.Out, "  connect %s %s: FAILED: %s\n", e.Name, e.Addr, e.Err)
		}
	}
	return code
}
